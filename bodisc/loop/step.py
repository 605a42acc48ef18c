"""The loop's pure step: labels, pending molecules and candidates in; a batch out.

No store, no executor, no I/O: arrays in, indices out. A campaign assembles the arrays
from its store and records the batch; the QM9 replay benchmarks call the same function on
a fixed pool, so the figures they report are those of the product's fit and selection.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bodisc.loop.refit import FitState, SurrogateSettings, fit_surrogate

#: Fewer labels than this and a model-based strategy picks at random instead.
MIN_LABELS = 3


@dataclass(frozen=True)
class Batch:
    """The molecules a step chose, in the order chosen.

    Attributes:
        index: Indices into the candidates, shape ``(q,)``.
        score: Acquisition value of each pick when it was chosen, shape ``(q,)``.
        mean: Posterior means of the picks (maximisation form), shape ``(q,)``, or
            ``None`` without a model.
        std: Posterior standard deviations, shape ``(q,)``, or ``None``.
        strategy: The strategy that chose them (``random`` when there were too few
            labels for the one asked for).
        fit: The refit schedule's state after this step's fit (``None`` without one).
        timings: ``fit_s``, ``score_s`` and ``fit_evaluations`` where a model was fitted.
        info: What the strategy learnt for people (``intervention``: its plan and graph),
            or ``None``.
    """

    index: np.ndarray
    score: np.ndarray
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    strategy: str = ""
    fit: FitState | None = None
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] | None = None


def min_labels(strategy: str) -> int:
    """Labels a strategy needs before it chooses; with fewer the step picks at random."""
    from bodisc.acquisition import ACQUISITIONS

    spec = ACQUISITIONS[strategy]
    if spec.needs_labels:
        from bodisc.causal.intervention import MIN_LABELS as LEARN_MIN

        return LEARN_MIN
    return MIN_LABELS if spec.needs_model else 0


def _impute(X_train: np.ndarray, X_cand: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NaN descriptors (a graph descriptor xTB could not give) -> the training median.

    Returns:
        ``(X_train, X_cand, keep)``: both matrices without the columns that have no
        finite training value, NaNs filled; ``keep`` is the boolean column mask ``(d,)``.
    """
    X_train = np.asarray(X_train, dtype=float)
    finite = np.isfinite(X_train)
    keep = finite.any(axis=0)
    med = np.array([np.median(c[f]) for c, f in zip(X_train.T[keep], finite.T[keep],
                                                     strict=True)])
    out = [np.where(np.isfinite(X[:, keep]), X[:, keep], med[None, :])
           for X in (X_train, np.asarray(X_cand, dtype=float))]
    return out[0], out[1], keep


def choose_batch(X_train: np.ndarray, y_train: np.ndarray, X_cand: np.ndarray, q: int,
                 rng: np.random.Generator, *, strategy: str, surrogate: SurrogateSettings,
                 beta: float, previous: FitState | None = None,
                 X_pending: np.ndarray | None = None, ranking: np.ndarray | None = None,
                 restart_seed: Sequence[int] = (0,), names: Sequence[str] = (),
                 options: dict[str, Any] | None = None) -> Batch:
    """Choose ``q`` of the candidates with a registered strategy.

    Args:
        X_train: Descriptors of the labelled molecules, shape ``(n, d)`` (with the
            category flags appended for surrogate kinds that use them).
        y_train: Their labels in maximisation form, shape ``(n,)``.
        X_cand: Descriptors of the candidates, shape ``(m, d)`` (``(m, 0)`` is enough
            for ``random``).
        q: Batch size (at most ``m``).
        rng: The step's seeded generator.
        strategy: A name of :data:`bodisc.acquisition.ACQUISITIONS`.
        surrogate: The surrogate and its refit schedule.
        beta: UCB's exploration weight.
        previous: The refit schedule's state from the previous step.
        X_pending: Descriptors of molecules chosen earlier whose labels are not back,
            shape ``(p, d)``: the batch is conditioned on them (kriging believer).
        ranking: For ``rank``: each candidate's ranking value, maximisation form ``(m,)``.
        restart_seed: Entropy of the GP restarts' generator.
        names: The descriptors' names (strategies that draw graphs of them).
        options: Strategy settings (``intervention``: ``k``, ``step``,
            ``max_descriptors``).

    Returns:
        The :class:`Batch`.
    """
    from bodisc.acquisition import ACQUISITIONS, AcquisitionContext, select

    spec = ACQUISITIONS[strategy]
    q = min(q, X_cand.shape[0])
    if spec.needs_labels:
        if len(y_train) < min_labels(strategy):  # too few to learn from: random, as below
            return choose_batch(X_train, y_train, X_cand, q, rng, strategy="random",
                                surrogate=surrogate, beta=beta)
        t0 = time.perf_counter()
        X_t, X_c, keep = _impute(X_train, X_cand)
        labels = tuple(names) or tuple(f"x{i}" for i in range(len(keep)))
        kept = tuple(n for n, k in zip(labels, keep, strict=True) if k)
        ctx = AcquisitionContext(X_c, q, float(np.max(y_train)), rng, X_train=X_t,
                                 y_train=np.asarray(y_train, dtype=float), names=kept,
                                 options=dict(options or {}))
        sel = select(strategy, ctx)
        return Batch(sel.index, sel.score, strategy=strategy,
                     timings={"score_s": time.perf_counter() - t0}, info=sel.info)
    if not spec.needs_model or len(y_train) < MIN_LABELS:
        if spec.needs_model:
            strategy = "random"
        ctx = AcquisitionContext(X_cand, q, 0.0, rng, ranking=ranking)
        sel = select(strategy, ctx)
        return Batch(sel.index, sel.score, strategy=strategy)
    from bodisc.surrogates.gp import SMALL_N, torch_threads

    with torch_threads(1 if len(y_train) < SMALL_N else None):
        t0 = time.perf_counter()
        model, fit = fit_surrogate(surrogate, X_train, y_train, previous, restart_seed)
        t1 = time.perf_counter()
        pending = X_pending if X_pending is not None and len(X_pending) else None
        ctx = AcquisitionContext(X_cand, q, float(np.max(y_train)), rng, model, beta,
                                 pending=pending)
        sel = select(strategy, ctx)
        mean, std = model.predict(X_cand[sel.index])
        t2 = time.perf_counter()
    timings = {"fit_s": t1 - t0, "score_s": t2 - t1,
               "fit_evaluations": float(getattr(model, "fit_evaluations", 0))}
    return Batch(sel.index, sel.score, np.asarray(mean, dtype=float),
                 np.asarray(std, dtype=float), strategy, fit, timings)


def choose_fidelity_batch(X_train: np.ndarray, fidelities: Sequence[str], y_train: np.ndarray,
                          X_cand: np.ndarray, has_cheap: np.ndarray, q: int,
                          rng: np.random.Generator, *, strategy: str,
                          surrogate: SurrogateSettings, beta: float, fidelity_beta: float,
                          gamma: float, previous: FitState | None = None,
                          restart_seed: Sequence[int] = (0,)
                          ) -> tuple[list[Any], FitState | None, dict[str, float]]:
    """A multi-fidelity batch: picks on the target posterior, then an oracle for each.

    The GP takes the fidelity as one more input; each pick goes to the cheap oracle by
    the MF-GP-UCB rule (:func:`bodisc.acquisition.multifidelity.select_with_fidelity`).

    Args:
        X_train: Descriptors of the labelled molecules ``(n, d)``, target and cheap.
        fidelities: The fidelity of each label (``target`` or ``cheap``), ``(n,)``.
        y_train: Labels in maximisation form ``(n,)``; at least one target label.
        X_cand: Candidate descriptors ``(m, d)``.
        has_cheap: Whether each candidate has a cheap job already ``(m,)``.
        q: Batch size.
        rng: The step's seeded generator.
        strategy: The campaign's model-based acquisition.
        surrogate: The surrogate and its refit schedule.
        beta: UCB's exploration weight.
        fidelity_beta: The rule's confidence width.
        gamma: The rule's threshold on the cheap standard deviation.
        previous: The refit schedule's state from the previous step.
        restart_seed: Entropy of the GP restarts' generator.

    Returns:
        The picks (:class:`~bodisc.acquisition.multifidelity.Pick`, means in maximisation
        form), the refit state and ``fit_s``, ``score_s``, ``fit_evaluations``.
    """
    from bodisc.acquisition.multifidelity import CHEAP, select_with_fidelity, with_fidelity
    from bodisc.surrogates.gp import SMALL_N, torch_threads

    X_t = with_fidelity(X_train, list(fidelities))
    best = float(max(y for y, f in zip(y_train, fidelities, strict=True) if f != CHEAP))
    with torch_threads(1 if len(y_train) < SMALL_N else None):
        t0 = time.perf_counter()
        model, fit = fit_surrogate(surrogate, X_t, y_train, previous, restart_seed)
        t1 = time.perf_counter()
        picks = select_with_fidelity(strategy, model, X_cand, has_cheap, q, best, rng, beta,
                                     fidelity_beta, gamma)
        t2 = time.perf_counter()
    return picks, fit, {"fit_s": t1 - t0, "score_s": t2 - t1,
                        "fit_evaluations": float(getattr(model, "fit_evaluations", 0))}
