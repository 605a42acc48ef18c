"""Candidate libraries: a pool read from a file (``.smi``, ``.csv``, ``.parquet``).

A campaign with ``[pool] source = "path/to/library.smi"`` chooses among the molecules of
that file as a QM9 campaign does among QM9's (:class:`LibraryPool` offers the interface
of :class:`~bodisc.chem.pool.QM9Pool`: ``draw``, ``get``, ``in``, ``len``). Before the
first draw every molecule of the library is featurised once (:func:`featurise_library`):

* the per-molecule function is the campaign's own
  (:func:`bodisc.execution.tasks.descriptor_task`: QMex descriptors of the tier, xTB on
  an RDKit conformer of the given seed), run in worker processes by bodisc's executor
  (:class:`~bodisc.execution.local.LocalExecutor`, or a Dask one), with a progress bar
  (done/total, molecules per second, time left);
* results are committed in chunks (256 molecules by default) to a
  :class:`~bodisc.runtime.columnar.ColumnarCache` keyed by InChIKey in a folder named by
  the descriptor recipe, so a run killed midway (even SIGKILL) loses at most the chunk
  being filled and the next run computes only the molecules not yet committed: none
  twice, none lost. A second campaign (or a resumed one) on the same library and recipe
  featurises nothing;
* molecules whose featurisation fails are stored with their reason, listed
  (:attr:`LibraryPool.failures`) and left out of the pool, as are rows of the file that
  do not parse or break the constraints (:attr:`LibraryPool.rejected`).

Identity is bodisc's: canonical SMILES without stereo and InChIKey
(:func:`bodisc.chem.molecule.record_from_smiles`); rows sharing an InChIKey are one
molecule, the first row. The parsed records are cached too (``<cache>/library/records-
<digest>.npz``, keyed by the file's bytes and the constraints), since RDKit needs about
1 ms a molecule.

Reading the file goes through one function, :func:`read_records`; when
``bodisc.data.tables.read_library`` lands it can take over there.

Memory: the pool keeps its members as arrays (InChIKeys ``S27``, SMILES, heavy atoms),
not one object per molecule, and the descriptors stay on disk (memory-mapped chunks);
:meth:`LibraryPool.vectors` gathers the rows asked for.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bodisc.runtime.columnar import KEY_DTYPE, ColumnarCache

__all__ = ["FeaturisationSummary", "LibraryMolecule", "LibraryPool", "featurise_library",
           "library_recipe", "read_records", "LIBRARY_SUFFIXES"]

#: File types a library may have.
LIBRARY_SUFFIXES = (".smi", ".csv", ".parquet")
#: Version of the library featurisation recipe (bump when the per-molecule function
#: changes what it returns for the same settings).
RECIPE_VERSION = 1
#: Version of the parsed-records cache format.
_RECORDS_VERSION = 1


@dataclass(frozen=True)
class LibraryMolecule:
    """One library molecule, shaped like a generator candidate for the store.

    Attributes:
        inchikey: Its identity.
        smiles: Canonical SMILES (no stereo).
        heavy_atoms: Number of non-hydrogen atoms.
        index: Its row in the library file (0-based, data rows only).
        name: Its name or id column, ``""`` without one.
    """

    inchikey: str
    smiles: str
    heavy_atoms: int
    index: int
    name: str = ""

    @property
    def origin(self) -> str:
        """Where it came from, as the store records it (``library:<name or row>``)."""
        return f"library:{self.name or self.index}"

    @property
    def parents(self) -> tuple[str, ...]:
        """Library molecules have no parents."""
        return ()


@dataclass
class Records:
    """The parsed rows of a library file, one molecule per InChIKey.

    Attributes:
        inchikey: InChIKeys, shape ``(n,)`` (``S27``), in file order.
        smiles: Canonical SMILES, shape ``(n,)`` (``str`` objects).
        heavy_atoms: Shape ``(n,)``.
        index: Row of each molecule in the file (data rows, 0-based), shape ``(n,)``.
        name: Names (``""`` where none), shape ``(n,)``.
        rejected: ``(row, text, reason)`` of rows left out (unparsable, constraint,
            duplicate InChIKey).
    """

    inchikey: np.ndarray
    smiles: np.ndarray
    heavy_atoms: np.ndarray
    index: np.ndarray
    name: np.ndarray
    rejected: list[tuple[int, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inchikey)


def _raw_rows(path: Path) -> list[tuple[str, str]]:
    """``(smiles, name)`` of every data row of a library file."""
    suffix = path.suffix.lower()
    if suffix == ".smi":
        rows = []
        for line in path.read_text().splitlines():
            parts = line.split(maxsplit=1)
            if not parts or parts[0].startswith("#"):
                continue
            if not rows and parts[0].lower() == "smiles":  # a header line
                continue
            rows.append((parts[0], parts[1].strip() if len(parts) > 1 else ""))
        return rows
    import pandas as pd

    frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    lower = {str(c).lower(): c for c in frame.columns}
    col = lower.get("smiles")
    if col is None:
        raise ValueError(f"{path}: no 'smiles' column (columns: {list(frame.columns)})")
    name_col = next((lower[c] for c in ("name", "id", "title") if c in lower), None)
    smiles = frame[col].astype(str).tolist()
    names = (frame[name_col].astype(str).tolist() if name_col is not None
             else [""] * len(smiles))
    return list(zip(smiles, names, strict=True))


def read_records(path: str | Path, constraints: Any = None,
                 cache_dir: str | Path | None = None) -> Records:
    """The molecules of a library file, parsed once and cached.

    Args:
        path: A ``.smi`` (SMILES, then an optional name, per line), ``.csv`` or
            ``.parquet`` (a ``smiles`` column and an optional ``name``/``id`` one).
        constraints: A :class:`~bodisc.chem.molecule.ConstraintSpec` the molecules must
            meet (``None``: any molecule RDKit accepts).
        cache_dir: Root of the cache (``None``: :func:`bodisc.data.default_cache_dir`).

    Returns:
        The :class:`Records`.
    """
    from bodisc.chem.molecule import check_constraints, parse_smiles, to_record
    from bodisc.data.qm9 import default_cache_dir, save_npz_atomically
    from bodisc.errors import InvalidMoleculeError

    path = Path(path)
    if path.suffix.lower() not in LIBRARY_SUFFIXES:
        raise ValueError(f"{path}: a library must be one of {', '.join(LIBRARY_SUFFIXES)}")
    digest = hashlib.sha256(path.read_bytes())
    spec = None if constraints is None else {
        k: getattr(constraints, k, None) for k in ("allowed_elements", "max_heavy_atoms",
                                                   "min_heavy_atoms", "charge_rule",
                                                   "forbidden_substructures")}
    digest.update(json.dumps([_RECORDS_VERSION, path.suffix.lower(), spec],
                             default=list).encode())
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = root / "library" / f"records-{digest.hexdigest()[:20]}.npz"
    if cached.exists():
        with np.load(cached, allow_pickle=False) as data:
            rejected = json.loads(str(data["rejected"]))
            return Records(data["inchikey"], data["smiles"].astype(object),
                           data["heavy_atoms"], data["index"], data["name"].astype(object),
                           [tuple(r) for r in rejected])
    keys: list[str] = []
    smiles: list[str] = []
    heavy: list[int] = []
    index: list[int] = []
    names: list[str] = []
    rejected: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    for row, (text, name) in enumerate(_raw_rows(path)):
        try:
            mol = parse_smiles(text)
            reason = check_constraints(mol, constraints) if constraints is not None else None
            rec = None if reason else to_record(mol)
        except InvalidMoleculeError as exc:
            reason, rec = str(exc), None
        if rec is None:
            rejected.append((row, text, reason or "rejected"))
            continue
        if rec.inchikey in seen:
            rejected.append((row, text, f"same InChIKey as row {seen[rec.inchikey]}"))
            continue
        seen[rec.inchikey] = row
        keys.append(rec.inchikey)
        smiles.append(rec.smiles)
        heavy.append(rec.heavy_atoms)
        index.append(row)
        names.append(name)
    records = Records(np.array(keys, dtype=KEY_DTYPE), np.array(smiles, dtype=object),
                      np.array(heavy, dtype=np.int16), np.array(index, dtype=np.int64),
                      np.array(names, dtype=object), rejected)
    cached.parent.mkdir(parents=True, exist_ok=True)
    save_npz_atomically(cached, {
        "inchikey": records.inchikey, "smiles": np.array(smiles, dtype=str),
        "heavy_atoms": records.heavy_atoms, "index": records.index,
        "name": np.array(names, dtype=str), "rejected": np.array(json.dumps(rejected))})
    return records


def library_recipe(names: Sequence[str], conformer_seed: int, method: str) -> dict[str, Any]:
    """The descriptor recipe a library cache is keyed by (its folder's digest).

    Args:
        names: The descriptors computed (a whole tier: :data:`bodisc.descriptors.TIERS`).
        conformer_seed: Seed of the RDKit conformer.
        method: The xTB method of ``[descriptors]``.
    """
    return {"kind": "qmex", "names": list(names), "conformer_seed": int(conformer_seed),
            "method": method, "version": RECIPE_VERSION}


@dataclass(frozen=True)
class FeaturisationSummary:
    """What one :func:`featurise_library` call did.

    Attributes:
        total: Molecules of the library.
        skipped: Already in the cache (featurised or failed) before the call.
        done: Featurised by this call.
        failed: Failed in this call (reasons in the cache).
        elapsed_s: Wall time of the call.
        molecules_per_s: ``(done + failed) / elapsed_s``.
    """

    total: int
    skipped: int
    done: int
    failed: int
    elapsed_s: float
    molecules_per_s: float


def _progress(enabled: bool) -> Any:
    """A rich progress bar: done/total, molecules per second, elapsed and time left."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text("-- mol/s" if speed is None else f"{speed:.2f} mol/s")

    return Progress(TextColumn("featurising"), BarColumn(), MofNCompleteColumn(),
                    RateColumn(), TimeElapsedColumn(), TextColumn("left"),
                    TimeRemainingColumn(), console=Console(file=sys.stderr),
                    disable=not enabled)


def featurise_library(keys: Sequence[str] | np.ndarray, smiles: Sequence[str] | np.ndarray,
                      cache: ColumnarCache, *, conformer_seed: int, executor: Any = None,
                      workers: int = 1, timeout_s: float = 120.0, chunk_size: int = 256,
                      progress: bool = True, fn: Callable[..., Any] | None = None
                      ) -> FeaturisationSummary:
    """Featurise the molecules not yet in the cache, committing chunk by chunk.

    Args:
        keys: InChIKeys, shape ``(n,)``.
        smiles: Their SMILES, shape ``(n,)``.
        cache: Where vectors and failures go (its ``names`` are the descriptors computed).
        conformer_seed: Seed of the conformer (the recipe's).
        executor: Anything with ``run(fn, tasks, timeout_s)`` yielding outcomes with
            ``key``, ``value``, ``failure`` (bodisc's local or Dask executor); ``None``:
            a :class:`~bodisc.execution.local.LocalExecutor` of ``workers`` processes,
            closed at the end.
        workers: Worker processes of the executor made here.
        timeout_s: Time limit of one molecule.
        chunk_size: Molecules per commit; a kill loses at most this many (uncommitted).
        progress: Show the progress bar (on stderr).
        fn: The per-molecule function ``fn(smiles, names, seed) -> (vector, seconds)``;
            ``None``: :func:`bodisc.execution.tasks.descriptor_task`.

    Returns:
        The :class:`FeaturisationSummary`.
    """
    from bodisc.execution.local import LocalExecutor
    from bodisc.execution.tasks import descriptor_task

    start = time.perf_counter()
    fn = fn or descriptor_task
    keys = [k.decode() if isinstance(k, bytes) else str(k) for k in keys]
    known = cache.known(keys)
    todo = [(k, s) for k, s in zip(keys, smiles, strict=True) if k not in known]
    names = tuple(cache.names)
    done = failed = 0
    own = executor is None
    if own:
        executor = LocalExecutor(workers)
    buf_keys: list[str] = []
    buf_values: list[list[float]] = []
    buf_failed: dict[str, str] = {}

    def commit() -> None:
        cache.append(buf_keys, np.asarray(buf_values, dtype=float).reshape(
            len(buf_keys), len(names)), buf_failed)
        buf_keys.clear()
        buf_values.clear()
        buf_failed.clear()

    try:
        with _progress(progress and bool(todo)) as bar:
            task = bar.add_task("featurise", total=len(todo))
            if todo:
                tasks = [(k, (str(s), names, conformer_seed)) for k, s in todo]
                for out in executor.run(fn, tasks, timeout_s):
                    if out.failure is None:
                        vector, _seconds = out.value
                        buf_keys.append(out.key)
                        buf_values.append([float(v) for v in vector])
                        done += 1
                    else:
                        buf_failed[out.key] = out.failure
                        failed += 1
                    bar.advance(task)
                    if len(buf_keys) + len(buf_failed) >= chunk_size:
                        commit()
            if buf_keys or buf_failed:
                commit()
    finally:
        if own:
            executor.close()
    elapsed = time.perf_counter() - start
    return FeaturisationSummary(len(keys), len(known), done, failed, elapsed,
                                (done + failed) / elapsed if elapsed > 0 else 0.0)


class LibraryPool:
    """The featurised molecules of a library file, as a candidate pool.

    Build it with :meth:`open` (reads, featurises what is missing, then builds); the
    constructor takes records and a cache that are ready.

    Args:
        records: The library's parsed molecules.
        cache: Its descriptor cache; molecules without a vector there are left out.
        source: The file, for messages.

    Attributes:
        failures: ``{inchikey: reason}`` of library molecules whose featurisation failed.
        rejected: ``(row, text, reason)`` of file rows that are not molecules of the pool.
    """

    def __init__(self, records: Records, cache: ColumnarCache, source: str = "") -> None:
        self.source = source
        self.cache = cache
        member = np.isin(records.inchikey, cache.keys())
        self._keys = records.inchikey[member]
        self._smiles = records.smiles[member]
        self._heavy = records.heavy_atoms[member]
        self._index = records.index[member]
        self._name = records.name[member]
        self.failures = {k.decode(): cache.failures[k.decode()]
                         for k in records.inchikey[~member].tolist()
                         if k.decode() in cache.failures}
        self.rejected = list(records.rejected)
        order = np.argsort(self._keys)
        self._sorted, self._order = self._keys[order], order

    @classmethod
    def open(cls, path: str | Path, *, names: Sequence[str], conformer_seed: int = 0,
             method: str = "GFN2-xTB", constraints: Any = None,
             cache_dir: str | Path | None = None, executor: Any = None, workers: int = 1,
             timeout_s: float = 120.0, chunk_size: int = 256, progress: bool = True,
             dtype: str = "float64") -> LibraryPool:
        """Read a library, featurise the molecules not yet cached, and build its pool.

        Args:
            path: The library file.
            names: Descriptors to compute (a whole tier: the cache holds the tier).
            conformer_seed: Seed of the conformer.
            method: xTB method (part of the recipe's key).
            constraints: Optional constraints on the molecules.
            cache_dir: Root of the caches (``None``: :func:`bodisc.data.default_cache_dir`);
                descriptors go to ``<root>/library/qmex-<digest>/``.
            executor: Executor of the featurisation (``None``: a local one).
            workers: Its worker processes when made here.
            timeout_s: Time limit of one molecule.
            chunk_size: Molecules per commit.
            progress: Show the progress bar.
            dtype: Storage type of the descriptors (float64: the values a campaign
                stores are those xTB returned, bit for bit).
        """
        from bodisc.data.qm9 import default_cache_dir

        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        records = read_records(path, constraints, root)
        cache = ColumnarCache(root / "library", library_recipe(names, conformer_seed, method),
                              names, dtype=dtype, prefix="qmex")
        featurise_library(records.inchikey, records.smiles, cache,
                          conformer_seed=conformer_seed, executor=executor, workers=workers,
                          timeout_s=timeout_s, chunk_size=chunk_size, progress=progress)
        return cls(records, cache, str(path))

    def __len__(self) -> int:
        return len(self._keys)

    def _pos(self, inchikeys: Iterable[str]) -> np.ndarray:
        """Member position of each key, ``-1`` where not a member."""
        keys = np.asarray(list(inchikeys), dtype=KEY_DTYPE)
        if not len(self._sorted) or not len(keys):
            return np.full(len(keys), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._sorted, keys), len(self._sorted) - 1)
        return np.where(self._sorted[pos] == keys, self._order[pos], -1)

    def __contains__(self, inchikey: object) -> bool:
        return isinstance(inchikey, str) and bool(self._pos([inchikey])[0] >= 0)

    def _member(self, i: int) -> LibraryMolecule:
        return LibraryMolecule(self._keys[i].decode(), str(self._smiles[i]),
                               int(self._heavy[i]), int(self._index[i]), str(self._name[i]))

    def get(self, inchikey: str) -> LibraryMolecule | None:
        """The pool molecule of an InChIKey, or ``None``."""
        i = int(self._pos([inchikey])[0])
        return None if i < 0 else self._member(i)

    def draw(self, n: int | None, rng: np.random.Generator,
             exclude: Sequence[str] | set[str] = ()) -> list[LibraryMolecule]:
        """Up to ``n`` pool molecules not in ``exclude``, at random (all with ``None``).

        Same rule as :meth:`bodisc.chem.pool.QM9Pool.draw`: the members left in file
        order, ``rng.choice`` of ``n`` of them without replacement, returned in file order.

        Args:
            n: How many (``None``: every one left, in pool order).
            rng: The random generator of the draw.
            exclude: InChIKeys never to return.

        Returns:
            Distinct pool molecules; fewer than ``n`` when the pool runs out.
        """
        left = np.arange(len(self._keys))
        skip = self._pos(exclude)
        if (skip >= 0).any():
            keep = np.ones(len(self._keys), dtype=bool)
            keep[skip[skip >= 0]] = False
            left = left[keep]
        if n is not None and n < len(left):
            left = left[np.sort(rng.choice(len(left), size=n, replace=False))]
        return [self._member(int(i)) for i in left]

    def vectors(self, inchikeys: Sequence[str], dtype: str = "float64"
                ) -> tuple[np.ndarray, np.ndarray]:
        """Descriptors of molecules from the cache: ``(X (m, d), found (m,))``."""
        return self.cache.vectors(inchikeys, dtype)
