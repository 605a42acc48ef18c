"""Candidate libraries: reading, featurising once (resumable after SIGKILL), the pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bodisc.chem.library import LibraryPool, featurise_library, read_records
from bodisc.config import load_campaign
from bodisc.descriptors import TIERS
from bodisc.errors import ConfigError
from bodisc.execution.tasks import descriptor_task
from bodisc.runtime.columnar import ColumnarCache
from tests.conftest import TINY, write_campaign

FAST = TIERS["fast"]
ROOT = Path(__file__).resolve().parents[2]

#: Small molecules xTB handles in ~50 ms each (the salt fails: it is two fragments).
SMALL = ["C", "CC", "CO", "C#N", "O=CO", "CN", "C=O", "CCO", "CC#N", "N#N", "O", "N",
         "C=C", "C#C", "CF", "OO", "NO", "CCC", "CC=O", "COC", "CNC", "C=CC", "OCO", "NCO",
         "CC(C)=O", "FC(F)F", "FCF", "O=C=O", "NC=O", "CCN"]


def ledger_task(smiles: str, names: tuple[str, ...], seed: int) -> tuple[list[float], float]:
    """``descriptor_task``, noting each call in ``$LIBRARY_LEDGER`` (one line per call)."""
    with open(os.environ["LIBRARY_LEDGER"], "a") as ledger:
        ledger.write(smiles + "\n")
    time.sleep(float(os.environ.get("LIBRARY_DELAY", "0")))
    return descriptor_task(smiles, names, seed)


def featurise_into(folder: str, chunk_size: int) -> None:
    """Featurise :data:`SMALL` into a cache under ``folder`` (run in a subprocess)."""
    smi = Path(folder) / "small.smi"
    records = read_records(smi, cache_dir=folder)
    cache = ColumnarCache(Path(folder) / "lib", {"test": 1}, FAST)
    featurise_library(records.inchikey, records.smiles, cache, conformer_seed=0, workers=1,
                      chunk_size=chunk_size, progress=False, fn=ledger_task)


def test_read_records_parses_dedups_and_lists_rejected(tmp_path):
    smi = tmp_path / "lib.smi"
    smi.write_text("smiles name\nC methane\nOC\nCO methanol\nnot_a_smiles x\n\n# note\nCC\n")
    rec = read_records(smi, cache_dir=tmp_path)
    assert [str(s) for s in rec.smiles] == ["C", "CO", "CC"]
    assert rec.index.tolist() == [0, 1, 4] and rec.name.tolist() == ["methane", "", ""]
    assert [(r[0], r[1]) for r in rec.rejected] == [(2, "CO"), (3, "not_a_smiles")]
    assert "same InChIKey as row 1" in rec.rejected[0][2]
    again = read_records(smi, cache_dir=tmp_path)  # from the records cache
    assert again.inchikey.tolist() == rec.inchikey.tolist()
    assert [tuple(r) for r in again.rejected] == [tuple(r) for r in rec.rejected]
    csv = tmp_path / "lib.csv"
    csv.write_text("ID,SMILES\na,CCO\nb,OCC\n")
    rec = read_records(csv, cache_dir=tmp_path)
    assert rec.smiles.tolist() == ["CCO"] and rec.name.tolist() == ["a"]
    with pytest.raises(ValueError, match="must be one of"):
        read_records(tmp_path / "lib.sdf", cache_dir=tmp_path)


def test_pool_from_a_file_featurises_once_and_draws_like_qm9pool(tmp_path):
    smi = tmp_path / "lib.smi"
    smi.write_text("C methane\nCC\nCO\nC#N\n[Na+].[Cl-] salt\nO=CO\nbad(\n")
    pool = LibraryPool.open(smi, names=FAST, cache_dir=tmp_path, workers=1, progress=False)
    assert len(pool) == 5
    assert list(pool.rejected[0][:2]) == [6, "bad("]
    # a failed molecule is listed with its reason and left out
    (failed_key, reason), = pool.failures.items()
    assert failed_key not in pool and reason
    methane = pool.get("VNWKTOKETHGBQD-UHFFFAOYSA-N")
    assert methane is not None and methane.origin == "library:methane"
    assert methane.heavy_atoms == 1 and methane.parents == ()
    everything = pool.draw(None, np.random.default_rng(0))
    assert [m.index for m in everything] == [0, 1, 2, 3, 5]  # file order
    two = pool.draw(2, np.random.default_rng(3), exclude={methane.inchikey})
    assert len(two) == 2 and methane not in two
    assert two == pool.draw(2, np.random.default_rng(3), exclude={methane.inchikey})
    X, found = pool.vectors([m.inchikey for m in everything])
    assert X.shape == (5, len(FAST)) and found.all()
    expected, _ = descriptor_task("CO", FAST, 0)
    np.testing.assert_array_equal(X[2], expected)  # float64: xTB's values, bit for bit
    written = pool.cache.written
    again = LibraryPool.open(smi, names=FAST, cache_dir=tmp_path, workers=1, progress=False)
    assert len(again) == 5 and again.cache.written == 0 and written == 6  # nothing redone


def test_sigkill_midway_then_restart_featurises_each_molecule_once(tmp_path):
    (tmp_path / "small.smi").write_text("\n".join(SMALL) + "\n")
    ledger = tmp_path / "ledger.txt"
    env = {**os.environ, "LIBRARY_LEDGER": str(ledger), "LIBRARY_DELAY": "0.15",
           "PYTHONPATH": str(ROOT)}
    code = ("from tests.chem.test_library import featurise_into; "
            f"featurise_into({str(tmp_path)!r}, 4)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    lib = tmp_path / "lib"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(lib.glob("*/*.keys.npy"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # midway: some chunks committed, one being filled
    proc.wait(timeout=30)
    first = ColumnarCache(lib, {"test": 1}, FAST)
    committed = {k.decode() for k in first.keys().tolist()} | set(first.failures)
    assert 12 <= len(committed) < len(SMALL), "the kill did not land midway"
    calls_before = ledger.read_text().splitlines()
    # restart (here, in this process): only the molecules not committed are computed
    os.environ["LIBRARY_LEDGER"] = str(ledger)
    try:
        records = read_records(tmp_path / "small.smi", cache_dir=tmp_path)
        cache = ColumnarCache(lib, {"test": 1}, FAST)
        summary = featurise_library(records.inchikey, records.smiles, cache,
                                    conformer_seed=0, workers=1, chunk_size=4,
                                    progress=False, fn=ledger_task)
    finally:
        del os.environ["LIBRARY_LEDGER"]
    calls_after = ledger.read_text().splitlines()[len(calls_before):]
    key_of = dict(zip(records.smiles.tolist(), (k.decode() for k in records.inchikey),
                      strict=True))
    assert not {key_of[s] for s in calls_after} & committed  # none featurised twice
    assert len(calls_after) == len(set(calls_after)) == len(SMALL) - len(committed)
    assert summary.skipped == len(committed)
    final = ColumnarCache(lib, {"test": 1}, FAST)
    assert len(final) + len(final.failures) == len(SMALL)  # none lost
    stored = np.concatenate([np.load(p) for p in sorted(lib.glob("*/*.keys.npy"))])
    assert len(stored) == len(set(stored.tolist()))  # no molecule committed twice


def test_config_accepts_a_library_relative_to_the_campaign_file(tmp_path):
    text = TINY.replace('seed_molecules = ["CCO", "CC#N", "CC(C)=O", "CN"]', "")
    pool = '\n[pool]\nsource = "libs/small.smi"\nn_seeds = 3\n'
    (tmp_path / "sub").mkdir()
    config = load_campaign(write_campaign(tmp_path / "sub", text + pool))
    assert config.pool is not None and config.pool.is_library
    assert config.pool.source == str(tmp_path / "sub" / "libs" / "small.smi")
    assert config.pool.library_path() == tmp_path / "sub" / "libs" / "small.smi"
    with pytest.raises(ConfigError, match="pool.source = 'lib.sdf'"):
        load_campaign(write_campaign(tmp_path, text + pool.replace("libs/small.smi",
                                                                   "lib.sdf")))
    with pytest.raises(ConfigError, match="pool.subset = 5: applies to source = qm9 only"):
        load_campaign(write_campaign(tmp_path, text + pool + "subset = 5\n"))
    qm9 = load_campaign(write_campaign(tmp_path, text + '\n[pool]\nsource = "qm9"\n'))
    assert qm9.pool is not None and not qm9.pool.is_library


@pytest.mark.slow
def test_campaign_chooses_from_a_library(tmp_path):
    (tmp_path / "small.smi").write_text("\n".join(SMALL) + "\n[Na+].[Cl-] salt\n")
    text = TINY.replace('seed_molecules = ["CCO", "CC#N", "CC(C)=O", "CN"]', "")
    text = text.replace("n_conformers = 2", "n_conformers = 1")
    path = write_campaign(tmp_path, text + '\n[pool]\nsource = "small.smi"\nn_seeds = 4\n'
                          "candidates_per_iteration = 12\n")
    env = {**os.environ, "BODISC_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "bodisc.cli", "campaign", str(path),
                           "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import sqlite3

    with sqlite3.connect(tmp_path / "runs/tiny/store.sqlite") as db:
        jobs = db.execute("SELECT inchikey, status FROM jobs").fetchall()
        origins = [r[0] for r in db.execute("SELECT origin FROM molecules")]
        sets = {r[0] for r in db.execute("SELECT DISTINCT descriptor_set FROM descriptors")}
    records = read_records(tmp_path / "small.smi", cache_dir=tmp_path / "cache")
    library = {k.decode() for k in records.inchikey}
    assert len(jobs) == 10 and {k for k, _ in jobs} <= library
    assert len({k for k, _ in jobs}) == 10
    assert all(o.startswith("library:") or o == "seed" for o in origins)
    assert all(s.startswith("library-fast/") for s in sets)


def test_featurise_library_runs_on_dask_too(tmp_path):
    pytest.importorskip("distributed")
    from bodisc.execution.dask import DaskExecutor

    (tmp_path / "lib.smi").write_text("C\nCC\nCO\n")
    records = read_records(tmp_path / "lib.smi", cache_dir=tmp_path)
    cache = ColumnarCache(tmp_path / "lib", {"test": "dask"}, FAST)
    with DaskExecutor(1, None) as executor:
        summary = featurise_library(records.inchikey, records.smiles, cache,
                                    conformer_seed=0, executor=executor, chunk_size=2,
                                    progress=False)
    assert (summary.done, summary.failed, summary.skipped) == (3, 0, 0)
    assert len(ColumnarCache(tmp_path / "lib", {"test": "dask"}, FAST)) == 3
    assert len(cache.chunks) == 2  # chunks of 2, then the rest
