"""Memory of choosing a batch from a large cached pool (1,000,000 rows by default).

The pool is *synthetic*: random InChIKey-shaped keys and random descriptor rows written
as a :class:`~bodisc.runtime.columnar.ColumnarCache` (the cache a library campaign
featurises into), since featurising a million real molecules with xTB takes days. The
measurement then runs in a fresh process, so the build's memory does not count:

1. baseline: the process after importing numpy, torch and bodisc's step (resident set
   size, RSS);
2. open the cache (the InChIKey index is rebuilt from the chunks' key files);
3. gather the candidates' descriptors into one ``(m, d)`` float64 matrix;
4. :func:`bodisc.loop.step.choose_batch` with a GP fitted on ``train`` rows (labels from
   a smooth function of the descriptors plus noise) scoring all ``m`` candidates.

Peak RSS is sampled every 2 ms by a thread (psutil) and cross-checked with
``getrusage``'s ``ru_maxrss``; figures are MB above the baseline. ``tracemalloc`` is not
used: it does not see torch's or much of numpy's memory.

Run: ``python -m bodisc.bench.pool_memory`` (options: ``--help``); writes
``docs/results/pool_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["build_synthetic_pool", "measure", "main", "RECIPE"]

#: The synthetic cache's recipe (its folder's digest).
RECIPE = {"kind": "synthetic", "version": 1}


def _names(d: int) -> list[str]:
    return [f"x{i}" for i in range(d)]


def build_synthetic_pool(root: Path, rows: int, d: int = 20, chunk: int = 65_536,
                         seed: int = 0) -> Path:
    """Write (or reuse) a synthetic cached pool of ``rows`` molecules.

    Args:
        root: Folder of the cache.
        rows: Molecules.
        d: Descriptors per molecule.
        chunk: Rows per committed chunk.
        seed: Seed of the random rows.

    Returns:
        The cache's recipe folder.
    """
    from bodisc.runtime.columnar import ColumnarCache

    cache = ColumnarCache(root, {**RECIPE, "rows": rows, "d": d, "seed": seed}, _names(d))
    if len(cache) >= rows:
        return cache.folder
    rng = np.random.default_rng(seed)
    for start in range(len(cache), rows, chunk):
        n = min(chunk, rows - start)
        keys = [f"S{i:013d}-SYNTHETICK-N" for i in range(start, start + n)]
        cache.append(keys, rng.standard_normal((n, d)))
    return cache.folder


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


class _Peak:
    """Samples this process's RSS in a thread; ``peak`` is the largest seen."""

    def __init__(self, every_s: float = 0.002) -> None:
        self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _run(self, every_s: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(every_s)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())
        return self.peak


def measure(root: Path, rows: int, d: int = 20, train: int = 500, q: int = 10,
            strategy: str = "logei", seed: int = 0) -> dict[str, Any]:
    """Peak memory above the baseline while choosing a batch from the cached pool.

    Run in a fresh process (see :func:`main`); the cache must exist.

    Returns:
        Figures in MB above the baseline and seconds per phase.
    """
    import torch  # noqa: F401 - part of the baseline, as in a campaign

    from bodisc.loop.refit import SurrogateSettings
    from bodisc.loop.step import choose_batch
    from bodisc.runtime.columnar import ColumnarCache

    mb = 2.0**20
    base = _rss()
    peak = _Peak()
    out: dict[str, Any] = {"baseline_rss_mb": base / mb}
    t0 = time.perf_counter()
    cache = ColumnarCache(root, {**RECIPE, "rows": rows, "d": d, "seed": seed}, _names(d))
    t1 = time.perf_counter()
    out["open_s"], out["open_rss_mb"] = t1 - t0, (_rss() - base) / mb
    keys, X = cache.matrix()
    t2 = time.perf_counter()
    out["matrix_s"], out["matrix_rss_mb"] = t2 - t1, (_rss() - base) / mb
    out["candidates"], out["d"] = int(X.shape[0]), int(X.shape[1])
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(X), size=train, replace=False)
    w = rng.standard_normal(d)
    y = np.sin(X[idx] @ w / np.sqrt(d)) + 0.1 * rng.standard_normal(train)
    cand = np.ones(len(X), dtype=bool)
    cand[idx] = False
    X_cand = X[cand]  # the unlabelled pool: a copy, as a campaign's candidate matrix is
    t3 = time.perf_counter()
    batch = choose_batch(X[idx], y, X_cand, q, rng, strategy=strategy,
                         surrogate=SurrogateSettings("gp", device="cpu"), beta=2.0,
                         restart_seed=(seed,))
    t4 = time.perf_counter()
    top = peak.stop()
    out.update({
        "choose_s": t4 - t3, "fit_s": batch.timings.get("fit_s"),
        "score_s": batch.timings.get("score_s"), "strategy": batch.strategy,
        "picked": [keys[cand][i].decode() for i in batch.index.tolist()],
        "peak_above_baseline_mb": (top - base) / mb,
        "ru_maxrss_above_baseline_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                        * 1024 - base) / mb,
        "train": train, "q": q,
    })
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Build the synthetic pool if needed, measure in a fresh process, write the JSON.

    Args:
        argv: Command-line arguments (``None``: ``sys.argv[1:]``); ``--help`` lists them.

    Returns:
        The result written.
    """
    parser = argparse.ArgumentParser(prog="python -m bodisc.bench.pool_memory",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=20)
    parser.add_argument("--train", type=int, default=500)
    parser.add_argument("--q", type=int, default=10)
    parser.add_argument("--strategy", default="logei")
    parser.add_argument("--cache", type=Path, default=Path("runs/bench/pool-memory"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/pool_memory.json"))
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_only:  # the fresh process
        result = measure(args.cache, args.rows, args.dim, args.train, args.q, args.strategy)
        print(json.dumps(result))
        return result
    t0 = time.perf_counter()
    build_synthetic_pool(args.cache, args.rows, args.dim)
    build_s = time.perf_counter() - t0
    cmd = [sys.executable, "-m", "bodisc.bench.pool_memory", "--measure-only",
           "--rows", str(args.rows), "--dim", str(args.dim), "--train", str(args.train),
           "--q", str(args.q), "--strategy", args.strategy, "--cache", str(args.cache)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    result.update({
        "synthetic": True, "rows": args.rows, "build_s": build_s,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "command": "python -m bodisc.bench.pool_memory " + " ".join(argv or sys.argv[1:]),
    })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
