"""Causal active learning on QM9 (Fox and Ghosh 2024): subset curves and the replay.

Part (a), subset curves: how fast the causal design (:mod:`bodisc.causal.design`) finds
a subset of QM9 whose DirectLiNGAM graph matches the graph of all of QM9, against the
random baseline, in two representations:

* ``rdkit``: the original's. Nine RDKit 2-D descriptors (:data:`RDKIT_DESCRIPTORS`,
  those the original's LiNGAM selection with polarisability as the sink keeps), QM9's
  B3LYP dipole (D) as the sink, clusters a 3-component Gaussian mixture on ``MolLogP``,
  ``TPSA`` and ``MolMR``. The descriptors of all of QM9 are computed once and cached
  (:func:`rdkit_descriptors`).
* ``qmex``: bodisc's fast-tier QMex descriptors (xTB on QM9's geometries, shipped with
  the package), nine of them (:data:`QMEX_DESCRIPTORS`) chosen the original's way (a
  DirectLiNGAM fit of all 20 with QM9's B3LYP polarisability as the sink, the nine with
  the largest mean absolute effect), the same sink (B3LYP dipole), clusters a
  3-component mixture on ``alpha``, ``dEw`` and ``dEo`` (:data:`QMEX_CLUSTER_ON`): xTB
  polarisability stands for molar refractivity, the water and octanol solvation energies
  for polar surface and (their difference) logP.

Every repeat starts from one random molecule and adds ``batch`` molecules per
iteration; the reference graph and the clusters are learnt once per representation,
and repeat ``r`` draws from ``np.random.default_rng(seed + r)``, so the causal and
random designs of a repeat start from the same molecule. Figures:
``docs/benchmarks/causal.md``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bodisc.plotting import pyplot, save

__all__ = ["QMEX_CLUSTER_ON", "QMEX_DESCRIPTORS", "RDKIT_CLUSTER_ON", "RDKIT_DESCRIPTORS",
           "Representation", "load_representation", "plot_curves", "rdkit_descriptors",
           "run_part_a", "select_by_lingam", "subset_curves", "summarise_curves"]

# ================================================================ (a) subset curves

#: The original's nine RDKit descriptors (its notebook's LiNGAM selection, polarisability
#: the sink, ``nkeep=9``), in its order.
RDKIT_DESCRIPTORS: tuple[str, ...] = (
    "ExactMolWt", "HeavyAtomMolWt", "NumValenceElectrons", "NumSaturatedRings", "NOCount",
    "NumHDonors", "NumAliphaticRings", "NumHeteroatoms", "NumSaturatedCarbocycles")
#: Columns of the original's Gaussian mixture.
RDKIT_CLUSTER_ON: tuple[str, ...] = ("MolLogP", "TPSA", "MolMR")
#: Nine QMex fast-tier descriptors, chosen by :func:`select_by_lingam` on all of QM9
#: (B3LYP polarisability the sink), in pool order.
QMEX_DESCRIPTORS: tuple[str, ...] = (
    "Ne/Na", "lumo", "Eiv", "Eav", "alpha", "alpha/Vm", "max(esp)", "dEw", "dEbase")
#: QMex columns of the Gaussian mixture (stand-ins for MolMR, TPSA and logP).
QMEX_CLUSTER_ON: tuple[str, ...] = ("alpha", "dEw", "dEo")
#: The sink of both representations: QM9's B3LYP dipole (:data:`bodisc.data.QM9_COLUMNS`).
SINK_COLUMN = "dipole_D"
SINK_NAME = "dipole"
#: Version of the RDKit descriptor cache file (raise it when the recipe changes).
RDKIT_CACHE_VERSION = 1
REPRESENTATIONS: tuple[str, ...] = ("rdkit", "qmex")
DESIGNS: tuple[str, ...] = ("causal", "random")
#: Keys of every record of :func:`subset_curves`.
RECORD_KEYS = ("representation", "design", "repeat", "iteration", "graph_distance")


@dataclass(frozen=True)
class Representation:
    """QM9 as one representation of part (a): the graph's variables and the clusters.

    Attributes:
        name: ``rdkit`` or ``qmex``.
        qm9_index: QM9 ``Index`` of each molecule, shape ``(N,)``.
        X: The graph's descriptors, shape ``(N, d)``.
        names: Their names, length ``d``.
        sink: The sink (B3LYP dipole, D), shape ``(N,)``.
        cluster_Z: The clustering columns, shape ``(N, c)``.
        cluster_names: Their names, length ``c``.
        note: Where the molecules came from and how many were left out.
    """

    name: str
    qm9_index: np.ndarray
    X: np.ndarray
    names: tuple[str, ...]
    sink: np.ndarray
    cluster_Z: np.ndarray
    cluster_names: tuple[str, ...]
    note: str


def _rdkit_values(smiles: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """RDKit descriptors of each SMILES, shape ``(n, len(names))``; NaN if unparsable."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import Descriptors

    RDLogger.DisableLog("rdApp.*")
    funcs = [getattr(Descriptors, n) for n in names]
    out = np.full((len(smiles), len(names)), np.nan)
    for i, s in enumerate(smiles):
        mol = Chem.MolFromSmiles(s)
        if mol is not None:
            out[i] = [f(mol) for f in funcs]
    return out


def rdkit_descriptors(cache_dir: Path | str | None = None, *,
                      indices: np.ndarray | None = None
                      ) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """The RDKit descriptors of part (a) for QM9 (graph and clustering columns).

    All of QM9 is computed once (about 25 s on one core) and cached in
    ``<cache_dir>/qm9-rdkit-fox2024-v<RDKIT_CACHE_VERSION>.npz``. Where ``indices`` are
    given and no cache exists, only those molecules are computed and nothing is cached.

    Args:
        cache_dir: Cache root (``None``: :func:`bodisc.data.qm9.default_cache_dir`).
        indices: QM9 indices wanted (``None``: all of QM9).

    Returns:
        ``(qm9_index (n,), names, values (n, 12))``; rows RDKit cannot parse are NaN.
    """
    from bodisc.data.qm9 import default_cache_dir, load_qm9, save_npz_atomically

    names = RDKIT_DESCRIPTORS + RDKIT_CLUSTER_ON
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = root / f"qm9-rdkit-fox2024-v{RDKIT_CACHE_VERSION}.npz"
    if path.exists():
        with np.load(path) as data:
            index, values = data["qm9_index"], data["values"]
            if tuple(str(n) for n in data["names"]) != names:
                raise ValueError(f"{path} holds other descriptors; delete it")
        if indices is not None:
            pos = np.searchsorted(index, indices)
            return np.asarray(indices, dtype=np.int64), names, values[pos]
        return index, names, values
    table = load_qm9(["smiles"])
    if indices is not None:
        table = table.loc[np.asarray(indices)]
    values = _rdkit_values(table["smiles"].astype(str).tolist(), names)
    index = table.index.to_numpy(dtype=np.int64)
    if indices is None:
        root.mkdir(parents=True, exist_ok=True)
        save_npz_atomically(path, {"qm9_index": index, "names": np.array(names),
                                   "values": values})
    return index, names, values


def select_by_lingam(X: np.ndarray, names: Sequence[str], target: np.ndarray, k: int,
                     rng: np.random.Generator) -> list[str]:
    """The original's feature selection: the ``k`` strongest causes in a LiNGAM graph.

    DirectLiNGAM on all columns with ``target`` a sink; columns ranked by the absolute
    mean of their column of ``B`` (their mean direct effect on every variable).

    Args:
        X: Descriptors, shape ``(n, d)``.
        names: Their names, length ``d``.
        target: The sink of the selection, shape ``(n,)``.
        k: Descriptors kept.
        rng: Generator of the fit's seed.

    Returns:
        The ``k`` names, strongest first.
    """
    from bodisc.causal.graph import fit_graph

    graph = fit_graph(X, names, target=target, rng=rng)
    score = np.abs(graph.B.mean(axis=0))[: len(names)]
    return [names[i] for i in np.argsort(-score, kind="stable")[:k]]


def _sample_rows(n: int, sample: int | None, sample_seed: int) -> np.ndarray:
    if sample is None or sample >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(sample_seed).choice(n, sample, replace=False))


def load_representation(name: str, *, sample: int | None = None, sample_seed: int = 0,
                        cache_dir: Path | str | None = None) -> Representation:
    """QM9 in representation ``name`` (``rdkit`` or ``qmex``), all of it or a sample.

    Args:
        name: ``rdkit`` or ``qmex``.
        sample: Keep a seeded random subset of this many molecules (``None``: all).
        sample_seed: Seed of the subset.
        cache_dir: Cache root of the RDKit descriptors.

    Raises:
        KeyError: For an unknown ``name``.
    """
    from bodisc.data import load_qm9

    if name == "rdkit":
        table = load_qm9([SINK_COLUMN])
        index = table.index.to_numpy(dtype=np.int64)
        index = index[_sample_rows(len(index), sample, sample_seed)]
        index, names, values = rdkit_descriptors(
            cache_dir, indices=None if sample is None else index)
        keep = np.all(np.isfinite(values), axis=1)
        index, values = index[keep], values[keep]
        sink = table.loc[index, SINK_COLUMN].to_numpy(dtype=float)
        d = len(RDKIT_DESCRIPTORS)
        note = (f"{len(index)} QM9 molecules, RDKit descriptors of QM9's SMILES; "
                f"{int((~keep).sum())} left out (RDKit could not parse them)")
        return Representation(name, index, values[:, :d], RDKIT_DESCRIPTORS, sink,
                              values[:, d:], RDKIT_CLUSTER_ON, note)
    if name == "qmex":
        from bodisc.bench.efficiency import load_pool

        pool = load_pool()
        rows = _sample_rows(len(pool), sample, sample_seed)
        names = list(pool.names)
        graph_cols = [names.index(n) for n in QMEX_DESCRIPTORS]
        cluster_cols = [names.index(n) for n in QMEX_CLUSTER_ON]
        X = pool.X[rows]
        return Representation(name, pool.qm9_index[rows], X[:, graph_cols],
                              QMEX_DESCRIPTORS, pool.labels["dipole"][rows],
                              X[:, cluster_cols], QMEX_CLUSTER_ON,
                              pool.note if sample is None else
                              f"{len(rows)} of {pool.note}")
    raise KeyError(f"representation {name!r}; choose from {', '.join(REPRESENTATIONS)}")


def subset_curves(representation: str | Representation, design: str, repeats: int = 10,
                  iterations: int = 40, batch: int = 20, n_clusters: int = 3, seed: int = 0,
                  *, sample: int | None = None, sample_seed: int = 0,
                  reference: Any = None, clusters: np.ndarray | None = None,
                  echo: Callable[[str], Any] | None = None) -> list[dict[str, Any]]:
    """Graph distance to the pool's graph against iterations, for every repeat.

    Args:
        representation: ``rdkit``, ``qmex`` or a loaded :class:`Representation`.
        design: ``causal`` or ``random``.
        repeats: Repeats (repeat ``r`` draws from ``np.random.default_rng(seed + r)``).
        iterations: Iterations per repeat (``1 + iterations * batch`` molecules).
        batch: Molecules per cluster and iteration.
        n_clusters: Gaussian-mixture clusters.
        seed: Base seed of the repeats; the clusters and the reference are seeded with it.
        sample: Limit the pool to a seeded subset of this many molecules (``None``: all).
        sample_seed: Seed of that subset.
        reference: The reference :class:`~bodisc.causal.graph.CausalGraph`, if already
            learnt (on ``representation``'s variables).
        clusters: Cluster labels of the pool, shape ``(N,)``, if already found.
        echo: Called with a line of progress per repeat.

    Returns:
        Records with the keys :data:`RECORD_KEYS`, iteration 0 (the start molecule)
        to ``iterations``.
    """
    from bodisc.causal.design import causal_design, cluster_pool
    from bodisc.causal.graph import fit_graph

    rep = (representation if isinstance(representation, Representation) else
           load_representation(representation, sample=sample, sample_seed=sample_seed))
    if reference is None:
        reference = fit_graph(rep.X, rep.names, target=rep.sink, target_name=SINK_NAME,
                              rng=np.random.default_rng([seed, 1]))
    if clusters is None:
        clusters = cluster_pool(rep.cluster_Z, n_clusters, np.random.default_rng([seed, 2]))
    size = 1 + iterations * batch
    records: list[dict[str, Any]] = []
    for r in range(repeats):
        t0 = time.perf_counter()
        out = causal_design(rep.X, rep.names, size=size, rng=np.random.default_rng(seed + r),
                            sink=rep.sink, sink_name=SINK_NAME, batch_per_cluster=batch,
                            clusters=clusters, start=1, method=design,  # type: ignore[arg-type]
                            reference=reference)
        records.extend({"representation": rep.name, "design": design, "repeat": r,
                        "iteration": it, "graph_distance": float(dist)}
                       for it, dist in enumerate(out.curve))
        if echo is not None:
            echo(f"{rep.name} {design} repeat {r}: {out.curve[-1]:.3f} after "
                 f"{len(out.curve) - 1} iterations ({time.perf_counter() - t0:.1f} s)")
    return records


def summarise_curves(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over repeats per representation, design and iteration.

    Args:
        records: Records of :func:`subset_curves`.

    Returns:
        Rows ``representation``, ``design``, ``iteration``, ``mean``, ``std`` (population,
        as the original's figure), ``n`` (repeats), sorted by those keys.
    """
    groups: dict[tuple[str, str, int], list[float]] = {}
    for rec in records:
        key = (rec["representation"], rec["design"], int(rec["iteration"]))
        groups.setdefault(key, []).append(float(rec["graph_distance"]))
    return [{"representation": k[0], "design": k[1], "iteration": k[2],
             "mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)}
            for k, v in sorted(groups.items())]


def plot_curves(records: Sequence[dict[str, Any]], path: Path | str) -> Path:
    """Mean graph distance per design (band: one standard deviation), a panel per representation.

    Args:
        records: Records of :func:`subset_curves`.
        path: The PNG to write.

    Returns:
        ``path``.
    """
    plt = pyplot()

    rows = summarise_curves(records)
    reps = [r for r in REPRESENTATIONS if any(x["representation"] == r for x in rows)]
    reps += sorted({x["representation"] for x in rows} - set(reps))
    fig, axes = plt.subplots(1, max(1, len(reps)), figsize=(4.2 * max(1, len(reps)), 3.2),
                             squeeze=False)
    colours = {"causal": "indianred", "random": "dimgray"}
    for ax, rep in zip(axes[0], reps, strict=False):
        for design in DESIGNS:
            sel = [x for x in rows if x["representation"] == rep and x["design"] == design]
            if not sel:
                continue
            it = np.array([x["iteration"] for x in sel])
            mean = np.array([x["mean"] for x in sel])
            std = np.array([x["std"] for x in sel])
            c = colours[design]
            ax.fill_between(it, mean - std, mean + std, color=c, alpha=0.25, lw=0)
            ax.plot(it, mean, color=c, lw=1.2, label=f"{design} (n={sel[0]['n']})")
        ax.set_title(rep)
        ax.set_xlabel("iteration")
        ax.set_ylabel("graph distance to the pool's graph")
        ax.set_ylim(bottom=0)
        ax.spines[["right", "top"]].set_visible(False)
        ax.legend(frameon=False, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    return save(fig, path, dpi=130)


def run_part_a(out_json: Path | str, repeats: int = 10, iterations: int = 40, *,
               figure: Path | str | None = None, echo: Callable[[str], Any] = print,
               batch: int = 20, n_clusters: int = 3, seed: int = 0,
               representations: Sequence[str] = REPRESENTATIONS,
               designs: Sequence[str] = DESIGNS, sample: int | None = None
               ) -> list[dict[str, Any]]:
    """Part (a): subset curves of every representation and design, to JSON and a figure.

    Args:
        out_json: The JSON file (a list of :func:`subset_curves` records).
        repeats: Repeats per design.
        iterations: Iterations per repeat.
        figure: The PNG of :func:`plot_curves` (``None``: none).
        echo: Called with lines of progress.
        batch: Molecules per cluster and iteration.
        n_clusters: Gaussian-mixture clusters.
        seed: Base seed.
        representations: Of :data:`REPRESENTATIONS`.
        designs: Of :data:`DESIGNS`.
        sample: Limit QM9 to a seeded subset of this many molecules (``None``: all).

    Returns:
        The records written.
    """
    from bodisc.causal.design import cluster_pool
    from bodisc.causal.graph import fit_graph

    records: list[dict[str, Any]] = []
    for name in representations:
        t0 = time.perf_counter()
        rep = load_representation(name, sample=sample)
        reference = fit_graph(rep.X, rep.names, target=rep.sink, target_name=SINK_NAME,
                              rng=np.random.default_rng([seed, 1]))
        clusters = cluster_pool(rep.cluster_Z, n_clusters, np.random.default_rng([seed, 2]))
        sizes = np.bincount(clusters, minlength=n_clusters).tolist()
        echo(f"{name}: {rep.note}; reference graph and clusters {sizes} in "
             f"{time.perf_counter() - t0:.1f} s")
        for design in designs:
            records += subset_curves(rep, design, repeats, iterations, batch, n_clusters,
                                     seed, reference=reference, clusters=clusters, echo=echo)
    out = Path(out_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(records, indent=0) + "\n")
    echo(f"wrote {out}")
    if figure is not None:
        echo(f"wrote {plot_curves(records, figure)}")
    return records


# ================================================================ (b) the QM9 replay
# Part (b) runs the replay benchmark's own machinery (bodisc.bench.efficiency, through
# ``bodisc bench causal --part b``): the methods ``causal_gp_ucb`` (the causal design
# takes the 100-molecule start, then the GP with UCB; efficiency.DESIGNED and
# efficiency.designed_start) and ``intervention`` (bodisc.causal.intervention through the
# step), beside ``gp_ucb``, ``cheap`` and ``random``; the records carry the replay keys.
