"""Draws the figures of the benchmark pages that show a measurement's result file.

Several benchmarks (throughput, memory, speed) write one JSON of figures rather than runs
to plot over seeds; their pages under ``docs/benchmarks`` show a figure drawn from that
committed file. :data:`PAGE_FIGURES` is the one list of them (page, result files, figure,
drawing function); ``bodisc bench figures`` redraws them from the committed files without
running any benchmark, so every figure comes from a file and a command.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bodisc.errors import InputError, RegistryError
from bodisc.plotting import pyplot, save


@dataclass(frozen=True)
class PageFigure:
    """One benchmark page's figure: where its data is and how it is drawn.

    Attributes:
        page: The page under ``docs/benchmarks`` that shows it.
        sources: The committed result files it is drawn from (relative to the root).
        out: The PNG written (relative to the root), beside the first source.
        draw: ``draw(data, plt) -> figure``; ``data`` holds each source's parsed content.
    """

    page: str
    sources: tuple[str, ...]
    out: str
    draw: Callable[[Sequence[Any], Any], Any]


def _load(path: Path) -> Any:
    """A result file: JSON, JSON lines (a list of records) or CSV (a list of rows)."""
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if path.suffix == ".csv":
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle))
    return json.loads(path.read_text())


def _bars(ax: Any, labels: Sequence[str], values: Sequence[float], fmt: str,
          color: Sequence[str] | str = "C0", log: bool = False) -> None:
    """Horizontal bars with their values written beside them, first label on top.

    With ``log`` the axis is logarithmic from 0.5 (for ratios, 1 marked).
    """
    y = np.arange(len(labels))[::-1]
    ax.barh(y, values, color=color)
    ax.set_yticks(y, labels)
    for yi, v in zip(y, values, strict=True):
        ax.text(v, yi, " " + fmt.format(v), va="center", fontsize=8)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(0.5, max(values) * 3)
        ax.axvline(1.0, color="k", lw=0.8)
    else:
        ax.set_xlim(0, max(values) * 1.25)
    ax.grid(axis="x", alpha=0.3)


def draw_descriptors(data: Sequence[Any], plt: Any) -> Any:
    """Descriptor throughput: one worker, two workers, and the CPU-bound ceiling."""
    (d,) = data
    fig, ax = plt.subplots(figsize=(6.4, 2.6))
    _bars(ax, ["1 worker (baseline)", f"{d['workers']} workers",
               f"ceiling ({d['workers']} x 1 / mean CPU s)"],
          [d["baseline_molecules_per_s"], d["molecules_per_s"],
           d["cpu_bound_molecules_per_s"]], "{:.1f}", ["0.6", "C0", "C2"])
    ax.set_xlabel("molecules per second")
    ax.set_title(f"{d['tier']} tier, {d['n_descriptors']} descriptors, {d['n_molecules']} QM9 "
                 f"molecules: {d['speedup']:.2f}x with {d['workers']} workers", fontsize=9)
    fig.tight_layout()
    return fig


def draw_oracle(data: Sequence[Any], plt: Any) -> Any:
    """Oracle throughput per executor and number of workers."""
    (d,) = data
    runs = d["runs"]
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    _bars(ax, [f"{r['executor']}, {r['workers']} worker{'s' * (r['workers'] > 1)}"
               for r in runs], [r["molecules_per_s"] for r in runs], "{:.1f}",
          [f"C{0 if r['executor'] == 'local' else 1}" for r in runs])
    ax.set_xlabel("molecules per second")
    ax.set_title(f"{d['oracle']}, {d['n_molecules']} molecules", fontsize=9)
    fig.tight_layout()
    return fig


def draw_ingest(data: Sequence[Any], plt: Any) -> Any:
    """Seconds of each ingest phase for one file of labels."""
    (d,) = data
    fig, ax = plt.subplots(figsize=(6.4, 2.4))
    _bars(ax, ["read and check", "first ingest (all)", "same file again"],
          [d["read_s"], d["ingest_s"], d["again_s"]], "{:.1f} s", ["C0", "C1", "0.6"])
    ax.set_xlabel("seconds")
    ax.set_title(f"{d['rows']:,} rows, {d['molecules']:,} molecules: "
                 f"{d['rows_per_s']:,.0f} rows/s", fontsize=9)
    fig.tight_layout()
    return fig


def draw_library(data: Sequence[Any], plt: Any) -> Any:
    """Library featurisation: throughput by workers; the killed run and its resume."""
    (d,) = data
    r = d["resume"]
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 2.8))
    rows = d["throughput"]
    _bars(axes[0], [f"{t['workers']} worker{'s' * (t['workers'] > 1)}" for t in rows],
          [t["molecules_per_s"] for t in rows], "{:.1f}")
    axes[0].set_xlabel("molecules per second")
    axes[0].set_title(f"{rows[0]['molecules']:,} molecules, {d['tier']} tier", fontsize=9)
    _bars(axes[1], ["committed before the kill", "computed after restart",
                    "recomputed (committed)", "recomputed (uncommitted)"],
          [r["committed_at_kill"], r["computed_after_restart"], r["recomputed_committed"],
           r["recomputed_uncommitted"]], "{:,.0f}", ["C0", "C1", "C3", "0.6"])
    axes[1].set_xlabel("molecules")
    axes[1].set_title(f"{r['molecules']:,} molecules, killed and restarted", fontsize=9)
    fig.tight_layout()
    return fig


def draw_multifidelity(data: Sequence[Any], plt: Any) -> Any:
    """DFT-only against multi-fidelity: calls and wall time to a value, best value."""
    (d,) = data
    runs = {"DFT only": d["dft_only"], "multi-fidelity": d["multi_fidelity"]}
    key = next(k for k in d["dft_only"] if k.startswith("until_reaching_"))
    target = key.removeprefix("until_reaching_").replace("_", " ")
    colors = ["0.6", "C0"]
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 2.6))
    _bars(axes[0], list(runs), [r[key]["target_calls"] for r in runs.values()], "{:.0f}",
          colors)
    axes[0].set_xlabel(f"DFT calls until {target}")
    _bars(axes[1], list(runs), [r[key]["wall_s"] for r in runs.values()], "{:.0f} s", colors)
    axes[1].set_xlabel(f"wall seconds until {target}")
    _bars(axes[2], list(runs), [r["best_dft_dipole_D"] for r in runs.values()], "{:.2f} D",
          colors)
    axes[2].set_xlabel(f"best DFT dipole after {d['dft_only']['dft_calls']} DFT calls")
    for ax in axes[1:]:
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def draw_pool_memory(data: Sequence[Any], plt: Any) -> Any:
    """Memory and seconds of one batch chosen from a pool of a million rows."""
    (d,) = data
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 2.6))
    _bars(axes[0], ["cache opened", "feature matrix gathered", "peak of the whole run"],
          [d["open_rss_mb"], d["matrix_rss_mb"], d["peak_above_baseline_mb"]],
          "{:,.0f} MB", ["C0", "C0", "C3"])
    axes[0].set_xlabel(f"RSS above the {d['baseline_rss_mb']:.0f} MB baseline (MB)")
    _bars(axes[1], ["open", "feature matrix", "GP fit", "scoring"],
          [d["open_s"], d["matrix_s"], d["fit_s"], d["score_s"]], "{:.1f} s")
    axes[1].set_xlabel("seconds")
    fig.suptitle(f"{d['rows']:,} rows x {d['d']} descriptors, {d['train']} labels, "
                 f"a batch of {d['q']} by {d['strategy']}", fontsize=9)
    fig.tight_layout()
    return fig


def draw_qmex_dgs(data: Sequence[Any], plt: Any) -> Any:
    """Share of the solvation set's best 10 % found per method: seeds and mean."""
    (records,) = data
    methods = list(dict.fromkeys(r["method"] for r in records))
    keys = sorted({k for r in records for k in r if k.startswith("top10pct_recall_")},
                  key=lambda k: int(k.rsplit("_", 1)[1]))
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    width = 0.8 / len(keys)
    for j, key in enumerate(keys):
        for i, method in enumerate(methods):
            vals = [r[key] for r in records if r["method"] == method]
            x = i + (j - (len(keys) - 1) / 2) * width
            ax.bar(x, np.mean(vals), width * 0.9, color=f"C{j}",
                   label=f"after {key.rsplit('_', 1)[1]} suggestions" if i == 0 else None)
            ax.scatter([x] * len(vals), vals, s=10, color="k", zorder=3)
    ax.set_xticks(range(len(methods)), methods)
    ax.set_ylabel(f"share of the best 10 % found (n = {records[0]['n_top']})")
    ax.set_ylim(0, 1.02)
    ax.set_title("bars: mean over seeds; dots: seeds", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def draw_refit(data: Sequence[Any], plt: Any) -> Any:
    """Seconds to update the GP after new labels: cold fit, warm refit, conditioning only."""
    (d,) = data
    rows = d["schedule"]
    starts = sorted({r["n0"] for r in rows})
    fig, axes = plt.subplots(1, len(starts), figsize=(3.4 * len(starts), 3.2), sharey=True,
                             squeeze=False)
    for ax, n0 in zip(axes[0], starts, strict=True):
        mine = [r for r in rows if r["n0"] == n0]
        x = [r["n1"] for r in mine]
        for key, label, color in (("cold_seconds", "cold fit", "0.5"),
                                  ("warm_seconds", "warm refit", "C0"),
                                  ("condition_seconds", "conditioning only", "C2")):
            pts = [(xi, r[key]) for xi, r in zip(x, mine, strict=True) if r.get(key)]
            ax.plot(*zip(*pts, strict=True), marker="o", color=color, label=label)
        ax.set_yscale("log")
        ax.set_title(f"from {n0} labels", fontsize=9)
        ax.set_xlabel("labels after the update")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("seconds (log)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{d['data']}, {d['threads']} thread", fontsize=9)
    fig.tight_layout()
    return fig


def draw_surrogate_speed(data: Sequence[Any], plt: Any) -> Any:
    """Each surrogate speed-up against its baseline, measured in the same run."""
    bench, nehvi = data
    items = [("scoring the pool (fast path vs botorch)", bench["scoring_speedup"]),
             ("warm refit vs cold fit", 1.0 / bench["warm_refit_ratio"]),
             ("batched fits vs a loop", bench["batched_fit_speedup"]),
             ("qLogNEHVI, cached posteriors", nehvi["nehvi_cached_posterior_speedup"]),
             ("qLogNEHVI, + lazy greedy", nehvi["nehvi_speedup"])]
    fig, ax = plt.subplots(figsize=(7.0, 2.9))
    values = [v for _, v in items]
    _bars(ax, [label for label, _ in items], values, "{:.1f}x",
          ["C0" if v >= 1 else "C3" for v in values], log=True)
    ax.set_xlabel("speed-up against the baseline (log; 1 = no gain)")
    ax.set_title(f"{bench['device']}; every ratio from one run", fontsize=9)
    fig.tight_layout()
    return fig


def draw_dipole_campaign(data: Sequence[Any], plt: Any) -> Any:
    """The dipole campaign's oracle calls in order: each label and the best so far."""
    (rows,) = data
    done = [r for r in rows if r["status"] == "done" and r["value"] not in ("", None)]
    failed = sum(r["status"] != "done" for r in rows)
    values = np.array([float(r["value"]) for r in done])
    calls = np.arange(1, len(values) + 1)
    seeds = np.array([r["origin"] == "seed" for r in done])
    fig, ax = plt.subplots(figsize=(6.8, 3.6))
    ax.scatter(calls[~seeds], values[~seeds], s=8, color="C0", alpha=0.6, label="a label")
    ax.scatter(calls[seeds], values[seeds], s=30, marker="*", color="C3",
               label="seed molecule")
    ax.plot(calls, np.maximum.accumulate(values), color="k", label="best so far")
    best = done[int(np.argmax(values))]
    ax.set_xlabel("oracle call (in the order committed)")
    ax.set_ylabel("xTB dipole (D)")
    ax.set_title(f"{len(rows)} calls, {failed} failed; best {values.max():.2f} D "
                 f"{best['smiles']}", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


#: Every benchmark page figure drawn from a committed result file, by name.
PAGE_FIGURES: dict[str, PageFigure] = {
    "descriptors": PageFigure("descriptors.md", ("docs/results/descriptors_fast.json",),
                              "docs/results/descriptors_fast.png", draw_descriptors),
    "oracle": PageFigure("oracle.md", ("docs/results/oracle.json",),
                         "docs/results/oracle.png", draw_oracle),
    "ingest": PageFigure("ingest.md", ("docs/results/ingest/ingest_10000.json",),
                         "docs/results/ingest/ingest_10000.png", draw_ingest),
    "library": PageFigure("library.md", ("docs/results/library.json",),
                          "docs/results/library.png", draw_library),
    "multifidelity": PageFigure("multifidelity.md", ("docs/results/multifidelity.json",),
                                "docs/results/multifidelity.png", draw_multifidelity),
    "pool_memory": PageFigure("pool_memory.md", ("docs/results/pool_memory.json",),
                              "docs/results/pool_memory.png", draw_pool_memory),
    "qmex_dGs": PageFigure("qmex_dGs.md", ("docs/results/qmex_dGs/qmex_dGs.jsonl",),
                           "docs/results/qmex_dGs/qmex_dGs.png", draw_qmex_dgs),
    "refit": PageFigure("refit.md", ("docs/results/refit/refit_trace.json",),
                        "docs/results/refit/refit_trace.png", draw_refit),
    "surrogate_speed": PageFigure("surrogate_speed.md", ("docs/results/surrogate_bench.json",
                                                         "docs/results/surrogate_nehvi.json"),
                                  "docs/results/surrogate_speed.png", draw_surrogate_speed),
    "dipole_campaign": PageFigure("dipole_campaign.md",
                                  ("docs/results/dipole_campaign/results.csv",),
                                  "docs/results/dipole_campaign/calls.png",
                                  draw_dipole_campaign),
}


def draw(names: Sequence[str] | None = None, root: Path = Path(".")) -> list[Path]:
    """Draw the named page figures (all when ``names`` is None) from their result files.

    Args:
        names: Keys of :data:`PAGE_FIGURES`.
        root: The repository root the files' paths are relative to.

    Returns:
        The PNG files written.

    Raises:
        RegistryError: An unknown name (one line, nothing drawn).
        InputError: A result file is missing (one line, nothing drawn).
    """
    chosen = list(PAGE_FIGURES) if names is None else list(names)
    unknown = [n for n in chosen if n not in PAGE_FIGURES]
    if unknown:
        raise RegistryError(f"bench figures --only: unknown figure {unknown[0]!r}; "
                            f"known: {', '.join(PAGE_FIGURES)}")
    missing = [s for n in chosen for s in PAGE_FIGURES[n].sources if not (root / s).exists()]
    if missing:
        raise InputError(missing[0], [f"{missing[0]}: result file missing; run the "
                                      f"benchmark its page names first"])
    plt = pyplot()
    written = []
    for name in chosen:
        spec = PAGE_FIGURES[name]
        fig = spec.draw([_load(root / s) for s in spec.sources], plt)
        written.append(save(fig, root / spec.out))
    return written
