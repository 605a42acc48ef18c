"""Batch against asynchronous campaigns on an oracle with measured call times.

The same QM9-pool campaign runs in batch mode (batch of ``batch``) and in async mode with
``workers`` workers. Its oracle (:class:`TimedQM9Oracle`) returns QM9's B3LYP dipole
after sleeping for a measured call time, times ``scale``: for the sources ``xtb`` and
``dft`` that of a measured call of the nearest heavy-atom count, chosen by the molecule's
InChIKey; for ``dft_any_size`` any measured DFT call, chosen by the InChIKey. QM9 is
mostly molecules of 8 and 9 heavy atoms, so matching sizes narrows the spread of call
times; a generator campaign's molecules span the sizes, and ``dft_any_size`` draws from
the whole measured distribution (1 to 48 s) instead. Sleeping workers use no CPU, so
4 workers on 2 cores measure scheduling, not contention. The call times come from
:func:`measure_times` (xTB and DFT, run once, committed as JSON).

Per time source, mode and seed: wall time to the budget, worker utilisation (the calls'
seconds over ``workers`` x wall time, the whole command: start-up and seeds included),
the best dipole and the top-10 AUC against calls. An async run also carries
``loop_utilisation``, what the campaign itself records and logs to MLflow
(``async/utilisation``: the workers' busy seconds, oracle construction included, over
``workers`` x the wall time of its asynchronous loop, without start-up).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bodisc.builtin_oracles.qm9 import QM9Options, QM9Oracle
from bodisc.plotting import pyplot, save

#: Source -> (the measured times it uses, whether a call's time matches its molecule's size).
SOURCE_TIMES: dict[str, tuple[str, bool]] = {
    "xtb": ("xtb", True), "dft": ("dft", True), "dft_any_size": ("dft", False)}
SOURCES = tuple(SOURCE_TIMES)
MODES = ("batch", "async")

# The oracles whose call times are measured: the dipole campaign's xTB oracle and the
# shipped DFT campaign's (campaigns/dipole_dft.toml), on CPU with one thread.
TIMED_ORACLES: dict[str, tuple[str, dict[str, Any]]] = {
    "xtb": ("xtb_dipole", {"n_conformers": 3}),
    "dft": ("pyscf_dipole", {"functional": "b3lyp", "basis": "def2-svp", "density_fit": True,
                             "conv_tol": 1e-9, "max_cycle": 100, "threads": 1,
                             "device": "cpu", "geometry": {"n_conformers": 3}}),
}


def measure_times(source: str, per_size: int = 2, sizes: Sequence[int] = range(2, 10),
                  seed: int = 0, echo: Callable[[str], None] | None = None
                  ) -> dict[str, Any]:
    """Time the ``source`` oracle on QM9 molecules, ``per_size`` per heavy-atom count.

    Args:
        source: A key of :data:`TIMED_ORACLES`.
        per_size: Molecules per heavy-atom count.
        sizes: The heavy-atom counts.
        seed: Seed of the QM9 sample.
        echo: Progress lines.

    Returns:
        ``{"source", "oracle", "options", "smiles", "heavy_atoms", "seconds", "failed"}``
        (lists in call order; a failed call's seconds count: a worker was busy as long).
    """
    from rdkit import Chem

    from bodisc.data import load_qm9
    from bodisc.oracle import resolve_oracle, run_one

    name, options = TIMED_ORACLES[source]
    cls = resolve_oracle(name)
    oracle = cls(cls.Options.model_validate(options))
    table = load_qm9(["smiles"])
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(table))
    wanted = {n: per_size for n in sizes}
    picked: list[tuple[str, int]] = []
    for i in order:
        smi = str(table["smiles"].iloc[int(i)])
        n = Chem.MolFromSmiles(smi).GetNumHeavyAtoms()
        if wanted.get(n, 0) > 0:
            wanted[n] -= 1
            picked.append((smi, n))
        if not any(wanted.values()):
            break
    out: dict[str, Any] = {"source": source, "oracle": name, "options": options,
                           "smiles": [], "heavy_atoms": [], "seconds": [], "failed": []}
    for smi, n in sorted(picked, key=lambda p: p[1]):
        res = run_one(oracle, smi)
        out["smiles"].append(smi)
        out["heavy_atoms"].append(n)
        out["seconds"].append(float(res.seconds))
        out["failed"].append(res.failure is not None)
        if echo:
            echo(f"{source} {smi} ({n} heavy atoms): {res.seconds:.2f} s"
                 + (f" failed: {res.failure}" if res.failure else ""))
    return out


@lru_cache(maxsize=4)
def _times(path: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    data = json.loads(Path(path).read_text())[source]
    return np.asarray(data["heavy_atoms"], dtype=int), np.asarray(data["seconds"], float)


def call_time(path: str, source: str, inchikey: str, heavy_atoms: int) -> float:
    """A measured call time for a molecule, chosen by its InChIKey.

    One of the nearest heavy-atom count's calls, or any measured call for a source that
    does not match sizes (:data:`SOURCE_TIMES`).
    """
    measured, by_size = SOURCE_TIMES[source]
    sizes, seconds = _times(path, measured)
    pool = seconds
    if by_size:
        pool = seconds[sizes == sizes[np.argmin(np.abs(sizes - heavy_atoms))]]
    pick = int(hashlib.sha1(inchikey.encode()).hexdigest(), 16) % len(pool)
    return float(pool[pick])


class TimedQM9Options(QM9Options):
    """Options of :class:`TimedQM9Oracle`: the QM9 property, the times file and source.

    Attributes:
        times: JSON file of :func:`measure_times` results, keyed by source.
        source: Which source's times (``xtb`` or ``dft``).
        scale: Factor on every sleep (stated with every result).
    """

    times: str
    source: str = "dft"
    scale: float = 1.0


class TimedQM9Oracle(QM9Oracle):
    """QM9's label after sleeping for a measured call time (the benchmark's oracle)."""

    name: ClassVar[str] = "timed_qm9"
    Options: ClassVar[type] = TimedQM9Options

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        # QM9's table is read when the worker builds the oracle, not in the first call:
        # a call's seconds are its sleep and look-up only
        super().evaluate("C")

    def evaluate(self, smiles: str) -> tuple[float, dict[str, Any]]:
        """The QM9 label, returned after the molecule's measured call time x ``scale``."""
        from bodisc.chem.molecule import record_from_smiles

        record = record_from_smiles(smiles)
        opts = self.options
        seconds = call_time(opts.times, opts.source, record.inchikey, record.heavy_atoms)
        time.sleep(seconds * opts.scale)
        return super().evaluate(smiles)


CAMPAIGN = """
name = "async_{source}_{mode}_{seed}"
random_seed = {seed}

[objective]
property = "dipole"
direction = "maximize"
unit = "D"

[pool]
source = "qm9"
subset = {pool}
n_seeds = {seeds}
candidates_per_iteration = {candidates}

[acquisition]
name = "logei"
batch_size = {batch}

[oracle]
name = "bodisc.bench.asynchronous:TimedQM9Oracle"

[oracle.options]
property = "dipole"
times = "{times}"
source = "{source}"
scale = {scale}

[budget]
oracle_calls = {budget}

[execution]
workers = {workers}
mode = "{mode}"
oracle_timeout_s = 3600
worker_memory_gb = 4

[paths]
store = "{root}/{name}.sqlite"
export_csv = "{root}/{name}.csv"
mlruns = "{root}/mlruns"
"""


def run_one_campaign(source: str, mode: str, seed: int, *, times: Path, root: Path,
                     budget: int = 100, workers: int = 4, batch: int = 8, scale: float = 0.1,
                     pool: int = 5000, n_seeds: int = 8, candidates: int = 1000
                     ) -> dict[str, Any]:
    """One campaign of the benchmark, from a fresh store; its record."""
    from bodisc.campaign import Campaign, discard_store
    from bodisc.config import load_campaign
    from bodisc.metrics import top_k_auc

    root.mkdir(parents=True, exist_ok=True)
    name = f"async_{source}_{mode}_{seed}"
    path = root / f"{name}.toml"
    path.write_text(CAMPAIGN.format(source=source, mode=mode, seed=seed, pool=pool,
                                    seeds=n_seeds, candidates=candidates, batch=batch,
                                    times=times.resolve(), scale=scale, budget=budget,
                                    workers=workers, root=root.resolve(), name="{name}"))
    config = load_campaign(path)
    discard_store(config)
    t0 = time.monotonic()
    with Campaign(config, str(path), tracking=False) as campaign:
        summary = campaign.run()
        wall = time.monotonic() - t0
        jobs = sorted(campaign.store.jobs(fidelity=None), key=lambda j: j.finished_at or 0)
        loop = campaign.store.get_meta("async/utilisation")
    busy = float(sum(j.seconds or 0.0 for j in jobs))
    calls = [(j.inchikey, j.value) for j in jobs]
    values = [j.value for j in jobs if j.value is not None]
    return {"source": source, "mode": mode, "seed": seed, "workers": workers,
            "batch": batch, "scale": scale, "budget": budget, "calls": len(jobs),
            "wall_s": wall, "utilisation": busy / (workers * wall) if wall > 0 else None,
            "busy_s": busy, "best": max(values) if values else None,
            "auc_top10": top_k_auc(calls, budget), "stop_reason": summary.stop_reason,
            "loop_utilisation": loop["utilisation"] if loop else None}


def _stored_loop_utilisation(store: Path) -> float | None:
    """``async/utilisation`` of a finished campaign's store (runs recorded before the key)."""
    from bodisc.store import CampaignStore

    if not store.exists():
        return None
    opened = CampaignStore(store, create=False)
    try:
        loop = opened.get_meta("async/utilisation")
    finally:
        opened.close()
    return float(loop["utilisation"]) if loop else None


def run_benchmark(sources: Sequence[str], seeds: Sequence[int], *, times: Path, out: Path,
                  budget: int = 100, workers: int = 4, batch: int = 8, scale: float = 0.1,
                  progress: Callable[[dict[str, Any]], None] | None = None,
                  **campaign: Any) -> list[dict[str, Any]]:
    """Every (seed, source, mode) campaign, resumable through ``out/async.jsonl``.

    Runs already there with the same budget, workers, batch and scale are not run again;
    each new one is appended as it finishes. Stores go to ``out/stores``; ``campaign``:
    further settings of :func:`run_one_campaign` (``pool``, ``n_seeds``,
    ``candidates``).
    """
    runs_path = out / "async.jsonl"
    done: dict[tuple[str, str, int], dict[str, Any]] = {}
    if runs_path.exists():
        for line in runs_path.read_text().splitlines():
            r = json.loads(line)
            if (r["budget"], r["workers"], r["batch"], r["scale"]) == (budget, workers,
                                                                       batch, scale):
                if r["mode"] == "async" and "loop_utilisation" not in r:
                    name = f"async_{r['source']}_{r['mode']}_{r['seed']}.sqlite"
                    r["loop_utilisation"] = _stored_loop_utilisation(out / "stores" / name)
                done[(r["source"], r["mode"], r["seed"])] = r
    for seed in seeds:
        for source in sources:
            for mode in MODES:
                if (source, mode, seed) in done:
                    continue
                r = run_one_campaign(source, mode, seed, times=times, root=out / "stores",
                                     budget=budget, workers=workers, batch=batch,
                                     scale=scale, **campaign)
                done[(source, mode, seed)] = r
                with runs_path.open("a") as fh:
                    fh.write(json.dumps(r) + "\n")
                if progress is not None:
                    progress(r)
    return list(done.values())


def summarise(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds per (source, mode), with async/batch wall."""
    rows = []
    for source in SOURCES:
        for mode in MODES:
            rs = [r for r in records if r["source"] == source and r["mode"] == mode]
            if not rs:
                continue
            row: dict[str, Any] = {"source": source, "mode": mode, "seeds": len(rs)}
            for key in ("wall_s", "utilisation", "loop_utilisation", "best", "auc_top10"):
                vals = [r[key] for r in rs if r.get(key) is not None]
                if vals:
                    row[key], row[f"{key}_sd"] = float(np.mean(vals)), float(np.std(vals))
            rows.append(row)
        both = {r["mode"]: r for r in rows if r["source"] == source}
        if len(both) == 2:
            both["async"]["wall_ratio"] = both["async"]["wall_s"] / both["batch"]["wall_s"]
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of :func:`summarise` rows."""
    out = ["| source | mode | seeds | wall (s) | async / batch wall | utilisation "
           "| loop utilisation | best (D) | top-10 AUC |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['wall_ratio']:.2f}" if "wall_ratio" in r else "-"
        loop = (f"{r['loop_utilisation']:.2f} ± {r['loop_utilisation_sd']:.2f}"
                if "loop_utilisation" in r else "-")
        out.append(f"| {r['source']} | {r['mode']} | {r['seeds']} | "
                   f"{r['wall_s']:.0f} ± {r['wall_s_sd']:.0f} | {ratio} | "
                   f"{r['utilisation']:.2f} ± {r['utilisation_sd']:.2f} | {loop} | "
                   f"{r['best']:.2f} ± {r['best_sd']:.2f} | "
                   f"{r['auc_top10']:.2f} ± {r['auc_top10_sd']:.2f} |")
    return "\n".join(out)


def write_figure(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """Wall time and worker utilisation of each seed, batch against async, per source.

    Left: wall time per seed (one marker per run, a line joining a seed's two modes);
    right: whole-command utilisation the same way. Written to ``path`` (PNG).
    """
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.8))
    sources = [x for x in SOURCES if any(r["source"] == x for r in records)]
    for key, ax, label in (("wall_s", axes[0], "wall time (s)"),
                           ("utilisation", axes[1], "worker utilisation")):
        for j, source in enumerate(sources):
            for seed in sorted({r["seed"] for r in records if r["source"] == source}):
                pair = {r["mode"]: r[key] for r in records
                        if r["source"] == source and r["seed"] == seed}
                xs = [i + 0.15 * (j - (len(sources) - 1) / 2) for i, m in enumerate(MODES)
                      if m in pair]
                ax.plot(xs, [pair[m] for m in MODES if m in pair], marker="o",
                        color=f"C{j}", alpha=0.8, label=source if seed == 0 else None)
        ax.set_xticks(range(len(MODES)), MODES)
        ax.set_xlim(-0.5, len(MODES) - 0.5)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].set_ylim(0, 1.02)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path, dpi=120)
