"""The QM9 candidate pool: a seeded subset, bodisc's identities, draws that never repeat."""

from __future__ import annotations

import numpy as np

from bodisc.chem import pool as pool_module
from bodisc.chem.molecule import record_from_smiles
from bodisc.chem.pool import QM9Pool, qm9_records
from bodisc.data import load_qm9, qm9_sample_indices


def test_subset_is_the_seeded_sample_with_bodisc_identities(tmp_path):
    pool = QM9Pool(60, seed=3, cache_dir=tmp_path)
    sample = set(int(i) for i in qm9_sample_indices(60, 3))
    assert 55 <= len(pool) <= 60  # stereoisomers sharing an InChIKey count once
    assert {m.index for m in pool.members} <= sample
    assert len({m.inchikey for m in pool.members}) == len(pool)
    smiles = load_qm9(["smiles"])["smiles"]
    for m in pool.members[:10]:
        rec = record_from_smiles(smiles[m.index])
        assert (rec.inchikey, rec.smiles, rec.heavy_atoms) == (m.inchikey, m.smiles,
                                                              m.heavy_atoms)
        assert m.origin == f"qm9:{m.index}" and m.parents == ()
        assert m.inchikey in pool and pool.get(m.inchikey) == m
    assert QM9Pool(60, seed=4, cache_dir=tmp_path).members != pool.members


def test_draws_are_seeded_and_exclude(tmp_path):
    pool = QM9Pool(60, seed=3, cache_dir=tmp_path)
    a = pool.draw(10, np.random.default_rng(1))
    b = pool.draw(10, np.random.default_rng(1))
    assert a == b and len({m.inchikey for m in a}) == 10
    rest = pool.draw(None, np.random.default_rng(2), exclude={m.inchikey for m in a})
    assert len(rest) == len(pool) - 10
    assert not {m.inchikey for m in rest} & {m.inchikey for m in a}
    assert pool.draw(1000, np.random.default_rng(0)) == list(pool.members)


def test_records_are_cached_on_disk(tmp_path):
    first = qm9_records([1, 3, 14], cache_dir=tmp_path)
    assert first[3][1] == "O" and first[14][1] == "CCO"
    assert (tmp_path / "qm9-records-v1.npz").exists()
    pool_module._MEMO.clear()  # a new process: read back from disk, nothing recomputed
    again = pool_module._read_records(tmp_path / "qm9-records-v1.npz")
    assert {i: again[i] for i in (1, 3, 14)} == first
