"""Campaign stores written by older schema versions open, migrate and resume: version 1 (one
job per molecule) and version 2 (a job per molecule and fidelity) to version 3 (withdrawn
jobs, unpaid labels from outside with their provenance)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bodisc.store import SCHEMA_VERSION, CampaignStore, NewJob

#: The jobs table as schema version 1 wrote it (bodisc before multi-fidelity campaigns).
V1_JOBS = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    inchikey TEXT NOT NULL UNIQUE REFERENCES molecules(inchikey),
    iteration INTEGER NOT NULL,
    rank INTEGER NOT NULL,
    oracle TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    value REAL,
    reason TEXT,
    pred_mean REAL,
    pred_std REAL,
    acq_value REAL,
    seconds REAL,
    extras TEXT,
    submitted_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX jobs_by_iteration ON jobs(iteration, rank);
"""


def write_v1_store(path: Path) -> None:
    """A version-1 store: iteration 0 complete (2 labels, 1 failure), iteration 1 open
    with one job done and one pending."""
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE molecules (inchikey TEXT PRIMARY KEY, smiles TEXT NOT NULL,
            heavy_atoms INTEGER NOT NULL, origin TEXT NOT NULL,
            parents TEXT NOT NULL DEFAULT '[]', first_iteration INTEGER NOT NULL,
            created_at REAL NOT NULL);
        CREATE TABLE descriptors (inchikey TEXT NOT NULL REFERENCES molecules(inchikey),
            descriptor_set TEXT NOT NULL, status TEXT NOT NULL, vector TEXT, reason TEXT,
            seconds REAL, iteration INTEGER NOT NULL, PRIMARY KEY (inchikey, descriptor_set));
        CREATE TABLE iterations (iteration INTEGER PRIMARY KEY, status TEXT NOT NULL,
            n_candidates INTEGER NOT NULL DEFAULT 0, train_min REAL, train_max REAL,
            metrics TEXT NOT NULL DEFAULT '{}', logged INTEGER NOT NULL DEFAULT 0,
            started_at REAL NOT NULL, finished_at REAL);
    """ + V1_JOBS)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1'), ('campaign', '\"old\"')")
    for i, (key, smiles) in enumerate([("K1", "CCO"), ("K2", "CC#N"), ("K3", "CN"),
                                       ("K4", "CC=O"), ("K5", "NC=O")]):
        db.execute("INSERT INTO molecules VALUES (?, ?, 3, 'seed', '[]', ?, 0)",
                   (key, smiles, 0 if i < 3 else 1))
    db.execute("INSERT INTO iterations VALUES (0, 'complete', 3, NULL, NULL, ?, 1, 0, 1)",
               (json.dumps({"best_so_far": 3.9}),))
    db.execute("INSERT INTO iterations VALUES (1, 'selected', 9, 1.6, 3.9, '{}', 0, 2, NULL)")
    rows = [(1, "K1", 0, 0, "done", 1.6, None), (2, "K2", 0, 1, "done", 3.9, None),
            (3, "K3", 0, 2, "failed", None, "SCF not converged"),
            (4, "K4", 1, 0, "done", 2.7, None), (5, "K5", 1, 1, "pending", None, None)]
    for id_, key, it, rank, status, value, reason in rows:
        db.execute("INSERT INTO jobs(id, inchikey, iteration, rank, oracle, status, value,"
                   " reason, submitted_at) VALUES (?, ?, ?, ?, 'xtb_dipole', ?, ?, ?, 0)",
                   (id_, key, it, rank, status, value, reason))
    db.commit()
    db.close()


def test_a_version_1_store_migrates_and_resumes(tmp_path):
    path = tmp_path / "old" / "store.sqlite"
    write_v1_store(path)
    store = CampaignStore(path)
    assert store.get_meta("schema_version") == SCHEMA_VERSION == 4
    assert store.get_meta("migrated_from_schema") == 1
    # everything as it was: ids, order, values, reasons; every old job a target job
    jobs = store.jobs(fidelity=None)
    assert [(j.id, j.inchikey, j.iteration, j.rank, j.status, j.value) for j in jobs] == [
        (1, "K1", 0, 0, "done", 1.6), (2, "K2", 0, 1, "done", 3.9),
        (3, "K3", 0, 2, "failed", None), (4, "K4", 1, 0, "done", 2.7),
        (5, "K5", 1, 1, "pending", None)]
    assert {j.fidelity for j in jobs} == {"target"} and store.jobs() == jobs
    assert store.jobs("failed")[0].reason == "SCF not converged"
    assert store.calls_used() == 5 and store.iterations()[0]["metrics"]["best_so_far"] == 3.9
    # resumable: the open iteration and its pending job, finished exactly once
    assert store.open_iteration() == 1 and [j.id for j in store.jobs("pending")] == [5]
    store.finish_job(5, 2.2, None, 1.0)
    store.finish_job(5, 99.0, None, 1.0)
    store.complete_iteration(1, {"best_so_far": 3.9})
    assert store.jobs("done", iteration=1)[1].value == 2.2 and store.next_iteration() == 2
    # the new key: a cheap label beside a target one, never a second target label
    store.start_iteration(2, [NewJob("K1", fidelity="cheap", oracle="xtb_dipole")],
                          "pyscf_dipole", 1, None)
    assert store.calls_used() == 5 and store.calls_used(None) == 6
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        store.start_iteration(3, [NewJob("K2")], "pyscf_dipole", 1, None)
    assert store.integrity_ok()
    store.close()
    # opened again: no second migration, the same rows
    again = CampaignStore(path)
    assert len(again.jobs(fidelity=None)) == 6 and again.integrity_ok()
    again.close()



def test_a_version_2_store_migrates_to_withdrawals_and_unpaid_labels(tmp_path):
    path = tmp_path / "old" / "store.sqlite"
    write_v1_store(path)
    db = sqlite3.connect(path)  # turn it into what schema version 2 wrote
    db.executescript(V1_JOBS.replace("CREATE TABLE jobs (", "CREATE TABLE jobs2 (")
                     .replace("inchikey TEXT NOT NULL UNIQUE", "inchikey TEXT NOT NULL")
                     .replace("    finished_at REAL\n",
                              "    finished_at REAL,\n    fidelity TEXT NOT NULL DEFAULT "
                              "'target',\n    UNIQUE (inchikey, fidelity)\n")
                     .replace("CREATE INDEX jobs_by_iteration ON jobs(iteration, rank);", ""))
    db.execute("INSERT INTO jobs2 SELECT *, 'target' FROM jobs")
    db.execute("DROP TABLE jobs")
    db.execute("ALTER TABLE jobs2 RENAME TO jobs")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    store = CampaignStore(path)
    assert store.get_meta("schema_version") == SCHEMA_VERSION == 4
    assert store.get_meta("migrated_from_schema") == 2
    jobs = store.jobs()
    assert [(j.id, j.status, j.value) for j in jobs] == [
        (1, "done", 1.6), (2, "done", 3.9), (3, "failed", None), (4, "done", 2.7),
        (5, "pending", None)]
    assert all(j.paid and j.provenance is None for j in jobs) and store.calls_used() == 5
    assert store.cancel_jobs([5], {"kind": "cancel"}) == 1  # the new status is allowed
    assert store.calls_used() == 4 and store.integrity_ok()
    store.close()


def test_a_version_3_store_migrates_to_properties(tmp_path):
    path = tmp_path / "v3" / "store.sqlite"
    store = CampaignStore(path)
    store.add_molecules([("K1", "CCO", 3, "seed", ()), ("K2", "CC", 2, "seed", ())], 0)
    store.start_iteration(0, [NewJob("K1"), NewJob("K2")], "xtb_dipole", 2, None)
    store.finish_job(1, 1.5, None, 0.1, {"steps": 3})
    store.close()
    db = sqlite3.connect(path)  # what schema version 3 wrote: no properties column
    db.execute("ALTER TABLE jobs DROP COLUMN properties")
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    store = CampaignStore(path)
    assert store.get_meta("schema_version") == 4 and store.get_meta("migrated_from_schema") == 3
    old, pending = store.jobs()
    assert (old.value, old.properties, old.property_value("gap")) == (1.5, None, None)
    store.finish_job(pending.id, 2.0, None, 0.1, {}, {"dipole": 2.0, "gap": 7.25})
    assert store.jobs()[1].properties == {"dipole": 2.0, "gap": 7.25}
    assert store.jobs()[1].property_value("gap") == 7.25
    frame = store.results_frame()
    assert list(frame["gap"].isna()) == [True, False] and frame["gap"].iloc[1] == 7.25
    assert store.integrity_ok()
    store.close()
