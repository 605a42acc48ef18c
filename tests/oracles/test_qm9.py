"""QM9 replay: the qm9 oracle's labels are qm9pack's, and a pool campaign draws from QM9."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pandas as pd
import pytest

from bodisc.builtin_oracles.qm9 import QM9Oracle
from bodisc.chem.pool import QM9Pool, qm9_records
from bodisc.config import load_campaign
from bodisc.data import qm9_sample_indices
from bodisc.errors import ConfigError
from bodisc.oracle import resolve_oracle, run_one
from tests.conftest import TINY, write_campaign

HARTREE_EV = 27.211386


def qm9pack_rows(indices: list[int], column: str) -> dict[int, float]:
    """The values as qm9pack's CSV files hold them, read here without bodisc."""
    table = _qm9pack()[column]
    return {i: float(table[i]) for i in indices}


@functools.cache
def _qm9pack() -> pd.DataFrame:
    folder = Path(next(iter(find_spec("qm9pack").submodule_search_locations))) / "data"
    frames = [pd.read_csv(f, usecols=["Index", "Dipole_debye", "HOMO_LUMO_gap_au"])
              for f in sorted(folder.glob("qm9_part*.csv"))]
    return pd.concat(frames).set_index("Index")


def test_labels_are_qm9packs():
    dipole = QM9Oracle({"property": "dipole"})
    gap = QM9Oracle({"property": "gap"})
    molecules = {"O": 3, "CC=O": 11, "CCO": 14, "OCC1CC1C#N": 2840}
    ref_mu = qm9pack_rows(list(molecules.values()), "Dipole_debye")
    ref_gap = qm9pack_rows(list(molecules.values()), "HOMO_LUMO_gap_au")
    for smiles, index in molecules.items():
        res = run_one(dipole, smiles)
        assert res.ok and res.extras["qm9_index"] == index
        assert res.value == ref_mu[index]
        assert run_one(gap, smiles).value == pytest.approx(ref_gap[index] * HARTREE_EV, rel=1e-7)
    missing = run_one(dipole, "CCCCCCCCCCO")
    assert not missing.ok and missing.failure.startswith("not in QM9")


def test_property_option_sets_what_it_returns(tmp_path):
    assert resolve_oracle("qm9") is QM9Oracle
    assert QM9Oracle.returns(QM9Oracle.Options(property="gap")) == ("gap", "eV")
    text = TINY.replace('name = "xtb_dipole"', 'name = "qm9"')
    text = text.replace("n_conformers = 2", 'property = "gap"')
    with pytest.raises(ConfigError, match="objective.property = 'dipole'.*returns 'gap'"):
        load_campaign(write_campaign(tmp_path, text))


POOL = """
name = "replay"
random_seed = 11

[objective]
property = "dipole"
direction = "maximize"
unit = "D"

[pool]
source = "qm9"
subset = 200
n_seeds = 5
candidates_per_iteration = 20

[descriptors]
names = ["mu", "homo", "lumo", "mw"]

[acquisition]
name = "logei"
batch_size = 5

[oracle]
name = "qm9"

[oracle.options]
property = "dipole"

[budget]
oracle_calls = 20

[execution]
workers = 2

[paths]
store = "{root}/runs/{name}/store.sqlite"
export_csv = "{root}/runs/{name}/results.csv"
mlruns = "{root}/mlruns"
"""


def test_pool_rules_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="seed_molecules = 'CCO': with a \\[pool\\]"):
        load_campaign(write_campaign(tmp_path, 'seed_molecules = ["CCO"]\n' + POOL))
    with pytest.raises(ConfigError, match="pool.n_seeds = 500: must be at most pool.subset"):
        load_campaign(write_campaign(tmp_path, POOL.replace("n_seeds = 5", "n_seeds = 500")))
    with pytest.raises(ConfigError, match="pool.bogus"):
        load_campaign(write_campaign(tmp_path, POOL.replace("subset = 200", "bogus = 1")))
    with pytest.raises(ConfigError, match="seed_molecules = \\(missing\\)"):
        load_campaign(write_campaign(tmp_path, TINY.replace(
            'seed_molecules = ["CCO", "CC#N", "CC(C)=O", "CN"]', "")))


@pytest.mark.slow
def test_replay_campaign_draws_from_the_pool_and_labels_with_qm9(tmp_path):
    path = write_campaign(tmp_path, POOL)
    env = {**os.environ, "BODISC_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "bodisc.cli", "campaign", str(path), "--quiet"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    with sqlite3.connect(tmp_path / "runs/replay/store.sqlite") as db:
        rows = db.execute("SELECT inchikey, iteration, status, value, extras FROM jobs "
                          "ORDER BY id").fetchall()
        described = db.execute("SELECT COUNT(*) FROM descriptors WHERE descriptor_set = "
                               "'qm9geom-fast' AND status = 'done'").fetchone()[0]
    assert len(rows) == 20 and all(r[2] == "done" for r in rows)
    assert len({r[0] for r in rows}) == 20  # never the same molecule twice
    assert max(r[1] for r in rows) == 3  # seeds, then three batches of 5
    pool = QM9Pool(200, 11, cache_dir=tmp_path / "cache")
    assert {m.index for m in pool.members} <= {int(i) for i in qm9_sample_indices(200, 11)}
    assert {r[0] for r in rows} <= {m.inchikey for m in pool.members}  # from the pool
    # the QM9 row each label came from is that molecule (for stereoisomers QM9 holds
    # twice, the lowest QM9 index, which may lie outside the subset)
    index = [json.loads(r[4])["qm9_index"] for r in rows]
    records = qm9_records(index, cache_dir=tmp_path / "cache")
    assert [records[i][0] for i in index] == [r[0] for r in rows]
    labels = qm9pack_rows(index, "Dipole_debye")
    assert [r[3] for r in rows] == [labels[i] for i in index]
    assert described >= 20  # descriptors on QM9's own geometries
