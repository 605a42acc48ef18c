"""Surrogate speed and memory: ``bodisc bench surrogate``.

Every figure is a ratio against a baseline measured in the same call, because the
machine may be shared:

* ``scoring``: LogEI of every candidate through the cached-factorisation path
  (:meth:`GPSurrogate.predict` + :func:`expected_improvement_log`) against botorch's
  straightforward path, ``LogExpectedImprovement(model, best_f)(Z.unsqueeze(-2))`` over
  chunks of 1,024 candidates, on the same fitted model; also the largest relative
  difference of the two sets of values.
* ``memory``: peak resident memory while scoring a million candidates, above the
  process's resident memory just before (after the fit and with the candidate array
  built), measured in a fresh process from ``/proc/self/status`` (``VmHWM``, reset through
  ``/proc/self/clear_refs``).
* ``warm``: a refit after adding labels, started from the last fit's hyperparameters,
  against a cold fit of the same data.
* ``batched``: k GPs fitted as one batched model (:class:`BatchedGP`) against k botorch
  fits in a loop, same objective, options and threads, with the largest relative
  difference of their hyperparameters, of their marginal likelihoods and of their
  posterior means on held-out molecules, and the iterations of both sides.
* ``sparse``: the sparse GP's fit time at many labels, and its RMSE on held-out QM9
  molecules against the exact GP on the largest subset given.
* ``nehvi``: one ``qlognehvi`` batch (dipole and HOMO-LUMO gap, a GP each) three ways,
  same fitted GPs, candidates and seed: bodisc's path (joint posteriors from the cached
  factors, lazy greedy), the cached posteriors with plain greedy, and botorch's plain
  path (``FAST_POSTERIOR`` and ``LAZY_GREEDY`` off). The cached posteriors must give
  botorch's batch exactly; lazy greedy the same picks for as long as the Monte-Carlo
  acquisition behaves submodularly (how many leading picks agree, and how many of the
  molecules).

Data: the QM9 molecules whose descriptors are in the local cache (fast tier, computed by
``bodisc bench extrapolation-qm9`` or :func:`bodisc.data.qm9.qm9_descriptors`) with their
B3LYP dipoles; where a size asks for more rows than the cache holds (the 50,000-label fit,
``d`` other than the tier's 20), rows are drawn from a Gaussian fitted to the real ones, or
columns appended, from a seeded generator, and the result says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

#: Parts of the benchmark, in the order they run.
PARTS: tuple[str, ...] = ("scoring", "memory", "warm", "batched", "sparse", "nehvi")


def load_average() -> float:
    """The 1-minute load average (NaN where unavailable)."""
    try:
        return float(os.getloadavg()[0])
    except OSError:
        return float("nan")


def qm9_table(target: str = "dipole_D", min_rows: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Cached QM9 fast-tier descriptors and a B3LYP label.

    Args:
        target: Column of :func:`bodisc.data.qm9.load_qm9` used as the label.
        min_rows: Rows wanted at least; rows drawn from a Gaussian fitted to the cached
            ones (labels from a ridge fit plus resampled residuals) make up the rest.

    Returns:
        ``(X, y, note)``: descriptors ``(N, 20)``, labels ``(N,)`` and how they were made.
    """
    from bodisc.data.qm9 import descriptor_cache, load_qm9

    cache = descriptor_cache("fast")
    names = cache.names
    found = cache.read()
    index = sorted(i for i, (row, failure, _) in found.items()
                   if not failure and np.all(np.isfinite(row)))
    note = f"{len(index)} QM9 molecules from the descriptor cache"
    if len(index) < 200:
        return _synthetic(max(min_rows, 2000), len(names)) + (
            "synthetic (fewer than 200 QM9 molecules in the descriptor cache)",)
    X = np.array([found[i][0] for i in index], dtype=float)
    y = load_qm9([target]).loc[index, target].to_numpy(dtype=float)
    if min_rows > len(index):
        rng = np.random.default_rng(12345)
        extra = min_rows - len(index)
        # new rows from a Gaussian fitted to the real ones; labels from a ridge fit of the
        # real labels plus a resampled real residual: no near-duplicates of real rows
        mu, cov = X.mean(axis=0), np.cov(X, rowvar=False)
        Xn = rng.multivariate_normal(mu, cov, size=extra, method="eigh")
        A = np.hstack([X, np.ones((len(X), 1))])
        w = np.linalg.solve(A.T @ A + 1e-6 * np.eye(A.shape[1]), A.T @ y)
        resid = y - A @ w
        yn = np.hstack([Xn, np.ones((extra, 1))]) @ w + rng.choice(resid, size=extra)
        X, y = np.vstack([X, Xn]), np.concatenate([y, yn])
        note += (f" and {extra} rows drawn from a Gaussian fitted to them (labels: ridge "
                 f"fit plus resampled residuals; timing only)")
    return X, y, note


def _synthetic(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth test function of ``d`` inputs: ``X (n, d)``, ``y (n,)``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d) / np.sqrt(d)
    y = np.sin(2.0 * X @ w) + 0.5 * X[:, 0] * X[:, 1 % d] + 0.05 * rng.standard_normal(n)
    return X, y


def _widen(X: np.ndarray, d: int, seed: int = 1) -> np.ndarray:
    """``X`` with columns appended (linear mixtures plus noise) or dropped to reach ``d``."""
    if X.shape[1] >= d:
        return X[:, :d]
    rng = np.random.default_rng(seed)
    Z = (X - X.mean(0)) / (X.std(0) + 1e-12)
    extra = Z @ rng.standard_normal((X.shape[1], d - X.shape[1])) / np.sqrt(X.shape[1])
    return np.hstack([X, extra + 0.1 * rng.standard_normal(extra.shape)])


def bench_scoring(n: int = 1000, d: int = 22, m: int = 20000, device: str = "auto",
                  baseline_max: int | None = None) -> dict[str, Any]:
    """The cached-factorisation LogEI path against botorch's, on one fitted model.

    Args:
        n: Labels.
        d: Descriptors.
        m: Candidates.
        device: Surrogate device.
        baseline_max: Score at most this many candidates with the baseline (its rate is
            per candidate; ``None``: all).

    Returns:
        ``candidates_per_s``, ``baseline_candidates_per_s``, ``scoring_speedup``,
        ``scoring_max_rel_diff`` and sizes.
    """
    import torch
    from botorch.acquisition import LogExpectedImprovement

    import bodisc.surrogates.gp as gpmod
    from bodisc.surrogates.gp import GPSurrogate, expected_improvement_log

    X, y, note = qm9_table(min_rows=n + m)
    X = _widen(X, d)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    Xt, yt, Xc = X[order[:n]], y[order[:n]], X[order[n : n + m]]
    before = gpmod.MAX_FIT_ITERATIONS
    gpmod.MAX_FIT_ITERATIONS = 60  # the fit is not what is timed here
    try:
        gp = GPSurrogate(device=device).fit(Xt, yt)
    finally:
        gpmod.MAX_FIT_ITERATIONS = before
    best = float(yt.max())
    expected_improvement_log(*gp.predict(Xc[:256]), best)  # warm-up
    t0 = time.perf_counter()
    mean, std = gp.predict(Xc)
    ours = expected_improvement_log(mean, std, best)
    t_ours = time.perf_counter() - t0
    nb = m if baseline_max is None else min(m, baseline_max)
    Z = gp._features(Xc[:nb])
    acq = LogExpectedImprovement(gp.model, best_f=best)
    with torch.no_grad():
        acq(Z[:8].unsqueeze(-2))  # warm-up
        t0 = time.perf_counter()
        base = torch.cat([acq(Z[s : s + 1024].unsqueeze(-2)) for s in range(0, nb, 1024)])
        t_base = time.perf_counter() - t0
    base_np = base.cpu().numpy()
    rel = np.abs(ours[:nb] - base_np) / np.maximum(np.abs(base_np), 1e-300)
    return {
        "candidates_per_s": m / t_ours,
        "baseline_candidates_per_s": nb / t_base,
        "scoring_speedup": (t_base / nb) / (t_ours / m),
        "scoring_max_rel_diff": float(rel.max()),
        "scoring_s": t_ours,
        "scoring_sizes": {"n": n, "d": d, "m": m, "baseline_m": nb},
        "scoring_data": note,
    }


_MEMORY_SCRIPT = r"""
import json, sys, numpy as np
from bodisc.bench.surrogate import _memory_child
print(json.dumps(_memory_child(*json.loads(sys.argv[1]))))
"""


def _status_kb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return float("nan")


def _memory_child(n: int, d: int, m: int, device: str) -> dict[str, float]:
    """Runs in a fresh process: peak RSS above the pre-scoring RSS while scoring ``m``."""
    import bodisc.surrogates.gp as gpmod
    from bodisc.surrogates.gp import GPSurrogate, expected_improvement_log

    X, y = _synthetic(n, d)
    gpmod.MAX_FIT_ITERATIONS = 20
    gp = GPSurrogate(device=device).fit(X, y)
    Xc = np.random.default_rng(3).standard_normal((m, d))
    expected_improvement_log(*gp.predict(Xc[:2048]), float(y.max()))
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset the peak (VmHWM) to the current resident size
    base = _status_kb("VmRSS")
    t0 = time.perf_counter()
    mean, std = gp.predict(Xc)
    expected_improvement_log(mean, std, float(y.max()))
    seconds = time.perf_counter() - t0
    peak = _status_kb("VmHWM")
    return {"peak_mem_gb_1m": (peak - base) / 2**20, "baseline_rss_gb": base / 2**20,
            "memory_scoring_s": seconds}


def bench_memory(n: int = 1000, d: int = 22, m: int = 1_000_000,
                 device: str = "auto") -> dict[str, Any]:
    """Peak memory of scoring ``m`` candidates, in a fresh process (Linux ``/proc``)."""
    if not os.path.exists("/proc/self/clear_refs"):
        return {"peak_mem_gb_1m": None, "memory_note": "needs Linux /proc"}
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, json.dumps([n, d, m, device])],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["memory_sizes"] = {"n": n, "d": d, "m": m}
    return result


def bench_warm(n: int = 1000, add: int = 10, device: str = "auto",
               kind: str = "gp") -> dict[str, Any]:
    """A warm refit after adding ``add`` labels to ``n``, against a cold fit of the same data.

    Args:
        n: Labels of the first fit.
        add: Labels added before the refit.
        device: Surrogate device.
        kind: A registered surrogate kind that warm-starts and needs no categories.

    Raises:
        ValueError: For a kind that cannot be warm-started or needs categories.
    """
    from bodisc.surrogates import SURROGATES, build_surrogate

    spec = SURROGATES.get(kind)
    if spec is None or not spec.warm_start or spec.uses_categories:
        able = [k for k, s in SURROGATES.items() if s.warm_start and not s.uses_categories]
        raise ValueError(f"warm refit of kind {kind!r}: choose one of {', '.join(able)}")
    X, y, note = qm9_table()
    rng = np.random.default_rng(1)
    order = rng.permutation(len(y))[: n + add]
    X, y = X[order], y[order]
    first = build_surrogate(kind, device=device).fit(X[:n], y[:n])
    state = first.hyper_state()
    t0 = time.perf_counter()
    cold = build_surrogate(kind, device=device).fit(X, y)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = build_surrogate(kind, device=device).fit(X, y, init=state)
    t_warm = time.perf_counter() - t0
    probe = X[: min(500, len(X))]
    mc, _ = cold.predict(probe)
    mw, _ = warm.predict(probe)
    return {
        "warm_refit_ratio": t_warm / t_cold,
        "cold_fit_s": t_cold, "warm_fit_s": t_warm,
        "cold_fit_evaluations": cold.fit_evaluations,
        "warm_fit_evaluations": warm.fit_evaluations,
        "warm_cold_mean_max_diff_over_std": float(np.max(np.abs(mc - mw)) / np.std(y)),
        "warm_sizes": {"n": n, "add": add, "d": X.shape[1]}, "warm_data": note,
        "warm_kind": kind,
    }


def bench_batched(k: int = 8, n: int = 200, device: str = "auto",
                  n_test: int = 200) -> dict[str, Any]:
    """Batched fit of k GPs (k disjoint QM9 samples) against k botorch fits in a loop.

    Both sides minimise the same objective (``make_model`` in float64, as
    :class:`GPSurrogate` fits it) with the same L-BFGS-B options (``MAX_FIT_ITERATIONS``,
    scipy's tolerances) and the same threads (:func:`fit_threads`: one torch and one
    scipy-BLAS thread below ``SMALL_N`` labels). The loop is botorch's
    ``fit_gpytorch_mll_scipy`` per model; the batched side is :class:`BatchedGP`.

    Besides the hyperparameters (lengthscales, noise, constant mean), the marginal log
    likelihood per label at each side's end point and the posterior mean on ``n_test``
    held-out molecules are compared: where the likelihood is flat, L-BFGS-B stops at
    points along the flat direction that depend on rounding, the hyperparameters there
    differ while the fitted likelihood and predictions agree, and the latter are the
    meaningful check. Iterations and converged members are reported for both sides.
    ``loop_rounding_*`` measures that floor: the same loop on each sample's rows in
    another order (the same problem, other rounding) against the timed loop; a batched
    fit cannot be expected to agree with the loop more closely than the loop with itself.

    Args:
        k: Models.
        n: Labels per model (200: the size of a campaign's early surrogate fits).
        device: Surrogate device.
        n_test: Held-out molecules for the posterior mean comparison.
    """
    import gpytorch
    import torch
    from botorch.optim.fit import fit_gpytorch_mll_scipy
    from gpytorch.mlls import ExactMarginalLogLikelihood

    from bodisc.surrogates.batched import BatchedGP
    from bodisc.surrogates.gp import (
        EXACT_MAX,
        MAX_FIT_ITERATIONS,
        Scaler,
        fit_threads,
        make_model,
        resolve_device,
    )

    X, y, note = qm9_table(min_rows=k * n + n_test)
    rng = np.random.default_rng(2)
    perm = rng.permutation(len(y))
    order, test = perm[: k * n].reshape(k, n), perm[k * n : k * n + n_test]
    Xk, yk = X[order], y[order]
    options = {"maxiter": MAX_FIT_ITERATIONS}
    dev = resolve_device(device)
    def loop(Xs: np.ndarray, ys: np.ndarray) -> tuple[list[Any], list[int], list[bool]]:
        models, nit, ok = [], [], []
        with gpytorch.settings.max_cholesky_size(EXACT_MAX), fit_threads(n):
            for i in range(k):
                tx = torch.as_tensor(Scaler.fit(Xs[i]).transform(Xs[i]), device=dev)
                ty = torch.as_tensor(ys[i], device=dev).reshape(-1, 1)
                model = make_model(tx, ty).to(device=dev, dtype=torch.float64)
                mll = ExactMarginalLogLikelihood(model.likelihood, model)
                mll.train()
                result = fit_gpytorch_mll_scipy(mll, options=options)
                models.append(model)
                nit.append(int(result.step))
                ok.append(result.status.name == "SUCCESS")
        return models, nit, ok

    t0 = time.perf_counter()
    models, loop_nit, loop_ok = loop(Xk, yk)
    t_loop = time.perf_counter() - t0
    t0 = time.perf_counter()
    batched = BatchedGP(device=device).fit(Xk, yk, options=options)
    t_batch = time.perf_counter() - t0
    # the same loop on each sample's rows in another order: the same problem, other rounding
    rows = np.random.default_rng(3).permutation(n)
    permuted, _, _ = loop(Xk[:, rows], yk[:, rows])

    def hyper(model: Any) -> np.ndarray:
        return np.concatenate([model.covar_module.lengthscale.detach().cpu().numpy().ravel(),
                               model.likelihood.noise.detach().cpu().numpy().ravel(),
                               model.mean_module.constant.detach().cpu().numpy().ravel()])

    def fitted(models: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hyperparameters ``(k, d + 2)``, MLL per label ``(k,)``, held-out means ``(k, m)``."""
        mlls, means = [], []
        with gpytorch.settings.max_cholesky_size(EXACT_MAX), torch.no_grad():
            for i, model in enumerate(models):
                model.train()
                mll = ExactMarginalLogLikelihood(model.likelihood, model)
                mlls.append(float(mll(model(*model.train_inputs), model.train_targets)))
                model.eval()
                Z = torch.as_tensor(Scaler.fit(Xk[i]).transform(X[test]), device=dev)
                means.append(model.posterior(Z).mean.cpu().numpy().ravel())
        hyper = np.stack([np.concatenate([
            m.covar_module.lengthscale.detach().cpu().numpy().ravel(),
            m.likelihood.noise.detach().cpu().numpy().ravel(),
            m.mean_module.constant.detach().cpu().numpy().ravel()]) for m in models])
        return hyper, np.array(mlls), np.array(means)

    def differences(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> dict[str, float]:
        rel = np.abs(a[0] - b[0]) / np.maximum(np.abs(b[0]), 1e-12)
        return {"max_rel_diff": float(rel.max()),
                "mll_max_abs_diff": float(np.abs(a[1] - b[1]).max()),
                "mean_max_diff_in_label_sd": float(np.abs(a[2] - b[2]).max() / np.std(y[test]))}

    ref = fitted(models)
    mean_batch, _ = batched.predict(X[test])
    got = (np.hstack([batched.lengthscales(), batched.noise()[:, None],
                      batched.model.mean_module.constant.detach().cpu().numpy().reshape(k, 1)]),
           batched.log_likelihood(), mean_batch)
    diff, floor = differences(got, ref), differences(fitted(permuted), ref)
    return {
        "batched_fit_speedup": t_loop / t_batch,
        "loop_fit_s": t_loop, "batched_fit_s": t_batch,
        **{f"batched_{key}": value for key, value in diff.items()},
        **{f"loop_rounding_{key}": value for key, value in floor.items()},
        "batched_mll_loop": ref[1].tolist(),
        "loop_iterations": loop_nit, "batched_iterations": batched.fit_iterations.tolist(),
        "loop_converged": int(np.sum(loop_ok)),
        "batched_converged": int(batched.fit_converged.sum()),
        "batched_options": options,
        "batched_sizes": {"k": k, "n": n, "d": X.shape[1], "n_test": int(len(test))},
        "batched_data": note,
    }


def _rmse(model: Any, X: np.ndarray, y: np.ndarray) -> float:
    """RMSE of ``model``'s posterior mean on ``X`` ``(m, d)`` against ``y`` ``(m,)``."""
    return float(np.sqrt(np.mean((model.predict(X)[0] - y) ** 2)))


def bench_sparse(n_big: int = 50000, n_exact: int = 2000, n_train: int = 10000,
                 n_test: int = 3000, device: str = "auto", draws: int = 1) -> dict[str, Any]:
    """The sparse GP: fit time at ``n_big`` labels; held-out QM9 RMSE against the exact GP.

    One draw splits the molecules at random into ``n_test`` held-out ones and the rest,
    fits the sparse GP on the first ``n_train`` of the rest and the exact GP on the first
    ``n_exact``; draw ``k`` uses the split seeded ``4 + k`` and the sparse GP's seed ``k``
    (draw 0 is the single draw of earlier versions). One draw does not settle the
    comparison, since the exact GP's RMSE alone varies widely between training sets
    (figures: ``docs/benchmarks/surrogate_speed.md``), so the ratio is that of the mean
    RMSEs over the draws.

    Args:
        n_big: Labels of the timed fit.
        n_exact: Labels of the exact GP in the accuracy comparison (the largest it fits in
            reasonable time here).
        n_train: Labels of the sparse GP in the accuracy comparison.
        n_test: Held-out molecules.
        device: Surrogate device.
        draws: Random splits the accuracy comparison is repeated on.
    """
    from bodisc.surrogates import build_surrogate

    X, y, note = qm9_table()
    r_sparse: list[float] = []
    r_exact: list[float] = []
    t_sparse_acc: list[float] = []
    t_exact: list[float] = []
    n_test = min(n_test, len(y) // 4)
    for k in range(draws):
        order = np.random.default_rng(4 + k).permutation(len(y))
        test, pool = order[:n_test], order[n_test:]
        n_train = min(n_train, len(pool))
        t0 = time.perf_counter()
        sparse = build_surrogate("sparse", device=device, seed=k).fit(X[pool[:n_train]],
                                                                      y[pool[:n_train]])
        t_sparse_acc.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        exact = build_surrogate("gp", device=device).fit(X[pool[:n_exact]], y[pool[:n_exact]])
        t_exact.append(time.perf_counter() - t0)
        r_sparse.append(_rmse(sparse, X[test], y[test]))
        r_exact.append(_rmse(exact, X[test], y[test]))
    Xb, yb, note_big = qm9_table(min_rows=n_big)
    t0 = time.perf_counter()
    build_surrogate("sparse", device=device).fit(Xb[:n_big], yb[:n_big])
    t_big = time.perf_counter() - t0
    return {
        "sparse_fit_s": t_big, "sparse_fit_labels": n_big,
        "sparse_rmse": float(np.mean(r_sparse)), "exact_rmse": float(np.mean(r_exact)),
        "sparse_rmse_ratio": float(np.mean(r_sparse) / np.mean(r_exact)),
        "sparse_rmse_draws": r_sparse, "exact_rmse_draws": r_exact,
        "sparse_train_fit_s": float(np.mean(t_sparse_acc)),
        "exact_fit_s": float(np.mean(t_exact)),
        "sparse_sizes": {"n_train": n_train, "n_exact": n_exact, "n_test": int(n_test),
                         "draws": draws},
        "sparse_data": note, "sparse_big_data": note_big,
    }


def bench_nehvi(n: int = 1000, candidates: int = 5000, q: int = 50,
                device: str = "auto") -> dict[str, Any]:
    """One ``qlognehvi`` batch of ``q`` through bodisc's path and botorch's plain path.

    Args:
        n: Labelled molecules (dipole and gap, maximised).
        candidates: Candidates the batch is chosen from (short-listed to 512 first).
        q: Batch size.
        device: Surrogate device.
    """
    import bodisc.acquisition.multiobjective as mo
    from bodisc.acquisition import AcquisitionContext, select
    from bodisc.pareto import reference_point
    from bodisc.surrogates.gp import GPSurrogate

    X, dipole, note = qm9_table("dipole_D")
    _, gap, _ = qm9_table("gap_eV")
    if note.startswith("synthetic"):  # a second, different label (timing only)
        gap = -_synthetic(len(X), X.shape[1], seed=1)[1]
    rng = np.random.default_rng(7)
    order = rng.permutation(len(dipole))
    lab, cand = order[:n], order[n : n + candidates]
    Y = np.column_stack([dipole[lab], gap[lab]])
    models = tuple(GPSurrogate("matern52", device).fit(X[lab], Y[:, j]) for j in range(2))

    def batch() -> tuple[Any, float]:
        ctx = AcquisitionContext(X[cand], q, 0.0, np.random.default_rng(3), models[0],
                                 models=models, Y_train=Y, ref_point=reference_point(Y))
        t0 = time.perf_counter()
        sel = select("qlognehvi", ctx)
        return sel, time.perf_counter() - t0

    def variant(fast: bool, lazy: bool) -> tuple[Any, float]:
        saved = mo.FAST_POSTERIOR, mo.LAZY_GREEDY
        mo.FAST_POSTERIOR, mo.LAZY_GREEDY = fast, lazy
        try:
            return batch()
        finally:
            mo.FAST_POSTERIOR, mo.LAZY_GREEDY = saved

    ours, t_ours = variant(True, True)
    exact, t_exact = variant(True, False)
    plain, t_plain = variant(False, False)
    same = ours.index == plain.index
    leading = int(np.argmin(same)) if not same.all() else len(same)
    return {"nehvi_speedup": t_plain / t_ours, "nehvi_s": t_ours,
            "nehvi_cached_greedy_s": t_exact, "nehvi_plain_s": t_plain,
            "nehvi_cached_posterior_speedup": t_plain / t_exact,
            "nehvi_cached_same_batch": bool(np.array_equal(exact.index, plain.index)),
            "nehvi_cached_max_score_diff": float(np.max(np.abs(exact.score - plain.score))),
            "nehvi_lazy_leading_picks_same": leading,
            "nehvi_lazy_molecules_shared": len(set(ours.index.tolist())
                                               & set(plain.index.tolist())),
            "nehvi_sizes": {"n": n, "candidates": len(cand), "q": q, "d": X.shape[1]},
            "nehvi_data": note}


def bench_surrogate(parts: tuple[str, ...] = PARTS, *, n: int = 1000, d: int = 22,
                    candidates: int = 20000, mem_candidates: int = 1_000_000,
                    warm_n: int = 1000, batch_k: int = 8, batch_n: int = 200,
                    sparse_n: int = 50000, exact_n: int = 2000, sparse_draws: int = 1,
                    device: str = "auto", baseline_max: int | None = None,
                    progress: Callable[[str, dict[str, Any]], None] | None = None
                    ) -> dict[str, Any]:
    """Run the chosen parts; one flat dict of figures (see the module docstring).

    Returns:
        Keys ``scoring_speedup``, ``candidates_per_s``, ``peak_mem_gb_1m``,
        ``warm_refit_ratio``, ``batched_fit_speedup``, ``device`` and the details of each
        part; a part not run leaves its keys at ``None``.
    """
    import torch

    from bodisc.surrogates.gp import resolve_device

    dev = resolve_device(device)
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else
        f"cpu ({torch.get_num_threads()} threads)",
        "scoring_speedup": None, "candidates_per_s": None, "peak_mem_gb_1m": None,
        "warm_refit_ratio": None, "batched_fit_speedup": None, "nehvi_speedup": None,
        "load_average_start": load_average(),
    }
    runs: dict[str, Callable[[], dict[str, Any]]] = {
        "scoring": lambda: bench_scoring(n, d, candidates, device, baseline_max),
        "memory": lambda: bench_memory(n, d, mem_candidates, device),
        "warm": lambda: bench_warm(warm_n, 10, device),
        "batched": lambda: bench_batched(batch_k, batch_n, device),
        "sparse": lambda: bench_sparse(sparse_n, exact_n, device=device, draws=sparse_draws),
        "nehvi": lambda: bench_nehvi(warm_n, candidates=5000, device=device),
    }
    for part in parts:
        out = runs[part]()
        out[f"{part}_load_average"] = load_average()
        result.update(out)
        if progress:
            progress(part, out)
    result["load_average_end"] = load_average()
    return result


# -- refit trace: ``bodisc bench surrogate --refit-trace`` ------------------------------

#: Per-label loss gaps at which a trace reports how many evaluations a fit needed.
TRACE_GAPS: tuple[float, ...] = (1e-2, 1e-3, 1e-4)


@contextmanager
def traced_fits() -> Iterator[list[list[tuple[float, float, float]]]]:
    """Record every likelihood evaluation of the GP fits run inside the block.

    botorch's ``fit_gpytorch_mll_scipy`` (which :meth:`GPSurrogate.fit` calls) is wrapped
    so that it gets an explicit closure: botorch's own default for a single-output model
    (``get_loss_closure_with_grads`` over the parameters that require gradients), which
    records each value it returns. The optimisation is therefore the very one a campaign
    runs, evaluation for evaluation.

    Yields:
        A list that gets one trace per fit, each a list of ``(loss, gradient 2-norm,
        seconds since the fit started)`` per evaluation; the loss is botorch's, the
        negative marginal log likelihood per label (priors included).
    """
    import botorch.optim.fit as fit_module
    import torch
    from botorch.optim.closures import get_loss_closure_with_grads

    original = fit_module.fit_gpytorch_mll_scipy
    traces: list[list[tuple[float, float, float]]] = []

    def wrapped(mll: Any, *args: Any, **kwargs: Any) -> Any:
        params = {k: p for k, p in mll.named_parameters() if p.requires_grad}
        inner = get_loss_closure_with_grads(mll, parameters=params)
        trace: list[tuple[float, float, float]] = []
        traces.append(trace)
        t0 = time.perf_counter()

        def closure() -> Any:
            loss, grads = inner()
            norm = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads if g is not None))
            trace.append((float(loss.detach()), float(norm), time.perf_counter() - t0))
            return loss, grads

        return original(mll, *args, closure=closure, **kwargs)

    fit_module.fit_gpytorch_mll_scipy = wrapped
    try:
        yield traces
    finally:
        fit_module.fit_gpytorch_mll_scipy = original


def _neg_mll(gp: Any) -> float:
    """The fit's loss (negative MLL per label, priors included) at ``gp``'s hyperparameters."""
    import gpytorch
    import torch
    from gpytorch.mlls import ExactMarginalLogLikelihood

    from bodisc.surrogates.gp import EXACT_MAX

    model = gp.model
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    mll.train()
    try:
        with torch.no_grad(), gpytorch.settings.max_cholesky_size(EXACT_MAX):
            out = model(*model.train_inputs)
            return -float(mll(out, model.train_targets))
    finally:
        mll.eval()


def _hypers(gp: Any) -> dict[str, Any]:
    """Lengthscales, noise, output scale and constant mean of a fitted :class:`GPSurrogate`."""
    m = gp.model
    scale = getattr(m.covar_module, "outputscale", None)
    return {"lengthscale": m.covar_module.lengthscale.detach().cpu().numpy().ravel().tolist(),
            "noise": float(m.likelihood.noise.detach().cpu().reshape(())),
            "outputscale": 1.0 if scale is None else float(scale.detach().cpu().reshape(())),
            "constant": float(m.mean_module.constant.detach().cpu().reshape(()))}


def _trace_summary(trace: list[tuple[float, float, float]], final: float | None = None
                   ) -> dict[str, Any]:
    """Evaluations, seconds, last loss and gradient norm of one traced fit.

    Args:
        trace: ``(loss, gradient norm, seconds)`` per evaluation.
        final: Loss the gaps are measured from (default: the trace's lowest).
    """
    loss = np.array([t[0] for t in trace])
    best = float(loss.min()) if final is None else final
    reach = {}
    for gap in TRACE_GAPS:
        hit = np.flatnonzero(loss - best <= gap)
        reach[f"{gap:g}"] = int(hit[0]) + 1 if hit.size else None
    return {"evaluations": len(trace), "seconds": trace[-1][2] if trace else 0.0,
            "first_loss": float(loss[0]), "last_loss": float(loss[-1]),
            "min_loss": float(loss.min()), "last_grad_norm": trace[-1][1],
            "evaluations_to_gap": reach}


def _compare_predictions(a: Any, b: Any, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """How far ``a``'s posterior on ``X`` ``(m, d)`` is from ``b``'s.

    Returns:
        ``max_mean_diff_over_label_sd`` (``max |mean_a - mean_b| / sd(y)``),
        ``max_mean_diff_over_post_sd`` (the same over ``b``'s posterior sd per point) and
        ``max_abs_log_sd_ratio``.
    """
    ma, sa = a.predict(X)
    mb, sb = b.predict(X)
    return {"max_mean_diff_over_label_sd": float(np.max(np.abs(ma - mb)) / np.std(y)),
            "max_mean_diff_over_post_sd": float(np.max(np.abs(ma - mb) / sb)),
            "max_abs_log_sd_ratio": float(np.max(np.abs(np.log(sa / sb))))}


def _fit(traces: list[Any], X: np.ndarray, y: np.ndarray, device: str, **kwargs: Any
         ) -> tuple[Any, dict[str, Any]]:
    """One :meth:`GPSurrogate.fit` under :func:`traced_fits`: the model and its record."""
    from bodisc.surrogates.gp import GPSurrogate

    before = len(traces)
    t0 = time.perf_counter()
    gp = GPSurrogate(device=device).fit(X, y, **kwargs)
    seconds = time.perf_counter() - t0
    trace = traces[before] if len(traces) > before else []
    record: dict[str, Any] = {"n": len(y), "seconds": seconds,
                              "iterations": gp.fit_evaluations, "loss": _neg_mll(gp),
                              "hyper": _hypers(gp)}
    if trace:
        record.update(_trace_summary(trace))
        record["trace"] = [[round(v, 10) for v in t] for t in trace]
    else:
        record["evaluations"] = 0
    return gp, record


def bench_refit_split(X: np.ndarray, y: np.ndarray, seed: int, n: int = 1000, add: int = 10,
                      n_test: int = 5000, device: str = "auto",
                      floor: bool = True) -> dict[str, Any]:
    """Cold fit, warm refit and conditioning only on ``n + add`` labels of one split.

    The first fit is on ``n`` labels; the cold fit, the warm refit (from the first fit's
    hyperparameters) and conditioning only (the first fit's hyperparameters as they are)
    on the ``n + add``; with ``floor`` also a cold fit on the same rows in another order
    (the same problem, other rounding: how far a cold fit is from itself).

    Args:
        X: Descriptors ``(N, d)``.
        y: Labels ``(N,)``.
        seed: Seed of the split (1: the rows of ``bench_warm``).
        n: Labels of the first fit.
        add: Labels added before the refit.
        n_test: Held-out rows the predictions are compared on.
        device: Surrogate device.
        floor: Also fit the permuted rows cold.

    Returns:
        Per fit: seconds, L-BFGS-B iterations, likelihood evaluations, the loss at its end
        point, hyperparameters and trace; predictions compared with the cold fit's.
    """
    order = np.random.default_rng(seed).permutation(len(y))
    tr, test = order[: n + add], order[n + add : n + add + n_test]
    Xt, yt = X[tr], y[tr]
    fits: dict[str, Any] = {}
    with traced_fits() as traces:
        first, fits["first"] = _fit(traces, Xt[:n], yt[:n], device)
        state = first.hyper_state()
        cold, fits["cold"] = _fit(traces, Xt, yt, device)
        warm, fits["warm"] = _fit(traces, Xt, yt, device, init=state)
        cond, fits["condition_only"] = _fit(traces, Xt, yt, device, init=state, optimise=False)
        models = {"first": first, "cold": cold, "warm": warm, "condition_only": cond}
        if floor:
            perm = np.random.default_rng(seed + 1000).permutation(len(yt))
            models["cold_permuted"], fits["cold_permuted"] = _fit(traces, Xt[perm], yt[perm],
                                                                  device)
    Xs, ys = X[test], y[test]
    for name, gp in models.items():
        fits[name]["rmse"] = _rmse(gp, Xs, ys)
        if name != "cold":
            fits[name]["vs_cold"] = _compare_predictions(gp, cold, Xs, ys)
            ls, lc = (np.array(fits[k]["hyper"]["lengthscale"]) for k in (name, "cold"))
            fits[name]["vs_cold"]["max_abs_log_lengthscale_ratio"] = float(
                np.max(np.abs(np.log(ls / lc))))
    return {"seed": seed, "n": n, "add": add, "n_test": int(len(test)),
            "warm_cold_seconds_ratio": fits["warm"]["seconds"] / fits["cold"]["seconds"],
            "warm_cold_evaluations_ratio": (fits["warm"]["evaluations"]
                                            / max(fits["cold"]["evaluations"], 1)),
            "fits": fits}


def bench_refit_schedule(X: np.ndarray, y: np.ndarray, sizes: tuple[int, ...] = (100, 300, 800),
                         growths: tuple[float, ...] = (1.1, 1.25, 1.5, 2.0), seed: int = 1,
                         n_test: int = 5000, cold_max: int = 1250,
                         device: str = "auto") -> list[dict[str, Any]]:
    """Conditioning only against re-optimising, after the labels grew by a factor.

    For each start size ``n0`` the hyperparameters are fitted on ``n0`` labels; for each
    growth ``g`` the model on the first ``round(g * n0)`` labels is (a) conditioned with
    those hyperparameters (what ``refit_growth = g`` does just before its next
    re-optimisation: the worst case of the schedule), (b) re-optimised from them (a warm
    refit: ``refit_growth = 1``) and, up to ``cold_max`` labels, (c) fitted cold.

    Returns:
        One record per ``(n0, g)``: held-out RMSEs, the loss per label at each end point,
        warm evaluations and the predictions of (a) and (c) against (b).
    """
    order = np.random.default_rng(seed).permutation(len(y))
    test = order[-n_test:]
    Xs, ys = X[test], y[test]
    rows: list[dict[str, Any]] = []
    with traced_fits() as traces:
        for n0 in sizes:
            first, rec0 = _fit(traces, X[order[:n0]], y[order[:n0]], device)
            state = first.hyper_state()
            for g in growths:
                n1 = int(round(g * n0))
                Xt, yt = X[order[:n1]], y[order[:n1]]
                cond, rc = _fit(traces, Xt, yt, device, init=state, optimise=False)
                warm, rw = _fit(traces, Xt, yt, device, init=state)
                row: dict[str, Any] = {
                    "n0": n0, "growth": g, "n1": n1,
                    "first_evaluations": rec0["evaluations"],
                    "warm_evaluations": rw["evaluations"], "warm_seconds": rw["seconds"],
                    "condition_seconds": rc["seconds"],
                    "loss_condition": rc["loss"], "loss_warm": rw["loss"],
                    "rmse_condition": _rmse(cond, Xs, ys), "rmse_warm": _rmse(warm, Xs, ys),
                    "condition_vs_warm": _compare_predictions(cond, warm, Xs, ys),
                }
                if n1 <= cold_max:
                    cold, rk = _fit(traces, Xt, yt, device)
                    row.update({"cold_evaluations": rk["evaluations"],
                                "cold_seconds": rk["seconds"], "loss_cold": rk["loss"],
                                "rmse_cold": _rmse(cold, Xs, ys),
                                "cold_vs_warm": _compare_predictions(cold, warm, Xs, ys)})
                rows.append(row)
    return rows


def bench_refit(seeds: tuple[int, ...] = (1, 2, 3), n: int = 1000, add: int = 10,
                n_test: int = 5000, schedule: bool = True, synthetic: bool = True,
                device: str = "auto", threads: int | None = 1,
                progress: Callable[[str, dict[str, Any]], None] | None = None
                ) -> dict[str, Any]:
    """Why a warm refit costs what it costs: traced fits on real QM9 rows.

    Parts: ``splits`` (:func:`bench_refit_split` per seed), ``schedule``
    (:func:`bench_refit_schedule`) and ``synthetic``: the same split as ``bench_warm``
    on the synthetic rows :func:`qm9_table` falls back to when the descriptor cache holds
    fewer than 200 molecules (for comparison: where ``bench_warm``'s figures come from
    when its data note says ``synthetic``).

    Args:
        seeds: Splits of the real rows.
        n: Labels of the first fit.
        add: Labels added before the refit.
        n_test: Held-out rows.
        schedule: Run the ``refit_growth`` part.
        synthetic: Run the synthetic-fallback part.
        device: Surrogate device.
        threads: Torch threads for the whole run (fits below ``SMALL_N`` labels use one
            anyway); ``None`` leaves them.
        progress: Called with each part's name and result.

    Raises:
        BodiscError: Where the shipped QM9 descriptors are not found (no silent fallback
            to synthetic rows here).
    """
    from threadpoolctl import threadpool_limits

    from bodisc.errors import BodiscError
    from bodisc.surrogates.gp import torch_threads

    X, y, note = qm9_table()
    if note.startswith("synthetic"):
        raise BodiscError(f"refit trace: needs the real QM9 descriptors; got {note}")
    result: dict[str, Any] = {"data": note, "load_average_start": load_average(),
                              "threads": threads}
    with torch_threads(threads), threadpool_limits(threads):
        splits = []
        for seed in seeds:
            out = bench_refit_split(X, y, seed, n, add, n_test, device)
            splits.append(out)
            if progress:
                progress(f"split {seed}", out)
        result["splits"] = splits
        if schedule:
            result["schedule"] = bench_refit_schedule(X, y, n_test=n_test, device=device)
            if progress:
                progress("schedule", {"rows": result["schedule"]})
        if synthetic:
            Xs, ys = _synthetic(2000, X.shape[1])
            out = bench_refit_split(Xs, ys, 1, n, add, n_test=len(ys) - n - add,
                                    device=device, floor=False)
            out["data"] = "synthetic (qm9_table's fallback: _synthetic(2000, 20))"
            result["synthetic"] = out
            if progress:
                progress("synthetic", out)
    result["load_average_end"] = load_average()
    return result
