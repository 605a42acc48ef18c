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

Constraints (``AcquisitionContext.constraints``: a GP per constrained property, in that
property's own units, with a lower and/or upper bound) turn ``logei``, ``ucb``,
``thompson`` and ``greedy`` into their constrained forms. The probability of feasibility
``PoF(x) = prod_c P(lower_c <= f_c(x) <= upper_c)`` comes from each constraint GP's
Gaussian posterior of the latent property (the constraints taken as independent):

* ``logei``: ``log EI(x; best feasible label) + log PoF(x)``, the constrained EI of Gardner
  et al. (2014). ``best`` is the best *feasible* label (the caller sets it); with no
  feasible label yet (``best = -inf``, or no ``True`` in ``feasible_train``) there is no
  improvement to expect and the batch is the q candidates most likely to be feasible.
* ``ucb``: UCB among the candidates with ``PoF >= 0.5``; the others come after them, most
  likely feasible first.
* ``greedy``: the same order with the posterior mean in place of UCB.
* ``thompson``: each draw also draws every constraint GP jointly over the same candidates
  and takes the best candidate whose drawn constraint values are all feasible; when a draw
  has none, the candidate whose drawn values are deepest inside (least outside) the
  bounds, in posterior standard deviations of the worst constraint.

For the kriging believer both rules are a fixed additive offset per candidate
(:func:`_believer`'s ``offset``); the incumbent is raised only by picks that are more likely
feasible than not. The constraint posteriors are not conditioned on a batch's earlier
picks (at their means that would only sharpen PoF). With no constraints every strategy is
exactly the unconstrained one.

Several objectives (``qlognehvi``, ``parego``; :mod:`bodisc.acquisition.multiobjective`)
take one GP per objective in ``AcquisitionContext.models`` and are registered with
``objectives="several"``.
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


@dataclass(frozen=True)
class Constraint:
    """A constrained property: its GP and the interval a feasible molecule lies in.

    Attributes:
        model: A surrogate fitted on the property in its own units (not maximisation
            form); ``predict`` and, for Thompson sampling, ``joint_samples`` are used.
        lower: Smallest feasible value, or ``None`` for no lower bound.
        upper: Largest feasible value, or ``None`` for no upper bound.
    """

    model: Any
    lower: float | None = None
    upper: float | None = None

    def __post_init__(self) -> None:
        if self.lower is None and self.upper is None:
            raise ValueError("a constraint needs a lower or an upper bound")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(f"constraint bounds: lower {self.lower} > upper {self.upper}")


#: A candidate at least this likely to be feasible counts as feasible for the order of
#: constrained ``ucb``, ``greedy`` and ``parego``, and its believed label may raise the
#: kriging believer's incumbent: the default of ``AcquisitionContext.likely`` (a
#: campaign's ``[acquisition] feasibility``).
LIKELY = 0.5


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
        models: For strategies with several objectives: one fitted GP per objective,
            maximisation form, all fitted on the same labelled descriptors.
        Y_train: Their labels, maximisation form, shape ``(n, k)``.
        ref_point: Hypervolume reference point, maximisation form, shape ``(k,)``, or
            ``None`` (then taken from the feasible labels, see
            :func:`bodisc.acquisition.multiobjective.default_ref_point`).
        constraints: One :class:`Constraint` per constrained property (none: no
            constraints).
        feasible_train: Whether each labelled molecule is feasible, shape ``(n,)``, or
            ``None`` (with constraints, ``best`` must then be the best feasible label,
            ``-inf`` when none is).
        likely: With constraints, the probability of feasibility from which a
            candidate counts as likely feasible (:data:`LIKELY` by default).
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
    models: tuple[GPSurrogate, ...] = ()
    Y_train: np.ndarray | None = None
    ref_point: np.ndarray | None = None
    constraints: tuple[Constraint, ...] = ()
    feasible_train: np.ndarray | None = None
    likely: float = LIKELY


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
    """A registered strategy and what it needs from the campaign.

    ``objectives``: ``"one"`` (a single objective, optionally constrained) or
    ``"several"`` (one GP per objective in ``AcquisitionContext.models``).
    ``description``: one line for the documentation's table (:func:`markdown_table`).
    """

    fn: Strategy
    needs_model: bool
    needs_descriptors: bool
    needs_labels: bool = False
    objectives: str = "one"
    description: str = ""


#: The one list of acquisition names (config validation and CLI choices read it).
ACQUISITIONS: dict[str, StrategySpec] = {}


def register(name: str, needs_model: bool = True, needs_descriptors: bool = True,
             needs_labels: bool = False, objectives: str = "one",
             description: str = "") -> Callable[[Strategy], Strategy]:
    """Register a strategy under ``name``; a duplicate name is refused.

    ``needs_labels``: a strategy without the GP that learns from the labelled molecules
    itself (it gets ``X_train``, ``y_train`` and ``names`` in its context).
    ``objectives``: ``"one"`` or ``"several"`` (a GP per objective in ``models``).
    ``description``: what it does, in one line (the documentation's table).
    """
    if objectives not in ("one", "several"):
        raise ValueError(f"objectives = {objectives!r}; choose 'one' or 'several'")

    def wrap(fn: Strategy) -> Strategy:
        if name in ACQUISITIONS:
            raise ValueError(f"acquisition {name!r} is already registered")
        ACQUISITIONS[name] = StrategySpec(fn, needs_model, needs_descriptors or needs_model,
                                          needs_labels, objectives, description)
        return fn

    return wrap


def markdown_table() -> str:
    """The registered strategies as a Markdown table (the documentation's reference page)."""
    rows = ["| name | what | model | objectives | constraints |",
            "| --- | --- | --- | --- | --- |"]
    for name, spec in ACQUISITIONS.items():
        model = "GP" if spec.needs_model else ("own" if spec.needs_labels else "none")
        constrained = "yes" if spec.needs_model else ""  # a GP per constrained property
        rows.append(f"| `{name}` | {spec.description} | {model} | {spec.objectives} | "
                    f"{constrained} |")
    return "\n".join(rows) + "\n"


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


#: Floor of ``log PoF``: finite, so that a hopeless candidate still ranks (last) and a
#: batch larger than the hopeful candidates is still q distinct ones.
LOG_POF_FLOOR = -1e300

#: ``(mean (m,), first-step scores (m,)) -> additive offset (m,)`` of a constrained
#: kriging believer (:func:`_believer`).
Offset = Callable[[np.ndarray, np.ndarray], np.ndarray]


def log_feasibility(constraints: tuple[Constraint, ...], X: np.ndarray) -> np.ndarray:
    """Log probability of feasibility of each candidate, shape ``(m,)``.

    ``log PoF(x) = sum_c log P(lower_c <= f_c(x) <= upper_c)`` with ``f_c`` the latent
    posterior of constraint ``c`` (mean and standard deviation from ``predict``); the
    constraints are taken as independent. Floored at :data:`LOG_POF_FLOOR`.

    Args:
        constraints: The constrained properties (none: ``log PoF = 0``).
        X: Candidate descriptors, shape ``(m, d)``.
    """
    total = np.zeros(X.shape[0])
    for c in constraints:
        mean, std = c.model.predict(X)
        total += _log_interval(np.asarray(mean, dtype=float), np.asarray(std, dtype=float),
                               c.lower, c.upper)
    return np.maximum(total, LOG_POF_FLOOR)


def _log_interval(mean: np.ndarray, std: np.ndarray, lower: float | None,
                  upper: float | None) -> np.ndarray:
    """``log P(lower <= N(mean, std^2) <= upper)``, stable in both tails, shape ``(m,)``."""
    from scipy.special import log_ndtr

    s = np.clip(std, 1e-12, None)
    a = np.full_like(mean, -np.inf) if lower is None else (lower - mean) / s
    b = np.full_like(mean, np.inf) if upper is None else (upper - mean) / s
    flip = a > 0  # both bounds in the upper tail: P = Phi(-a) - Phi(-b)
    lo, hi = np.where(flip, -b, a), np.where(flip, -a, b)
    log_hi, log_lo = log_ndtr(hi), log_ndtr(lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = log_hi + np.log1p(-np.exp(log_lo - log_hi))
    return np.where(np.isnan(out), -np.inf, out)


def _feasibility(ctx: AcquisitionContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log PoF of the candidates and who is likely feasible (``PoF >= ctx.likely``).

    Returns:
        ``(log_pof (m,), likely candidates (m,), likely pending molecules (p,))``.
    """
    log_pof = log_feasibility(ctx.constraints, ctx.X)
    pending = _pending(ctx)
    log_pof_p = (log_feasibility(ctx.constraints, pending) if len(pending)
                 else np.zeros(0))
    cut = float(np.log(ctx.likely))
    return log_pof, log_pof >= cut, log_pof_p >= cut


def feasibility_tiers(log_pof: np.ndarray, likely: float = LIKELY) -> np.ndarray:
    """Feasibility tiers of constrained UCB, greedy and ParEGO, shape ``(m,)``, ints.

    Tier 0 for ``PoF >= likely``, then one tier per distinct PoF below it, most likely
    feasible first.
    """
    tier = np.zeros(log_pof.shape[0], dtype=np.int64)
    low = log_pof < np.log(likely)
    if low.any():
        _, rank = np.unique(-log_pof[low], return_inverse=True)
        tier[low] = 1 + rank.reshape(-1)
    return tier


def has_feasible_label(ctx: AcquisitionContext) -> bool:
    """Whether some labelled molecule is feasible (so constrained EI has an incumbent)."""
    if not np.isfinite(ctx.best):
        return False
    return ctx.feasible_train is None or bool(np.any(ctx.feasible_train))


def _believer(ctx: AcquisitionContext, score: Callable[[np.ndarray, np.ndarray, float],
                                                       np.ndarray],
              offset: Offset | None = None,
              likely: tuple[np.ndarray, np.ndarray] | None = None) -> Selection:
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

    Constraints enter as ``offset``: a fixed amount added to every score of a candidate
    (``log PoF`` for LogEI; a tier penalty for UCB). It is computed once from the
    first-step means and scores and never changes while the batch is chosen, so a
    candidate's conditioned score plus its offset is still at most its first-step score
    plus the same offset: the short list is ordered by the offset scores and the
    certificate holds unchanged.

    Args:
        ctx: The context (``surrogate`` set).
        score: Acquisition of ``(mean (m,), std (m,), best)``, shape ``(m,)``.
        offset: ``(mean, first-step scores) -> (m,)`` added to the scores, or ``None``.
        likely: With constraints: whether each candidate ``(m,)`` and each pending
            molecule ``(p,)`` is likely feasible; only those raise the incumbent.
    """
    assert ctx.surrogate is not None
    gp = ctx.surrogate
    m = ctx.X.shape[0]
    pending = _pending(ctx)
    best = ctx.best
    if len(pending):  # the believer's incumbent after the pending picks
        if likely is None:
            best = max(best, float(np.max(gp.predict(pending)[0])))
        elif likely[1].any():
            best = max(best, float(np.max(gp.predict(pending)[0][likely[1]])))
    bounded = m > BOUND_MIN and hasattr(gp, "predict_bound")
    if bounded:  # exact means, upper bounds on the standard deviations
        mean, std = gp.predict_bound(ctx.X)
    else:
        mean, std = gp.predict(ctx.X)
    q = min(ctx.q, m)
    first = score(mean, std, best)  # first-step scores (upper bounds when bounded)
    shift = None
    if offset is not None:
        shift = np.asarray(offset(mean, first), dtype=float)
        first = first + shift
    order = np.argsort(-first, kind="stable")
    noise = gp.noise_variance()
    k = min(m, max(SHORTLIST, 8 * q))
    while True:
        short = np.sort(order[:k])
        outside = float(first[order[k]]) if k < m else -np.inf
        listed = np.vstack([pending, ctx.X[short]]) if len(pending) else ctx.X[short]
        post = ShortlistPosterior.of(gp, listed)
        last = k == m or k >= SHORTLIST_MAX
        extra: dict[str, np.ndarray] = {}
        if shift is not None:
            extra["offset"] = np.concatenate([np.zeros(len(pending)), shift[short]])
        if likely is not None:
            extra["raises"] = np.concatenate([likely[1], likely[0][short]])
        index, scores, certified = _believer_on(post, q, best, noise, score, outside,
                                                give_up=not last, forced=len(pending),
                                                **extra)
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
                 forced: int = 0, offset: np.ndarray | None = None,
                 raises: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """Kriging believer on a short list, one covariance column per pick.

    The conditioned covariance is kept as the original one minus ``U U^T``, with ``U``
    of shape ``(k, picks)``: a pick costs ``O(k (n + picks))``.

    Args:
        post: The posterior over the list.
        q: Batch size.
        best: Incumbent.
        noise: Observation noise variance.
        score: Acquisition of ``(mean, std, best)``.
        outside: Largest first-step score (offset included) of a candidate not on the list.
        give_up: Stop at the first pick that cannot be certified.
        forced: The first ``forced`` entries of the list are pending molecules: they are
            conditioned on first, in order, and never picked.
        offset: Fixed amount added to each listed entry's score, shape ``(k,)``, or
            ``None``.
        raises: Whether each listed entry's believed label may raise the incumbent
            (constraints: only likely feasible ones), shape ``(k,)``; ``None``: all.

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
            if offset is not None:
                s = s + offset
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
        if raises is None or raises[i]:
            best = max(best, float(mean[i]))
    return np.array(chosen[forced:], dtype=int) - forced, np.array(scores), certified


@register("logei",
          description=("log expected improvement over the best label (botorch's stable formula); "
                       "batches by kriging believer. The default"))
def log_expected_improvement(ctx: AcquisitionContext) -> Selection:
    """LogEI (botorch's numerically stable form) with kriging-believer batches.

    With constraints: ``log EI`` over the best feasible label plus ``log PoF``; with no
    feasible label yet, the q candidates most likely to be feasible.
    """
    from bodisc.surrogates.gp import expected_improvement_log

    if not ctx.constraints:
        return _believer(ctx, expected_improvement_log)
    log_pof, likely, likely_p = _feasibility(ctx)
    if not has_feasible_label(ctx):  # find a feasible molecule first
        order = np.argsort(-log_pof, kind="stable")[: min(ctx.q, ctx.X.shape[0])]
        return Selection(order, log_pof[order])
    return _believer(ctx, expected_improvement_log, lambda mean, first: log_pof,
                     (likely, likely_p))


@register("ucb",
          description="upper confidence bound `mean + sqrt(beta) std`; batches by kriging believer")
def upper_confidence_bound(ctx: AcquisitionContext) -> Selection:
    """UCB, ``mean + sqrt(beta) * std``, with kriging-believer batches.

    With constraints: UCB among the candidates with ``PoF >= ctx.likely`` (0.5 unless set),
    then the others, most likely feasible first. The offset puts tier ``t``
    (:func:`feasibility_tiers`) ``t * R`` below tier 0, with ``R`` more than the spread
    of every score the batch can see (conditioned UCB lies between the smallest mean and
    the largest first-step UCB), so the order across tiers is strict and within a tier it
    is UCB.
    """
    root_beta = float(np.sqrt(ctx.beta))
    if not ctx.constraints:
        return _believer(ctx, lambda mean, std, best: mean + root_beta * std)
    log_pof, likely, likely_p = _feasibility(ctx)
    tier = feasibility_tiers(log_pof, ctx.likely).astype(float)

    def offset(mean: np.ndarray, first: np.ndarray) -> np.ndarray:
        spread = float(np.max(first)) - float(np.min(mean)) + 1.0
        return -spread * tier

    return _believer(ctx, lambda mean, std, best: mean + root_beta * std, offset,
                     (likely, likely_p))


@register("thompson",
          description=("Thompson sampling: one joint posterior draw per pick, each taking its "
                       "best candidate"))
def thompson_sampling(ctx: AcquisitionContext) -> Selection:
    """One joint posterior draw per batch slot; each takes its best unchosen candidate.

    With constraints, each slot also draws every constraint GP jointly over the same
    candidates (conditioned on the pending molecules at their means, as the objective)
    and takes the best candidate whose drawn constraint values are all within bounds; if
    no candidate's are, the one with the largest drawn margin (the score is then that
    margin). Past :data:`THOMPSON_MAX` candidates the pool prefers those with
    ``PoF >= 1e-3``.
    """
    assert ctx.surrogate is not None
    m = ctx.X.shape[0]
    pool = np.arange(m)
    if m > THOMPSON_MAX:
        mean, std = ctx.surrogate.predict(ctx.X)
        if ctx.constraints:
            hopeless = log_feasibility(ctx.constraints, ctx.X) < np.log(1e-3)
            top = np.lexsort((-(mean + 4.0 * std), hopeless))[:THOMPSON_MAX]
            pool = np.sort(top)
        else:
            pool = np.sort(np.argsort(-(mean + 4.0 * std), kind="stable")[:THOMPSON_MAX])
    pending = _pending(ctx)
    if len(pending):
        draws = _conditioned_samples(ctx.surrogate, pending, ctx.X[pool], ctx.q, ctx.rng)
    else:
        draws = ctx.surrogate.joint_samples(ctx.X[pool], ctx.q, ctx.rng)  # (q, len(pool))
    margin = (_drawn_margin(ctx.constraints, pending, ctx.X[pool], len(draws), ctx.rng)
              if ctx.constraints else None)
    chosen: list[int] = []
    scores: list[float] = []
    for t, draw in enumerate(draws):
        draw = draw.copy()
        if margin is not None:
            ok = margin[t] >= 0.0
            ok[chosen] = False
            draw = np.where(ok, draw, -np.inf) if ok.any() else margin[t].copy()
        draw[chosen] = -np.inf
        i = int(np.argmax(draw))
        chosen.append(i)
        scores.append(float(draw[i]))
    return Selection(pool[np.array(chosen, dtype=int)], np.array(scores))


def _drawn_margin(constraints: tuple[Constraint, ...], pending: np.ndarray, X: np.ndarray,
                  n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """How far inside its bounds each drawn constraint value lies, worst constraint.

    For constraint ``c`` and draw ``f_c``: ``min(f_c - lower, upper - f_c) / std_c`` with
    ``std_c`` the posterior standard deviation at the candidate; the minimum over the
    constraints. Non-negative exactly when every drawn value is feasible.

    Returns:
        Margins, shape ``(n_samples, m)``.
    """
    margin = np.full((n_samples, X.shape[0]), np.inf)
    for c in constraints:
        if len(pending):
            f = _conditioned_samples(c.model, pending, X, n_samples, rng)
        else:
            f = c.model.joint_samples(X, n_samples, rng)
        std = np.clip(np.asarray(c.model.predict(X)[1], dtype=float), 1e-12, None)
        inside = np.full_like(f, np.inf)
        if c.lower is not None:
            inside = np.minimum(inside, f - c.lower)
        if c.upper is not None:
            inside = np.minimum(inside, c.upper - f)
        margin = np.minimum(margin, inside / std[None, :])
    return margin


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


@register("greedy",
          description="the best posterior means (pure exploitation)")
def greedy_mean(ctx: AcquisitionContext) -> Selection:
    """The q largest posterior means (pure exploitation).

    With constraints: the largest means among the candidates with ``PoF >= ctx.likely``,
    then the others, most likely feasible first.
    """
    assert ctx.surrogate is not None
    mean, _ = ctx.surrogate.predict(ctx.X)
    if ctx.constraints:
        tier = feasibility_tiers(log_feasibility(ctx.constraints, ctx.X), ctx.likely)
        order = np.lexsort((-mean, tier))[: ctx.q]
        return Selection(order, mean[order])
    order = np.argsort(-mean, kind="stable")[: ctx.q]
    return Selection(order, mean[order])


@register("rank", needs_model=False,
          description=("the best values of one cheap descriptor (`rank_by`): the strongest "
                       "simple baseline, no model"))
def rank_by_descriptor(ctx: AcquisitionContext) -> Selection:
    """The q best candidates by one cheap descriptor (no model)."""
    assert ctx.ranking is not None, "rank needs acquisition.rank_by"
    values = np.where(np.isfinite(ctx.ranking), ctx.ranking, -np.inf)
    order = np.argsort(-values, kind="stable")[: ctx.q]
    return Selection(order, values[order])


@register("random", needs_model=False, needs_descriptors=False,
          description="uniform draws: the no-model baseline")
def random_choice(ctx: AcquisitionContext) -> Selection:
    """Q candidates uniformly at random, without a model."""
    m = ctx.X.shape[0]
    index = ctx.rng.choice(m, size=min(ctx.q, m), replace=False)
    return Selection(np.asarray(index, dtype=int), np.zeros(len(index)))


@register("intervention", needs_model=False, needs_labels=True,
          description=("causal interventions of Fox and Ghosh: a DirectLiNGAM graph on the "
                       "labels, the nearest candidates to the intervened points (`causal` extra)"))
def causal_intervention(ctx: AcquisitionContext) -> Selection:
    """Candidates nearest to causal interventions learnt from the labels (Fox and Ghosh)."""
    from bodisc.causal.intervention import intervention_batch

    assert ctx.X_train is not None and ctx.y_train is not None, "intervention needs labels"
    index, score, plan = intervention_batch(ctx.X_train, ctx.y_train, ctx.X, ctx.q,
                                            ctx.names, ctx.rng, **ctx.options)
    return Selection(np.asarray(index, dtype=np.int64), np.asarray(score, dtype=float),
                     {"plan": plan})


# registers ``qlognehvi`` and ``parego`` (imported last: it uses the registry above)
from bodisc.acquisition import multiobjective as _multiobjective  # noqa: E402, F401
