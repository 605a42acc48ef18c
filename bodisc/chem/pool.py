"""Candidate pools: a fixed set of known molecules in place of the SELFIES generator.

A pool campaign (``[pool]`` in the campaign file) replays a data set: the seeds and every
later candidate are drawn from the pool, never one already labelled, pending or failed,
and descriptors come from xTB on the pool's own geometries. QM9 is the pool bodisc
ships (:class:`QM9Pool`); with QM9's B3LYP labels (the ``qm9`` oracle) a campaign is a
replay of a search whose answers are known, the harness the benchmarks use.

Identity is bodisc's everywhere: a pool molecule is its :class:`~bodisc.chem.molecule.
MoleculeRecord` (canonical SMILES without stereo, InChIKey) of QM9's SMILES. QM9 rows
that share an InChIKey (stereoisomers) are one pool molecule, the lowest QM9 index.
Records are cached on disk (``<cache>/qm9-records-v1.npz``, see
:func:`bodisc.data.default_cache_dir`): about 2 ms of RDKit per molecule, 5 minutes for
the whole of QM9 on one core the first time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PoolMolecule", "QM9Pool", "qm9_records"]

_RECORDS_FILE = "qm9-records-v1.npz"
#: Records this process has read or computed, per cache file.
_MEMO: dict[Path, dict[int, tuple[str, str, int] | None]] = {}


@dataclass(frozen=True)
class PoolMolecule:
    """One pool molecule, shaped like a generator candidate for the store.

    Attributes:
        inchikey: Its identity.
        smiles: Canonical SMILES (no stereo).
        heavy_atoms: Number of non-hydrogen atoms.
        index: Its index in the source data set (QM9's ``Index``).
    """

    inchikey: str
    smiles: str
    heavy_atoms: int
    index: int

    @property
    def origin(self) -> str:
        """Where it came from, as the store records it (``qm9:<index>``)."""
        return f"qm9:{self.index}"

    @property
    def parents(self) -> tuple[str, ...]:
        """Pool molecules have no parents."""
        return ()


def qm9_records(indices: Iterable[int], cache_dir: Path | str | None = None
                ) -> dict[int, tuple[str, str, int] | None]:
    """The bodisc record of QM9 molecules, from the disk cache or computed and cached.

    Args:
        indices: QM9 ``Index`` values.
        cache_dir: Root of the cache (``None``: :func:`bodisc.data.default_cache_dir`).

    Returns:
        ``{index: (inchikey, smiles, heavy_atoms)}``, ``None`` for a molecule whose QM9
        SMILES RDKit rejects.

    Raises:
        KeyError: For an index that is not in QM9.
    """
    from bodisc.chem.molecule import record_from_smiles
    from bodisc.data import default_cache_dir, load_qm9
    from bodisc.errors import InvalidMoleculeError

    wanted = list(dict.fromkeys(int(i) for i in indices))
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = root / _RECORDS_FILE
    known = _MEMO.setdefault(path, {})
    if any(i not in known for i in wanted):
        known.update(_read_records(path))
    missing = [i for i in wanted if i not in known]
    if missing:
        table = _smiles_table(load_qm9)
        absent = [i for i in missing if i not in table.index]
        if absent:
            raise KeyError(f"QM9 has no Index {absent[:10]} (valid: 1 to 133885, with gaps)")
        for index, smiles in table.loc[missing, "smiles"].items():
            try:
                rec = record_from_smiles(str(smiles))
            except InvalidMoleculeError:
                known[int(index)] = None
            else:
                known[int(index)] = (rec.inchikey, rec.smiles, rec.heavy_atoms)
        _write_records(path, {**_read_records(path), **known})
    return {i: known[i] for i in wanted}


@lru_cache(maxsize=1)
def _smiles_table(load: Any) -> Any:
    return load(["smiles"])


def _read_records(path: Path) -> dict[int, tuple[str, str, int] | None]:
    try:
        with np.load(path, allow_pickle=False) as data:
            rows = zip(data["index"].tolist(), data["inchikey"].tolist(),
                       data["smiles"].tolist(), data["heavy_atoms"].tolist(), strict=True)
            return {i: (k, s, h) if k else None for i, k, s, h in rows}
    except (OSError, ValueError, KeyError):  # absent or unreadable: computed again
        return {}


def _write_records(path: Path, records: dict[int, tuple[str, str, int] | None]) -> None:
    """Write the cache atomically (several processes may add to it; the last one wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    items = sorted(records.items())
    arrays = {
        "index": np.array([i for i, _ in items], dtype=np.int64),
        "inchikey": np.array([r[0] if r else "" for _, r in items]),
        "smiles": np.array([r[1] if r else "" for _, r in items]),
        "heavy_atoms": np.array([r[2] if r else 0 for _, r in items], dtype=np.int64),
    }
    from bodisc.data.qm9 import save_npz_atomically

    save_npz_atomically(path, arrays)


class QM9Pool:
    """QM9, or a seeded random subset of it, as a candidate pool.

    Args:
        subset: Size of the subset (``None``: all 130,831 molecules); the subset is
            :func:`bodisc.data.qm9_sample_indices` of ``(subset, seed)``.
        seed: Seed of the subset (the campaign's ``random_seed``).
        cache_dir: Root of the record cache.
    """

    def __init__(self, subset: int | None, seed: int,
                 cache_dir: Path | str | None = None) -> None:
        from bodisc.data import QM9_SIZE, qm9_sample_indices

        indices = qm9_sample_indices(subset or QM9_SIZE, seed)
        records = qm9_records(indices, cache_dir)
        members: dict[str, PoolMolecule] = {}
        for index in sorted(int(i) for i in indices):
            rec = records[index]
            if rec is not None and rec[0] not in members:
                members[rec[0]] = PoolMolecule(rec[0], rec[1], rec[2], index)
        self.members: tuple[PoolMolecule, ...] = tuple(sorted(members.values(),
                                                               key=lambda m: m.index))
        self._by_key = {m.inchikey: m for m in self.members}

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, inchikey: object) -> bool:
        return inchikey in self._by_key

    def get(self, inchikey: str) -> PoolMolecule | None:
        """The pool molecule of an InChIKey, or ``None``."""
        return self._by_key.get(inchikey)

    def draw(self, n: int | None, rng: np.random.Generator,
             exclude: Sequence[str] | set[str] = ()) -> list[PoolMolecule]:
        """Up to ``n`` pool molecules not in ``exclude``, at random (all with ``None``).

        Args:
            n: How many (``None``: every one left, in pool order).
            rng: The random generator of the draw.
            exclude: InChIKeys never to return.

        Returns:
            Distinct pool molecules; fewer than ``n`` when the pool runs out.
        """
        skip = set(exclude)
        left = [m for m in self.members if m.inchikey not in skip]
        if n is None or n >= len(left):
            return left
        picked = rng.choice(len(left), size=n, replace=False)
        return [left[i] for i in sorted(int(i) for i in picked)]
