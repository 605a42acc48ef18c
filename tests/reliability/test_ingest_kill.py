"""An ingest killed inside its transaction (SIGKILL) leaves the store as it was."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from tests.conftest import TINY, write_campaign

pytestmark = pytest.mark.slow

EXTERNAL = (TINY.replace('name = "xtb_dipole"', 'name = "external"')
            .replace("[oracle.options]\nn_conformers = 2\n", ""))


def ingest(path, labels, cwd, failpoints=""):
    env = dict(os.environ, BODISC_FAILPOINTS=failpoints)
    return subprocess.run([sys.executable, "-m", "bodisc.cli", "ingest", str(path),
                           str(labels)], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


def test_a_kill_mid_ingest_writes_nothing_and_the_rerun_writes_everything(tmp_path):
    path = write_campaign(tmp_path, EXTERNAL)
    labels = tmp_path / "labels.csv"
    labels.write_text("smiles,dipole\nCCCO,1.6\nCCCN,1.3\nCCC=O,2.7\nCCOC,1.2\nCC(C)O,1.7\n")
    proc = ingest(path, labels, tmp_path, "ingest.row=3")  # dies after the third insert
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    store = tmp_path / "runs/tiny/store.sqlite"
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    proc = ingest(path, labels, tmp_path)
    assert proc.returncode == 0 and "5 off-policy label(s)" in proc.stdout, proc.stderr
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT status, paid FROM jobs").fetchall()
    assert rows == [("done", 0)] * 5
