"""QM9 as a table, its geometries, and its QMex descriptors cached on disk.

QM9 (Ramakrishnan et al., Sci. Data 1, 140022, 2014): 130,831 molecules of up to nine
heavy atoms (C, N, O, F) with B3LYP/6-31G(2df,p) geometries and properties. The data
come from the ``qm9pack`` package (``qm9pack/data/qm9_part{1,2,3}.csv``), read directly:
``qm9pack`` itself imports ``pkg_resources`` and is never imported here.

* :func:`load_qm9`: the table, one row per molecule, indexed by QM9's own ``Index``
  (1 to 133,885 with gaps: the 3,054 molecules that failed QM9's consistency check are
  not in ``qm9pack``), labels in user units (:data:`QM9_COLUMNS`).
* :func:`qm9_geometry`: atomic numbers and DFT positions (Angstrom) of one row.
* :data:`QM9_TARGETS`: the benchmark targets, each with its label column and the cheap
  xTB descriptor (or combination) that is its analogue.
* :func:`qm9_descriptors`: QMex descriptors of QM9 molecules on QM9's own geometries
  (:func:`bodisc.descriptors.qmex.compute_qmex_on_geometry`), computed in worker
  processes and cached on disk, so nothing is computed twice and an interrupted run
  resumes.

Cache layout: ``<cache_dir>/qm9-<tier>-v<RECIPE_VERSION>/<first index>-<digest>.npz``,
one file per finished chunk of molecules, written atomically (temporary file, then
rename), so several processes may fill and read the same folder. Each file holds
``qm9_index`` (int64, ``(m,)``), ``names`` (``(k,)``), ``values`` (float64, ``(m, k)``,
NaN where a descriptor or the molecule failed), ``failure`` (``(m,)``, ``""`` or why the
molecule failed as a whole), ``note`` (``(m,)``, ``""`` or why no molecular graph could
be put on the geometry, which makes ``min(mbo)``, ``max(mbo)``, ``dEacid`` and
``dEbase`` NaN) and ``seconds`` (``(m,)``, wall time per molecule inside the worker).

The package ships the fast tier of all of QM9 in that format, one compressed file of
package data (``bodisc/data/descriptors/qm9-fast-v1.npz``, :func:`shipped_descriptors`,
written by ``bodisc bench qm9-descriptors --export``), found through
:mod:`importlib.resources` in a checkout, an editable install and a wheel alike: the
default cache reads it first (:func:`descriptor_cache`), so the whole-pool replay starts
without computing anything.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bodisc.descriptors.xtb import BOHR3_TO_ANGSTROM3, EV_PER_HARTREE

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "QM9_COLUMNS",
    "QM9_SIZE",
    "QM9_TARGETS",
    "QM9Target",
    "QM9Progress",
    "SHIPPED_DIR",
    "default_cache_dir",
    "descriptor_cache",
    "export_descriptors",
    "load_qm9",
    "qm9_descriptors",
    "qm9_geometry",
    "qm9_sample_indices",
    "shipped_descriptors",
]

#: Number of molecules in ``qm9pack`` (rows of :func:`load_qm9`).
QM9_SIZE = 130_831

#: Columns :func:`load_qm9` can give: name -> (qm9pack column, factor to user units,
#: unit). A factor of ``None`` marks a column passed through unchanged.
QM9_COLUMNS: dict[str, tuple[str, float | None, str]] = {
    "smiles": ("SMILES", None, "QM9's SMILES (of the GDB-17 graph)"),
    "inchi": ("InChi", None, "InChI of the B3LYP geometry"),
    "n_atoms": ("N_atoms", None, "atoms, hydrogens included"),
    "elements": ("Elements", None, "element symbols, as qm9pack writes them"),
    "xyz": ("XYZ_Ang", None, "B3LYP positions in Angstrom, as qm9pack writes them"),
    "dipole_D": ("Dipole_debye", 1.0, "D"),
    "alpha_bohr3": ("Polarizability_bohr3", 1.0, "Bohr^3"),
    "alpha_A3": ("Polarizability_bohr3", BOHR3_TO_ANGSTROM3, "Angstrom^3"),
    "homo_eV": ("HOMO_au", EV_PER_HARTREE, "eV"),
    "lumo_eV": ("LUMO_au", EV_PER_HARTREE, "eV"),
    "gap_eV": ("HOMO_LUMO_gap_au", EV_PER_HARTREE, "eV"),
    "r2_bohr2": ("R2_bohr2", 1.0, "Bohr^2"),
}

#: Symbols of the elements in QM9 -> atomic numbers.
_ELEMENTS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}

#: Molecules per worker task of :func:`qm9_descriptors` (amortises the task overhead).
CHUNK_SIZE = 50


@dataclass(frozen=True)
class QM9Target:
    """A QM9 property used as a benchmark target, and its cheap xTB analogue.

    Attributes:
        column: The label column of :func:`load_qm9` (B3LYP, user units).
        unit: Unit of the label and of the analogue.
        analogue_terms: The analogue as a linear combination of QMex descriptors,
            ``((descriptor, coefficient), ...)``, in the same unit as the label.
        twins: Other QMex descriptors that make a second cheap analogue of the same
            quantity: the vertical ionisation energy and electron affinity (``Eiv``,
            ``Eav``: ``Eiv - Eav`` is the xTB fundamental gap, which ranks QM9 for the
            gap about as well as ``lumo - homo``; figures:
            ``docs/benchmarks/qm9_replay.md``).
    """

    column: str
    unit: str
    analogue_terms: tuple[tuple[str, float], ...]
    twins: tuple[str, ...] = ()

    @property
    def descriptors(self) -> tuple[str, ...]:
        """The descriptor names the analogue needs."""
        return tuple(name for name, _ in self.analogue_terms)

    @property
    def proxy_descriptors(self) -> tuple[str, ...]:
        """The analogue's descriptors and its twins: what an ablation of the proxy drops."""
        return self.descriptors + self.twins

    def analogue(self, descriptors: pd.DataFrame) -> pd.Series:
        """The xTB analogue of the label, one value per row of ``descriptors``.

        Args:
            descriptors: QMex descriptors, e.g. from :func:`qm9_descriptors`.
        """
        name, coefficient = self.analogue_terms[0]
        total = coefficient * descriptors[name]
        for name, coefficient in self.analogue_terms[1:]:
            total = total + coefficient * descriptors[name]
        return total


#: Target name -> its QM9 label and xTB analogue (dipole: ``mu``; gap: ``lumo - homo``,
#: twins ``Eiv`` and ``Eav``; alpha: ``alpha``, both in Angstrom^3).
QM9_TARGETS: dict[str, QM9Target] = {
    "dipole": QM9Target("dipole_D", "D", (("mu", 1.0),)),
    "alpha": QM9Target("alpha_A3", "Angstrom^3", (("alpha", 1.0),)),
    "gap": QM9Target("gap_eV", "eV", (("lumo", 1.0), ("homo", -1.0)), ("Eiv", "Eav")),
    "homo": QM9Target("homo_eV", "eV", (("homo", 1.0),), ("Eiv",)),
    "lumo": QM9Target("lumo_eV", "eV", (("lumo", 1.0),), ("Eav",)),
}


# --------------------------------------------------------------------------- table


def _qm9_data_dir() -> Path:
    """The ``data`` folder of the installed ``qm9pack``, found without importing it."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("qm9pack is not installed; pip install qm9pack")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def load_qm9(columns: Iterable[str] | None = None) -> pd.DataFrame:
    """QM9 as a table: one row per molecule, indexed by QM9's ``Index`` (``qm9_index``).

    Reads only the CSV columns asked for (about 1 s for all of them).

    Args:
        columns: Names of :data:`QM9_COLUMNS` (``None`` for all, ``[]`` for the index
            alone): ``smiles``,
            ``inchi``, ``n_atoms``, ``elements`` and ``xyz`` (the geometry, for
            :func:`qm9_geometry`), ``dipole_D`` (D), ``alpha_bohr3`` (Bohr^3),
            ``alpha_A3`` (Angstrom^3), ``homo_eV``, ``lumo_eV``, ``gap_eV`` (eV, from
            Hartree with 1 Hartree = 27.211386 eV) and ``r2_bohr2`` (electronic spatial
            extent, Bohr^2).

    Returns:
        130,831 rows sorted by ``qm9_index`` (1 is methane, 3 water), the columns in
        the order asked.

    Raises:
        KeyError: For an unknown column; the message lists the known ones.
        ModuleNotFoundError: When ``qm9pack`` is not installed.
    """
    import pandas as pd

    wanted = list(QM9_COLUMNS) if columns is None else list(columns)
    unknown = [c for c in wanted if c not in QM9_COLUMNS]
    if unknown:
        raise KeyError(f"unknown QM9 column(s) {unknown}; known: {', '.join(QM9_COLUMNS)}")
    source = sorted({QM9_COLUMNS[c][0] for c in wanted} | {"Index"})
    files = sorted(_qm9_data_dir().glob("qm9_part*.csv"))
    if not files:
        raise FileNotFoundError(f"no qm9_part*.csv under {_qm9_data_dir()}; reinstall qm9pack")
    raw = pd.concat([pd.read_csv(f, usecols=source) for f in files], ignore_index=True)
    raw = raw.sort_values("Index")
    table = pd.DataFrame(index=pd.Index(raw["Index"].to_numpy(), name="qm9_index"))
    for name in wanted:
        column, factor, _ = QM9_COLUMNS[name]
        values = raw[column].to_numpy()
        table[name] = values if factor is None else values.astype(float) * factor
    return table


def qm9_geometry(row: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Atomic numbers and B3LYP positions of one QM9 molecule.

    Args:
        row: A row of :func:`load_qm9` with the ``elements`` and ``xyz`` columns.

    Returns:
        ``(numbers, positions)``: int array ``(n_atoms,)`` and float array
        ``(n_atoms, 3)`` in Angstrom, hydrogens included, in QM9's atom order.

    Raises:
        ValueError: When the two columns do not describe the same atoms.
    """
    symbols = [s.strip().strip("'\"") for s in str(row["elements"]).strip("[]").split(",")]
    try:
        numbers = np.array([_ELEMENTS[s] for s in symbols], dtype=int)
    except KeyError as exc:
        raise ValueError(f"element {exc} is not one of QM9's {sorted(_ELEMENTS)}") from None
    flat = str(row["xyz"]).replace("[", " ").replace("]", " ").replace(",", " ").split()
    positions = np.array(flat, dtype=float)
    if positions.size != 3 * len(numbers):
        raise ValueError(f"{len(numbers)} elements but {positions.size} coordinates")
    return numbers, positions.reshape(-1, 3)


def qm9_sample_indices(n: int, seed: int = 0) -> np.ndarray:
    """QM9 ``Index`` values of a reproducible sample of ``n`` molecules.

    The rows ``np.sort(np.random.default_rng(seed).choice(130831, n, replace=False))``
    of :func:`load_qm9` (positions in the table sorted by ``Index``), as ``Index``
    values: the sample whose descriptors :func:`qm9_descriptors` has cached for
    benchmarks (``n = 5000``, ``seed = 0`` first).

    Raises:
        ValueError: For ``n`` outside 0 to 130,831.
    """
    if not 0 <= n <= QM9_SIZE:
        raise ValueError(f"n must be between 0 and {QM9_SIZE}, got {n}")
    rows = np.sort(np.random.default_rng(seed).choice(QM9_SIZE, n, replace=False))
    return load_qm9([]).index.to_numpy()[rows]


# --------------------------------------------------------------------------- descriptors


@dataclass(frozen=True)
class QM9Progress:
    """Where a :func:`qm9_descriptors` call stands, passed to its ``progress`` callable.

    Attributes:
        total: Molecules asked for (distinct).
        cached: Of those, found in the cache at the start.
        computed: Computed so far in this call (failures included).
        failed: Of the computed ones, failed as a whole.
        elapsed_s: Seconds since the computation started (after reading the cache).
        molecules_per_s: ``computed / elapsed_s``.
    """

    total: int
    cached: int
    computed: int
    failed: int
    elapsed_s: float
    molecules_per_s: float


def default_cache_dir() -> Path:
    """``$BODISC_CACHE`` if set, else ``~/.cache/bodisc``."""
    return Path(os.environ.get("BODISC_CACHE") or "~/.cache/bodisc").expanduser()


_Record = tuple[int, list[float], str, str, float]  # index, values, failure, note, seconds
# _Cache.read_timed's last result, by (names, files' paths, mtimes and sizes)
_READ_MEMO: dict[tuple[Any, ...], dict[int, tuple[np.ndarray, str, str, float]]] = {}
_GRAPH_DESCRIPTORS = ("min(mbo)", "max(mbo)", "dEacid", "dEbase")


def _featurise_chunk(
    molecules: Sequence[tuple[int, str, np.ndarray, np.ndarray]], names: Sequence[str]
) -> list[_Record]:
    """Descriptors of a chunk of molecules on their given geometries (runs in a worker).

    A molecule that fails gives NaN and its reason; the chunk goes on.
    """
    from bodisc.descriptors.qmex import compute_qmex_on_geometry

    records = []
    for index, smiles, numbers, xyz in molecules:
        start = time.perf_counter()
        failure = note = ""
        try:
            values = compute_qmex_on_geometry(smiles, numbers, xyz, names)
            row = [values[n] for n in names]
        except Exception as exc:  # noqa: BLE001 - a failure is a value for this molecule
            failure = f"{type(exc).__name__}: {exc}"
            row = [math.nan] * len(names)
        else:
            note = _graph_note(smiles, numbers, xyz, values)
        records.append((int(index), row, failure, note, time.perf_counter() - start))
    return records


def _graph_note(smiles: str, numbers: np.ndarray, xyz: np.ndarray, values: dict[str, float]) -> str:
    """Why no molecular graph fits the geometry, when a graph descriptor came out NaN."""
    if not any(math.isnan(values.get(n, 0.0)) for n in _GRAPH_DESCRIPTORS):
        return ""
    from rdkit import Chem

    from bodisc.chem.molecule import parse_smiles
    from bodisc.descriptors.qmex import match_geometry

    try:
        match_geometry(Chem.AddHs(parse_smiles(smiles)), numbers, xyz)
    except ValueError as exc:
        return f"no graph on the geometry: {exc}"
    return ""


class _Cache:
    """The chunk files of one tier and recipe version (see the module docstring).

    Args:
        folder: The folder chunks are read from and written to.
        names: The tier's descriptor names; a file with other names is ignored.
        shipped: Read-only files in the same format read before the folder's (see
            :func:`descriptor_cache`).
    """

    def __init__(self, folder: Path, names: tuple[str, ...],
                 shipped: Sequence[Path] = ()) -> None:
        self.folder = folder
        self.names = names
        self.shipped = tuple(shipped)

    def read(self) -> dict[int, tuple[np.ndarray, str, str]]:
        """``{index: (values, failure, note)}``; a success beats a cached failure."""
        return {index: row[:3] for index, row in self.read_timed().items()}

    def read_timed(self) -> dict[int, tuple[np.ndarray, str, str, float]]:
        """As :meth:`read`, with each molecule's wall time in its worker (s) last.

        The files are read once per process while they stay the same (names, sizes and
        modification times): a pool campaign looks its candidates up every iteration, and
        reading all of QM9's chunks each time cost most of an asynchronous iteration. The
        result is shared: copy it before changing it.
        """
        paths = [*self.shipped, *sorted(self.folder.glob("*.npz"))]
        signature: list[tuple[str, int, int]] = []
        for path in paths:
            try:
                st = path.stat()
            except OSError:
                continue
            signature.append((str(path), st.st_mtime_ns, st.st_size))
        key = (self.names, tuple(signature))
        memo = _READ_MEMO.get(key)
        if memo is None:
            memo = self._read_files(paths)
            _READ_MEMO.clear()  # one cache state kept: the latest
            _READ_MEMO[key] = memo
        return memo

    def _read_files(self, paths: Sequence[Path]) -> dict[int, tuple[np.ndarray, str, str, float]]:
        found: dict[int, tuple[np.ndarray, str, str, float]] = {}
        for path in paths:
            try:
                with np.load(path, allow_pickle=False) as data:
                    if tuple(str(n) for n in data["names"]) != self.names:
                        continue
                    entries = zip(
                        data["qm9_index"].tolist(),
                        data["values"],
                        data["failure"].tolist(),
                        data["note"].tolist(),
                        data["seconds"].tolist(),
                        strict=True,
                    )
                    for index, values, failure, note, seconds in entries:
                        if index not in found or (found[index][1] and not failure):
                            found[index] = (values, failure, note, seconds)
            except (OSError, ValueError, KeyError):  # unreadable: computed again
                continue
        return found

    def write(self, records: Sequence[_Record]) -> Path:
        """Store one chunk atomically; returns the file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        indices = np.array([r[0] for r in records], dtype=np.int64)
        digest = hashlib.sha1(indices.tobytes()).hexdigest()[:12]
        path = self.folder / f"{int(indices.min()):06d}-{digest}.npz"
        save_npz_atomically(path, _chunk_arrays(records, self.names))
        return path


def _chunk_arrays(records: Sequence[_Record], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays of one cache file (module docstring) holding ``records``."""
    return {
        "qm9_index": np.array([r[0] for r in records], dtype=np.int64),
        "names": np.array(names),
        "values": np.array([r[1] for r in records], dtype=float).reshape(-1, len(names)),
        "failure": np.array([r[2] for r in records]),
        "note": np.array([r[3] for r in records]),
        "seconds": np.array([r[4] for r in records], dtype=float),
    }


#: Where the package ships descriptor files (``qm9-<tier>-v<RECIPE_VERSION>.npz``, written
#: by :func:`export_descriptors`): the package data folder ``bodisc/data/descriptors``, found
#: through :mod:`importlib.resources` (pip installs packages as plain folders, so it is a
#: real directory in a checkout, an editable install and a wheel install alike). It holds
#: the fast tier of every QM9 molecule, so the QM9 replay on the whole pool needs no xTB.
SHIPPED_DIR = Path(str(resources.files("bodisc.data").joinpath("descriptors")))


def shipped_descriptors(tier: str = "fast") -> list[Path]:
    """The descriptor files shipped with the package for one tier at the current recipe.

    Args:
        tier: A tier of :data:`bodisc.descriptors.TIERS`.

    Returns:
        The ``qm9-<tier>-v<RECIPE_VERSION>*.npz`` files of :data:`SHIPPED_DIR`, sorted;
        empty when none ships (the ``full`` tier, or a recipe version newer than the
        shipped file).

    Raises:
        KeyError: For an unknown tier.
    """
    from bodisc.descriptors import TIERS
    from bodisc.descriptors.qmex import RECIPE_VERSION

    if tier not in TIERS:
        raise KeyError(f"unknown descriptor tier {tier!r}; choose one of: {', '.join(TIERS)}")
    return sorted(SHIPPED_DIR.glob(f"qm9-{tier}-v{RECIPE_VERSION}*.npz"))


def descriptor_cache(tier: str = "fast", cache_dir: Path | str | None = None) -> _Cache:
    """The descriptor cache of one tier at the current recipe version.

    With the default root (``cache_dir=None``) the files shipped with the package for this
    tier and recipe version (:func:`shipped_descriptors`) are read too (read-only, before
    the cache's own chunks), so every install starts with them; an explicit ``cache_dir``
    is used alone.

    Args:
        tier: A tier of :data:`bodisc.descriptors.TIERS`.
        cache_dir: Root of the cache; ``None`` for :func:`default_cache_dir`.

    Raises:
        KeyError: For an unknown tier.
    """
    from bodisc.descriptors import TIERS
    from bodisc.descriptors.qmex import RECIPE_VERSION

    if tier not in TIERS:
        raise KeyError(f"unknown descriptor tier {tier!r}; choose one of: {', '.join(TIERS)}")
    stem = f"qm9-{tier}-v{RECIPE_VERSION}"
    root = default_cache_dir() if cache_dir is None else Path(cache_dir)
    shipped = shipped_descriptors(tier) if cache_dir is None else []
    return _Cache(root / stem, TIERS[tier], shipped)


def export_descriptors(path: Path | str, indices: Sequence[int] | np.ndarray,
                       tier: str = "fast", cache_dir: Path | str | None = None) -> Path:
    """Write the cached descriptors of ``indices`` to one compressed file.

    The file has the cache's chunk format (module docstring), so a cache reads it as
    one chunk: put it in a checkout's ``bodisc/data/descriptors/`` (:data:`SHIPPED_DIR`)
    to ship it with the package, or in a cache folder to use it there.

    Args:
        path: The ``.npz`` file to write.
        indices: QM9 indices, all already in the cache.
        tier: A tier of :data:`bodisc.descriptors.TIERS`.
        cache_dir: Root of the cache; ``None`` for :func:`default_cache_dir`.

    Returns:
        The file written.

    Raises:
        KeyError: For an unknown tier, or when molecules of ``indices`` are not cached.
    """
    cache = descriptor_cache(tier, cache_dir)
    rows = cache.read_timed()
    wanted = sorted({int(i) for i in np.asarray(indices).reshape(-1)})
    absent = [i for i in wanted if i not in rows]
    if absent:
        raise KeyError(f"{len(absent)} molecules are not in the {tier} descriptor cache "
                       f"(first: {absent[:5]}); compute them first")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [(i, *rows[i]) for i in wanted]
    save_npz_atomically(path, _chunk_arrays(records, cache.names), compressed=True)
    return path


def save_npz_atomically(path: Path, arrays: Mapping[str, np.ndarray],
                        compressed: bool = False) -> None:
    """Write ``arrays`` to ``path`` (``.npz``) through a temporary file and a rename.

    A reader never sees half a file, and a killed writer leaves none. ``compressed``
    deflates the arrays (``np.savez_compressed``).
    """
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            (np.savez_compressed if compressed else np.savez)(stream, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def qm9_descriptors(
    indices: Sequence[int] | np.ndarray,
    tier: str = "fast",
    workers: int = 2,
    cache_dir: Path | str | None = None,
    progress: Callable[[QM9Progress], None] | None = None,
    *,
    chunk_size: int = CHUNK_SIZE,
    chunk_timeout_s: float = 600.0,
    molecule_timeout_s: float = 120.0,
    retry_failed: bool = False,
) -> pd.DataFrame:
    """QMex descriptors of QM9 molecules on QM9's B3LYP geometries, cached on disk.

    Molecules not yet in the cache are computed with
    :func:`~bodisc.descriptors.qmex.compute_qmex_on_geometry` in ``workers``
    :class:`~bodisc.execution.LocalExecutor` processes (one OpenMP thread each),
    ``chunk_size`` molecules per task, each chunk written to the cache as soon as it
    is done. A chunk that runs past ``chunk_timeout_s`` or kills its worker is retried
    one molecule per task (``molecule_timeout_s`` each), so only the molecule at fault
    fails. A failed molecule is a row of NaN and a reason (``attrs["failures"]``); it
    is cached like a success, and computed again only with ``retry_failed``.

    Worker processes are spawned: a script calling this needs the usual
    ``if __name__ == "__main__":`` guard.

    Args:
        indices: QM9 ``Index`` values (see :func:`load_qm9`, :func:`qm9_sample_indices`).
        tier: A tier of :data:`bodisc.descriptors.TIERS`: ``"fast"`` (20 descriptors,
            about 0.1 s of CPU per molecule) or ``"full"`` (22, about 0.6 s).
        workers: Worker processes (at least 1).
        cache_dir: Root of the cache; ``None`` for :func:`default_cache_dir`. The files
            go to ``cache_dir/qm9-<tier>-v<RECIPE_VERSION>/``.
        progress: Called with a :class:`QM9Progress` after every finished chunk.
        chunk_size: Molecules per worker task.
        chunk_timeout_s: Time limit of one chunk, s.
        molecule_timeout_s: Time limit of one molecule when a chunk is retried alone, s.
        retry_failed: Compute the molecules whose cached result is a failure again.

    Returns:
        One row per distinct index, in the order given (index ``qm9_index``), one float
        column per descriptor of the tier (units: :data:`~bodisc.descriptors.qmex.
        DESCRIPTOR_UNITS`). ``attrs``: ``failures`` (``{index: reason}``), ``notes``
        (``{index: why the graph descriptors are NaN}``), ``computed`` and ``cached``
        (molecules computed in this call and found in the cache).

    Raises:
        KeyError: For an unknown tier or an index that is not in QM9.
        ValueError: For fewer than one worker or a chunk size below 1.
    """
    import pandas as pd

    cache = descriptor_cache(tier, cache_dir)
    if workers < 1 or chunk_size < 1:
        raise ValueError(f"workers and chunk_size must be >= 1, got {workers}, {chunk_size}")
    names = cache.names
    wanted = list(dict.fromkeys(int(i) for i in np.asarray(indices).reshape(-1)))
    found = cache.read()
    missing = [i for i in wanted if i not in found or (retry_failed and found[i][1])]
    n_cached = len(wanted) - len(missing)
    if missing:
        tracker = _Tracker(cache, progress, total=len(wanted), cached=n_cached)
        _compute(
            missing,
            names,
            tracker.land,
            workers=workers,
            chunk_size=chunk_size,
            chunk_timeout_s=chunk_timeout_s,
            molecule_timeout_s=molecule_timeout_s,
        )
        for index, row, failure, note, _ in tracker.records:
            found[index] = (np.asarray(row, dtype=float), failure, note)
    values = np.array([found[i][0] for i in wanted], dtype=float).reshape(-1, len(names))
    frame = pd.DataFrame(values, index=pd.Index(wanted, name="qm9_index"), columns=list(names))
    frame.attrs["failures"] = {i: found[i][1] for i in wanted if found[i][1]}
    frame.attrs["notes"] = {i: found[i][2] for i in wanted if found[i][2]}
    frame.attrs["computed"] = len(missing)
    frame.attrs["cached"] = n_cached
    return frame


class _Tracker:
    """Lands finished records: writes them to the cache, keeps them, reports progress."""

    def __init__(
        self,
        cache: _Cache,
        progress: Callable[[QM9Progress], None] | None,
        total: int,
        cached: int,
    ) -> None:
        self.cache, self.progress = cache, progress
        self.total, self.cached = total, cached
        self.records: list[_Record] = []
        self.start = time.perf_counter()

    def land(self, batch: list[_Record]) -> None:
        self.cache.write(batch)
        self.records.extend(batch)
        if self.progress is None:
            return
        elapsed = time.perf_counter() - self.start
        computed = len(self.records)
        self.progress(
            QM9Progress(
                total=self.total,
                cached=self.cached,
                computed=computed,
                failed=sum(1 for r in self.records if r[2]),
                elapsed_s=elapsed,
                molecules_per_s=computed / elapsed if elapsed > 0 else math.nan,
            )
        )


def _compute(
    missing: list[int],
    names: tuple[str, ...],
    land: Callable[[list[_Record]], None],
    *,
    workers: int,
    chunk_size: int,
    chunk_timeout_s: float,
    molecule_timeout_s: float,
) -> None:
    """Compute the missing molecules in worker processes; ``land`` each finished batch."""
    from bodisc.execution import LocalExecutor

    table = load_qm9(["smiles", "elements", "xyz"])
    absent = [i for i in missing if i not in table.index]
    if absent:
        raise KeyError(f"QM9 has no Index {absent[:10]} (valid: 1 to 133885, with gaps)")
    molecules = {}
    for index, row in table.loc[missing].iterrows():
        numbers, xyz = qm9_geometry(row)
        molecules[int(index)] = (int(index), str(row["smiles"]), numbers, xyz)
    order = [molecules[i] for i in missing]
    chunks = [order[k : k + chunk_size] for k in range(0, len(order), chunk_size)]
    retry: list[tuple[int, tuple[Any, ...]]] = []
    with LocalExecutor(workers) as executor:
        tasks = [(k, (chunk, names)) for k, chunk in enumerate(chunks)]
        for outcome in executor.run(_featurise_chunk, tasks, chunk_timeout_s):
            chunk = chunks[outcome.key]
            if outcome.failure is None:
                land(outcome.value)
            elif len(chunk) == 1:
                land([_failed(chunk[0], names, outcome.failure, outcome.seconds)])
            else:  # a hang or crash: find the molecule at fault, one per task
                retry.extend((m[0], ([m], names)) for m in chunk)
        for outcome in executor.run(_featurise_chunk, retry, molecule_timeout_s):
            if outcome.failure is None:
                land(outcome.value)
            else:
                land([_failed(molecules[outcome.key], names, outcome.failure, outcome.seconds)])


def _failed(
    molecule: tuple[int, str, np.ndarray, np.ndarray],
    names: Sequence[str],
    reason: str,
    seconds: float,
) -> _Record:
    return (molecule[0], [math.nan] * len(names), reason, "", seconds)
