"""Descriptor throughput: QMex per molecule in real worker processes.

:func:`bench_descriptors` computes one descriptor tier for a list of molecules twice
in the same call, with one worker process (the baseline) and with ``workers``
processes, both through :class:`bodisc.execution.LocalExecutor` (spawned workers, one
OpenMP thread each, a time limit per molecule), and reports molecules per second of
both and their ratio. Each pool is warmed up first (one small molecule per worker, so
that start-up and imports of RDKit and tblite are not timed). :func:`qm9_sample`
draws QM9 SMILES for it.

On a machine shared with other work the ratio reflects the load as much as the code;
the result carries the 1-minute load average before and after each run, and the CPU
time per molecule, from which the rate with one free core per worker follows.
"""

from __future__ import annotations

import functools
import math
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["bench_descriptors", "qm9_sample", "timed_descriptors"]

#: Molecule used to start every worker before the clock runs.
_WARM_UP_SMILES = "CCO"


def timed_descriptors(smiles: str, names: Sequence[str]) -> dict[str, Any]:
    """Compute descriptors of one molecule and time it inside the worker.

    Top-level so that it can be sent to worker processes.

    Args:
        smiles: SMILES of the molecule.
        names: Descriptor names.

    Returns:
        ``{"values": {name: value}, "seconds": wall time in s, "cpu_seconds": CPU time
        of the worker process in s}``.

    Raises:
        MoleculeFailure: As :func:`bodisc.descriptors.compute_qmex`.
    """
    from bodisc.descriptors import compute_qmex

    start, cpu_start = time.perf_counter(), time.process_time()
    values = compute_qmex(smiles, names)
    return {
        "values": values,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu_start,
    }


def _load() -> float:
    try:
        return float(os.getloadavg()[0])
    except OSError:  # pragma: no cover - platforms without getloadavg
        return math.nan


def _timed_run(
    smiles: Sequence[str], names: tuple[str, ...], workers: int, timeout_s: float
) -> dict[str, Any]:
    """One pool of ``workers`` processes: warm up, then time all molecules."""
    from bodisc.execution import LocalExecutor

    load_before = _load()
    with LocalExecutor(workers) as executor:
        warm_up = [(f"warm-up {i}", (_WARM_UP_SMILES, names)) for i in range(workers)]
        for _ in executor.run(timed_descriptors, warm_up, timeout_s):
            pass
        tasks = [(i, (s, names)) for i, s in enumerate(smiles)]
        start = time.perf_counter()
        outcomes = list(executor.run(timed_descriptors, tasks, timeout_s))
        wall = time.perf_counter() - start
    done = [o for o in outcomes if o.failure is None]
    values = [v for o in done for v in o.value["values"].values()]
    cpu = [o.value["cpu_seconds"] for o in done]
    return {
        "workers": workers,
        "wall_s": wall,
        "molecules_per_s": len(outcomes) / wall if wall > 0 else math.nan,
        "median_molecule_s": (
            statistics.median(o.value["seconds"] for o in done) if done else math.nan
        ),
        "mean_molecule_cpu_s": statistics.fmean(cpu) if cpu else math.nan,
        "failures": {smiles[o.key]: o.failure for o in outcomes if o.failure is not None},
        "nan_fraction": (
            sum(not math.isfinite(v) for v in values) / len(values) if values else math.nan
        ),
        "load_before": load_before,
        "load_after": _load(),
    }


def bench_descriptors(
    smiles: list[str],
    workers: int = 2,
    tier: str = "fast",
    timeout_s: float = 120,
) -> dict[str, Any]:
    """Throughput of one descriptor tier with ``workers`` processes against one.

    Args:
        smiles: The molecules (e.g. :func:`qm9_sample`).
        workers: Worker processes of the parallel run (>= 1).
        tier: A tier of :data:`bodisc.descriptors.TIERS` (``"fast"`` or ``"full"``).
        timeout_s: Time limit per molecule, s (a molecule past it counts as a failure).

    Returns:
        A dict: ``tier``, ``n_descriptors``, ``n_molecules``, ``workers``,
        ``molecules_per_s`` (all molecules, failed ones included, over the wall time of
        the ``workers``-process run), ``baseline_molecules_per_s`` (the same with one
        process, measured in this call), ``speedup`` (their ratio), ``efficiency``
        (speedup / workers), ``median_molecule_s`` (median seconds per successful
        molecule inside a worker, parallel run), ``cpu_bound_molecules_per_s``
        (``workers`` / mean CPU seconds per successful molecule of the baseline run:
        the rate with one free core per worker, which a loaded machine hides),
        ``failures`` (count),
        ``failure_reasons`` (``{smiles: reason}``), ``nan_fraction`` (share of NaN
        values among computed descriptors), ``cpu_count``, and ``runs``: the raw
        ``parallel`` and ``baseline`` records, each with ``wall_s``,
        ``mean_molecule_cpu_s``, ``load_before`` and ``load_after`` (1-minute load
        averages).

    Worker processes are spawned: a script calling this needs the usual
    ``if __name__ == "__main__":`` guard.

    Raises:
        KeyError: For an unknown tier.
        ValueError: For no molecules or fewer than one worker.
    """
    from bodisc.descriptors import TIERS

    if tier not in TIERS:
        raise KeyError(f"unknown descriptor tier {tier!r}; choose one of: {', '.join(TIERS)}")
    if not smiles:
        raise ValueError("no molecules to benchmark")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    names = TIERS[tier]
    baseline = _timed_run(smiles, names, 1, timeout_s)
    parallel = baseline if workers == 1 else _timed_run(smiles, names, workers, timeout_s)
    speedup = parallel["molecules_per_s"] / baseline["molecules_per_s"]
    return {
        "tier": tier,
        "n_descriptors": len(names),
        "n_molecules": len(smiles),
        "workers": workers,
        "molecules_per_s": parallel["molecules_per_s"],
        "baseline_molecules_per_s": baseline["molecules_per_s"],
        "speedup": speedup,
        "efficiency": speedup / workers,
        "median_molecule_s": parallel["median_molecule_s"],
        "cpu_bound_molecules_per_s": workers / baseline["mean_molecule_cpu_s"],
        "failures": len(parallel["failures"]),
        "failure_reasons": parallel["failures"],
        "nan_fraction": parallel["nan_fraction"],
        "cpu_count": os.cpu_count(),
        "runs": {"parallel": parallel, "baseline": baseline},
    }


# --------------------------------------------------------------------------- QM9


def _qm9_data_dir() -> Path:
    """The ``data`` folder of the installed ``qm9pack`` (found without importing it).

    ``qm9pack`` imports ``pkg_resources`` at import time, so its CSV files are read
    directly.
    """
    import importlib.util

    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("qm9pack is not installed; pip install qm9pack")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@functools.cache
def _qm9_smiles() -> tuple[str, ...]:
    """All QM9 SMILES in QM9 index order (column ``SMILES`` of ``qm9_part*.csv``)."""
    import pandas as pd

    files = sorted(_qm9_data_dir().glob("qm9_part*.csv"))
    if not files:
        raise FileNotFoundError(f"no qm9_part*.csv under {_qm9_data_dir()}")
    frame = pd.concat(pd.read_csv(f, usecols=["Index", "SMILES"]) for f in files)
    return tuple(frame.sort_values("Index")["SMILES"].astype(str))


def qm9_sample(n: int, seed: int = 0) -> list[str]:
    """``n`` QM9 SMILES drawn without replacement, reproducibly.

    Args:
        n: Number of molecules (at most 130,831).
        seed: Seed of :func:`numpy.random.default_rng`.

    Returns:
        The SMILES (QM9's, as published in ``qm9pack``), in the order drawn.
    """
    pool = _qm9_smiles()
    if not 0 <= n <= len(pool):
        raise ValueError(f"n must be between 0 and {len(pool)}, got {n}")
    rng = np.random.default_rng(seed)
    return [pool[i] for i in rng.choice(len(pool), size=n, replace=False)]
