"""The one refit schedule of a campaign's surrogate: warm starts, ``refit_growth``, restarts.

Every fit of a campaign, of the QM9 replay and of the sample-efficiency benchmark goes
through :func:`fit_surrogate`. Warm-startable kinds start from the hyperparameters of the
previous fit (``warm_start``); with ``refit_growth > 1`` they are re-optimised only once
the labels have grown by that factor since the last optimisation, and in between the model
is conditioned on the new labels with the stored hyperparameters (likewise until
``refit_every`` labels have come); with ``restarts > 1`` a GP is fitted from that many
starting points as one batched model. The schedule's state (:class:`FitState`) is passed
in and returned, never kept: a campaign stores it per iteration, so a resumed campaign
fits exactly as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bodisc.surrogates.registry import DEFAULT_DEVICE, DEFAULT_KERNEL, DEFAULT_PRECISION


@dataclass(frozen=True)
class SurrogateSettings:
    """How to build and refit a surrogate (a campaign's ``[surrogate]``, resolved).

    Attributes:
        kind: A registered surrogate kind (``gp``, ``xgp``, ``sparse``, ...).
        kernel: Kernel name.
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: ``auto``, ``float64`` or ``float32``.
        options: Further factory options of the kind (e.g. a GP's ``mean``).
        warm_start: Start each optimisation from the previous fit's hyperparameters.
        refit_growth: Re-optimise only once the labels grew by this factor (1: always).
        restarts: Starting points of an optimisation, for kinds that fit them as one
            batched model (``gp``).
        refit_every: Re-optimise only once this many labels came since the last
            optimisation (1: always). An asynchronous campaign sets its batch size, so it
            optimises as often per oracle call as a batch campaign does.
    """

    kind: str = "gp"
    kernel: str = DEFAULT_KERNEL
    device: str = DEFAULT_DEVICE
    precision: str = DEFAULT_PRECISION
    options: Mapping[str, Any] = field(default_factory=dict)
    warm_start: bool = True
    refit_growth: float = 1.0
    restarts: int = 1
    refit_every: int = 1


@dataclass(frozen=True)
class FitState:
    """What the schedule keeps between fits.

    Attributes:
        kind: The surrogate kind that made it (a state of another kind is not used).
        state: The fitted hyperparameters (``hyper_state()`` of the model).
        optimised_at: Labels at the last optimisation of the hyperparameters.
    """

    kind: str
    state: dict[str, list[float]]
    optimised_at: int

    def as_dict(self) -> dict[str, Any]:
        """The JSON form a campaign stores (meta ``surrogate/<iteration>``)."""
        return {"kind": self.kind, "state": self.state, "optimised_at": self.optimised_at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FitState:
        """Inverse of :meth:`as_dict` (stores before ``optimised_at`` read as 0)."""
        return cls(str(data["kind"]), dict(data["state"]), int(data.get("optimised_at", 0)))


def fit_surrogate(settings: SurrogateSettings, X: np.ndarray, y: np.ndarray,
                  previous: FitState | None = None,
                  restart_seed: Sequence[int] = (0,)) -> tuple[Any, FitState | None]:
    """Build and fit a surrogate on ``X`` ``(n, d)``, ``y`` ``(n,)`` by the schedule.

    Args:
        settings: The surrogate and its schedule.
        X: Training inputs (with the category flags appended for kinds that use them).
        y: Labels in maximisation form.
        previous: The state returned by the previous fit (``None``: the first fit).
        restart_seed: Entropy of the restarts' generator (a campaign passes
            ``(random_seed, iteration, 1)``).

    Returns:
        The fitted model and the state to pass to the next fit (``None`` for kinds that
        are not warm-startable).
    """
    from bodisc.surrogates import SURROGATES, build_surrogate

    s = settings
    spec = SURROGATES[s.kind]
    model = build_surrogate(s.kind, s.kernel, s.device, s.precision, **dict(s.options))
    if not spec.warm_start:
        return model.fit(X, y), None
    n = len(y)
    last = previous if previous is not None and previous.kind == s.kind else None
    init = last.state if last is not None and s.warm_start else None
    optimised_at = n
    if last is not None and (
            (s.refit_growth > 1.0 and n < last.optimised_at * s.refit_growth)
            or (s.refit_every > 1 and n < last.optimised_at + s.refit_every)):
        model.fit(X, y, init=last.state, optimise=False)  # condition only
        optimised_at = last.optimised_at
    elif s.restarts > 1 and spec.multistart:
        from bodisc.surrogates.batched import multistart_state

        rng = np.random.default_rng(np.random.SeedSequence(list(restart_seed)))
        init = multistart_state(X, y, s.restarts, rng, s.kernel, s.device, init)
        model.fit(X, y, init=init, optimise=False)
    else:
        model.fit(X, y, init=init)
    return model, FitState(s.kind, model.hyper_state(), optimised_at)
