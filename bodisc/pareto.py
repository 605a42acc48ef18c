"""Pareto fronts, non-dominated layers and hypervolume of several objectives.

Every function works in maximisation form: a row ``y`` of ``Y`` (shape ``(n, k)``) holds
``k`` objective values where larger is better (the caller negates an objective it
minimises). Row ``p`` *dominates* row ``q`` when ``p >= q`` in every objective and
``p > q`` in at least one, so identical rows never dominate each other. A row with a NaN
(a failed oracle call) is never on a front, dominates nothing and adds no volume.

* :func:`pareto_mask`, :func:`nondominated_layers` and :func:`top_share_by_layers`:
  the front, repeated non-dominated sorting, and a pool's top share counted in whole
  layers;
* :func:`hypervolume` and :func:`hypervolume_trace`: the volume dominated by the rows
  and bounded below by a reference point (exact sweep for two objectives, botorch's box
  decomposition for three or more), and its value after every oracle call;
* :func:`reference_point`: a reference point inferred from the data (botorch's
  ``infer_reference_point`` idea), objective by objective unless given;
* :func:`feasible_mask`: rows whose constrained properties lie within bounds;
* :func:`chebyshev_weights` and :func:`chebyshev`: random simplex weights and ParEGO's
  augmented Chebyshev scalarisation.

Only numpy is imported here; torch and botorch load inside :func:`hypervolume` (and
:func:`hypervolume_trace`) when there are three or more objectives.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

import numpy as np

# Budget of booleans per comparison block of the k >= 3 front test (block rows x
# candidate rows x k), about 8 MiB.
_BLOCK_CELLS = 1 << 23


def _as_2d(Y: np.ndarray, name: str = "Y") -> np.ndarray:
    """``Y`` as a float64 array of shape ``(n, k)`` with ``k >= 1``."""
    arr = np.asarray(Y, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n, k) with k >= 1, got {arr.shape}")
    return arr


def _lex_order(Y: np.ndarray) -> np.ndarray:
    """Row order that sorts ``Y`` (no NaN) lexicographically descending, column 0 first.

    A dominating row is lexicographically greater than the row it dominates, so in this
    order every row's dominators come before it; a subset of the order stays sorted.
    """
    return np.lexsort(tuple(-Y[:, j] for j in reversed(range(Y.shape[1]))))


def _front_sorted_2d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Front of two objectives already sorted by ``(a, b)`` descending, in that order.

    A row is dominated exactly when its group of equal ``a`` holds a larger ``b`` or a
    row with a larger ``a`` (an earlier group) has ``b`` at least as large: the row must
    carry its group's maximum ``b`` (the group's first) and beat the running maximum of
    ``b`` over the groups before it.

    Args:
        a: First objective, shape ``(m,)``, non-increasing.
        b: Second objective, shape ``(m,)``, non-increasing within equal ``a``.

    Returns:
        Boolean ``(m,)``, True for non-dominated rows.
    """
    m = a.shape[0]
    if m == 0:
        return np.zeros(0, dtype=bool)
    new_group = np.empty(m, dtype=bool)
    new_group[0] = True
    new_group[1:] = a[1:] != a[:-1]
    starts = np.flatnonzero(new_group)
    group = np.cumsum(new_group) - 1
    running = np.maximum.accumulate(b)
    before = np.full(starts.shape[0], -np.inf)
    before[1:] = running[starts[1:] - 1]
    return (b == b[starts][group]) & ((b > before[group]) | (group == 0))


def _front_sorted_nd(Ys: np.ndarray) -> np.ndarray:
    """Front of rows already in :func:`_lex_order`, blockwise, in that order.

    Blocks of rows are compared with the front found so far plus the block itself (a row
    can only be dominated by rows before it, and if it is dominated at all then also by a
    non-dominated row): ``O(n * f * k)`` for a front of ``f`` rows, in numpy blocks of
    about ``_BLOCK_CELLS`` booleans.

    Args:
        Ys: Shape ``(m, k)``, no NaN, lexicographically descending.

    Returns:
        Boolean ``(m,)``, True for non-dominated rows.
    """
    m, k = Ys.shape
    keep = np.zeros(m, dtype=bool)
    front = Ys[:0]
    start = 0
    while start < m:
        size = int(min(4096, max(64, _BLOCK_CELLS // (k * (front.shape[0] + 2048)))))
        block = Ys[start:start + size]
        cand = np.concatenate([front, block])
        ge = (cand[None, :, :] >= block[:, None, :]).all(axis=2)
        gt = (cand[None, :, :] > block[:, None, :]).any(axis=2)
        ok = ~(ge & gt).any(axis=1)
        keep[start:start + block.shape[0]] = ok
        front = np.concatenate([front, block[ok]])
        start += block.shape[0]
    return keep


def _front_sorted(Ys: np.ndarray) -> np.ndarray:
    """Front of rows in :func:`_lex_order` (no NaN), in that order."""
    if Ys.shape[1] == 1:
        return Ys[:, 0] == Ys[0, 0] if Ys.shape[0] else np.zeros(0, dtype=bool)
    if Ys.shape[1] == 2:
        return _front_sorted_2d(Ys[:, 0], Ys[:, 1])
    return _front_sorted_nd(Ys)


def pareto_mask(Y: np.ndarray) -> np.ndarray:
    """Which rows are non-dominated (on the Pareto front).

    For two objectives a sort-based sweep, ``O(n log n)``; for one, the rows equal to the
    maximum; for three or more, a blockwise numpy comparison of each row with the front
    rows sorted before it, ``O(n * f * k)`` for a front of ``f`` rows. Identical rows are
    all non-dominated when any is; rows with a NaN never are.

    Args:
        Y: Objective values in maximisation form, shape ``(n, k)``, ``k >= 1``.

    Returns:
        Boolean ``(n,)``, True for non-dominated rows.

    Raises:
        ValueError: If ``Y`` is not of shape ``(n, k)`` with ``k >= 1``.
    """
    Y = _as_2d(Y)
    rows = np.flatnonzero(~np.isnan(Y).any(axis=1))
    order = rows[_lex_order(Y[rows])]
    mask = np.zeros(Y.shape[0], dtype=bool)
    mask[order] = _front_sorted(Y[order])
    return mask


def _peel(Y: np.ndarray) -> Iterator[np.ndarray]:
    """The rows of each non-dominated layer in turn (layer 0 first), NaN rows left out."""
    rows = np.flatnonzero(~np.isnan(Y).any(axis=1))
    order = rows[_lex_order(Y[rows])]
    Ys = Y[order]
    while order.size:
        on = _front_sorted(Ys)
        yield order[on]
        order, Ys = order[~on], Ys[~on]


def nondominated_layers(Y: np.ndarray, max_layers: int | None = None) -> np.ndarray:
    """Layer of every row by repeated non-dominated sorting (layer 0 is the front).

    The front is peeled off with the :func:`pareto_mask` algorithm, then the front of the
    rest, and so on (rows are sorted once; every layer costs one ``O(n)`` sweep for two
    objectives).

    Args:
        Y: Objective values in maximisation form, shape ``(n, k)``.
        max_layers: Stop after this many layers (``None``: until every row has one).

    Returns:
        Integer ``(n,)``: the layer ``0, 1, 2, ...``; ``-1`` for rows with a NaN and rows
        beyond ``max_layers``.

    Raises:
        ValueError: If ``Y`` has the wrong shape or ``max_layers`` is negative.
    """
    Y = _as_2d(Y)
    if max_layers is not None and max_layers < 0:
        raise ValueError(f"max_layers must be >= 0, got {max_layers}")
    layers = np.full(Y.shape[0], -1, dtype=np.int64)
    if max_layers == 0:
        return layers
    for layer, rows in enumerate(_peel(Y)):
        layers[rows] = layer
        if max_layers is not None and layer + 1 >= max_layers:
            break
    return layers


def top_share_by_layers(Y: np.ndarray, share: float) -> np.ndarray:
    """The pool's top ``share`` by non-dominated sorting, in whole layers.

    Layers are taken from layer 0 on until they hold at least ``share * n`` rows (``n``
    counts every row of ``Y``, NaN rows included); the layer that crosses the line is taken
    whole, so the result may hold more than ``share * n`` rows. Rows with a NaN are never
    taken; if the finite rows are too few, all of them are returned.

    Args:
        Y: Objective values in maximisation form, shape ``(n, k)``.
        share: The share of the pool, ``0 < share <= 1`` (0.01 for the top 1 %).

    Returns:
        The row indices taken, ascending, integer.

    Raises:
        ValueError: If ``Y`` has the wrong shape or ``share`` is outside ``(0, 1]``.
    """
    Y = _as_2d(Y)
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share}")
    need = share * Y.shape[0]
    taken: list[np.ndarray] = []
    count = 0
    for rows in _peel(Y):
        taken.append(rows)
        count += rows.shape[0]
        if count >= need:
            break
    if not taken:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(taken)).astype(np.int64)


def _check_ref(ref: np.ndarray | Sequence[float], k: int) -> np.ndarray:
    """``ref`` as a float64 array of shape ``(k,)``."""
    r = np.asarray(ref, dtype=np.float64).reshape(-1)
    if r.shape != (k,):
        raise ValueError(f"ref must have shape ({k},), got {np.shape(ref)}")
    return r


def _hypervolume_2d(Y: np.ndarray, ref: np.ndarray) -> float:
    """Exact volume of rows that all strictly dominate ``ref``, shape ``(m, 2)``.

    Sorted by the first objective descending, each row adds the rectangle between ``ref``'s
    first coordinate and its own, over the rise of the running maximum of the second.
    """
    if Y.shape[0] == 0:
        return 0.0
    order = np.argsort(-Y[:, 0], kind="stable")
    top = np.maximum.accumulate(Y[order, 1])
    rise = np.diff(top, prepend=ref[1])
    return float(np.sum((Y[order, 0] - ref[0]) * rise))


def _hypervolume_botorch(Y: np.ndarray, ref: np.ndarray) -> float:
    """Volume of rows that all strictly dominate ``ref`` by botorch's box decomposition."""
    if Y.shape[0] == 0:
        return 0.0
    import torch
    from botorch.utils.multi_objective.box_decompositions.dominated import (
        DominatedPartitioning,
    )

    front = Y[pareto_mask(Y)]
    part = DominatedPartitioning(
        ref_point=torch.as_tensor(ref, dtype=torch.float64),
        Y=torch.as_tensor(front, dtype=torch.float64),
    )
    return float(part.compute_hypervolume())


def hypervolume(Y: np.ndarray, ref: np.ndarray | Sequence[float]) -> float:
    """The volume dominated by the rows of ``Y`` and bounded below by ``ref``.

    Only rows that strictly dominate ``ref`` (greater in every objective) count; rows with
    a NaN never do. One objective: ``max(y) - ref``; two: an exact ``O(n log n)`` sweep in
    numpy; three or more: botorch's ``DominatedPartitioning`` (float64; torch and botorch
    are imported then).

    Args:
        Y: Objective values in maximisation form, shape ``(n, k)``.
        ref: The reference point, shape ``(k,)``.

    Returns:
        The hypervolume; 0.0 when no row strictly dominates ``ref``.

    Raises:
        ValueError: If ``Y`` or ``ref`` has the wrong shape.
    """
    Y = _as_2d(Y)
    r = _check_ref(ref, Y.shape[1])
    inside = Y[(r < Y).all(axis=1)]  # NaN compares False: NaN rows drop out
    if inside.shape[0] == 0:
        return 0.0
    if Y.shape[1] == 1:
        return float(inside[:, 0].max() - r[0])
    if Y.shape[1] == 2:
        return _hypervolume_2d(inside, r)
    return _hypervolume_botorch(inside, r)


def _trace_2d(Y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Incremental two-objective hypervolume after each row, amortised ``O(log n)`` a row.

    The front is kept as two lists, first objective ascending and second descending. A new
    row that no front row weakly dominates adds the area between its corner and the front's
    staircase, found by walking left over the front rows it dominates (which it then
    replaces), so every row is walked over at most once after it is inserted.
    """
    n = Y.shape[0]
    out = np.empty(n, dtype=np.float64)
    xs: list[float] = []
    ys: list[float] = []
    r0, r1 = float(ref[0]), float(ref[1])
    total = 0.0
    inside = (ref < Y).all(axis=1)
    for i in range(n):
        if inside[i]:
            a, b = float(Y[i, 0]), float(Y[i, 1])
            idx = bisect.bisect_left(xs, a)
            m = len(xs)
            if not (idx < m and ys[idx] >= b):  # else weakly dominated: nothing changes
                right = a
                h = ys[idx] if idx < m else r1  # front height on (xs[idx - 1], a]
                j = idx - 1
                while h < b:
                    left = xs[j] if j >= 0 else r0
                    total += (right - left) * (b - h)
                    if j < 0:
                        break
                    h, right = ys[j], xs[j]
                    j -= 1
                hi = idx + 1 if idx < m and xs[idx] == a else idx  # a row at x == a is beaten
                lo = hi
                while lo > 0 and ys[lo - 1] <= b:
                    lo -= 1
                xs[lo:hi] = [a]
                ys[lo:hi] = [b]
        out[i] = total
    return out


def hypervolume_trace(Y: np.ndarray, ref: np.ndarray | Sequence[float]) -> np.ndarray:
    """The hypervolume of the first ``i + 1`` rows, for every ``i``.

    Rows are oracle calls in call order; a row with a NaN (a failed call) or one that does
    not strictly dominate ``ref`` leaves the value unchanged. Two objectives: incremental,
    amortised ``O(log n)`` a row plus list edits. Otherwise the front is updated row by row
    and :func:`hypervolume` recomputed only when a row joins the front.

    Args:
        Y: Objective values in maximisation form, shape ``(n, k)``, in call order.
        ref: The reference point, shape ``(k,)``.

    Returns:
        Float ``(n,)``: the hypervolume after each call (non-decreasing).

    Raises:
        ValueError: If ``Y`` or ``ref`` has the wrong shape.
    """
    Y = _as_2d(Y)
    r = _check_ref(ref, Y.shape[1])
    if Y.shape[1] == 2:
        return _trace_2d(Y, r)
    n = Y.shape[0]
    out = np.empty(n, dtype=np.float64)
    front = Y[:0]
    total = 0.0
    inside = (r < Y).all(axis=1)
    for i in range(n):
        y = Y[i]
        if inside[i] and not (front >= y).all(axis=1).any():
            beaten = (y >= front).all(axis=1)  # weakly dominated by y, now redundant
            front = np.concatenate([front[~beaten], y[None, :]])
            total = hypervolume(front, r)
        out[i] = total
    return out


def reference_point(Y: np.ndarray, given: Sequence[float | None] | None = None,
                    margin: float = 0.1) -> np.ndarray:
    """A reference point for :func:`hypervolume`, given or inferred per objective.

    Where ``given[i]`` is not ``None`` it is used; otherwise the worst finite value of
    objective ``i`` minus ``margin`` times that objective's range (the range of its finite
    values; a range of 0 is replaced by ``max(1, |worst|)``). This is the idea of botorch's
    ``infer_reference_point``: slightly worse than the nadir, so that the worst points
    still add volume.

    Args:
        Y: Objective values in maximisation form, shape ``(n, k)``.
        given: Per objective a fixed reference value or ``None`` (``None``: all inferred).
        margin: The share of the range the inferred value lies below the worst one.

    Returns:
        Float ``(k,)``: the reference point.

    Raises:
        ValueError: If ``Y`` has the wrong shape, ``given`` the wrong length, or an
            objective to infer has no finite value.
    """
    Y = _as_2d(Y)
    k = Y.shape[1]
    if given is None:
        given = [None] * k
    if len(given) != k:
        raise ValueError(f"given has {len(given)} entries for {k} objectives")
    ref = np.empty(k, dtype=np.float64)
    for i, g in enumerate(given):
        if g is not None:
            ref[i] = float(g)
            continue
        col = Y[:, i][np.isfinite(Y[:, i])]
        if col.size == 0:
            raise ValueError(f"objective {i} has no finite value to infer a reference from")
        worst, span = float(col.min()), float(col.max() - col.min())
        ref[i] = worst - margin * (span if span > 0 else max(1.0, abs(worst)))
    return ref


def feasible_mask(C: np.ndarray, lower: Sequence[float | None],
                  upper: Sequence[float | None]) -> np.ndarray:
    """Which rows satisfy every constraint.

    Args:
        C: Constrained properties in their own units, shape ``(n, c)``.
        lower: Per column the lowest allowed value, or ``None`` for no lower bound.
        upper: Per column the highest allowed value, or ``None`` for no upper bound.

    Returns:
        Boolean ``(n,)``: True where every column is finite and within
        ``[lower, upper]`` (bounds included); all True when ``c == 0``.

    Raises:
        ValueError: If ``C`` is not two-dimensional or the bounds are not ``c`` long.
    """
    C = np.asarray(C, dtype=np.float64)
    if C.ndim != 2:
        raise ValueError(f"C must have shape (n, c), got {C.shape}")
    c = C.shape[1]
    if len(lower) != c or len(upper) != c:
        raise ValueError(f"lower and upper need {c} entries, got {len(lower)} and {len(upper)}")
    ok = np.isfinite(C).all(axis=1)
    for j in range(c):
        if lower[j] is not None:
            ok &= C[:, j] >= lower[j]
        if upper[j] is not None:
            ok &= C[:, j] <= upper[j]
    return ok


def chebyshev_weights(k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Weight vectors drawn uniformly on the simplex.

    Args:
        k: Number of objectives (``>= 1``).
        n: Number of weight vectors.
        rng: The random generator (the same seed gives the same weights).

    Returns:
        Float ``(n, k)``: non-negative rows that sum to 1 (``Dirichlet(1, ..., 1)``).

    Raises:
        ValueError: If ``k < 1`` or ``n < 0``.
    """
    if k < 1 or n < 0:
        raise ValueError(f"need k >= 1 and n >= 0, got k={k}, n={n}")
    return rng.dirichlet(np.ones(k), n)


def chebyshev(Y_norm: np.ndarray, weights: np.ndarray, rho: float = 0.05) -> np.ndarray:
    """Augmented Chebyshev scalarisation (ParEGO), written for maximisation.

    For a weight vector ``w`` and a normalised row ``y``::

        s(y) = min_i (w_i * y_i) + rho * sum_i (w_i * y_i)

    which is Knowles (2006, "ParEGO", IEEE Trans. Evol. Comput. 10(1)) with its
    ``max_i w_i f_i + rho * sum_i w_i f_i`` for minimised ``f = -y``, negated: larger is
    better. The objectives should be normalised first (ParEGO: to ``[0, 1]``).

    Args:
        Y_norm: Normalised objective values in maximisation form, shape ``(m, k)``.
        weights: Weight vectors, shape ``(w, k)``, or one, shape ``(k,)``.
        rho: Weight of the augmenting sum (0.05 in ParEGO).

    Returns:
        Float ``(w, m)``, or ``(m,)`` for a single weight vector of shape ``(k,)``.

    Raises:
        ValueError: If the shapes do not fit.
    """
    Y = _as_2d(Y_norm, "Y_norm")
    W = np.asarray(weights, dtype=np.float64)
    single = W.ndim == 1
    W2 = W[None, :] if single else W
    if W2.ndim != 2 or W2.shape[1] != Y.shape[1]:
        raise ValueError(f"weights must have shape (w, {Y.shape[1]}) or ({Y.shape[1]},), "
                         f"got {W.shape}")
    prod = W2[:, None, :] * Y[None, :, :]
    out = prod.min(axis=2) + rho * prod.sum(axis=2)
    return out[0] if single else out
