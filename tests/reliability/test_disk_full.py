"""A full disk stops the campaign cleanly: one clear line, nothing half-written, resumable.

The disk fills for real, as far as SQLite can tell: the campaign runs under an
``RLIMIT_FSIZE`` cap, so a write past it fails with ``EFBIG`` and SQLite reports
``database or disk is full``.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from tests.conftest import TINY, write_campaign

pytestmark = pytest.mark.slow

CAPPED = """
import resource, signal, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the cap fails with EFBIG
sys.argv = ["bodisc", "campaign", sys.argv[2], "--quiet", "--tracking-uri",
            "http://127.0.0.1:9"]
from bodisc.cli import main
main()
"""


def test_disk_full_stops_cleanly_and_the_campaign_resumes(tmp_path):
    path = write_campaign(tmp_path, TINY.replace("oracle_calls = 10", "oracle_calls = 22"))
    store = tmp_path / "runs" / "tiny" / "store.sqlite"
    full = subprocess.run([sys.executable, "-c", CAPPED, str(160 * 1024), str(path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert full.returncode == 3, (full.stdout, full.stderr)
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1, full.stderr
    # SQLite words EFBIG on its journal as an I/O error and ENOSPC as a full disk
    assert ("cannot write the campaign store (database or disk is full)" in lines[0]
            or "cannot write the campaign store (disk I/O error)" in lines[0])
    assert "run the same command" in lines[0]
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        done_before = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'done'").fetchone()
    assert 0 < done_before[0] < 22

    resumed = subprocess.run([sys.executable, "-m", "bodisc.cli", "campaign", str(path),
                              "--quiet"], capture_output=True, text=True, cwd=tmp_path,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT inchikey, status FROM jobs").fetchall()
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(rows) == 22 and len({k for k, _ in rows}) == 22
    assert all(status != "pending" for _, status in rows)
