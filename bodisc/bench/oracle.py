"""Oracle throughput: molecules per second through the local pool and through Dask.

:func:`bench_oracle` labels the same molecules with one oracle through each executor
(:class:`~bodisc.execution.LocalExecutor` and a
:class:`~bodisc.execution.dask.DaskExecutor` on a ``LocalCluster``, or on the scheduler
given), first with one worker (the baseline of that executor) and then with ``workers``
workers, exactly as a campaign sends its oracle jobs (``oracle_task``). Every pool or
cluster is started and warmed up (one small molecule per worker) before the clock runs,
so the figures are the steady rate, not start-up.

On a machine shared with other work the ratios reflect the load as much as the code;
each run carries the 1-minute load average before and after.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import Any

from bodisc.bench.descriptors import _load

__all__ = ["bench_oracle"]

_WARM_UP_SMILES = "CCO"


def _timed_run(kind: str, workers: int, smiles: Sequence[str], oracle: str,
               options_json: str, timeout_s: float, scheduler: str | None) -> dict[str, Any]:
    from bodisc.execution import LocalExecutor
    from bodisc.execution.dask import DaskExecutor
    from bodisc.execution.tasks import oracle_task

    load_before = _load()
    executor: LocalExecutor | DaskExecutor
    if kind == "dask":
        executor = DaskExecutor(workers, None, scheduler=scheduler)
    else:
        executor = LocalExecutor(workers, None)
    with executor:
        warm = [(f"warm-up {i}", (oracle, options_json, _WARM_UP_SMILES)) for i in range(workers)]
        for _ in executor.run(oracle_task, warm, timeout_s):
            pass
        tasks = [(i, (oracle, options_json, s)) for i, s in enumerate(smiles)]
        start = time.perf_counter()
        outcomes = list(executor.run(oracle_task, tasks, timeout_s))
        wall = time.perf_counter() - start
    failed = sum(1 for o in outcomes if o.failure is not None or not o.value.ok)
    return {
        "executor": kind,
        "workers": workers,
        "wall_s": wall,
        "molecules_per_s": len(outcomes) / wall if wall > 0 else math.nan,
        "failures": failed,
        "load_before": load_before,
        "load_after": _load(),
    }


def bench_oracle(smiles: Sequence[str], oracle: str = "xtb_dipole",
                 options: dict[str, Any] | None = None, workers: int = 2,
                 executors: Sequence[str] = ("local", "dask"), timeout_s: float = 300.0,
                 scheduler: str | None = None) -> dict[str, Any]:
    """Oracle throughput of each executor with ``workers`` workers against one worker.

    Args:
        smiles: The molecules (e.g. :func:`bodisc.bench.descriptors.qm9_sample`).
        oracle: Oracle name, as in a campaign file.
        options: The oracle's options.
        workers: Workers of the parallel runs (>= 1).
        executors: ``"local"`` and/or ``"dask"``.
        timeout_s: Time limit per molecule, s.
        scheduler: A Dask scheduler address; ``None`` starts a ``LocalCluster``.

    Returns:
        ``{"n_molecules", "oracle", "workers", "runs": [...], "ratios": {...}}``: one run
        record per executor and worker count (``executor``, ``workers``, ``wall_s``,
        ``molecules_per_s``, ``failures``, ``load_before``, ``load_after``), and for each
        executor the ratio of its ``workers``-worker rate to the one-worker rate of the
        local pool (``"<executor>/<workers> vs local/1"``).

    Raises:
        ValueError: For no molecules, fewer than one worker or an unknown executor.
    """
    from bodisc.oracle import resolve_oracle

    if not smiles:
        raise ValueError("no molecules to benchmark")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    unknown = [e for e in executors if e not in ("local", "dask")]
    if unknown:
        raise ValueError(f"unknown executor(s) {unknown}; choose local or dask")
    cls = resolve_oracle(oracle)
    options_json = json.dumps(cls.Options.model_validate(options or {}).model_dump(mode="json"),
                              sort_keys=True)
    counts = sorted({1, workers})
    runs = [_timed_run(kind, n, smiles, oracle, options_json, timeout_s, scheduler)
            for kind in executors for n in counts]
    rate = {(r["executor"], r["workers"]): r["molecules_per_s"] for r in runs}
    base = rate.get(("local", 1)) or rate[(executors[0], 1)]
    base_name = "local/1" if ("local", 1) in rate else f"{executors[0]}/1"
    ratios = {f"{kind}/{n} vs {base_name}": rate[(kind, n)] / base
              for kind in executors for n in counts}
    return {"n_molecules": len(smiles), "oracle": oracle, "workers": workers,
            "runs": runs, "ratios": ratios}
