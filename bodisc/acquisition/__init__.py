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
  best not-yet-chosen candidate. Past :data:`THOMPSON_MAX` candidates the draws are
  joint over the ones with the largest ``mean + 4 std``: a candidate below that line
  is the maximum of a draw only with negligible probability, and a joint draw over a
  million candidates would need a million-square covariance.
* ``greedy``: the q best posterior means.
* ``random``: q candidates uniformly at random (the no-model baseline).
* ``rank``: the q best values of one cheap descriptor (``acquisition.rank_by``, e.g. the
  force-field-geometry xTB dipole ``mu`` for a dipole campaign): the strongest simple
  baseline, no model.
* ``intervention``: Fox and Ghosh's causal interventions (:mod:`bodisc.causal.intervention`):
  a DirectLiNGAM graph on the labelled molecules, the descriptors with the largest total
  effects on the target moved to reach the incumbent plus a step, and the candidates
  nearest to those intervened points. No GP; needs the ``causal`` extra.

Pending molecules (chosen earlier, label not yet back: ``AcquisitionContext.pending``) are
conditioned on the same way as the earlier picks of a batch: the kriging believer takes
them first, as forced picks, and Thompson draws from the posterior conditioned on them at
their means. Conditioning on the mean leaves the posterior mean as it is, so ``greedy``,
``rank`` and ``random`` do not change; the caller keeps pending molecules out of ``X``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bodisc.surrogates.gp import ShortlistPosterior

if TYPE_CHECKING:
    from bodisc.surrogates.gp import GPSurrogate


#: UCB's exploration weight unless a campaign sets one (``[acquisition] beta`` reads it).
DEFAULT_BETA = 2.0


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
        pending: Descriptors of molecules chosen earlier whose labels are not back yet,
            shape ``(p, d)``, or ``None``: the batch is conditioned on them.
        X_train: For strategies that learn from the labels without the GP
            (``intervention``): the labelled descriptors, shape ``(n, d)``.
        y_train: Their labels, maximisation form, shape ``(n,)``.
        names: The descriptors' names, length ``d`` (for graphs people read).
        options: Strategy settings from ``[acquisition]`` (e.g. ``intervention_k``).
    """

    X: np.ndarray
    q: int
    best: float
    rng: np.random.Generator
    surrogate: GPSurrogate | None = None
    beta: float = DEFAULT_BETA
    ranking: np.ndarray | None = None
    pending: np.ndarray | None = None
    X_train: np.ndarray | None = None
    y_train: np.ndarray | None = None
    names: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    """The chosen candidates, in the order chosen.

    Attributes:
        index: Candidate indices, shape ``(q,)``.
        score: The acquisition value at the moment each was chosen, shape ``(q,)``.
        info: What a strategy learnt that people may want to see (``intervention``:
            ``{"plan": InterventionPlan}``), or ``None``.
    """

    index: np.ndarray
    score: np.ndarray
    info: dict[str, Any] | None = None


Strategy = Callable[[AcquisitionContext], Selection]


@dataclass(frozen=True)
class StrategySpec:
    """A registered strategy and what it needs from the campaign."""

    fn: Strategy
    needs_model: bool
    needs_descriptors: bool
    needs_labels: bool = False


#: The one list of acquisition names (config validation and CLI choices read it).
ACQUISITIONS: dict[str, StrategySpec] = {}


def register(name: str, needs_model: bool = True, needs_descriptors: bool = True,
             needs_labels: bool = False) -> Callable[[Strategy], Strategy]:
    """Register a strategy under ``name``; a duplicate name is refused.

    ``needs_labels``: a strategy without the GP that learns from the labelled molecules
    itself (it gets ``X_train``, ``y_train`` and ``names`` in its context).
    """

    def wrap(fn: Strategy) -> Strategy:
        if name in ACQUISITIONS:
            raise ValueError(f"acquisition {name!r} is already registered")
        ACQUISITIONS[name] = StrategySpec(fn, needs_model, needs_descriptors or needs_model,
                                          needs_labels)
        return fn

    return wrap


def staged(name: str, iteration: int, calls_used: int, budget: int, warmup_batches: int = 0,
           greedy_until: float = 0.0) -> str:
    """The strategy of one batch of a staged campaign.

    Iterations ``1 .. warmup_batches`` (iteration 0 labels the seeds) are ``rank``: the
    labels so far lie where typical molecules are, and a model's correction learnt there
    does not carry to the far end of the cheap analogue where the batch will come from.
    Then ``greedy`` while fewer than ``greedy_until * budget`` oracle calls are spent (the
    analogue's extreme is exploited while it lasts), then ``name``. With the defaults
    every batch is ``name``.

    Args:
        name: The campaign's strategy.
        iteration: The batch's iteration (1 for the first after the seeds).
        calls_used: Oracle calls spent before the batch.
        budget: The campaign's oracle calls.
        warmup_batches: Batches ranked by the analogue.
        greedy_until: Share of the budget spent on greedy batches.
    """
    if iteration <= warmup_batches:
        return "rank"
    if calls_used < greedy_until * budget:
        return "greedy"
    return name


def select(name: str, ctx: AcquisitionContext) -> Selection:
    """Run the strategy ``name`` (must be registered)."""
    return ACQUISITIONS[name].fn(ctx)


#: Candidates whose joint posterior covariance a kriging-believer batch starts with; the
#: short list grows fourfold until the batch is provably the one over the whole set.
SHORTLIST = 512

#: The short list grows no further than this; a batch not certified on it is the
#: kriging-believer batch over this many pre-screened candidates (only with very large
#: pools and batches, where the late picks of a batch score below the first-step scores
#: of thousands of candidates).
SHORTLIST_MAX = 4096

#: Past this many candidates a batch starts from cheap upper bounds on the standard
#: deviations (``predict_bound``) and computes exact variances for the short list only.
BOUND_MIN = 20000

#: Thompson sampling draws jointly over at most this many candidates (see below).
THOMPSON_MAX = 4096


def _believer(ctx: AcquisitionContext, score: Callable[[np.ndarray, np.ndarray, float],
                                                       np.ndarray]) -> Selection:
    """Sequential kriging-believer selection with rank-one covariance updates.

    All candidates are scored once (posterior mean and variance in a few matrix
    products). The batch is then chosen on a short list, the candidates with the best
    first-step scores, whose joint covariance is one ``(k, k)`` matrix. Conditioning only
    lowers a score (the variance shrinks and the incumbent grows; the mean stays), so a
    candidate outside the list never scores more than its first-step score: a pick whose
    score is at least the best first-step score outside the list is the pick over all
    candidates. If a pick cannot be certified so, the list grows fourfold and the batch is
    chosen again; the result is the same batch as conditioning on every candidate, up to
    a list of :data:`SHORTLIST_MAX`, past which the batch is that of the pre-screened list.

    Past :data:`BOUND_MIN` candidates even the first scoring is cut down: exact means but
    upper bounds on the standard deviations (``predict_bound``), which give upper bounds
    on the first-step scores (LogEI and UCB grow with the standard deviation); exact
    variances are computed for the short list only. The certificate above holds as is.
    """
    assert ctx.surrogate is not None
    gp = ctx.surrogate
    m = ctx.X.shape[0]
    pending = _pending(ctx)
    best = ctx.best
    if len(pending):  # the believer's incumbent after the pending picks
        best = max(best, float(np.max(gp.predict(pending)[0])))
    bounded = m > BOUND_MIN and hasattr(gp, "predict_bound")
    if bounded:  # exact means, upper bounds on the standard deviations
        mean, std = gp.predict_bound(ctx.X)
    else:
        mean, std = gp.predict(ctx.X)
    q = min(ctx.q, m)
    first = score(mean, std, best)  # first-step scores (upper bounds when bounded)
    order = np.argsort(-first, kind="stable")
    noise = gp.noise_variance()
    k = min(m, max(SHORTLIST, 8 * q))
    while True:
        short = np.sort(order[:k])
        outside = float(first[order[k]]) if k < m else -np.inf
        listed = np.vstack([pending, ctx.X[short]]) if len(pending) else ctx.X[short]
        post = ShortlistPosterior.of(gp, listed)
        last = k == m or k >= SHORTLIST_MAX
        index, scores, certified = _believer_on(post, q, best, noise, score, outside,
                                                give_up=not last, forced=len(pending))
        if certified or last:
            return Selection(short[index], scores)
        k = min(m, 4 * k, SHORTLIST_MAX)


def _pending(ctx: AcquisitionContext) -> np.ndarray:
    """The pending molecules' descriptors ``(p, d)`` (``p = 0`` when there are none)."""
    if ctx.pending is None:
        return np.zeros((0, ctx.X.shape[1]))
    return np.asarray(ctx.pending, dtype=float).reshape(-1, ctx.X.shape[1])


def _believer_on(post: ShortlistPosterior, q: int, best: float, noise: float,
                 score: Callable[[np.ndarray, np.ndarray, float], np.ndarray],
                 outside: float, give_up: bool = True,
                 forced: int = 0) -> tuple[np.ndarray, np.ndarray, bool]:
    """Kriging believer on a short list, one covariance column per pick.

    The conditioned covariance is kept as the original one minus ``U U^T``, with ``U``
    of shape ``(k, picks)``: a pick costs ``O(k (n + picks))``.

    Args:
        post: The posterior over the list.
        q: Batch size.
        best: Incumbent.
        noise: Observation noise variance.
        score: Acquisition of ``(mean, std, best)``.
        outside: Largest first-step score of a candidate not on the list.
        give_up: Stop at the first pick that cannot be certified.
        forced: The first ``forced`` entries of the list are pending molecules: they are
            conditioned on first, in order, and never picked.

    Returns:
        Indices into the list after the forced entries ``(q,)`` (fewer if it gave up),
        their scores, and whether every pick is certified to be the pick over all
        candidates.
    """
    mean, var = post.mean, post.var.copy()
    k = mean.shape[0]
    total = forced + q
    U = np.zeros((k, total))
    chosen: list[int] = []
    scores: list[float] = []
    certified = True
    for step in range(total):
        if step < forced:
            i = step
        else:
            s = score(mean, np.sqrt(np.clip(var, 1e-30, None)), best)
            s[chosen] = -np.inf
            i = int(np.argmax(s))
            if s[i] < outside:
                certified = False
                if give_up:
                    break
            scores.append(float(s[i]))
        chosen.append(i)
        if step == total - 1:
            break
        col = post.column(i) - U[:, :step] @ U[i, :step]
        u = col / np.sqrt(max(col[i] + noise, 1e-30))
        U[:, step] = u
        var -= u**2
        best = max(best, float(mean[i]))
    return np.array(chosen[forced:], dtype=int) - forced, np.array(scores), certified


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
    m = ctx.X.shape[0]
    pool = np.arange(m)
    if m > THOMPSON_MAX:
        mean, std = ctx.surrogate.predict(ctx.X)
        pool = np.sort(np.argsort(-(mean + 4.0 * std), kind="stable")[:THOMPSON_MAX])
    pending = _pending(ctx)
    if len(pending):
        draws = _conditioned_samples(ctx.surrogate, pending, ctx.X[pool], ctx.q, ctx.rng)
    else:
        draws = ctx.surrogate.joint_samples(ctx.X[pool], ctx.q, ctx.rng)  # (q, len(pool))
    chosen: list[int] = []
    scores: list[float] = []
    for draw in draws:
        draw = draw.copy()
        draw[chosen] = -np.inf
        i = int(np.argmax(draw))
        chosen.append(i)
        scores.append(float(draw[i]))
    return Selection(pool[np.array(chosen, dtype=int)], np.array(scores))


def _conditioned_samples(surrogate: GPSurrogate, pending: np.ndarray, X: np.ndarray,
                         n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Joint draws over ``X`` ``(m, d)`` given pending ``(p, d)`` observed at their means.

    The kriging believer for Thompson sampling: the mean stays, the covariance becomes
    ``S_cc - S_cp (S_pp + noise I)^-1 S_pc``. Returns ``(n_samples, m)``.
    """
    from bodisc.surrogates.gp import sample_joint

    p = pending.shape[0]
    both = np.vstack([pending, X])
    mean, _ = surrogate.predict(both)
    cov = surrogate.covariance_columns(both, np.arange(both.shape[0]))
    s_pp = cov[:p, :p] + surrogate.noise_variance() * np.eye(p)
    s_pc = cov[:p, p:]
    cond = cov[p:, p:] - s_pc.T @ np.linalg.solve(s_pp, s_pc)
    return sample_joint(mean[p:], 0.5 * (cond + cond.T), n_samples, rng)


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


@register("intervention", needs_model=False, needs_labels=True)
def causal_intervention(ctx: AcquisitionContext) -> Selection:
    """Candidates nearest to causal interventions learnt from the labels (Fox and Ghosh)."""
    from bodisc.causal.intervention import intervention_batch

    assert ctx.X_train is not None and ctx.y_train is not None, "intervention needs labels"
    index, score, plan = intervention_batch(ctx.X_train, ctx.y_train, ctx.X, ctx.q,
                                            ctx.names, ctx.rng, **ctx.options)
    return Selection(np.asarray(index, dtype=np.int64), np.asarray(score, dtype=float),
                     {"plan": plan})
