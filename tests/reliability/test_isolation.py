"""A crash, a hang and memory exhaustion in oracle code each cost one molecule."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY, write_campaign

pytestmark = pytest.mark.slow

PLUGIN = Path(__file__).parents[1] / "plugins" / "misbehaving_oracle.py"


def test_crash_hang_and_oom_are_recorded_failures_and_the_campaign_goes_on(tmp_path):
    text = TINY.replace('name = "xtb_dipole"', f'name = "{PLUGIN}:MisbehavingOracle"')
    text = text.replace("n_conformers = 2", 'crash_on = ["CC#N"]\nhang_on = ["CN"]\n'
                                            'allocate_on = ["CC(C)=O"]')
    text = text.replace("oracle_calls = 10", "oracle_calls = 7")
    text = text.replace("workers = 2", "workers = 2\noracle_timeout_s = 5\n"
                                       "worker_memory_gb = 2")
    path = write_campaign(tmp_path, text)
    proc = subprocess.run([sys.executable, "-m", "bodisc.cli", "campaign", str(path),
                           "--quiet"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    with sqlite3.connect(tmp_path / "runs" / "tiny" / "store.sqlite") as db:
        rows = dict(db.execute("SELECT m.smiles, j.status || ': ' || COALESCE(j.reason, '') "
                               "FROM jobs j JOIN molecules m USING (inchikey)"))
    assert rows["CC#N"].startswith("failed: crash: worker process died")
    assert "signal 11" in rows["CC#N"]
    assert rows["CN"] == "failed: timeout after 5 s"
    assert rows["CC(C)=O"] == "failed: out of memory: the worker's memory limit was reached"
    assert rows["CCO"] == "done: "
    assert len(rows) == 7  # the campaign went on to a full second batch
    assert sum(v.startswith("done") for v in rows.values()) == 4
    assert "3 failed" in proc.stdout
