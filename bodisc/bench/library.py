"""Library featurisation: throughput with 1 and 2 workers, and resume after SIGKILL.

A candidate library (``[pool] source``) is featurised once, chunk by chunk, into a
columnar cache. This benchmark writes QM9 molecules (a seeded sample) to a ``.smi`` file
and measures two things on it:

1. throughput: the same sample featurised from scratch with 1 and then 2 worker
   processes (molecules per second; the ratio is the speed-up of the second worker);
2. resume: the whole library featurised in a child process that is killed with SIGKILL
   (its process group: the workers too) once a given share is committed, then restarted
   to the end. Every call of the descriptor function is noted in a ledger file, so the
   check is direct: no molecule committed before the kill is computed again, every
   molecule ends in the cache once (a vector or a failure with its reason), and the
   molecules computed twice are only those of the chunk being filled at the kill.

The child does what :meth:`bodisc.chem.library.LibraryPool.open` does (same records,
recipe and cache), with the ledger's descriptor function.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_library", "ledger_task", "featurise_file", "throughput",
           "kill_and_resume", "run"]

LEDGER = "BODISC_LIBRARY_LEDGER"


def write_library(path: Path, n: int, seed: int = 0) -> int:
    """Write ``n`` QM9 molecules (a seeded sample, file order = QM9 order) as ``.smi``.

    Returns:
        The molecules written.
    """
    from bodisc.data import load_qm9

    table = load_qm9(["smiles"])
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(table), size=min(n, len(table)), replace=False))
    smiles = table["smiles"].to_numpy()[pick]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{s} qm9-{i}\n" for s, i in zip(smiles, pick, strict=True)))
    return len(pick)


def ledger_task(smiles: str, names: tuple[str, ...], seed: int) -> tuple[list[float], float]:
    """:func:`bodisc.execution.tasks.descriptor_task`, noting each call in ``$LEDGER``."""
    from bodisc.execution.tasks import descriptor_task

    ledger = os.environ.get(LEDGER)
    if ledger:
        with open(ledger, "a") as fh:  # one short line per call: an atomic append
            fh.write(smiles + "\n")
    return descriptor_task(smiles, names, seed)


def _cache(root: Path, tier: str) -> Any:
    from bodisc.chem.library import library_recipe
    from bodisc.descriptors import TIERS
    from bodisc.runtime.columnar import ColumnarCache

    names = TIERS[tier]
    return ColumnarCache(root / "library", library_recipe(names, 0, "GFN2-xTB"), names,
                         prefix="qmex")


def featurise_file(smi: Path, root: Path, workers: int, tier: str = "fast",
                   chunk_size: int = 256, progress: bool = False) -> dict[str, Any]:
    """Featurise a library file into the cache under ``root`` as ``LibraryPool.open`` does.

    Returns:
        The :class:`~bodisc.chem.library.FeaturisationSummary` as a dict.
    """
    from dataclasses import asdict

    from bodisc.chem.library import featurise_library, read_records

    records = read_records(smi, None, root)
    summary = featurise_library(records.inchikey, records.smiles, _cache(root, tier),
                                conformer_seed=0, workers=workers, chunk_size=chunk_size,
                                progress=progress, fn=ledger_task)
    return asdict(summary)


def throughput(smi: Path, root: Path, workers: Sequence[int] = (1, 2),
               tier: str = "fast") -> list[dict[str, Any]]:
    """Featurise the same file from an empty cache once per worker count.

    Returns:
        Per worker count: ``workers``, ``molecules``, ``elapsed_s``, ``molecules_per_s``.
    """
    out = []
    for w in workers:
        summary = featurise_file(smi, root / f"throughput-{w}", w, tier)
        out.append({"workers": w, "molecules": summary["done"] + summary["failed"],
                    "failed": summary["failed"], "elapsed_s": summary["elapsed_s"],
                    "molecules_per_s": summary["molecules_per_s"]})
    return out


def _committed(root: Path, tier: str) -> set[str]:
    cache = _cache(root, tier)
    return {k.decode() for k in cache.keys().tolist()} | set(cache.failures)


def _child(smi: Path, root: Path, workers: int, tier: str, chunk_size: int,
           ledger: Path) -> subprocess.Popen:
    env = {**os.environ, LEDGER: str(ledger)}
    cmd = [sys.executable, "-m", "bodisc.bench.library", "--child", "--smi", str(smi),
           "--root", str(root), "--workers", str(workers), "--tier", tier,
           "--chunk-size", str(chunk_size)]
    return subprocess.Popen(cmd, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, text=True)


def kill_and_resume(smi: Path, root: Path, workers: int = 2, kill_at: float = 0.5,
                    tier: str = "fast", chunk_size: int = 256,
                    poll_s: float = 1.0) -> dict[str, Any]:
    """Featurise ``smi``, SIGKILL the run once ``kill_at`` of it is committed, restart.

    Returns:
        ``molecules``, ``committed_at_kill``, ``computed_before_kill``,
        ``computed_after_restart``, ``recomputed_committed`` (must be 0),
        ``recomputed_uncommitted`` (at most one chunk per worker batch),
        ``in_cache`` and ``duplicates_in_cache`` (must equal ``molecules`` and 0),
        ``first_s`` and ``resume_s`` with their rates.
    """
    from bodisc.chem.library import read_records

    ledger = root / "ledger.txt"
    ledger.unlink(missing_ok=True)
    records = read_records(smi, None, root)
    total = len(records.inchikey)
    key_of = dict(zip(records.smiles.tolist(),
                      (k.decode() for k in records.inchikey.tolist()), strict=True))
    t0 = time.perf_counter()
    proc = _child(smi, root, workers, tier, chunk_size, ledger)
    target = int(kill_at * total)
    while proc.poll() is None and len(_committed(root, tier)) < target:
        time.sleep(poll_s)
    if proc.poll() is not None:
        raise RuntimeError("the featurisation finished before the kill; lower kill_at")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first_s = time.perf_counter() - t0
    committed = _committed(root, tier)
    before = ledger.read_text().splitlines()
    t0 = time.perf_counter()
    proc = _child(smi, root, workers, tier, chunk_size, ledger)
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the restarted featurisation failed (exit {proc.returncode})")
    resume_s = time.perf_counter() - t0
    summary = json.loads(out.strip().splitlines()[-1])
    after = ledger.read_text().splitlines()[len(before):]
    after_keys = [key_of[s] for s in after]
    computed_before = {key_of[s] for s in before}
    cache = _cache(root, tier)
    stored = np.concatenate([np.load(p) for p in sorted(cache.folder.glob("*.keys.npy"))])
    failed = sum(1 for _ in cache.failures)
    return {
        "molecules": total, "workers": workers, "chunk_size": chunk_size,
        "committed_at_kill": len(committed),
        "computed_before_kill": len(computed_before),
        "computed_after_restart": len(after_keys),
        "restart_skipped": summary["skipped"],
        "recomputed_committed": len(set(after_keys) & committed),
        "recomputed_uncommitted": len(set(after_keys) & (computed_before - committed)),
        "computed_twice_after_restart": len(after_keys) - len(set(after_keys)),
        "in_cache": len(set(stored.tolist())) + failed, "failed": failed,
        "duplicates_in_cache": len(stored) - len(set(stored.tolist())),
        "first_s": first_s, "first_per_s": len(computed_before) / first_s,
        "resume_s": resume_s, "resume_per_s": len(after_keys) / resume_s,
    }


def run(n: int = 20_000, sample: int = 1_000, seed: int = 0, workers: int = 2,
        kill_at: float = 0.5, root: Path = Path("runs/bench/library"),
        tier: str = "fast") -> dict[str, Any]:
    """The whole benchmark: throughput on ``sample`` molecules, then the resume check.

    Returns:
        ``throughput`` (list per worker count), ``speedup_2_over_1`` and ``resume``.
    """
    root.mkdir(parents=True, exist_ok=True)
    small = root / f"qm9-{sample}.smi"
    write_library(small, sample, seed)
    rates = throughput(small, root, (1, 2), tier)
    big = root / f"qm9-{n}.smi"
    write_library(big, n, seed + 1)
    resume = kill_and_resume(big, root / "resume", workers, kill_at, tier)
    return {"n": n, "sample": sample, "seed": seed, "tier": tier, "throughput": rates,
            "speedup_2_over_1": rates[1]["molecules_per_s"] / rates[0]["molecules_per_s"],
            "resume": resume}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line: ``python -m bodisc.bench.library`` (``--help`` lists the options)."""
    parser = argparse.ArgumentParser(prog="python -m bodisc.bench.library",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="molecules of the library")
    parser.add_argument("--sample", type=int, default=1_000, help="molecules timed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-at", type=float, default=0.5)
    parser.add_argument("--tier", default="fast")
    parser.add_argument("--root", type=Path, default=Path("runs/bench/library"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--smi", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--chunk-size", type=int, default=256, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = featurise_file(args.smi, args.root, args.workers, args.tier,
                                args.chunk_size, progress=True)
        print(json.dumps(result), flush=True)
        return result
    result = run(args.n, args.sample, args.seed, args.workers, args.kill_at, args.root,
                 args.tier)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
