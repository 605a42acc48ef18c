"""Acquisition strategies: choose q distinct molecules from a scored candidate set.

Every strategy works on the maximisation form of the objective (the campaign negates the
labels of a minimisation) and receives an :class:`AcquisitionContext`. The registry
:data:`ACQUISITIONS` is the one list of names: the config validator and the CLI take their
choices from it.

Batches (q > 1) without per-candidate Python loops:

* ``logei`` and ``ucb``: kriging believer. Conditioning a GP on its own mean at a chosen
  point leaves the posterior mean unchanged and shrinks the covariance by a rank-one
  update, ``S <- S - c c^T / (c_s + noise)`` with ``c`` the chosen point's covariance
  column. So each of the q steps is one vectorised score over all candidates and one
  covariance column; the incumbent becomes ``max(best, mean_s)``.
* ``thompson``: q draws from the joint posterior over the candidates, each taking its
  best not-yet-chosen candidate.
* ``greedy``: the q best posterior means.
* ``random``: q candidates uniformly at random (the no-model baseline).
* ``rank``: the q best values of one cheap descriptor (``acquisition.rank_by``, e.g. the
  force-field-geometry xTB dipole ``mu`` for a dipole campaign): the strongest simple
  baseline, no model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bodisc.surrogates.gp import GPSurrogate


@dataclass
class AcquisitionContext:
    """What a strategy sees.

    Attributes:
        X: Candidate descriptors, shape ``(m, d)``.
        q: How many to choose (``q <= m``).
        best: Incumbent (best label so far, maximisation form).
        rng: The iteration's seeded generator.
        surrogate: The fitted GP (``None`` for ``random`` and ``rank``).
        beta: UCB exploration weight.
        ranking: For ``rank``: the ranking descriptor of each candidate, already in
            maximisation form, shape ``(m,)``.
    """

    X: np.ndarray
    q: int
    best: float
    rng: np.random.Generator
    surrogate: GPSurrogate | None = None
    beta: float = 2.0
    ranking: np.ndarray | None = None


@dataclass(frozen=True)
class Selection:
    """The chosen candidates, in the order chosen.

    Attributes:
        index: Candidate indices, shape ``(q,)``.
        score: The acquisition value at the moment each was chosen, shape ``(q,)``.
    """

    index: np.ndarray
    score: np.ndarray


Strategy = Callable[[AcquisitionContext], Selection]


@dataclass(frozen=True)
class StrategySpec:
    """A registered strategy and what it needs from the campaign."""

    fn: Strategy
    needs_model: bool
    needs_descriptors: bool


#: The one list of acquisition names (config validation and CLI choices read it).
ACQUISITIONS: dict[str, StrategySpec] = {}


def register(name: str, needs_model: bool = True,
             needs_descriptors: bool = True) -> Callable[[Strategy], Strategy]:
    """Register a strategy under ``name``; a duplicate name is refused."""

    def wrap(fn: Strategy) -> Strategy:
        if name in ACQUISITIONS:
            raise ValueError(f"acquisition {name!r} is already registered")
        ACQUISITIONS[name] = StrategySpec(fn, needs_model, needs_descriptors or needs_model)
        return fn

    return wrap


def select(name: str, ctx: AcquisitionContext) -> Selection:
    """Run the strategy ``name`` (must be registered)."""
    return ACQUISITIONS[name].fn(ctx)


def _believer(ctx: AcquisitionContext, score: Callable[[np.ndarray, np.ndarray, float],
                                                       np.ndarray]) -> Selection:
    """Sequential kriging-believer selection with rank-one covariance updates."""
    assert ctx.surrogate is not None
    mean, std = ctx.surrogate.predict(ctx.X)
    var = std**2
    noise = ctx.surrogate.noise_variance()
    m = mean.shape[0]
    chosen: list[int] = []
    scores: list[float] = []
    updates = np.zeros((m, 0))
    best = ctx.best
    for _ in range(min(ctx.q, m)):
        s = score(mean, np.sqrt(np.clip(var, 1e-30, None)), best)
        s[chosen] = -np.inf
        i = int(np.argmax(s))
        chosen.append(i)
        scores.append(float(s[i]))
        if len(chosen) == ctx.q:
            break
        col = ctx.surrogate.covariance_columns(ctx.X, np.array([i]))[:, 0]
        col = col - updates @ updates[i]
        u = col / np.sqrt(max(col[i] + noise, 1e-30))
        updates = np.column_stack([updates, u])
        var = var - u**2
        best = max(best, float(mean[i]))
    return Selection(np.array(chosen, dtype=int), np.array(scores))


@register("logei")
def log_expected_improvement(ctx: AcquisitionContext) -> Selection:
    """LogEI (botorch's numerically stable form) with kriging-believer batches."""
    from bodisc.surrogates.gp import expected_improvement_log

    return _believer(ctx, expected_improvement_log)


@register("ucb")
def upper_confidence_bound(ctx: AcquisitionContext) -> Selection:
    """UCB, ``mean + sqrt(beta) * std``, with kriging-believer batches."""
    root_beta = float(np.sqrt(ctx.beta))
    return _believer(ctx, lambda mean, std, best: mean + root_beta * std)


@register("thompson")
def thompson_sampling(ctx: AcquisitionContext) -> Selection:
    """One joint posterior draw per batch slot; each takes its best unchosen candidate."""
    assert ctx.surrogate is not None
    draws = ctx.surrogate.joint_samples(ctx.X, ctx.q, ctx.rng)  # (q, m)
    chosen: list[int] = []
    scores: list[float] = []
    for draw in draws:
        draw = draw.copy()
        draw[chosen] = -np.inf
        i = int(np.argmax(draw))
        chosen.append(i)
        scores.append(float(draw[i]))
    return Selection(np.array(chosen, dtype=int), np.array(scores))


@register("greedy")
def greedy_mean(ctx: AcquisitionContext) -> Selection:
    """The q largest posterior means (pure exploitation)."""
    assert ctx.surrogate is not None
    mean, _ = ctx.surrogate.predict(ctx.X)
    order = np.argsort(-mean, kind="stable")[: ctx.q]
    return Selection(order, mean[order])


@register("rank", needs_model=False)
def rank_by_descriptor(ctx: AcquisitionContext) -> Selection:
    """The q best candidates by one cheap descriptor (no model)."""
    assert ctx.ranking is not None, "rank needs acquisition.rank_by"
    values = np.where(np.isfinite(ctx.ranking), ctx.ranking, -np.inf)
    order = np.argsort(-values, kind="stable")[: ctx.q]
    return Selection(order, values[order])


@register("random", needs_model=False, needs_descriptors=False)
def random_choice(ctx: AcquisitionContext) -> Selection:
    """Q candidates uniformly at random, without a model."""
    m = ctx.X.shape[0]
    index = ctx.rng.choice(m, size=min(ctx.q, m), replace=False)
    return Selection(np.asarray(index, dtype=int), np.zeros(len(index)))
