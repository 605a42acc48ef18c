"""Causal interventions: move the descriptors that cause the target, pick molecules near there.

After Fox and Ghosh (2024, "Active causal learning for decoding chemical complexities
with targeted interventions", Mach. Learn.: Sci. Technol. 5, 035056). A DirectLiNGAM
graph (:func:`bodisc.causal.graph.fit_graph`, the target a sink) is learnt on the
labelled molecules; the descriptors with the largest total causal effects on the target
are set, one at a time, to the value that would take the best labelled molecules to a
goal above the incumbent; the change is propagated to the descriptors they cause; and
the candidates nearest to those intervened points are chosen.

:func:`plan_interventions` learns the graph and the intervened points (an
:class:`InterventionPlan`), :func:`choose_by_interventions` picks candidates near them and
:func:`intervention_batch` does both (the acquisition ``intervention``).

Where bodisc departs from the original, and why:

* Descriptors are ranked by their **total effect** on the target, ``T[target, j]`` with
  ``T = (I - B)^-1``. The original ranks by the difference of the predicted target
  with and without the intervention at two values, which for a linear model is the same
  for every molecule and zero when taken at equal shifts.
* The intervened value is written into the descriptor itself and propagated to its
  descendants through ``T`` (one notebook of the original writes it into a column that
  is not among the features, so the intervention changes nothing).
* Everything happens in z-scores of the labelled set, so distances weigh descriptors
  alike and the step is in standard deviations of the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bodisc.causal.graph import CausalGraph, fit_graph

__all__ = ["MIN_LABELS", "InterventionPlan", "choose_by_interventions", "intervention_batch",
           "plan_interventions"]

#: Labelled molecules needed before interventions are learnt (fewer: the caller picks at
#: random). DirectLiNGAM's pairwise independence measures and its adaptive lasso have
#: nothing to stand on below this.
MIN_LABELS = 10

#: Numbers in one chunk of the candidates' differences to the points (``p * rows * d``):
#: bounds the memory of a large pool (32 MB).
CHUNK = 1 << 22

#: Total effects with a smaller magnitude (z units) count as no effect.
EFFECT_TOL = 1e-9


@dataclass(frozen=True)
class InterventionPlan:
    """The graph learnt on the labels and the points the interventions lead to.

    All vectors over descriptors are over the descriptors *used* (``d_used`` of them,
    ``columns`` into the original matrix), in the graph's order.

    Attributes:
        graph: The DirectLiNGAM graph on z-scores; its variables are the used
            descriptors, then the target (a sink).
        columns: Indices of the used descriptors into the columns of ``X``,
            shape ``(d_used,)``.
        effects: Total effect of each used descriptor on the target, z units (target sd
            per descriptor sd), shape ``(d_used,)``.
        chosen: The descriptors intervened on (indices into the used descriptors,
            largest ``|effect|`` first), shape ``(k_used,)``; empty when no descriptor has
            an effect (then :attr:`points` are the anchors themselves: the fallback).
        anchors: Indices (into the labelled rows) of the molecules the interventions start
            from, best label first, shape ``(a,)``.
        points: The intervened points in z-scores of the labelled set, shape
            ``(p, d_used)``; ``p = a * k_used`` (anchor-major: every chosen descriptor of
            the first anchor, then of the second...), or ``p = a`` in the fallback.
        goal: The target value aimed at (maximisation form, natural units).
        mean: Mean of each used descriptor over the labelled set, shape ``(d_used,)``.
        scale: Standard deviation of each used descriptor (``ddof=0``), ``(d_used,)``.
        point_anchor: The anchor (index into :attr:`anchors`) of each point, ``(p,)``.
        point_descriptor: The descriptor intervened on at each point (index into the
            used descriptors), or ``-1`` in the fallback, shape ``(p,)``.
        shifts: The intervention at each point, in standard deviations of its descriptor
            (after clipping), shape ``(p,)``.
        predicted: The target the graph predicts at each point (natural units), ``(p,)``.
        start: The anchors' labels (natural units, maximisation form), shape ``(a,)``.
        origins: The anchors' z-scores, shape ``(a, d_used)``.
        target_mean: Mean of the labels.
        target_scale: Standard deviation of the labels (``ddof=0``; 0 for constant labels).
    """

    graph: CausalGraph
    columns: np.ndarray
    effects: np.ndarray
    chosen: np.ndarray
    anchors: np.ndarray
    points: np.ndarray
    goal: float
    mean: np.ndarray
    scale: np.ndarray
    point_anchor: np.ndarray
    point_descriptor: np.ndarray
    shifts: np.ndarray
    predicted: np.ndarray
    start: np.ndarray
    origins: np.ndarray
    target_mean: float
    target_scale: float

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the used descriptors, length ``d_used``."""
        return self.graph.names[:-1]

    @property
    def fallback(self) -> bool:
        """Whether no descriptor had an effect (the points are the anchors themselves)."""
        return len(self.chosen) == 0

    def natural(self, points: np.ndarray | None = None) -> np.ndarray:
        """Points in the descriptors' natural units, shape ``(p, d_used)``.

        Args:
            points: z-scores ``(p, d_used)``; the plan's :attr:`points` by default.
        """
        z = self.points if points is None else np.asarray(points, dtype=float)
        return self.mean + z * self.scale

    def describe(self, moved: int = 3) -> list[str]:
        """One line per intervened point, for people, in natural units.

        Each line names the anchor, the descriptor set and from what value to what, the
        descendants that move with it (the ``moved`` largest changes, in standard
        deviations) and the target the graph predicts there.

        Args:
            moved: How many of the descendants that move to name per line.
        """
        names = self.names
        lines = []
        if self.fallback:
            lines.append("no descriptor has a causal effect on the target in the graph "
                         "learnt: the candidates nearest to the best labelled molecules "
                         "are chosen")
        for r in range(len(self.points)):
            a = int(self.point_anchor[r])
            j = int(self.point_descriptor[r])
            head = (f"from labelled molecule {int(self.anchors[a])} "
                    f"(target {self.start[a]:.4g})")
            if j < 0:
                lines.append(f"{head}: no intervention (fallback)")
                continue
            base, moved_to = self.origins[a], self.points[r]
            before = self.mean[j] + base[j] * self.scale[j]
            after = self.mean[j] + moved_to[j] * self.scale[j]
            change = moved_to - base
            change[j] = 0.0
            follow = [i for i in np.argsort(-np.abs(change), kind="stable")[:moved]
                      if abs(change[i]) > EFFECT_TOL]
            also = "; moves " + ", ".join(
                f"{names[i]} {self.mean[i] + base[i] * self.scale[i]:.4g} -> "
                f"{self.mean[i] + moved_to[i] * self.scale[i]:.4g}" for i in follow
            ) if follow else ""
            lines.append(f"{head}: set {names[j]} from {before:.4g} to {after:.4g} "
                         f"({self.shifts[r]:+.2f} sd, total effect {self.effects[j]:+.3f})"
                         f"{also}; predicted target {self.predicted[r]:.4g} "
                         f"(goal {self.goal:.4g})")
        return lines

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form: the graph (as :meth:`CausalGraph.to_dict`) and the plan."""
        names = self.names
        natural = self.natural()
        return {
            "graph": self.graph.to_dict(),
            "descriptors": list(names),
            "columns": [int(c) for c in self.columns],
            "effects": {n: float(e) for n, e in zip(names, self.effects, strict=True)},
            "chosen": [names[int(j)] for j in self.chosen],
            "goal": float(self.goal),
            "anchors": [int(a) for a in self.anchors],
            "fallback": self.fallback,
            "interventions": [
                {"anchor": int(self.anchors[int(self.point_anchor[r])]),
                 "descriptor": (None if self.point_descriptor[r] < 0
                                else names[int(self.point_descriptor[r])]),
                 "shift_sd": float(self.shifts[r]),
                 "predicted": float(self.predicted[r]),
                 "point": {n: float(v) for n, v in zip(names, natural[r], strict=True)}}
                for r in range(len(self.points))],
            "description": self.describe(),
        }


def _total_effects(graph: CausalGraph) -> np.ndarray:
    """``T = (I - B)^-1`` with exact zeros where no directed path exists, ``(d, d)``.

    The inverse of a permuted triangular matrix can carry rounding noise where ``T`` is
    zero; an ancestor of the descriptor intervened on must not move at all.
    """
    T = graph.total_effects()
    A = (graph.B != 0).astype(float)
    reach = np.eye(len(T), dtype=bool)
    while True:  # transitive closure: reach[i, j] iff a path j -> ... -> i
        grown = reach | ((A @ reach.astype(float)) > 0)
        if np.array_equal(grown, reach):
            break
        reach = grown
    return np.where(reach, T, 0.0)


def _spread(X: np.ndarray) -> np.ndarray:
    """Whether each column has finite values and a spread (as :func:`fit_graph`), ``(d,)``."""
    finite = np.isfinite(X).all(axis=0)
    sd = np.where(finite, np.nanstd(np.where(np.isfinite(X), X, np.nan), axis=0), 0.0)
    big = np.maximum(1.0, np.nanmax(np.abs(np.where(np.isfinite(X), X, np.nan)), axis=0,
                                    initial=0.0))
    return finite & (sd > 1e-12 * big)


def _spearman(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|Spearman correlation| of each column with ``y`` (0 where undefined), ``(d,)``."""
    from scipy.stats import rankdata

    rx = rankdata(X, axis=0)
    ry = rankdata(y)
    rx = rx - rx.mean(axis=0)
    ry = ry - ry.mean()
    den = np.sqrt((rx**2).sum(axis=0) * (ry**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rx * ry[:, None]).sum(axis=0) / den
    return np.where(np.isfinite(rho), np.abs(rho), 0.0)


def plan_interventions(X: np.ndarray, y: np.ndarray, names: Sequence[str], *, k: int = 3,
                       step: float = 1.0, anchors: int = 1, max_descriptors: int = 8,
                       max_shift: float = 3.0, target_name: str = "target",
                       bootstrap: int = 0,
                       rng: np.random.Generator | None = None) -> InterventionPlan:
    """Learn the causal graph on the labels and the points the interventions lead to.

    Decisions:

    * ``y`` is in maximisation form (the campaign negates a minimisation).
    * Columns with a non-finite value or without spread on the labelled set are dropped.
      Of the rest, at most ``max_descriptors`` are kept: those with the largest
      ``|Spearman correlation|`` with ``y`` (ties: lower column). DirectLiNGAM's cost
      grows with the cube of the variables and its order search gets unstable with many
      variables and few labels (20 descriptors and 30 labels give a different graph at
      every seed), so the graph is learnt on the descriptors that can matter.
    * The graph is :func:`~bodisc.causal.graph.fit_graph` on those descriptors with ``y``
      as the sink, in z-scores of the labelled set.
    * The goal is the incumbent (best label) plus ``step`` standard deviations of ``y``.
    * The ``k`` descriptors with the largest ``|total effect|`` on the target are
      intervened on, one at a time, from each of the ``anchors`` best labelled
      molecules. For descriptor ``j`` with total effect ``e_j`` (z units) the change is
      ``delta = (goal_z - y_anchor_z) / e_j``, clipped to ``[-max_shift, max_shift]``
      standard deviations (a weak effect would otherwise send the point far outside the
      data); the intervened point is ``anchor + delta * T[:, j]`` over the descriptors:
      ``j`` moves by ``delta``, its descendants by ``delta * T[i, j]``, its ancestors and
      the unrelated descriptors not at all (``T[i, j] = 0`` there, made exact).
    * Descriptors without an effect (``|e_j| <= 1e-9``) are never chosen, so fewer than
      ``k`` may be. If none has an effect (or the labels are constant) the plan is the
      *fallback*: no descriptor chosen, the points are the anchors themselves, and
      :func:`choose_by_interventions` returns the candidates nearest to the best
      labelled molecules (the plan's :meth:`~InterventionPlan.describe` says so).

    Args:
        X: Labelled descriptors, shape ``(n, d)``.
        y: Labels, maximisation form, shape ``(n,)``.
        names: Descriptor names, length ``d`` (empty: ``x0, x1, ...``).
        k: Descriptors intervened on (at most).
        step: How far above the incumbent the goal lies, in standard deviations of ``y``.
        anchors: How many of the best labelled molecules the interventions start from.
        max_descriptors: Descriptors in the graph (at most).
        max_shift: Largest intervention, in standard deviations of the descriptor.
        target_name: The target's name in the graph.
        bootstrap: Bootstrap resamples that give each edge of the graph its probability
            (shown with the graph; 0: none). Needs ``rng``.
        rng: Seeds DirectLiNGAM (``None``: its default).

    Returns:
        The :class:`InterventionPlan`.

    Raises:
        ValueError: With fewer than :data:`MIN_LABELS` labels, non-finite labels, bad
            settings, or no descriptor that varies over the labelled set.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float).reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (n, d) with n = len(y) = {y.shape[0]}, got {X.shape}")
    n, d = X.shape
    if n < MIN_LABELS:
        raise ValueError(f"interventions need at least MIN_LABELS = {MIN_LABELS} labelled "
                         f"molecules, got {n}")
    if not np.isfinite(y).all():
        raise ValueError("interventions need finite labels")
    if k < 1 or anchors < 1 or max_descriptors < 1:
        raise ValueError(f"k, anchors and max_descriptors must be at least 1, got {k}, "
                         f"{anchors}, {max_descriptors}")
    if not step > 0 or not max_shift > 0:
        raise ValueError(f"step and max_shift must be positive, got {step}, {max_shift}")
    labels = list(names) or [f"x{i}" for i in range(d)]
    if len(labels) != d:
        raise ValueError(f"{len(labels)} names for {d} descriptors")
    live = np.flatnonzero(_spread(X))
    if len(live) == 0:
        raise ValueError("no descriptor varies over the labelled molecules")
    rho = _spearman(X[:, live], y)
    keep = np.argsort(-rho, kind="stable")[:max_descriptors]
    columns = np.sort(live[keep])
    Xu = X[:, columns]
    mean, scale = Xu.mean(axis=0), Xu.std(axis=0)
    graph = fit_graph(Xu, [labels[c] for c in columns], target=y, target_name=target_name,
                      bootstrap=bootstrap, rng=rng)
    du = len(columns)
    T = _total_effects(graph)
    effects = T[du, :du].copy()
    y_mean, y_sd = float(y.mean()), float(y.std())
    best = float(y.max())
    goal = best + step * y_sd
    order = np.argsort(-y, kind="stable")[:anchors]
    Z = (Xu[order] - mean) / scale  # (a, du)
    strong = np.flatnonzero(np.abs(effects) > EFFECT_TOL) if y_sd > 0 else np.zeros(0, int)
    chosen = strong[np.argsort(-np.abs(effects[strong]), kind="stable")][:k]
    if len(chosen) == 0:
        a = len(order)
        return InterventionPlan(graph, columns, effects, chosen.astype(int), order, Z, goal,
                                mean, scale, np.arange(a), np.full(a, -1), np.zeros(a),
                                y[order].copy(), y[order].copy(), Z, y_mean, y_sd)
    y_z = (y[order] - y_mean) / y_sd  # (a,)
    goal_z = (goal - y_mean) / y_sd
    delta = (goal_z - y_z[:, None]) / effects[chosen][None, :]  # (a, k_used)
    delta = np.clip(delta, -max_shift, max_shift)
    # (a, k_used, du): anchor + delta * T[:du, j]
    points = Z[:, None, :] + delta[:, :, None] * T[:du, chosen].T[None, :, :]
    a, ku = delta.shape
    predicted_z = y_z[:, None] + delta * effects[chosen][None, :]
    return InterventionPlan(
        graph, columns, effects, chosen.astype(int), order, points.reshape(a * ku, du), goal,
        mean, scale, np.repeat(np.arange(a), ku), np.tile(chosen, a).astype(int),
        delta.reshape(-1), (y_mean + y_sd * predicted_z).reshape(-1), y[order].copy(), Z,
        y_mean, y_sd)


def _candidate_distances(plan: InterventionPlan, X_cand: np.ndarray,
                         rows: np.ndarray) -> np.ndarray:
    """Euclidean z-distance of candidates ``rows`` to every point, shape ``(p, len(rows))``.

    Computed by chunks of rows (:data:`CHUNK` numbers at most); non-finite distances
    become ``inf``.
    """
    P = plan.points
    out = np.empty((len(P), len(rows)))
    size = max(1, CHUNK // max(1, P.size))
    for s in range(0, len(rows), size):
        part = rows[s:s + size]
        Z = (np.asarray(X_cand[np.ix_(part, plan.columns)], dtype=float) - plan.mean) \
            / plan.scale
        diff = Z[None, :, :] - P[:, None, :]  # (p, c, du)
        out[:, s:s + size] = np.sqrt(np.einsum("pcd,pcd->pc", diff, diff))
    out[~np.isfinite(out)] = np.inf
    return out


def _nearest(dist: np.ndarray, count: int) -> np.ndarray:
    """Positions of the ``count`` smallest values, ascending, ties by lower position."""
    if count >= len(dist):
        return np.lexsort((np.arange(len(dist)), dist))
    kth = np.partition(dist, count - 1)[count - 1]
    near = np.flatnonzero(dist <= kth)  # every tie of the count-th value, in index order
    return near[np.lexsort((near, dist[near]))][:count]


def choose_by_interventions(plan: InterventionPlan, X_cand: np.ndarray, q: int, *,
                            exclude: np.ndarray | Sequence[int] | None = None
                            ) -> tuple[np.ndarray, np.ndarray]:
    """The q candidates nearest to the intervened points, round-robin over the points.

    Candidates are z-scored with the plan's mean and scale on the plan's columns; the
    distance to a point is Euclidean in those z-units. Point 0 takes its nearest
    candidate, then point 1 its nearest not yet chosen, and so on in turn until q are
    chosen (ties: lower index). A candidate with a non-finite descriptor is at infinite
    distance from every point (chosen last). Only each point's q nearest candidates are
    ever needed, so a pool of a million costs ``p`` vectorised distance passes and one
    partition each. Deterministic.

    Args:
        plan: The :class:`InterventionPlan`.
        X_cand: Candidate descriptors (all columns, as the plan's ``X``), shape ``(m, d)``.
        q: How many to choose; fewer come back when fewer candidates are left.
        exclude: Candidates never to choose: indices, or a boolean mask of shape ``(m,)``.

    Returns:
        ``(index, score)``: candidate indices in the order chosen, shape ``(q,)``, and
        minus the distance of each to the point that took it, shape ``(q,)``.
    """
    m = X_cand.shape[0]
    allowed = np.ones(m, dtype=bool)
    if exclude is not None:
        ex = np.asarray(exclude)
        if ex.dtype == bool:
            if ex.shape != (m,):
                raise ValueError(f"an exclusion mask must have shape ({m},), got {ex.shape}")
            allowed &= ~ex
        elif ex.size:
            allowed[ex.astype(np.int64).reshape(-1)] = False
    rows = np.flatnonzero(allowed)
    q = min(int(q), len(rows))
    if q <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    dist = _candidate_distances(plan, X_cand, rows)  # (p, m_allowed)
    lists = [_nearest(row, q) for row in dist]
    taken = np.zeros(len(rows), dtype=bool)
    pos = [0] * len(lists)
    index: list[int] = []
    score: list[float] = []
    r = 0
    while len(index) < q:
        near = lists[r]
        while pos[r] < len(near) and taken[near[pos[r]]]:
            pos[r] += 1
        if pos[r] < len(near):  # a point whose q nearest are all taken: q are chosen
            c = int(near[pos[r]])
            taken[c] = True
            index.append(int(rows[c]))
            score.append(-float(dist[r, c]))
        r = (r + 1) % len(lists)
    return np.array(index, dtype=np.int64), np.array(score, dtype=float)


def intervention_batch(X_train: np.ndarray, y_train: np.ndarray, X_cand: np.ndarray, q: int,
                       names: Sequence[str], rng: np.random.Generator | None,
                       **settings: Any) -> tuple[np.ndarray, np.ndarray, InterventionPlan]:
    """A batch by causal interventions: :func:`plan_interventions`, then the candidates.

    Args:
        X_train: Labelled descriptors, shape ``(n, d)``.
        y_train: Labels, maximisation form, shape ``(n,)``.
        X_cand: Candidate descriptors, shape ``(m, d)``.
        q: Batch size.
        names: Descriptor names, length ``d``.
        rng: Seeds DirectLiNGAM.
        **settings: ``k``, ``step``, ``anchors``, ``max_descriptors``, ``max_shift``,
            ``target_name``, ``bootstrap`` of :func:`plan_interventions`, and ``exclude`` of
            :func:`choose_by_interventions`.

    Returns:
        ``(index, score, plan)``: the chosen candidates ``(q,)``, minus their distances to
        the intervened points ``(q,)``, and the plan.

    Raises:
        ValueError: With fewer than :data:`MIN_LABELS` labels (the caller picks at random).
    """
    if len(y_train) < MIN_LABELS:
        raise ValueError(f"interventions need at least MIN_LABELS = {MIN_LABELS} labelled "
                         f"molecules, got {len(y_train)}")
    exclude = settings.pop("exclude", None)
    plan = plan_interventions(X_train, y_train, names, rng=rng, **settings)
    index, score = choose_by_interventions(plan, np.asarray(X_cand, dtype=float), q,
                                           exclude=exclude)
    return index, score, plan
