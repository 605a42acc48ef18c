"""Fault injection in asynchronous mode: SIGKILL an async campaign at random moments.

Ten times, the whole process group (campaign and workers) is killed a random moment after
the run's first new commit. After every kill the store passes ``PRAGMA integrity_check``
and no oracle call whose result had been committed runs again; the last run finishes the
budget with every molecule labelled exactly once. An async campaign's molecules depend on
the order results arrived, so unlike the batch test this one does not compare them with
an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY, write_campaign
from tests.execution.test_dask import SLOW, calls, check_labelled_once, start
from tests.reliability.test_fault_injection import committed_smiles

pytestmark = pytest.mark.slow

BUDGET = 40
KILLS = 10


def campaign(folder: Path) -> Path:
    text = TINY.replace('name = "xtb_dipole"', f'name = "{SLOW}:SlowOracle"')
    text = text.replace("n_conformers = 2", f'log = "{folder}/calls.log"\nseconds = 0.15')
    text = text.replace('name = "logei"', 'name = "random"')
    text = text.replace("oracle_calls = 10", f"oracle_calls = {BUDGET}")
    text = text.replace("workers = 2", 'workers = 2\nmode = "async"')
    return write_campaign(folder, text)


def test_ten_random_kills_of_an_async_campaign_lose_nothing(tmp_path):
    path = campaign(tmp_path)
    store = tmp_path / "runs" / "tiny" / "store.sqlite"
    rng = np.random.default_rng(27)
    kills, repeated = 0, []
    for delay in rng.uniform(0.0, 0.6, size=KILLS):
        before = committed_smiles(store)
        seen = len(calls(tmp_path))
        proc = start(path, tmp_path)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(sqlite3.OperationalError):
                if len(committed_smiles(store)) > len(before):
                    break
            time.sleep(0.02)
        time.sleep(float(delay))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        rc = proc.wait(timeout=60)
        if rc == 0:
            break  # finished before the kill landed
        assert rc == -signal.SIGKILL, proc.stderr.read()
        kills += 1
        repeated += [smi for kind, _, smi in calls(tmp_path)[seen:]
                     if kind == "start" and smi in before]
        with sqlite3.connect(store) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    final = start(path, tmp_path)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    print(f"kills survived: {kills}; oracle calls run: "
          f"{sum(k == 'done' for k, _, _ in calls(tmp_path))} for {BUDGET} labels")
    assert kills >= KILLS
    assert not repeated, f"committed oracle calls ran again: {repeated}"
    check_labelled_once(store, BUDGET)
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        sizes = [n for (n,) in db.execute(
            "SELECT COUNT(*) FROM jobs WHERE iteration > 0 GROUP BY iteration")]
    assert max(sizes) <= 2
