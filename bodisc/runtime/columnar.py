"""A chunked, append-only columnar cache of descriptor vectors, keyed by InChIKey.

Descriptors of a large candidate library (up to millions of molecules) live here, not in
rows of JSON: each commit is one *chunk* of three files in the recipe's folder,

* ``<chunk>.values.npy``: the vectors of the molecules that were featurised, shape
  ``(n, d)``, float32 or float64;
* ``<chunk>.failed.json``: ``{inchikey: reason}`` of the molecules that could not be;
* ``<chunk>.keys.npy``: the InChIKeys of the ``n`` rows of ``values`` (``S27`` bytes).

Each file is written to a temporary name, fsync-ed and renamed; the keys file is written
last and is the chunk's commit mark. A process killed at any point therefore leaves whole
chunks and at most some orphan files, which are ignored (and swept) on open: a molecule is
either committed or absent, never half-written. The index ``InChIKey -> (chunk, row)`` is
rebuilt on open from the keys files (a sorted ``S27`` array and ``np.searchsorted``: 27
bytes plus 8 per molecule, about 50 MB for a million, instead of a dict's ~150 MB).

The folder is keyed by the descriptor *recipe* (:func:`recipe_digest` of a JSON-able
mapping: descriptor names, tier, conformer seed, method, version), so a change of recipe
starts a fresh cache beside the old one; ``recipe.json`` in the folder records it.

One writer at a time per folder is assumed (the featurisation driver); readers may open
the folder at any time and see the chunks committed so far. Chunk names carry a sequence
number and a random suffix, so two writers would not overwrite each other's chunks, but a
molecule could then be committed twice (the index keeps the first).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ColumnarCache", "recipe_digest", "KEY_DTYPE"]

#: InChIKeys are 27 ASCII characters.
KEY_DTYPE = np.dtype("S27")
_KEYS = ".keys.npy"
_VALUES = ".values.npy"
_FAILED = ".failed.json"


def recipe_digest(recipe: Mapping[str, Any]) -> str:
    """A short stable digest of a JSON-able descriptor recipe (16 hex characters)."""
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: A temporary file older than this (seconds) is a dead writer's whatever its name says.
STALE_TMP_S = 3600.0


def _abandoned(tmp: Path) -> bool:
    """Whether a temporary file was left by a writer that is gone.

    Its name carries the writing process's id (``.<pid>-*.tmp``); a reader must never
    delete a file another process is still writing (it would fail that writer's rename).
    A file whose process is no longer alive on this machine is abandoned, and so is one
    older than :data:`STALE_TMP_S` (a writer elsewhere on a shared file system) or one
    without a process id (written by an older bodisc).
    """
    import time

    try:
        age = time.time() - tmp.stat().st_mtime
    except FileNotFoundError:
        return False
    if age > STALE_TMP_S:
        return True
    pid_text = tmp.name[1:].split("-", 1)[0]
    if not pid_text.isdigit() or "-" not in tmp.name:
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def _write_atomically(path: Path, write: Any) -> None:
    """Write through ``write(stream)`` to a temporary file, fsync it, rename it to ``path``."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{os.getpid()}-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ColumnarCache:
    """Descriptor vectors of one recipe, in append-only chunks, indexed by InChIKey.

    Args:
        root: Folder holding one sub-folder per recipe.
        recipe: The descriptor recipe (JSON-able); its digest names the sub-folder.
        names: Descriptor names, the columns of every vector (``d`` of them).
        dtype: Storage type of the values (``float32`` halves the disk and memory of
            ``float64``; QMex descriptors carry far fewer than 7 significant digits of
            meaning, but a campaign that must match the store bit-for-bit uses float64).
        prefix: Start of the sub-folder's name (``<prefix>-<digest>``).

    Attributes:
        folder: The recipe's folder.
        names: The column names.
        written: Molecules committed by this object (vectors and failures), a counter
            tests and the progress report read.
    """

    def __init__(self, root: str | Path, recipe: Mapping[str, Any], names: Sequence[str],
                 dtype: str | np.dtype = "float64", prefix: str = "descriptors") -> None:
        self.recipe = dict(recipe)
        self.names = tuple(names)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype("float32"), np.dtype("float64")):
            raise ValueError(f"dtype must be float32 or float64, not {self.dtype}")
        self.folder = Path(root) / f"{prefix}-{recipe_digest(self.recipe)}"
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "recipe.json"
        if not meta.exists():
            body = json.dumps({"recipe": self.recipe, "names": list(self.names),
                               "dtype": self.dtype.name}, indent=1).encode()
            _write_atomically(meta, lambda s: s.write(body))
        self.written = 0
        self.refresh()

    # -- reading ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Rebuild the index from the chunks committed so far (anyone's)."""
        for tmp in self.folder.glob(".*.tmp"):  # a killed writer's leftovers
            if _abandoned(tmp):
                tmp.unlink(missing_ok=True)
        self._chunks: list[str] = sorted(p.name[: -len(_KEYS)]
                                         for p in self.folder.glob(f"*{_KEYS}"))
        keys, chunk_of, row_of = [], [], []
        self.failures: dict[str, str] = {}
        for c, chunk in enumerate(self._chunks):
            k = np.load(self.folder / f"{chunk}{_KEYS}", allow_pickle=False)
            keys.append(k.astype(KEY_DTYPE, copy=False))
            chunk_of.append(np.full(len(k), c, dtype=np.int32))
            row_of.append(np.arange(len(k), dtype=np.int32))
            failed = self.folder / f"{chunk}{_FAILED}"
            if failed.exists():
                for key, reason in json.loads(failed.read_text()).items():
                    self.failures.setdefault(key, reason)
        all_keys = np.concatenate(keys) if keys else np.zeros(0, KEY_DTYPE)
        # stable sort: for a key committed twice the first chunk wins
        order = np.argsort(all_keys, kind="stable")
        sorted_keys = all_keys[order]
        first = np.ones(len(sorted_keys), dtype=bool)
        first[1:] = sorted_keys[1:] != sorted_keys[:-1]
        self._keys = sorted_keys[first]
        self._chunk = (np.concatenate(chunk_of) if chunk_of
                       else np.zeros(0, np.int32))[order][first]
        self._row = (np.concatenate(row_of) if row_of else np.zeros(0, np.int32))[order][first]
        self._mapped: dict[int, np.ndarray] = {}
        self._pending: list[tuple[int, np.ndarray]] = []
        failed = list(self.failures)
        for key, pos in zip(failed, self._find(np.array(failed, dtype=KEY_DTYPE)), strict=True):
            if pos >= 0:
                del self.failures[key]  # featurised later: the vector wins

    def __len__(self) -> int:
        """Molecules with a vector."""
        if self._pending:
            self._merge()
        return len(self._keys)

    def __contains__(self, inchikey: object) -> bool:
        """Whether the molecule has a vector (failures are not counted)."""
        if not isinstance(inchikey, str):
            return False
        return bool(self._find(np.array([inchikey], dtype=KEY_DTYPE))[0] >= 0)

    @property
    def chunks(self) -> tuple[str, ...]:
        """Names of the committed chunks, in order."""
        return tuple(self._chunks)

    def keys(self) -> np.ndarray:
        """InChIKeys with a vector, sorted, shape ``(n,)`` (``S27``)."""
        if self._pending:
            self._merge()
        return self._keys

    def known(self, inchikeys: Iterable[str]) -> set[str]:
        """Those of ``inchikeys`` that are committed, featurised or failed."""
        wanted = list(inchikeys)
        found = self._find(np.array(wanted, dtype=KEY_DTYPE)) >= 0
        return {k for k, f in zip(wanted, found, strict=True) if f or k in self.failures}

    def _find(self, keys: np.ndarray) -> np.ndarray:
        """Position of each key in the sorted index, ``-1`` where absent, shape ``(m,)``."""
        if self._pending:
            self._merge()
        if len(self._keys) == 0 or len(keys) == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        pos = np.searchsorted(self._keys, keys)
        pos = np.minimum(pos, len(self._keys) - 1)
        return np.where(self._keys[pos] == keys, pos, -1)

    def _values(self, c: int) -> np.ndarray:
        if c not in self._mapped:
            self._mapped[c] = np.load(self.folder / f"{self._chunks[c]}{_VALUES}",
                                      mmap_mode="r", allow_pickle=False)
        return self._mapped[c]

    def vectors(self, inchikeys: Sequence[str] | np.ndarray,
                dtype: str | np.dtype = "float64") -> tuple[np.ndarray, np.ndarray]:
        """Vectors of the given molecules, gathered chunk by chunk from memory maps.

        Args:
            inchikeys: The molecules, shape ``(m,)``.
            dtype: Type of the returned matrix.

        Returns:
            ``(X, found)``: ``X`` of shape ``(m, d)`` (NaN rows where absent) and the
            boolean mask ``found`` of shape ``(m,)``.
        """
        keys = np.asarray(inchikeys, dtype=KEY_DTYPE)
        pos = self._find(keys)
        found = pos >= 0
        X = np.full((len(keys), len(self.names)), np.nan, dtype=dtype)
        if not found.any():
            return X, found
        rows = np.flatnonzero(found)
        chunk, row = self._chunk[pos[rows]], self._row[pos[rows]]
        order = np.argsort(chunk, kind="stable")  # grouped by chunk, one gather each
        cs, starts = np.unique(chunk[order], return_index=True)
        bounds = [*starts.tolist(), len(order)]
        for i, c in enumerate(cs.tolist()):
            sel = order[bounds[i]:bounds[i + 1]]
            X[rows[sel]] = self._values(c)[row[sel]]
        return X, found

    def matrix(self, dtype: str | np.dtype = "float64") -> tuple[np.ndarray, np.ndarray]:
        """Every vector, in index (sorted InChIKey) order.

        Returns:
            ``(keys, X)``: InChIKeys ``(n,)`` (``S27``) and vectors ``(n, d)``.
        """
        keys = self.keys()
        X, _ = self.vectors(keys, dtype)
        return keys, X

    # -- writing ------------------------------------------------------------------------

    def append(self, inchikeys: Sequence[str], values: np.ndarray | Sequence[Sequence[float]],
               failures: Mapping[str, str] | None = None) -> str | None:
        """Commit one chunk: vectors of some molecules, failures of others.

        Args:
            inchikeys: Molecules with a vector, shape ``(n,)``.
            values: Their vectors, shape ``(n, d)``.
            failures: ``{inchikey: reason}`` of molecules that could not be featurised.

        Returns:
            The chunk's name, or ``None`` when there was nothing to write.
        """
        failures = dict(failures or {})
        keys = np.asarray(list(inchikeys), dtype=KEY_DTYPE)
        X = np.asarray(values, dtype=self.dtype).reshape(len(keys), len(self.names))
        if not len(keys) and not failures:
            return None
        seq = len(self._chunks)
        chunk = f"chunk-{seq:07d}-{secrets.token_hex(4)}"
        base = self.folder / chunk
        _write_atomically(Path(f"{base}{_VALUES}"), lambda s: np.save(s, X))
        body = json.dumps(failures).encode()
        _write_atomically(Path(f"{base}{_FAILED}"), lambda s: s.write(body))
        _write_atomically(Path(f"{base}{_KEYS}"), lambda s: np.save(s, keys))  # the commit
        _fsync_dir(self.folder)
        self.written += len(keys) + len(failures)
        self._index_chunk(chunk, keys, failures)
        return chunk

    def _index_chunk(self, chunk: str, keys: np.ndarray, failures: Mapping[str, str]) -> None:
        """Note a just-written chunk; the index takes it in at the next read.

        One sort for many commits, not one per commit.
        """
        self._pending.append((len(self._chunks), keys))
        self._chunks.append(chunk)
        for key, reason in failures.items():
            self.failures.setdefault(key, reason)

    def _merge(self) -> None:
        """Fold the chunks written since the last read into the sorted index."""
        pending, self._pending = self._pending, []
        keys = np.concatenate([self._keys] + [k for _, k in pending])
        chunk = np.concatenate([self._chunk] + [np.full(len(k), c, np.int32)
                                                for c, k in pending])
        row = np.concatenate([self._row] + [np.arange(len(k), dtype=np.int32)
                                            for _, k in pending])
        order = np.argsort(keys, kind="stable")  # the earlier commit of a key wins
        keys = keys[order]
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        self._keys, self._chunk, self._row = keys[first], chunk[order][first], row[order][first]
        for _, k in pending:
            for key in k.tolist():
                self.failures.pop(key.decode(), None)
