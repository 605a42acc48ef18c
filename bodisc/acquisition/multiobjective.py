"""Acquisition for several objectives: qLogNEHVI over a discrete candidate set, and ParEGO.

Both work on the maximisation form of every objective (the caller negates a minimised
one) and take one fitted GP per objective in ``AcquisitionContext.models``, all fitted on
the same labelled descriptors; constraints come as ``AcquisitionContext.constraints``
(:class:`bodisc.acquisition.Constraint`).

* ``qlognehvi``: botorch's ``qLogNoisyExpectedHypervolumeImprovement`` (Daulton et al.
  2021; Ament et al. 2023) over the candidates, batches by sequential greedy selection as
  in botorch's ``optimize_acqf_discrete``: the best candidate is picked, added to
  ``X_pending``, and the acquisition evaluated again, q times. Pending molecules
  (``AcquisitionContext.pending``) are ``X_pending`` from the start. The objective GPs
  (and the constraint GPs, whose feasibility enters as botorch's ``value <= 0``
  constraints, one per bound) form one ``ModelListGP``; ``X_baseline`` is the labelled
  descriptors, pruned (``prune_baseline=True``), with a fixed-seed Sobol QMC sampler
  (seed drawn from ``ctx.rng``), so the same inputs and generator state give the same
  batch. An infeasible labelled molecule stays in ``X_baseline``: botorch weights the
  hypervolume of every sample by the sampled feasibility, so it never extends the front.
  Two shortcuts make a batch tens of times faster: the joint posteriors come from the
  GPs' cached factors (:class:`CachedJointPosterior`; botorch's values exactly), and
  each pick is found by lazy greedy (:func:`_next_pick`), which re-evaluates only the
  candidates whose earlier value could still beat the best. Lazy greedy picks what
  plain greedy picks as long as a candidate's value only shrinks as picks are added;
  the Monte-Carlo estimate (new base samples for each pick) breaks that now and then
  late in a batch, where values are small (``bodisc bench surrogate --parts nehvi``
  measures both).
  With ``ctx.options["pareto_depth"] = d > 1`` (``[acquisition] pareto_depth``) the
  baseline leaves out the labels of the first ``d - 1`` non-dominated layers
  (:func:`baseline_rows`), so molecules that would join the first ``d`` layers, not only
  those that extend the front, improve the hypervolume; the short list uses the same
  front.
* ``parego``: ParEGO's random augmented Chebyshev scalarisation (Knowles 2006) in the UCB
  form of Paria et al. (2019): for each pick a weight vector drawn on the simplex from
  ``ctx.rng``, each objective's UCB ``mean + sqrt(beta) std`` normalised by the labels'
  minimum and range of that objective, scalarised by :func:`bodisc.pareto.chebyshev`,
  and the best candidate not yet chosen taken. No extra fits and no kriging believer:
  the batch spreads because every pick has its own weights; pending molecules are not
  conditioned on (the caller keeps them out of the candidates). With constraints the
  candidates with ``PoF >= ctx.likely`` (0.5 unless set) come first, then the others, most
  likely feasible first.

The short list of ``qlognehvi`` (the project's fast scoring path): botorch's acquisition
costs a joint posterior over the baseline and each candidate, far more than the cached
``GPSurrogate.predict``. So every candidate gets its per-objective UCB ``mean + 2 std``
from ``predict`` and is ranked by the hypervolume improvement of that optimistic vector
over the non-dominated front of the feasible labels, with the reference point qLogNEHVI
uses (the UCB-HVI criterion; cf. Emmerich et al.'s optimistic, hypervolume-based infill
criteria). The top ``max(SHORTLIST, 8 q)`` are kept (among those with ``PoF >= MIN_POF``
when constrained, if that many remain); ties, among them the candidates whose optimistic
vector adds nothing, go by the non-dominated layer of their UCB vectors among the tied
candidates, then by index. A candidate whose optimistic vector adds no hypervolume is
unlikely to add any in expectation, and one that adds little optimistically rarely beats
one that adds much; so the batch picked on the short list is nearly always the one picked
over all candidates (``tests/acquisition/test_multiobjective.py`` measures the agreement).
The improvement is exact and vectorised: the region not dominated by the front, above the
reference point, is split into boxes (botorch's ``NondominatedPartitioning``), and a
vector ``u`` improves by ``sum over boxes of prod_j max(0, min(u_j, upper_j) - lower_j)``.
Ranking non-dominated layers of the UCB vectors instead (the rule before) missed the best
candidate when it sat a few layers deep.

With a single objective model (``ctx.surrogate`` only: a single-objective campaign that
names one of these strategies) ``qlognehvi`` is botorch's ``qLogNoisyExpectedImprovement``
(the hypervolume improvement of one objective is the improvement of the maximum) and
``parego`` is UCB without a believer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from bodisc.acquisition import (
    AcquisitionContext,
    Constraint,
    Selection,
    feasibility_tiers,
    log_feasibility,
    register,
)

if TYPE_CHECKING:
    import torch

#: Candidates a ``qlognehvi`` batch is chosen from at least (more with ``8 q``).
SHORTLIST = 512

#: With constraints, the short list keeps to candidates at least this likely feasible
#: (when at least the short list's size of them remain).
MIN_POF = 0.01

#: Weight of the standard deviation in the short list's per-objective UCB.
SHORTLIST_BETA_ROOT = 2.0

#: Quasi-Monte-Carlo samples of the qLogNEHVI / qLogNEI sampler.
MC_SAMPLES = 128

#: Candidates per forward call of the botorch acquisition.
EVAL_CHUNK = 128

#: qLogNEHVI takes its joint posteriors from :class:`CachedJointPosterior` (else from
#: botorch's models directly: the same values, tens of times slower).
FAST_POSTERIOR = True

#: qLogNEHVI batches by lazy greedy (:func:`_next_pick`) instead of plain greedy.
LAZY_GREEDY = True

#: Candidates lazy greedy evaluates at a time.
LAZY_CHUNK = 32

#: Weight of the augmenting sum of ParEGO's Chebyshev scalarisation.
RHO = 0.05


def objective_models(ctx: AcquisitionContext) -> tuple[Any, ...]:
    """The objective GPs: ``ctx.models``, or ``(ctx.surrogate,)`` for a single objective.

    Raises:
        ValueError: If the context has neither.
    """
    if ctx.models:
        return tuple(ctx.models)
    if ctx.surrogate is not None:
        return (ctx.surrogate,)
    raise ValueError("a multi-objective strategy needs one fitted GP per objective "
                     "(AcquisitionContext.models)")


def _train_labels(ctx: AcquisitionContext, models: tuple[Any, ...]) -> np.ndarray:
    """The objective labels, shape ``(n, k)``.

    ``Y_train``; else ``y_train`` (one objective); else the models' own training targets
    back in label units.
    """
    k = len(models)
    if ctx.Y_train is not None:
        return np.asarray(ctx.Y_train, dtype=float).reshape(-1, k)
    if ctx.y_train is not None and k == 1:
        return np.asarray(ctx.y_train, dtype=float).reshape(-1, 1)
    cols = []
    for g in models:
        t = g.model.train_targets.detach().reshape(-1, 1)
        cols.append(g.model.outcome_transform.untransform(t)[0].reshape(-1).cpu().numpy())
    return np.column_stack(cols)


def default_ref_point(Y: np.ndarray, feasible: np.ndarray | None = None) -> np.ndarray:
    """The hypervolume reference point when none is given, shape ``(k,)``.

    :func:`bodisc.pareto.reference_point` (the nadir less a tenth of the range, per
    objective) of the feasible labelled molecules, or of all of them when none is
    feasible; rows with a non-finite label (a failed call) are left out.

    Args:
        Y: Labels, maximisation form, shape ``(n, k)``.
        feasible: Whether each labelled molecule is feasible, ``(n,)``, or ``None``.
    """
    from bodisc.pareto import reference_point

    Y = np.asarray(Y, dtype=float)
    rows = np.isfinite(Y).all(axis=1)
    if feasible is not None and np.any(rows & feasible):
        rows &= np.asarray(feasible, dtype=bool)
    return reference_point(Y[rows])


def _check_shared(models: list[Any]) -> None:
    """All models are GPSurrogates fitted on the same descriptors (same scaler, inputs).

    botorch evaluates every model of the ``ModelListGP`` on one input tensor, the first
    model's features; that is right only if every model scales descriptors the same way.

    Raises:
        ValueError: Otherwise.
    """
    first = models[0]
    for g in models:
        if getattr(g, "model", None) is None or getattr(g, "scaler", None) is None:
            raise ValueError("qlognehvi needs GPSurrogate models (surrogate kind 'gp'), "
                             f"got {type(g).__name__}")
        same = (np.array_equal(g.scaler.mean, first.scaler.mean)
                and np.array_equal(g.scaler.std, first.scaler.std)
                and g.model.train_inputs[0].shape == first.model.train_inputs[0].shape)
        if not same:
            raise ValueError("qlognehvi: the objective and constraint GPs must be fitted on "
                             "the same labelled descriptors")


def _ref_point(ctx: AcquisitionContext, models: tuple[Any, ...]) -> np.ndarray:
    """The hypervolume reference point: ``ctx.ref_point``, else :func:`default_ref_point`."""
    if ctx.ref_point is not None:
        return np.asarray(ctx.ref_point, dtype=float)
    return default_ref_point(_train_labels(ctx, models), _feasible_train(ctx))


def _feasible_train(ctx: AcquisitionContext) -> np.ndarray | None:
    """``ctx.feasible_train`` as booleans, or ``None``."""
    return None if ctx.feasible_train is None else np.asarray(ctx.feasible_train, dtype=bool)


def baseline_rows(ctx: AcquisitionContext, models: tuple[Any, ...]) -> np.ndarray:
    """The labelled rows qLogNEHVI measures the hypervolume improvement against.

    Every row unless ``ctx.options["pareto_depth"]`` is ``d > 1``: then the feasible
    labels on the first ``d - 1`` non-dominated layers of the feasible labels are left
    out (never the last layer: at most all layers but one go). Against what is left, a
    molecule that would join any of the labels' first ``d`` layers improves the
    hypervolume, so the batch fills those layers instead of only extending the front.
    Infeasible and failed rows stay (botorch weighs them by sampled feasibility).

    Returns:
        Indices into the labelled rows, ascending, shape ``(b,)``.
    """
    from bodisc.pareto import nondominated_layers

    Y = _train_labels(ctx, models)
    rows = np.arange(Y.shape[0])
    depth = int(ctx.options.get("pareto_depth", 1))
    if depth <= 1:
        return rows
    feasible = _feasible_train(ctx)
    usable = np.isfinite(Y).all(axis=1)
    if feasible is not None:
        usable &= feasible
    if not usable.any():
        return rows
    layer = np.full(Y.shape[0], -1)
    layer[usable] = nondominated_layers(Y[usable])
    drop = min(depth - 1, int(layer.max()))  # layers 0 .. drop - 1 go
    return rows[~(usable & (layer < drop))]


def optimistic_hvi(U: np.ndarray, front: np.ndarray, ref: np.ndarray,
                   chunk_elements: int = 2**22) -> np.ndarray:
    """The hypervolume improvement of each row of ``U`` over ``front``, on its own.

    The region above ``ref`` not dominated by ``front`` is split into boxes (botorch's
    ``NondominatedPartitioning``); a row ``u`` gains ``sum over boxes of
    prod_j max(0, min(u_j, upper_j) - lower_j)``. Rows are done in chunks so that no
    intermediate holds more than about ``chunk_elements`` numbers.

    Args:
        U: Vectors in maximisation form, shape ``(m, k)`` (the candidates' UCBs).
        front: The labelled points, maximisation form, ``(n, k)`` (``n`` may be 0; any
            dominated points and points not above ``ref`` are ignored).
        ref: Reference point, ``(k,)``.
        chunk_elements: Bound on the size of an intermediate array.

    Returns:
        ``(m,)``, ``>= 0``; NaN where a row of ``U`` has a NaN.
    """
    import torch
    from botorch.utils.multi_objective.box_decompositions.non_dominated import (
        NondominatedPartitioning,
    )

    U = np.asarray(U, dtype=float)
    k = U.shape[1]
    ref = np.asarray(ref, dtype=float).reshape(k)
    front = np.asarray(front, dtype=float).reshape(-1, k)
    front = front[np.isfinite(front).all(axis=1)]
    bounds = NondominatedPartitioning(torch.as_tensor(ref, dtype=torch.float64),
                                      Y=torch.as_tensor(front, dtype=torch.float64))
    lower, upper = bounds.get_hypercell_bounds().cpu().numpy()  # (cells, k) each
    out = np.empty(U.shape[0])
    step = max(1, chunk_elements // max(1, lower.shape[0] * k))
    for start in range(0, U.shape[0], step):
        u = U[start : start + step, None, :]  # (b, 1, k); an infinite upper clips to u
        side = np.clip(np.minimum(u, upper[None]) - lower[None], 0.0, None)
        out[start : start + step] = side.prod(axis=2).sum(axis=1)
    return out


def _top(U: np.ndarray, hvi: np.ndarray, size: int) -> np.ndarray:
    """Rows of the ``size`` largest ``hvi``, ties by the UCB layer among them, then index.

    Rows with a NaN are never taken; ascending indices.
    """
    from bodisc.pareto import nondominated_layers, top_share_by_layers

    key = np.where(np.isnan(hvi), -np.inf, hvi)
    finite = np.flatnonzero(np.isfinite(key))
    if finite.shape[0] <= size:
        return finite
    cut = np.sort(key[finite])[::-1][size - 1]  # the size-th largest improvement
    above = np.flatnonzero(key > cut)
    tied = np.flatnonzero(key == cut)
    need = size - above.shape[0]
    if tied.shape[0] > need:
        # whole layers of the tied UCBs until they hold ``need``, then layer and index
        rows = tied[top_share_by_layers(U[tied], need / tied.shape[0])]
        order = np.lexsort((rows, nondominated_layers(U[rows])))
        tied = rows[order[:need]]
    return np.sort(np.concatenate([above, tied]))


def shortlist(ctx: AcquisitionContext, models: tuple[Any, ...], q: int,
              baseline: np.ndarray | None = None) -> np.ndarray:
    """The candidates a ``qlognehvi`` batch is chosen from, ascending indices.

    The ``max(SHORTLIST, 8 q)`` candidates whose per-objective UCB ``mean + 2 std`` adds
    the most hypervolume to the front of the feasible labels (:func:`optimistic_hvi`; see
    the module docstring); all candidates when there are no more than that.

    Args:
        ctx: The context.
        models: The objective GPs.
        q: Batch size.
        baseline: The labelled rows the front is taken from (:func:`baseline_rows`,
            computed when not given).

    Returns:
        Indices into ``ctx.X``, shape ``(s,)``.
    """
    m = ctx.X.shape[0]
    target = max(SHORTLIST, 8 * q)
    if m <= target:
        return np.arange(m)
    pool = np.arange(m)
    if ctx.constraints:
        hopeful = log_feasibility(ctx.constraints, ctx.X) >= np.log(MIN_POF)
        if int(hopeful.sum()) >= target:
            pool = np.flatnonzero(hopeful)
    if pool.shape[0] <= target:
        return pool
    X = ctx.X[pool]
    ucb = np.column_stack([mean + SHORTLIST_BETA_ROOT * std
                           for mean, std in (g.predict(X) for g in models)])
    Y = _train_labels(ctx, models)
    feasible = _feasible_train(ctx)
    kept = np.zeros(Y.shape[0], dtype=bool)
    kept[baseline_rows(ctx, models) if baseline is None else baseline] = True
    front = Y[kept] if feasible is None else Y[kept & feasible]
    hvi = optimistic_hvi(ucb, front, _ref_point(ctx, models))
    rows = _top(ucb, hvi, target)
    if rows.shape[0] < q:  # non-finite predictions: fall back to every candidate
        return np.arange(m)
    return pool[rows]


def _constraint_callables(constraints: tuple[Constraint, ...], k: int) -> list[Any]:
    """The botorch constraints (feasible where ``value <= 0``) on outputs ``k, k + 1, ...``.

    A lower bound ``l`` on output ``j`` is ``l - Z[..., j]``, an upper bound ``u`` is
    ``Z[..., j] - u``: one callable per bound.
    """
    out: list[Any] = []
    for j, c in enumerate(constraints):
        col = k + j
        if c.lower is not None:
            out.append(lambda Z, col=col, b=float(c.lower): b - Z[..., col])
        if c.upper is not None:
            out.append(lambda Z, col=col, b=float(c.upper): Z[..., col] - b)
    return out


def _evaluate(acq: Any, Z: torch.Tensor) -> np.ndarray:
    """The acquisition at every candidate ``Z`` ``(s, d)`` on its own, ``(s,)``, in chunks."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, Z.shape[0], EVAL_CHUNK):
            chunk = Z[start : start + EVAL_CHUNK].unsqueeze(1)  # (b, 1, d)
            out.append(acq(chunk).detach().reshape(-1).cpu().numpy())
    values = np.concatenate(out) if out else np.zeros(0)
    return np.where(np.isnan(values), -np.inf, values)


def _python_hypervolume_kernel() -> None:
    """Keep botorch's qLogNEHVI on its pure-Python path.

    On first use botorch compiles a fused C++ kernel (``torch.utils.cpp_extension``,
    ``-march=native``, cached in ``~/.cache/torch_extensions``) when a compiler is present,
    else it uses Python: the batch would then depend on the machine, and the first call
    cost tens of seconds. The project's rule is that the same campaign file and seed give
    the same molecules on any machine, so the kernel is marked as tried and absent
    (guarded: a botorch without these attributes is left alone).
    """
    from botorch.acquisition.multi_objective import logei

    if hasattr(logei, "_load_attempted") and hasattr(logei, "_C"):
        logei._load_attempted = True
        logei._C = None


class CachedJointPosterior:
    """The joint posterior over ``[X_baseline; x]`` from the GPs' cached factors.

    botorch's qLogNEHVI asks the models, for every candidate ``x``, for the joint
    posterior over the baseline (labelled and pending molecules, ``nb`` of them) and
    ``x``; gpytorch computes that from scratch, the baseline's ``nb`` rows included, for
    every candidate: ``O(b nb n^2)`` per call of ``b`` candidates with ``n`` labels. The
    same numbers come from :class:`bodisc.surrogates.gp.GPSurrogate`'s cached Cholesky
    factor ``L``: with ``V = L^-1 k(T, .)`` computed once for the baseline and once for
    the short list, ``cov(a, b) = k(a, b) - V_a^T V_b``, and a call costs ``O(b nb n)``.
    ``tests/acquisition/test_multiobjective.py`` checks the acquisition values against
    botorch's own path.

    Args:
        surrogates: The fitted GPs, objectives then constraints (the outputs in order).
        Z: Features (``GPSurrogate._features``) of the candidates whose ``V`` is kept,
            shape ``(s, d)``; other rows are computed when asked for.
    """

    def __init__(self, surrogates: list[Any], Z: torch.Tensor) -> None:
        self.gps = surrogates
        self._rows = {self._key(z): i for i, z in enumerate(Z)}
        self._cand = [self._parts(g, Z) for g in surrogates]
        self._base_key: tuple[Any, ...] | None = None
        self._base: list[tuple[torch.Tensor, ...]] = []

    @staticmethod
    def _key(z: torch.Tensor) -> bytes:
        return z.detach().cpu().numpy().tobytes()

    @staticmethod
    def _parts(g: Any, Z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scaled inputs ``(c, d)``, standardised posterior mean ``(c,)``, ``V`` ``(n, c)``."""
        import torch

        kern = g._kernel
        S = kern.scale_inputs(Z)
        Ks = kern(S, g._train_s)  # (c, n)
        mean = g._prior_mean(Z) + Ks @ g._alpha
        V = torch.linalg.solve_triangular(g._L, Ks.T, upper=False)
        return S, mean.expand(Z.shape[0]), V

    def _baseline(self, B: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """Per GP: the baseline's scaled inputs, ``V``, mean and covariance, cached.

        Shapes ``(nb, d)``, ``(n, nb)``, ``(nb,)`` and ``(nb, nb)``; recomputed only when
        the baseline changes (a pick joins the pending molecules).
        """
        key = (B.shape, B.data_ptr(), B._version)
        if key != self._base_key:
            self._base = []
            for g in self.gps:
                S, mean, V = self._parts(g, B)
                self._base.append((S, V, mean, g._kernel(S, S) - V.T @ V))
            self._base_key = key
        return self._base

    def posterior(self, B: torch.Tensor, X: torch.Tensor) -> Any:
        """The posterior over ``[B; x]`` for each row ``x`` of ``X``.

        Args:
            B: Baseline features, shape ``(nb, d)``.
            X: Candidate features, shape ``(b, d)``.

        Returns:
            A botorch ``GPyTorchPosterior`` of batch ``b``, ``nb + 1`` points and one
            output per GP, in label units (latent function, no observation noise), as
            ``ModelListGP.posterior`` returns it.
        """
        import torch
        from botorch.posteriors.gpytorch import GPyTorchPosterior
        from gpytorch.distributions import MultitaskMultivariateNormal, MultivariateNormal
        from linear_operator.operators import DenseLinearOperator

        idx = [self._rows.get(self._key(x)) for x in X]
        known = all(i is not None for i in idx)
        take = torch.as_tensor([i if i is not None else 0 for i in idx], device=X.device)
        b, nb = X.shape[0], B.shape[0]
        mvns = []
        for j, g in enumerate(self.gps):
            if known:
                S0, mean0, V0 = self._cand[j]
                S, mean, V = S0[take], mean0[take], V0[:, take]
            else:
                S, mean, V = self._parts(g, X)
            Sb, Vb, mean_b, cov_bb = self._baseline(B)[j]
            cross = g._kernel(S, Sb) - V.T @ Vb  # (b, nb)
            var = g._kernel.outputscale - V.square().sum(0)  # (b,)
            cov = torch.empty(b, nb + 1, nb + 1, dtype=X.dtype, device=X.device)
            cov[:, :nb, :nb] = cov_bb
            cov[:, nb, :nb] = cross
            cov[:, :nb, nb] = cross
            cov[:, nb, nb] = var
            full_mean = torch.cat([mean_b.expand(b, nb), mean.reshape(b, 1)], dim=1)
            scale = g._y_std
            mvns.append(MultivariateNormal(full_mean * scale + g._y_mean,
                                           DenseLinearOperator(cov * scale**2)))
        mvn = mvns[0] if len(mvns) == 1 else MultitaskMultivariateNormal.from_independent_mvns(mvns)
        return GPyTorchPosterior(mvn)


def _fast_nehvi_class() -> type:
    """The class of botorch's qLogNEHVI with joint posteriors from :class:`CachedJointPosterior`.

    Only the posterior samples at the candidates change (same formulas, same base
    samples, botorch's low-rank update on its cached baseline factor); the box
    decompositions, pruning and the log-HVI are botorch's. Falls back to botorch's own
    path for ``q > 1`` inputs or pending points not yet cached.
    """
    from botorch.acquisition.multi_objective.logei import (
        qLogNoisyExpectedHypervolumeImprovement,
    )

    class FastQLogNEHVI(qLogNoisyExpectedHypervolumeImprovement):
        joint: CachedJointPosterior | None = None

        def _compute_posterior_samples_and_concat_pending(self, X: torch.Tensor) -> Any:
            cached = (self.X_pending is None
                      or self.X_baseline.shape[-2]
                      == self._X_baseline.shape[-2] + self.X_pending.shape[-2])
            if self.joint is None or X.dim() != 3 or X.shape[-2] != 1 or not cached:
                return super()._compute_posterior_samples_and_concat_pending(X)
            posterior = self.joint.posterior(self.X_baseline, X[:, 0, :])
            self._set_sampler(q_in=1, posterior=posterior)
            return self._get_f_X_samples(posterior=posterior, q_in=1), X

    return FastQLogNEHVI


def _next_pick(acq: Any, Z: torch.Tensor, free: np.ndarray, bound: np.ndarray,
               lazy: bool) -> tuple[int, float]:
    """The next greedy pick among the ``free`` rows of ``Z`` and its acquisition value.

    Plain greedy evaluates every free candidate. Lazy greedy (Minoux 1978) uses that the
    expected hypervolume improvement of a candidate can only shrink as pending molecules
    are added (it is submodular): ``bound`` holds each candidate's value at an earlier
    pick, an upper bound on its value now; candidates are evaluated in order of their
    bound, ``LAZY_CHUNK`` at a time, until the best value found is at least the largest
    bound left. ``bound`` is updated in place. The Monte-Carlo estimate is submodular
    only approximately, so late picks may differ from plain greedy's (see the module
    docstring).

    Returns:
        ``(row, value)``; ties go to the lowest row.
    """
    left = np.flatnonzero(free)
    if not lazy:
        values = _evaluate(acq, Z[_torch_index(left, Z)])
        bound[left] = values
    else:
        order = left[np.lexsort((left, -bound[left]))]
        done = 0
        while done < order.shape[0]:
            rows = order[done : done + LAZY_CHUNK]
            bound[rows] = _evaluate(acq, Z[_torch_index(rows, Z)])
            done += rows.shape[0]
            best = np.max(bound[order[:done]])
            if done >= order.shape[0] or best >= np.max(bound[order[done:]]):
                break
        left = np.sort(order[:done])
        values = bound[left]
    j = int(np.argmax(values))
    return int(left[j]), float(values[j])


def _torch_index(rows: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """``rows`` as a long tensor on ``like``'s device."""
    import torch

    return torch.as_tensor(rows, dtype=torch.long, device=like.device)


@register("qlognehvi", needs_model=True, objectives="several",
          description=("botorch's qLogNEHVI: log noisy expected hypervolume improvement, "
                       "sequential greedy batches over a UCB-hypervolume short list"))
def q_log_nehvi(ctx: AcquisitionContext) -> Selection:
    """The qLogNEHVI batch over the short list, by sequential greedy picks (module docstring).

    Scores are the acquisition value of each pick given the earlier picks and the pending
    molecules (log of the expected hypervolume improvement).
    """
    import gpytorch
    import torch
    from botorch.models import ModelListGP
    from botorch.sampling import SobolQMCNormalSampler

    from bodisc.acquisition import _pending
    from bodisc.surrogates.gp import EXACT_MAX

    models = objective_models(ctx)
    k = len(models)
    m = ctx.X.shape[0]
    q = min(ctx.q, m)
    _check_shared(list(models) + [c.model for c in ctx.constraints])
    rows = baseline_rows(ctx, models) if k >= 2 else None  # all unless a pareto_depth
    short = shortlist(ctx, models, q, rows)
    seed = int(ctx.rng.integers(2**31 - 1))
    gp0 = models[0]
    Z = gp0._features(ctx.X[short])
    pending = _pending(ctx)
    Z_pending = gp0._features(pending) if len(pending) else None
    base = gp0.model.train_inputs[0]
    if rows is not None:
        base = base[_torch_index(rows, base)]
    inner = [g.model for g in models] + [c.model.model for c in ctx.constraints]
    model = inner[0] if len(inner) == 1 else ModelListGP(*inner)
    constraints = _constraint_callables(ctx.constraints, k) or None
    chosen: list[int] = []
    scores: list[float] = []
    with torch.random.fork_rng(), gpytorch.settings.max_cholesky_size(EXACT_MAX):
        torch.manual_seed(seed)  # baseline pruning draws from torch's global generator
        sampler = SobolQMCNormalSampler(torch.Size([MC_SAMPLES]), seed=seed)
        if k >= 2:
            from botorch.acquisition.multi_objective.logei import (
                qLogNoisyExpectedHypervolumeImprovement,
            )
            from botorch.acquisition.multi_objective.objective import (
                IdentityMCMultiOutputObjective,
            )

            _python_hypervolume_kernel()
            ref = _ref_point(ctx, models)
            cls = _fast_nehvi_class() if FAST_POSTERIOR else qLogNoisyExpectedHypervolumeImprovement
            acq = cls(
                model, ref_point=torch.as_tensor(ref, dtype=base.dtype, device=base.device),
                X_baseline=base, sampler=sampler,
                objective=IdentityMCMultiOutputObjective(outcomes=list(range(k))),
                constraints=constraints, X_pending=Z_pending, prune_baseline=True)
            if FAST_POSTERIOR:
                acq.joint = CachedJointPosterior(
                    list(models) + [c.model for c in ctx.constraints], Z)
        else:
            from botorch.acquisition.logei import qLogNoisyExpectedImprovement
            from botorch.acquisition.objective import GenericMCObjective

            objective = (GenericMCObjective(lambda Y, X=None: Y[..., 0]) if constraints
                         else None)
            acq = qLogNoisyExpectedImprovement(model, base, sampler, objective=objective,
                                               X_pending=Z_pending, constraints=constraints,
                                               prune_baseline=True)
        free = np.ones(short.shape[0], dtype=bool)
        bound = np.full(short.shape[0], np.inf)  # the values of an earlier pick
        for step in range(q):
            i, value = _next_pick(acq, Z, free, bound, lazy=LAZY_GREEDY)
            chosen.append(i)
            scores.append(value)
            free[i] = False
            if step < q - 1:
                picked = Z[chosen]
                acq.set_X_pending(picked if Z_pending is None
                                  else torch.cat([Z_pending, picked]))
    return Selection(short[np.array(chosen, dtype=int)], np.array(scores))


@register("parego", needs_model=True, objectives="several",
          description=("ParEGO: random augmented Chebyshev scalarisation of the objectives' "
                       "UCBs, one weight vector per pick"))
def parego(ctx: AcquisitionContext) -> Selection:
    """ParEGO-style random augmented-Chebyshev scalarisation of the UCBs (no extra fits).

    Scores are the scalarised, normalised UCB of each pick under its own weights.
    """
    from bodisc.pareto import chebyshev, chebyshev_weights

    models = objective_models(ctx)
    k = len(models)
    m = ctx.X.shape[0]
    q = min(ctx.q, m)
    root_beta = float(np.sqrt(ctx.beta))
    means, ucbs = [], []
    for g in models:
        mean, std = g.predict(ctx.X)
        means.append(mean)
        ucbs.append(mean + root_beta * std)
    ucb = np.column_stack(ucbs)
    Y = _train_labels(ctx, models)
    if not np.isfinite(Y).all(axis=1).any():  # no labels to scale by: the means' range
        Y = np.column_stack(means)
    lo = np.array([np.min(c[np.isfinite(c)]) for c in Y.T])
    span = np.array([np.max(c[np.isfinite(c)]) for c in Y.T]) - lo
    span = np.where(span > 0, span, 1.0)
    U = (ucb - lo) / span
    tier = (feasibility_tiers(log_feasibility(ctx.constraints, ctx.X), ctx.likely)
            if ctx.constraints
            else np.zeros(m, dtype=np.int64))
    weights = chebyshev_weights(k, q, ctx.rng)  # one weight vector per pick
    free = np.ones(m, dtype=bool)
    chosen: list[int] = []
    scores: list[float] = []
    for w in weights:
        s = chebyshev(U, w, RHO)
        left = np.flatnonzero(free)
        key = np.where(np.isfinite(s[left]), s[left], -np.inf)
        i = int(left[np.lexsort((-key, tier[left]))[0]])
        chosen.append(i)
        scores.append(float(s[i]))
        free[i] = False
    return Selection(np.array(chosen, dtype=int), np.array(scores))
