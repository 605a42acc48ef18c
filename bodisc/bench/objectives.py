"""Several objectives and a constraint on QM9 replay: Pareto recall, hypervolume, feasibility.

The pool and protocol are those of the single-objective replay
(:mod:`bodisc.bench.efficiency`): QM9 molecules with their QMex descriptors, B3LYP labels,
``start`` random molecules per seed shared by every method, then batches of ``batch``
chosen by the method, up to ``calls`` labels. Two tasks (:data:`TASKS`):

* ``dipole_gap_pareto``: maximise the dipole and maximise the HOMO-LUMO gap. The pool's
  "top 1 % by non-dominated sorting" is whole non-dominated layers from the front until
  at least 1 % of the pool (:func:`bodisc.pareto.top_share_by_layers`); figures: the
  share of it found after each checkpoint, the share of the true front (layer 0) found,
  and the hypervolume of the feasible labels found as a fraction of the pool's, with the
  reference point at the pool's median dipole and median gap (a molecule counts only
  where it beats a typical QM9 molecule in both).
* ``dipole_constrained``: maximise the dipole subject to gap >= 6.5 eV. Figures: the
  share found of the feasible pool's top 1 % by dipole, and the share of the calls after
  the first 500 spent on infeasible molecules.

Methods (:data:`METHODS`):

* ``random``: uniform draws.
* ``cheap`` (no model). Pareto task: 50 random Chebyshev weight vectors per batch over the
  xTB analogues ``mu`` and ``lumo - homo``, z-scored over the pool and shifted to start
  at 0 (Chebyshev scalarisation needs non-negative values), each weight taking its best
  free molecule in turn. Constrained task: the molecules whose xTB gap analogue lies in
  the same upper share of the pool as the feasible share of B3LYP gaps, by ``mu``, then
  the rest by ``mu``.
* ``parego``, ``qlognehvi`` (Pareto task), ``gp_ucb``, ``gp_logei`` (constrained task):
  bodisc's step for several outputs (:func:`bodisc.loop.step.choose_multi_batch`), one GP
  per objective and per constrained property on the QMex descriptors with a linear prior
  mean and the single-objective replay's refit schedule (warm starts, hyperparameters
  re-optimised when the labels have grown by a quarter, conditioned in between). The
  hypervolume's reference point of the acquisition is a campaign's default: the start
  labels' worst minus 10 % of their range, fixed for the run (the pool's labels are
  never shown to a method).
* ``gp_ucb_strict``: ``gp_ucb`` with ``[acquisition] feasibility`` at
  :data:`STRICT_FEASIBILITY` (candidates at least that likely feasible first).
* ``qlognehvi_layers``: ``qlognehvi`` with ``[acquisition] pareto_depth`` set to the
  number of non-dominated layers the sought top share spans in the pool (7 on the
  30,000 subset): what a user who wants the first layers, not the front alone, sets.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bodisc.bench.efficiency import ReplayPool, replay_threads
from bodisc.bench.replay import top_threshold
from bodisc.plotting import pyplot, save

#: Task -> its methods, in table order.
METHODS: dict[str, tuple[str, ...]] = {
    "dipole_gap_pareto": ("random", "cheap", "parego", "qlognehvi", "qlognehvi_layers"),
    "dipole_constrained": ("random", "cheap", "gp_ucb", "gp_logei", "gp_ucb_strict"),
}

#: ``gp_ucb_strict``: constrained UCB with ``[acquisition] feasibility`` at this value
#: (``gp_ucb`` keeps the default, 0.5).
STRICT_FEASIBILITY = 0.9
TASKS: tuple[str, ...] = tuple(METHODS)

#: The constrained task's window: B3LYP HOMO-LUMO gap at least this (eV).
GAP_MIN = 6.5

#: Weight vectors per batch of the Pareto task's cheap method.
CHEAP_WEIGHTS = 50

#: Share of the pool the Pareto recall counts (whole non-dominated layers).
TOP_SHARE = 0.01

#: The constrained task's infeasible share counts the calls after this many.
INFEASIBLE_AFTER = 500

#: Checkpoints (oracle calls) of the recall figures.
CHECKPOINTS: tuple[int, ...] = (500, 1000, 2000)


def _key(method: str) -> int:
    return zlib.crc32(method.encode())


Chooser = Callable[[np.ndarray, np.ndarray, int, np.random.Generator], np.ndarray]


class _Cheap:
    """The Pareto task's cheap method: random Chebyshev weights over the analogues."""

    def __init__(self, pool: ReplayPool) -> None:
        A = np.column_stack([pool.analogues["dipole"], pool.analogues["gap"]])
        Z = (A - A.mean(axis=0)) / A.std(axis=0)
        self.Z = Z - Z.min(axis=0)

    def __call__(self, labelled: np.ndarray, free: np.ndarray, q: int,
                 rng: np.random.Generator) -> np.ndarray:
        from bodisc.pareto import chebyshev, chebyshev_weights

        scores = chebyshev(self.Z[free], chebyshev_weights(2, q, rng))  # (q, m)
        taken = np.zeros(len(free), dtype=bool)
        out = []
        for row in scores:  # each weight its best free molecule in turn
            row = np.where(taken, -np.inf, row)
            i = int(np.argmax(row))
            taken[i] = True
            out.append(free[i])
        return np.asarray(out, dtype=np.int64)


class _FeasibleRanking:
    """The constrained task's cheap method: ``mu`` among gap analogues in the upper share."""

    def __init__(self, pool: ReplayPool, feasible_share: float) -> None:
        gap = pool.analogues["gap"]
        likely = gap >= np.quantile(gap, 1.0 - feasible_share)
        mu = pool.analogues["dipole"]
        self.ranking = np.concatenate([
            np.flatnonzero(likely)[np.argsort(-mu[likely], kind="stable")],
            np.flatnonzero(~likely)[np.argsort(-mu[~likely], kind="stable")]])

    def __call__(self, labelled: np.ndarray, free: np.ndarray, q: int,
                 rng: np.random.Generator) -> np.ndarray:
        is_free = np.zeros(len(self.ranking), dtype=bool)
        is_free[free] = True
        return self.ranking[is_free[self.ranking]][:q]


class _Step:
    """bodisc's multi-output step on the pool (one GP per output, linear prior mean)."""

    def __init__(self, pool: ReplayPool, task: str, strategy: str,
                 likely: float | None = None, options: dict[str, Any] | None = None) -> None:
        from bodisc.bench.efficiency import REFIT_GROWTH
        from bodisc.loop.refit import SurrogateSettings

        self.X, self.task, self.strategy, self.likely = pool.X, task, strategy, likely
        self.options = options
        self.dipole, self.gap = pool.labels["dipole"], pool.labels["gap"]
        self.settings = SurrogateSettings("gp", device="cpu", options={"mean": "linear"},
                                          warm_start=True, refit_growth=REFIT_GROWTH)
        self.ref: np.ndarray | None = None
        self.iteration = 0
        self.fits: tuple[Any, ...] = ()

    def __call__(self, labelled: np.ndarray, free: np.ndarray, q: int,
                 rng: np.random.Generator) -> np.ndarray:
        from bodisc.acquisition import DEFAULT_BETA
        from bodisc.loop.step import choose_multi_batch
        from bodisc.pareto import reference_point

        self.iteration += 1
        common = {"strategy": self.strategy, "surrogate": self.settings,
                  "beta": DEFAULT_BETA, "restart_seed": (self.iteration,),
                  "previous": self.fits}
        if self.task == "dipole_gap_pareto":
            Y = np.column_stack([self.dipole[labelled], self.gap[labelled]])
            if self.ref is None:  # a campaign's default, fixed from the start labels
                self.ref = reference_point(Y)
            batch = choose_multi_batch(self.X[labelled], Y, self.X[free], q, rng,
                                       ref_point=self.ref, options=self.options, **common)
        else:
            batch = choose_multi_batch(self.X[labelled], self.dipole[labelled, None],
                                       self.X[free], q, rng,
                                       C_train=self.gap[labelled, None], lower=(GAP_MIN,),
                                       upper=(None,), likely=self.likely, **common)
        self.fits = batch.fits
        return free[batch.index]


def make_chooser(task: str, method: str, pool: ReplayPool) -> Chooser:
    """The batch rule of a method on a task: ``(labelled, free, q, rng) -> indices``.

    Raises:
        KeyError: For an unknown task or method (the message lists the known ones).
    """
    if task not in METHODS:
        raise KeyError(f"unknown task {task!r}; choose from: {', '.join(TASKS)}")
    if method not in METHODS[task]:
        raise KeyError(f"unknown method {method!r} for {task}; choose from: "
                       f"{', '.join(METHODS[task])}")
    if method == "random":
        return lambda labelled, free, q, rng: rng.choice(free, q, replace=False)
    if method == "cheap":
        if task == "dipole_gap_pareto":
            return _Cheap(pool)
        return _FeasibleRanking(pool, float(np.mean(pool.labels["gap"] >= GAP_MIN)))
    if method.endswith("_strict"):
        return _Step(pool, task, method.removeprefix("gp_").removesuffix("_strict"),
                     likely=STRICT_FEASIBILITY)
    if method == "qlognehvi_layers":
        depth = pool_figures(pool)["pareto_layers"]
        return _Step(pool, task, "qlognehvi", options={"pareto_depth": depth})
    return _Step(pool, task, method.removeprefix("gp_"))


def pool_figures(pool: ReplayPool) -> dict[str, Any]:
    """The pool's reference sets: the Pareto top share, the front, the feasible top 1 %."""
    from bodisc.pareto import hypervolume, nondominated_layers, top_share_by_layers

    Y = np.column_stack([pool.labels["dipole"], pool.labels["gap"]])
    top = top_share_by_layers(Y, TOP_SHARE)
    layers = nondominated_layers(Y, max_layers=1)
    ref = np.median(Y, axis=0)
    feasible = pool.labels["gap"] >= GAP_MIN
    threshold = top_threshold(pool.labels["dipole"][feasible])
    feasible_top = np.flatnonzero(feasible & (pool.labels["dipole"] >= threshold))
    return {"pareto_top": top, "front": np.flatnonzero(layers == 0), "hv_reference": ref,
            "pool_hypervolume": hypervolume(Y, ref), "feasible": feasible,
            "feasible_top": feasible_top, "feasible_threshold": threshold,
            "pareto_layers": int(nondominated_layers(Y)[top].max()) + 1}


def replay_run(pool: ReplayPool, task: str, method: str, seed: int, *, calls: int = 2000,
               batch: int = 50, start: int = 100, figures: dict[str, Any] | None = None,
               checkpoints: tuple[int, ...] = CHECKPOINTS,
               infeasible_after: int = INFEASIBLE_AFTER) -> dict[str, Any]:
    """One run of one method on one task; the record of the benchmark's JSON.

    ``infeasible_share`` counts the calls after the first ``infeasible_after``.
    """
    from bodisc.pareto import hypervolume

    figures = figures or pool_figures(pool)
    N = len(pool.labels["dipole"])
    calls = min(calls, N)
    start_idx = np.random.default_rng(seed).choice(N, min(start, calls), replace=False)
    rng = np.random.default_rng([seed, _key(task), _key(method)])
    choose = make_chooser(task, method, pool)
    taken = np.zeros(N, dtype=bool)
    taken[start_idx] = True
    order = [int(i) for i in start_idx]
    with replay_threads():
        t0 = time.perf_counter()
        while len(order) < calls:
            q = min(batch, calls - len(order))
            picked = np.asarray(choose(np.asarray(order), np.flatnonzero(~taken), q, rng))
            if len(picked) != q or taken[picked].any() or len(set(picked.tolist())) != q:
                raise RuntimeError(f"method {method!r} chose an invalid batch")
            taken[picked] = True
            order.extend(int(i) for i in picked)
        wall = time.perf_counter() - t0
    order_arr = np.asarray(order)
    record: dict[str, Any] = {"task": task, "method": method, "seed": seed, "pool": N,
                              "calls": calls, "batch": batch, "start": len(start_idx),
                              "wall_s": wall}

    def share(members: np.ndarray, upto: int) -> float:
        return float(np.isin(members, order_arr[:upto]).sum() / len(members))

    if task == "dipole_gap_pareto":
        for c in checkpoints:
            record[f"pareto_recall_{c}"] = share(figures["pareto_top"], min(c, calls))
        for c in (*checkpoints, calls):  # runs before 2026-12-04 recorded only the last
            record[f"front_recall_{min(c, calls)}"] = share(figures["front"], min(c, calls))
        Y = np.column_stack([pool.labels["dipole"][order_arr], pool.labels["gap"][order_arr]])
        record[f"hv_fraction_{calls}"] = (hypervolume(Y, figures["hv_reference"])
                                          / figures["pool_hypervolume"])
        record["pareto_top_size"] = len(figures["pareto_top"])
        record["front_size"] = len(figures["front"])
    else:
        for c in checkpoints:
            record[f"top1pct_recall_{c}"] = share(figures["feasible_top"], min(c, calls))
        after = order_arr[infeasible_after:]
        record["infeasible_share"] = (float(np.mean(~figures["feasible"][after]))
                                      if len(after) else None)
        record["feasible_top_size"] = len(figures["feasible_top"])
    return record


def run_benchmark(pool: ReplayPool, tasks: Sequence[str], seeds: Sequence[int],
                  methods: Sequence[str] | None = None, *, calls: int = 2000, batch: int = 50,
                  start: int = 100, checkpoints: tuple[int, ...] = CHECKPOINTS,
                  infeasible_after: int = INFEASIBLE_AFTER,
                  records_path: Path | None = None, parallel: int = 1,
                  progress: Callable[[dict[str, Any]], None] | None = None,
                  run_missing: bool = True) -> list[dict[str, Any]]:
    """Every (task, method, seed) run, resumable through ``records_path`` (JSON lines).

    ``methods``: a subset of each task's methods (``None``: all). Runs already in
    ``records_path`` with the same pool size and budget are not run again; with
    ``run_missing=False`` nothing runs and only those are returned.
    """
    figures = pool_figures(pool)
    done: dict[tuple[str, str, int], dict[str, Any]] = {}
    if records_path is not None and records_path.exists():
        for line in records_path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if (r["pool"], r["calls"], r["batch"], r["start"]) == (
                        len(pool), min(calls, len(pool)), batch, min(start, calls)):
                    done[(r["task"], r["method"], r["seed"])] = r
    keys = [(t, m, s) for t in tasks for m in METHODS[t]
            if methods is None or m in methods for s in seeds]
    todo = [k for k in keys if k not in done] if run_missing else []
    settings = {"calls": calls, "batch": batch, "start": start, "checkpoints": checkpoints,
                "infeasible_after": infeasible_after}

    def finished(record: dict[str, Any]) -> None:
        done[(record["task"], record["method"], record["seed"])] = record
        if records_path is not None:
            with records_path.open("a") as stream:
                stream.write(json.dumps(record) + "\n")
        if progress is not None:
            progress(record)

    if parallel <= 1 or len(todo) <= 1:
        for t, m, s in todo:
            finished(replay_run(pool, t, m, s, figures=figures, **settings))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        from bodisc.bench.efficiency import _set_worker_pool

        with ProcessPoolExecutor(min(parallel, len(todo)), mp_context=mp.get_context("spawn"),
                                 initializer=_set_worker_pool,
                                 initargs=(pool, os.getpid())) as ex:
            futures = [ex.submit(_worker_run, t, m, s, settings) for t, m, s in todo]
            for future in as_completed(futures):
                finished(future.result())
    return [done[k] for k in keys if k in done]


def _worker_run(task: str, method: str, seed: int, settings: dict[str, Any]
                ) -> dict[str, Any]:
    from bodisc.bench import efficiency

    assert efficiency._WORKER_POOL is not None
    return replay_run(efficiency._WORKER_POOL, task, method, seed, **settings)


def summarise(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds per (task, method), in table order."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["task"], r["method"]), []).append(r)
    rows = []
    for (task, method), rs in groups.items():
        row: dict[str, Any] = {"task": task, "method": method, "seeds": len(rs)}
        keys = sorted({k for r in rs for k in r if k.startswith(
            ("pareto_recall_", "front_recall_", "hv_fraction_", "top1pct_recall_",
             "infeasible_share"))})
        for key in keys:
            vals = [r[key] for r in rs if r.get(key) is not None]
            row[key] = float(np.mean(vals)) if vals else None
            row[f"{key}_sd"] = float(np.std(vals)) if vals else None
            if len(vals) < len(rs):  # a figure only some runs recorded
                row[f"{key}_n"] = len(vals)
        rows.append(row)
    order = {(t, m): (i, j) for i, t in enumerate(TASKS) for j, m in enumerate(METHODS[t])}
    return sorted(rows, key=lambda r: order.get((r["task"], r["method"]), (99, 99)))


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown tables of :func:`summarise` rows, one per task."""

    def cell(row: dict[str, Any], key: str) -> str:
        v = row.get(key)
        if v is None:
            return "-"
        part = f" (n = {row[f'{key}_n']})" if f"{key}_n" in row else ""
        return f"{v:.2f} ± {row.get(f'{key}_sd') or 0.0:.2f}{part}"

    out = []
    for task in TASKS:
        mine = [r for r in rows if r["task"] == task]
        if not mine:
            continue
        given = {k for r in mine for k in r if not k.endswith(("_sd", "_n"))
                 and k not in ("task", "method", "seeds")}
        keys = sorted(given, key=_column_order)
        out.append(f"**{task}**\n")
        out.append("| method | seeds | " + " | ".join(keys) + " |")
        out.append("|---|---|" + "---|" * len(keys))
        for r in mine:
            out.append(f"| {r['method']} | {r['seeds']} | "
                       + " | ".join(cell(r, k) for k in keys) + " |")
        out.append("")
    return "\n".join(out)


#: The headline key of each task, drawn by :func:`write_figure`.
FIGURE_KEYS = {"dipole_gap_pareto": ("pareto_recall_", "share of the Pareto top 1 % found"),
               "dipole_constrained": ("top1pct_recall_", "share of the feasible top 1 % found")}


def write_figure(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Recall at each checkpoint per method (mean and standard deviation over seeds).

    One panel per task of :func:`summarise` ``rows``; written to ``path`` (PNG).
    """
    plt = pyplot()

    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 4.0), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        prefix, label = FIGURE_KEYS[task]
        for r in (r for r in rows if r["task"] == task):
            keys = sorted((k for k in r if k.startswith(prefix)
                           and not k.endswith(("_sd", "_n"))
                           and r[k] is not None), key=_column_order)
            calls = [int(k[len(prefix):]) for k in keys]
            ax.errorbar(calls, [r[k] for k in keys], yerr=[r[f"{k}_sd"] or 0.0 for k in keys],
                        marker="o", capsize=3, label=f"{r['method']} ({r['seeds']} seeds)",
                        ls="--" if r["method"] in ("random", "cheap") else "-")
        ax.set_title(task)
        ax.set_xlabel("oracle calls")
        ax.set_ylabel(label)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path, dpi=120)


def _column_order(key: str) -> tuple[int, int]:
    """Recall columns by checkpoint first, then front, hypervolume, infeasible share."""
    groups = ("pareto_recall_", "top1pct_recall_", "front_recall_", "hv_fraction_",
              "infeasible_share")
    for i, prefix in enumerate(groups):
        if key.startswith(prefix):
            tail = key[len(prefix):]
            return i, int(tail) if tail.isdigit() else 0
    return len(groups), 0
