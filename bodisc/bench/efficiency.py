"""Sample efficiency on QM9 replay: how soon each method finds the extreme molecules.

The pool is QM9 (:mod:`bodisc.data.qm9`): QMex descriptors from xTB on QM9's own
geometries (the disk cache), labels QM9's B3LYP values. Each run labels the same
``start`` random molecules of its seed first (the same for every method), then ``batch``
molecules per iteration chosen by the method, up to ``calls`` labels.

Targets (:data:`TARGETS`): dipole (maximise), HOMO-LUMO gap (minimise) and HOMO-LUMO
gap (maximise); each has its cheap xTB analogue (the xTB dipole ``mu``; ``lumo - homo``).

Methods (:data:`METHODS`):

* ``random``: uniform draws.
* ``cheap``: no model, molecules in the order of the target's xTB analogue.
* ``rf``: greedy random forest on 2048-bit Morgan fingerprints (radius 2), the MolPAL
  recipe (Graff et al. 2021: 100 trees, depth 8, the largest predicted means).
* ``tanimoto_ucb``: exact GP with the Tanimoto kernel on Morgan count fingerprints
  (radius 2, 2048) and UCB (the PMO / GAUCHE recipe; :mod:`bodisc.surrogates.tanimoto`),
  batches by bodisc's kriging believer.
* ``gp_ucb``, ``gp_logei``, ``gp_thompson``: bodisc's GP on the QMex descriptors with a
  linear prior mean (``[surrogate] mean = "linear"``): beyond the labels its prediction
  follows the descriptors' linear trend, so from the first batch it ranks along the
  cheap proxy, and the kernel learns the rest.
* ``gp_proxy_greedy``: bodisc's GP with the proxy prior mean, linear in the target's own
  xTB analogue (``[surrogate] mean = "proxy"``, ``proxy = "mu"`` or ``"lumo - homo"``),
  and the largest posterior means (``[acquisition] name = "greedy"``): where the labels
  say little it ranks as the analogue does; without exploration it misses some of the
  extreme molecules that lie where the model is unsure.
* ``gp_proxy_staged``: the same GP and proxy mean in three stages (:class:`_Staged`):
  (1) two batches in the analogue's order after the random start, because the kernel's
  correction learnt on typical molecules does not carry far out along the analogue;
  (2) greedy batches up to half the budget, while the analogue's extreme is not used
  up; (3) UCB (``beta = 2``) for the rest, when the remaining extreme molecules lie
  where the model is unsure.
* ``xgp_ucb``: bodisc's extrapolation-aware GP (with the ILR categories), UCB.
* ``gp_ucb_no_analogue``: ``gp_ucb`` without the descriptors that make up the target's
  own analogue and without its twins, the descriptors that are by themselves another
  cheap analogue of it (``mu``; ``homo``, ``lumo`` and the vertical ``Eiv``, ``Eav``):
  what the model learns beyond the proxy.

UCB is bodisc's recommendation for finding many extreme molecules: LogEI improves on
the single best label, so once an outlier is found it spends its batches on the few
molecules that could beat it. Figures: ``docs/benchmarks/qm9_replay.md``.

Descriptor values that are NaN for a molecule whose geometry no molecular graph fits
(``min(mbo)``, ``max(mbo)``, ``dEacid``, ``dEbase``) are replaced by the pool's median
of that descriptor, so the pool keeps every molecule whose xTB calculation succeeded;
molecules whose calculation failed as a whole are left out (the note says how many).

Hyperparameters of the GP methods are re-optimised when the labels have grown by a
quarter since the last optimisation, from the last optimum, and conditioned on the new
labels in between (``[surrogate] refit_growth = 1.25``), as in the timed replay.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bodisc.bench.replay import replay_metrics, top_threshold
from bodisc.plotting import pyplot, save

#: Benchmark target -> (QM9 target of :data:`bodisc.data.qm9.QM9_TARGETS`, +1 maximise /
#: -1 minimise).
TARGETS: dict[str, tuple[str, int]] = {
    "dipole": ("dipole", 1),
    "gap_min": ("gap", -1),
    "gap_max": ("gap", 1),
}

#: Methods in the order tables list them.
METHODS: tuple[str, ...] = (
    "random", "cheap", "rf", "tanimoto_ucb", "gp_ucb", "gp_logei", "gp_thompson",
    "gp_proxy_greedy", "gp_proxy_staged", "xgp_ucb", "gp_ucb_no_analogue",
    "causal_gp_ucb", "intervention",
)

#: Methods whose start is not the seed's random molecules but a causal design of as many
#: (:func:`bodisc.causal.design.causal_design`, the target's analogue as the sink).
DESIGNED: dict[str, str] = {"causal_gp_ucb": "gp_ucb"}

#: Re-optimise GP hyperparameters once the labels grew by this factor.
REFIT_GROWTH = 1.25
#: ``gp_proxy_staged``: batches ranked by the analogue after the random start
#: (``[acquisition] warmup_batches``) and the share of the budget with greedy batches
#: (``greedy_until``).
STAGED_WARMUP_BATCHES = 2
STAGED_GREEDY_UNTIL = 0.5

#: Torch and BLAS threads of every replay run, one by one or side by side. A Cholesky
#: factor's last bits depend on the MKL thread count, and past
#: :data:`~bodisc.surrogates.gp.SMALL_N` labels fits leave the thread count as it is, so
#: fixing it here makes a run's molecules independent of ``--parallel`` and the cores.
REPLAY_THREADS = 1

#: Keys of every record (``None`` where a figure does not apply).
RECORD_KEYS = ("target", "method", "seed", "top1pct_recall_500", "top1pct_recall_1000",
               "top1pct_recall_2000", "calls_to_max", "auc_top10", "best")


@dataclass
class ReplayPool:
    """QM9 molecules with descriptors, labels and analogues.

    Attributes:
        qm9_index: QM9 ``Index`` of each molecule, shape ``(N,)``.
        smiles: SMILES, length N.
        X: Fast-tier QMex descriptors (NaN graph descriptors imputed), shape ``(N, d)``.
        names: Descriptor names, length d.
        labels: QM9 target name -> B3LYP label, shape ``(N,)``.
        analogues: QM9 target name -> xTB analogue, shape ``(N,)``.
        note: Where the pool came from.
    """

    qm9_index: np.ndarray
    smiles: list[str]
    X: np.ndarray
    names: tuple[str, ...]
    labels: dict[str, np.ndarray]
    analogues: dict[str, np.ndarray]
    note: str
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.qm9_index)

    def features(self, kind: str) -> Any:
        """A featurisation of the pool, computed once.

        Args:
            kind: ``counts`` (Morgan counts, 2048), ``bits`` (Morgan bits, 2048) or
                ``categorised`` (descriptors and the ILR categories).
        """
        if kind not in self._cache:
            if kind == "counts":
                from bodisc.surrogates.tanimoto import count_fingerprints

                self._cache[kind] = count_fingerprints(self.smiles)
            elif kind == "bits":
                from bodisc.surrogates.tanimoto import morgan_bits

                self._cache[kind] = morgan_bits(self.smiles)
            elif kind == "categorised":
                from bodisc.surrogates import with_categories

                self._cache[kind] = with_categories(self.X, self.smiles)
            else:
                raise KeyError(kind)
        return self._cache[kind]


def load_pool(indices: Sequence[int] | np.ndarray | None = None, size: int | None = None,
              seed: int = 0, workers: int = 2, cache_dir: Path | str | None = None) -> ReplayPool:
    """A replay pool from the QM9 descriptor cache.

    Args:
        indices: QM9 indices to use (computed if not cached); ``None``: every molecule
            already in the cache.
        size: Keep a seeded random subset of this many (``None``: all).
        seed: Seed of the subset.
        workers: Worker processes for molecules not yet cached.
        cache_dir: Root of the descriptor cache (``None``: the default).
    """
    from bodisc.data.qm9 import QM9_TARGETS, descriptor_cache, load_qm9, qm9_descriptors
    from bodisc.descriptors import TIERS

    names = TIERS["fast"]
    if indices is None:
        found = descriptor_cache("fast", cache_dir).read()
        index = np.array(sorted(i for i, (_, failure, _) in found.items() if not failure),
                         dtype=np.int64)
        n_failed = sum(1 for _, failure, _ in found.values() if failure)
        values = np.array([found[i][0] for i in index], dtype=float).reshape(-1, len(names))
        source = "QM9 descriptor cache"
    else:
        frame = qm9_descriptors(indices, "fast", workers=workers, cache_dir=cache_dir)
        failed = set(frame.attrs["failures"])
        frame = frame.loc[[i for i in frame.index if i not in failed]]
        n_failed = len(failed)
        index, values = frame.index.to_numpy(dtype=np.int64), frame.to_numpy(dtype=float)
        source = "given QM9 indices"
    if size is not None and size < len(index):
        keep = np.sort(np.random.default_rng(seed).choice(len(index), size, replace=False))
        index, values = index[keep], values[keep]
    n_imputed = int(np.sum(~np.all(np.isfinite(values), axis=1)))
    median = np.nanmedian(values, axis=0)
    values = np.where(np.isfinite(values), values, median[None, :])
    table = load_qm9(["smiles", "dipole_D", "gap_eV"]).loc[index]
    import pandas as pd

    frame = pd.DataFrame(values, columns=list(names))
    analogues = {name: QM9_TARGETS[name].analogue(frame).to_numpy(dtype=float)
                 for name in ("dipole", "gap")}
    labels = {"dipole": table["dipole_D"].to_numpy(dtype=float),
              "gap": table["gap_eV"].to_numpy(dtype=float)}
    note = (f"{len(index)} QM9 molecules ({source}); {n_failed} left out (xTB failed), "
            f"{n_imputed} with graph descriptors imputed by the median")
    return ReplayPool(index, table["smiles"].astype(str).tolist(), values, names, labels,
                      analogues, note)


# --------------------------------------------------------------------------- methods

Chooser = Callable[[np.ndarray, np.ndarray, np.ndarray, int, np.random.Generator], np.ndarray]


def _method_key(method: str) -> int:
    return zlib.crc32(method.encode())


def make_chooser(method: str, pool: ReplayPool, target: str, *, calls: int = 2000,
                 start: int = 100, batch: int = 50) -> Chooser:
    """The batch rule of a method.

    A chooser takes ``(labelled, labels, free, q, rng)``: indices of the labelled
    molecules ``(n,)``, their labels in maximisation form ``(n,)``, the unlabelled
    indices ``(m,)``, the batch size and the run's generator; it returns ``q`` indices
    into the pool, all in ``free``. ``calls``, ``start`` and ``batch`` are the run's
    budget, random start and batch size (``gp_proxy_staged`` places its stages by them).

    Raises:
        KeyError: For an unknown method (the message lists the known ones).
    """
    qm9_target, sign = TARGETS[target]
    if method == "random":
        return lambda labelled, labels, free, q, rng: rng.choice(free, q, replace=False)
    def analogue_ranking() -> _Ranking:
        return _Ranking(np.argsort(-sign * pool.analogues[qm9_target], kind="stable"))

    if method == "cheap":
        return analogue_ranking()
    if method == "rf":
        return _RandomForest(pool.features("bits"))
    if method == "tanimoto_ucb":
        return _Tanimoto(pool.features("counts"))
    if method in ("gp_logei", "gp_ucb", "gp_thompson"):
        return _GP(pool.X, method.split("_")[1], "gp", mean="linear")
    if method in ("gp_proxy_greedy", "gp_proxy_staged"):
        from bodisc.data.qm9 import QM9_TARGETS

        names = list(pool.names)
        proxy = {"proxy_column": {names.index(name): factor for name, factor
                                  in QM9_TARGETS[qm9_target].analogue_terms},
                 "proxy_sign": float(sign)}
        if method == "gp_proxy_greedy":
            return _GP(pool.X, "greedy", "gp", mean="proxy", **proxy)
        return _Staged(pool.X, analogue_ranking(), start, batch, calls, **proxy)
    if method == "xgp_ucb":
        return _GP(pool.features("categorised"), "ucb", "xgp")
    if method in DESIGNED:  # the design is the start (replay_run); then the method
        return make_chooser(DESIGNED[method], pool, target, calls=calls, start=start,
                            batch=batch)
    if method == "intervention":
        return _Intervention(pool.X, pool.names)
    if method == "gp_ucb_no_analogue":
        from bodisc.data.qm9 import QM9_TARGETS

        drop = set(QM9_TARGETS[qm9_target].proxy_descriptors)
        keep = [i for i, n in enumerate(pool.names) if n not in drop]
        return _GP(pool.X[:, keep], "ucb", "gp", mean="linear")
    raise KeyError(f"unknown method {method!r}; choose from: {', '.join(METHODS)}")


class _Ranking:
    """Free molecules in a fixed order (the cheap analogue's ranking, best first)."""

    def __init__(self, ranking: np.ndarray) -> None:
        self.ranking = ranking

    def __call__(self, labelled: np.ndarray, labels: np.ndarray, free: np.ndarray, q: int,
                 rng: np.random.Generator) -> np.ndarray:
        is_free = np.zeros(len(self.ranking), dtype=bool)
        is_free[free] = True
        return self.ranking[is_free[self.ranking]][:q]


class _RandomForest:
    """MolPAL's greedy random forest: 100 trees, depth 8, largest predicted means."""

    def __init__(self, bits: Any) -> None:
        self.bits = bits

    def __call__(self, labelled: np.ndarray, labels: np.ndarray, free: np.ndarray, q: int,
                 rng: np.random.Generator) -> np.ndarray:
        from sklearn.ensemble import RandomForestRegressor

        forest = RandomForestRegressor(n_estimators=100, max_depth=8, min_samples_leaf=1,
                                       n_jobs=2, random_state=int(rng.integers(2**31)))
        forest.fit(self.bits[labelled], labels)
        mean = np.concatenate([forest.predict(self.bits[free[s : s + 20000]])
                               for s in range(0, len(free), 20000)])
        return free[np.argsort(-mean, kind="stable")[:q]]


class _Tanimoto:
    """Tanimoto GP with UCB batches (kriging believer), hyperparameters warm-started."""

    def __init__(self, counts: Any) -> None:
        from bodisc.surrogates.tanimoto import TanimotoGP

        self.counts = counts
        self.gp = TanimotoGP()

    def __call__(self, labelled: np.ndarray, labels: np.ndarray, free: np.ndarray, q: int,
                 rng: np.random.Generator) -> np.ndarray:
        from bodisc.acquisition import AcquisitionContext, select

        self.gp.fit(self.counts[labelled], labels)
        ctx = AcquisitionContext(self.counts[free], q, float(labels.max()), rng, self.gp)
        return free[select("ucb", ctx).index]


class _GP:
    """bodisc's step (:func:`bodisc.loop.step.choose_batch`) on the pool.

    The same fit, refit schedule and selection as a campaign with ``[surrogate]
    warm_start = true``, ``refit_growth = 1.25`` and the strategy's defaults.
    """

    def __init__(self, X: np.ndarray, acquisition: str, kind: str, mean: str = "constant",
                 **options: Any) -> None:
        from bodisc.loop.refit import SurrogateSettings

        self.X, self.acquisition = X, acquisition
        self.settings = SurrogateSettings(
            kind, device="cpu", options={"mean": mean, **options} if kind == "gp" else {},
            warm_start=True, refit_growth=REFIT_GROWTH)
        self.fit: Any = None

    def __call__(self, labelled: np.ndarray, labels: np.ndarray, free: np.ndarray, q: int,
                 rng: np.random.Generator) -> np.ndarray:
        from bodisc.acquisition import DEFAULT_BETA
        from bodisc.loop.step import choose_batch

        batch = choose_batch(self.X[labelled], labels, self.X[free], q, rng,
                             strategy=self.acquisition, surrogate=self.settings,
                             beta=DEFAULT_BETA, previous=self.fit)
        self.fit = batch.fit
        return free[batch.index]


class _Intervention:
    """Causal interventions (:mod:`bodisc.causal.intervention`) through bodisc's step."""

    def __init__(self, X: np.ndarray, names: Sequence[str]) -> None:
        from bodisc.loop.refit import SurrogateSettings

        self.X, self.names = X, tuple(names)
        self.settings = SurrogateSettings("gp", device="cpu")

    def __call__(self, labelled: np.ndarray, labels: np.ndarray, free: np.ndarray, q: int,
                 rng: np.random.Generator) -> np.ndarray:
        from bodisc.acquisition import DEFAULT_BETA
        from bodisc.loop.step import choose_batch

        batch = choose_batch(self.X[labelled], labels, self.X[free], q, rng,
                             strategy="intervention", surrogate=self.settings,
                             beta=DEFAULT_BETA, names=self.names)
        return free[batch.index]


class _Staged(_GP):
    """``gp_proxy_staged``: the stages of :func:`bodisc.acquisition.staged` in the replay.

    The analogue's ranking, then greedy, then UCB batches of the proxy-mean GP.

    Args:
        X: Pool descriptors ``(N, d)``.
        ranking: The analogue's ranking (the ``rank`` batches).
        start, batch, calls: The run's random start, batch size and budget.
        **options: The proxy mean's ``proxy_column`` and ``proxy_sign``.
    """

    def __init__(self, X: np.ndarray, ranking: _Ranking, start: int, batch: int, calls: int,
                 **options: Any) -> None:
        super().__init__(X, "ucb", "gp", mean="proxy", **options)
        self.ranking, self.start, self.batch, self.calls = ranking, start, batch, calls

    def __call__(self, labelled: np.ndarray, labels: np.ndarray, free: np.ndarray, q: int,
                 rng: np.random.Generator) -> np.ndarray:
        from bodisc.acquisition import staged

        iteration = 1 + (len(labelled) - self.start) // self.batch
        self.acquisition = staged("ucb", iteration, len(labelled), self.calls,
                                  STAGED_WARMUP_BATCHES, STAGED_GREEDY_UNTIL)
        if self.acquisition == "rank":
            return self.ranking(labelled, labels, free, q, rng)
        return super().__call__(labelled, labels, free, q, rng)


# --------------------------------------------------------------------------- runs


@contextmanager
def replay_threads() -> Iterator[None]:
    """Run a block on :data:`REPLAY_THREADS` torch and BLAS threads (restored after)."""
    from threadpoolctl import threadpool_limits

    from bodisc.surrogates.gp import torch_threads

    with torch_threads(REPLAY_THREADS), threadpool_limits(REPLAY_THREADS):
        yield


def replay_run(pool: ReplayPool, target: str, method: str, seed: int, *, calls: int = 2000,
               batch: int = 50, start: int = 100,
               checkpoints: tuple[int, ...] = (500, 1000, 2000)) -> dict[str, Any]:
    """One run of one method on one target.

    Returns:
        The :data:`RECORD_KEYS` (``best`` in label units, the others on the
        maximisation form of the target), ``recall_curve`` (top-1 % share after each
        batch, with ``curve_calls``), ``wall_s`` and the sizes.
    """
    qm9_target, sign = TARGETS[target]
    y = sign * pool.labels[qm9_target]
    N = len(y)
    calls = min(calls, N)
    start_idx = np.random.default_rng(seed).choice(N, min(start, calls), replace=False)
    if method in DESIGNED:
        start_idx = designed_start(pool, target, seed, len(start_idx))
    rng = np.random.default_rng([seed, _method_key(method)])
    choose = make_chooser(method, pool, target, calls=calls, start=len(start_idx), batch=batch)
    taken = np.zeros(N, dtype=bool)
    taken[start_idx] = True
    order = [int(i) for i in start_idx]
    with replay_threads():
        t0 = time.perf_counter()
        while len(order) < calls:
            q = min(batch, calls - len(order))
            labelled = np.asarray(order)
            picked = np.asarray(choose(labelled, y[labelled], np.flatnonzero(~taken), q, rng))
            if len(picked) != q or taken[picked].any() or len(set(picked.tolist())) != q:
                raise RuntimeError(f"method {method!r} chose an invalid batch")
            taken[picked] = True
            order.extend(int(i) for i in picked)
        wall = time.perf_counter() - t0
    values = y[np.asarray(order)]
    metrics = replay_metrics(values, y, calls, checkpoints)
    threshold = top_threshold(y)
    n_top = int(np.sum(y >= threshold))
    curve_calls = list(range(len(start_idx), calls + 1, batch))
    if curve_calls[-1] != calls:
        curve_calls.append(calls)
    hits = np.cumsum(values >= threshold)
    record: dict[str, Any] = {"target": target, "method": method, "seed": seed}
    record.update({k: metrics.get(k) for k in RECORD_KEYS[3:]})
    record.update({k: v for k, v in metrics.items() if k.startswith("top1pct_recall_")})
    record["best"] = sign * metrics["best"]
    record.update({
        "recall_curve": [float(hits[c - 1] / n_top) for c in curve_calls],
        "curve_calls": curve_calls, "wall_s": wall, "pool": N, "calls": calls,
        "batch": batch, "start": len(start_idx), "top1pct_size": n_top,
        "pool_best": float(sign * y.max()),
    })
    return record


def designed_start(pool: ReplayPool, target: str, seed: int, size: int) -> np.ndarray:
    """The causal design's ``size`` start molecules of one seed (indices into the pool).

    The graph's sink is the target's cheap xTB analogue (no label is known before the
    start); the clusters and descriptors are :func:`bodisc.causal.design.pool_design`'s
    defaults, as in a campaign with ``[design] kind = "causal"``.
    """
    from bodisc.causal.design import pool_design

    qm9_target, _ = TARGETS[target]
    rng = np.random.default_rng([seed, _method_key("causal_design")])
    return pool_design(pool.X, pool.names, size, rng, sink=pool.analogues[qm9_target])


def run_benchmark(pool: ReplayPool, targets: Sequence[str], methods: Sequence[str],
                  seeds: Sequence[int], *, calls: int = 2000, batch: int = 50,
                  start: int = 100, checkpoints: tuple[int, ...] = (500, 1000, 2000),
                  records_path: Path | None = None,
                  progress: Callable[[dict[str, Any]], None] | None = None,
                  parallel: int = 1, run_missing: bool = True) -> list[dict[str, Any]]:
    """Every (target, method, seed) run; resumable through ``records_path``.

    Finished runs are appended to ``records_path`` (JSON lines) as they end; runs
    already there with the same pool size and budget are not run again. With
    ``parallel > 1`` that many runs go at once, each in its own process (the pool is
    sent to each process once); every run has :data:`REPLAY_THREADS` torch and BLAS
    threads either way, so its molecules do not depend on ``parallel``; the records
    come back in the same order as one by one. With ``run_missing=False``
    nothing runs: the records already in ``records_path`` come back, missing runs left
    out (a report of what is there).

    Raises:
        KeyError: For an unknown target or method (the message lists the known ones).
    """
    for t in targets:
        if t not in TARGETS:
            raise KeyError(f"unknown target {t!r}; choose from: {', '.join(TARGETS)}")
    for m in methods:
        if m not in METHODS:
            raise KeyError(f"unknown method {m!r}; choose from: {', '.join(METHODS)}")
    done: dict[tuple[str, str, int], dict[str, Any]] = {}
    if records_path is not None and records_path.exists():
        for line in records_path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if (r.get("pool"), r.get("calls"), r.get("batch"), r.get("start")) == (
                        len(pool), min(calls, len(pool)), batch, min(start, calls)):
                    done[(r["target"], r["method"], r["seed"])] = r
    keys = [(t, m, s) for t in targets for m in methods for s in seeds]
    todo = [k for k in keys if k not in done]
    if not run_missing:
        return [done[k] for k in keys if k in done]
    settings = {"calls": calls, "batch": batch, "start": start, "checkpoints": checkpoints}

    def finished(record: dict[str, Any]) -> None:
        done[(record["target"], record["method"], record["seed"])] = record
        if records_path is not None:
            with records_path.open("a") as stream:
                stream.write(json.dumps(record) + "\n")
        if progress is not None:
            progress(record)

    if parallel <= 1 or len(todo) <= 1:
        for target, method, seed in todo:
            finished(replay_run(pool, target, method, seed, **settings))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        n_proc = min(parallel, len(todo))
        with ProcessPoolExecutor(n_proc, mp_context=mp.get_context("spawn"),
                                 initializer=_set_worker_pool,
                                 initargs=(pool, os.getpid())) as ex:
            futures = [ex.submit(_worker_run, t, m, s, settings) for t, m, s in todo]
            for future in as_completed(futures):
                finished(future.result())
    return [done[k] for k in keys]


_WORKER_POOL: ReplayPool | None = None


def _set_worker_pool(pool: ReplayPool, parent_pid: int | None = None) -> None:
    """Worker set-up: the pool, and death with the benchmark's process.

    A killed benchmark leaves no run computing on (each is minutes of work); each run
    sets its own threads (:func:`replay_threads`), so runs at once do not oversubscribe
    the cores.
    """
    from bodisc.execution.local import _die_with_parent

    _die_with_parent(parent_pid)
    global _WORKER_POOL
    _WORKER_POOL = pool


def _worker_run(target: str, method: str, seed: int, settings: dict[str, Any]
                ) -> dict[str, Any]:
    assert _WORKER_POOL is not None
    return replay_run(_WORKER_POOL, target, method, seed, **settings)


def summarise(records: Sequence[dict[str, Any]],
              checkpoints: Sequence[int] = (500, 1000, 2000)) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds per (target, method), in table order.

    ``calls_to_max`` is summarised by its median and the number of runs that found the
    pool's best molecule.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["target"], r["method"]), []).append(r)
    rows = []
    for (target, method), rs in groups.items():
        row: dict[str, Any] = {"target": target, "method": method, "seeds": len(rs)}
        for key in (*[f"top1pct_recall_{c}" for c in checkpoints], "auc_top10", "best"):
            vals = [r[key] for r in rs if r.get(key) is not None]
            row[key] = float(np.mean(vals)) if vals else None
            row[f"{key}_sd"] = float(np.std(vals)) if vals else None
        found = [r["calls_to_max"] for r in rs if r.get("calls_to_max") is not None]
        row["found_max"] = len(found)
        row["calls_to_max_median"] = float(np.median(found)) if found else None
        row["vs_cheap_worst"], row["vs_cheap_worst_calls"] = _worst_against_cheap(
            rs, groups.get((target, "cheap"), []))
        row["behind_cheap_per_seed"] = _behind_cheap_per_seed(
            rs, groups.get((target, "cheap"), []))
        rows.append(row)
    order = {(t, m): (i, j) for i, t in enumerate(TARGETS) for j, m in enumerate(METHODS)}
    return sorted(rows, key=lambda r: order.get((r["target"], r["method"]), (99, 99)))


def _worst_against_cheap(runs: Sequence[dict[str, Any]], cheap: Sequence[dict[str, Any]]
                         ) -> tuple[float | None, int | None]:
    """The largest shortfall against cheap ranking along the whole curve, any budget.

    Per seed that both have, the method's top-1 % share minus cheap ranking's after every
    batch; the mean over those seeds at its lowest, and the calls there. Positive: ahead
    of cheap ranking at every budget.

    Returns:
        ``(difference, calls)``, or ``(None, None)`` without a cheap run of the same seed.
    """
    by_seed = {r["seed"]: r for r in cheap}
    diffs = [np.asarray(r["recall_curve"]) - np.asarray(by_seed[r["seed"]]["recall_curve"])
             for r in runs if r["seed"] in by_seed and r["method"] != "cheap"
             and r["curve_calls"] == by_seed[r["seed"]]["curve_calls"]]
    if not diffs:
        return None, None
    mean = np.mean(diffs, axis=0)
    calls = next(r["curve_calls"] for r in runs if r["seed"] in by_seed)
    # the start batch is shared (same molecules), so the comparison begins after it
    i = int(np.argmin(mean[1:])) + 1 if len(mean) > 1 else 0
    return float(mean[i]), int(calls[i])


def _behind_cheap_per_seed(runs: Sequence[dict[str, Any]], cheap: Sequence[dict[str, Any]]
                           ) -> dict[int, int] | None:
    """Per seed, the most top-1 % molecules behind cheap ranking after any batch.

    0: never behind; ``None`` for cheap ranking itself or without its runs.

    The strict form of "never worse than cheap ranking at any budget", which a mean over
    seeds (:func:`_worst_against_cheap`) can hide.
    """
    by_seed = {r["seed"]: r for r in cheap}
    behind = {}
    for r in runs:
        c = by_seed.get(r["seed"])
        if c is None or r["method"] == "cheap" or r["curve_calls"] != c["curve_calls"]:
            continue
        hits = np.rint(np.asarray(r["recall_curve"]) * r["top1pct_size"])
        base = np.rint(np.asarray(c["recall_curve"]) * c["top1pct_size"])
        behind[int(r["seed"])] = int(max(0.0, float(np.max(base - hits))))
    return dict(sorted(behind.items())) or None


def format_table(rows: Sequence[dict[str, Any]], checkpoints: Sequence[int] = (500, 1000, 2000)
                 ) -> str:
    """A Markdown table of :func:`summarise` rows."""

    def cell(row: dict[str, Any], key: str, digits: int = 2) -> str:
        v = row.get(key)
        if v is None:
            return "-"
        sd = row.get(f"{key}_sd")
        return f"{v:.{digits}f} ± {sd:.{digits}f}" if sd is not None else f"{v:.{digits}f}"

    head = ["target", "method", "seeds", *[f"top-1 % @{c}" for c in checkpoints], "calls to best",
            "top-10 AUC", "best", "worst vs cheap (calls)", "most behind cheap, per seed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        found = (f"{row['calls_to_max_median']:.0f} ({row['found_max']}/{row['seeds']})"
                 if row["calls_to_max_median"] is not None else f"- (0/{row['seeds']})")
        worst = ("-" if row.get("vs_cheap_worst") is None
                 else f"{row['vs_cheap_worst']:+.3f} (@{row['vs_cheap_worst_calls']})")
        per_seed = row.get("behind_cheap_per_seed")
        behind = "-" if not per_seed else " ".join(str(v) for v in per_seed.values())
        lines.append("| " + " | ".join([
            row["target"], row["method"], str(row["seeds"]),
            *[cell(row, f"top1pct_recall_{c}") for c in checkpoints], found,
            cell(row, "auc_top10", 3), cell(row, "best", 3), worst, behind]) + " |")
    return "\n".join(lines)


def plot_curves(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """Top-1 % share against calls, mean over seeds, one panel per target (PNG)."""
    plt = pyplot()

    targets = list(dict.fromkeys(r["target"] for r in records))
    fig, axes = plt.subplots(1, len(targets), figsize=(5 * len(targets), 4), squeeze=False)
    for ax, target in zip(axes[0], targets, strict=True):
        methods = list(dict.fromkeys(r["method"] for r in records if r["target"] == target))
        for method in methods:
            rs = [r for r in records if r["target"] == target and r["method"] == method]
            curve = np.mean([r["recall_curve"] for r in rs], axis=0)
            ax.plot(rs[0]["curve_calls"], curve, label=method,
                    lw=2.2 if method.startswith(("gp", "xgp")) else 1.2,
                    ls="--" if method in ("random", "cheap") else "-")
        ax.set_title(f"{target} (pool {rs[0]['pool']})")
        ax.set_xlabel("oracle calls")
        ax.set_ylabel("share of the top 1 % found")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)  # per panel: targets may have different methods
    fig.tight_layout()
    return save(fig, path, dpi=120)
