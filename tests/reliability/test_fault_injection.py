"""Fault injection: SIGKILL the campaign 20+ times, in every phase, and lose nothing.

Kills come from failpoints (``BODISC_FAILPOINTS``: the process SIGKILLs itself on reaching
a named place, so millisecond-long phases such as a commit are hit for sure) and from the
test at random moments. After every kill the store must pass ``PRAGMA integrity_check``;
at the end every molecule is labelled exactly once, no oracle call that had finished (was
committed) ran again, and the molecules and labels equal those of an uninterrupted run
with the same seed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bodisc.failpoints import FAILPOINTS
from tests.conftest import TINY, write_campaign

pytestmark = pytest.mark.slow

PLUGIN = Path(__file__).parents[1] / "plugins" / "ledger_oracle.py"
BUDGET = 52  # 4 seeds, then 16 batches of 3: every phase many times over


def campaign(folder: Path) -> Path:
    text = TINY.replace('name = "xtb_dipole"', f'name = "{PLUGIN}:LedgerXtbDipole"')
    text = text.replace("n_conformers = 2", f'n_conformers = 2\nledger = "{folder}/ledger.txt"')
    text = text.replace("oracle_calls = 10", f"oracle_calls = {BUDGET}")
    return write_campaign(folder, text)


def launch(path: Path, failpoints: str = "") -> subprocess.Popen:
    env = dict(os.environ, BODISC_FAILPOINTS=failpoints)
    return subprocess.Popen([sys.executable, "-m", "bodisc.cli", "campaign", str(path),
                             "--quiet"], cwd=path.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def labels(store: Path) -> list[tuple]:
    with sqlite3.connect(store) as db:
        return db.execute("SELECT inchikey, iteration, rank, status, value FROM jobs "
                          "ORDER BY iteration, rank").fetchall()


def committed_smiles(store: Path) -> set[str]:
    if not store.exists():
        return set()
    with sqlite3.connect(store) as db:
        return {r[0] for r in db.execute(
            "SELECT m.smiles FROM jobs j JOIN molecules m USING (inchikey) "
            "WHERE j.status != 'pending'")}


def ledger(folder: Path) -> list[str]:
    path = folder / "ledger.txt"
    return path.read_text().split() if path.exists() else []


def test_twenty_kills_in_every_phase_lose_nothing(tmp_path):
    ref_dir, dut_dir = tmp_path / "reference", tmp_path / "killed"
    ref_dir.mkdir()
    dut_dir.mkdir()
    reference = launch(campaign(ref_dir))
    path = campaign(dut_dir)
    store = dut_dir / "runs" / "tiny" / "store.sqlite"

    rng = np.random.default_rng(2026)
    schedule = [("failpoint", f"{name}=1") for name in FAILPOINTS for _ in range(2)]
    # random moments: a random delay after the run's first new commit, so that a fast
    # machine cannot finish the campaign before the kill lands
    schedule += [("random", float(t)) for t in rng.uniform(0.0, 1.0, size=5)]
    order = rng.permutation(len(schedule))
    schedule = [schedule[i] for i in order]

    kills: dict[str, int] = {}
    repeated: list[str] = []
    for kind, arg in schedule:
        done_before = committed_smiles(store)
        seen_before = len(ledger(dut_dir))
        proc = launch(path, arg if kind == "failpoint" else "")
        if kind == "random":
            start_count = len(committed_smiles(store))
            deadline = time.monotonic() + 600
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    if len(committed_smiles(store)) > start_count:
                        break
                except sqlite3.OperationalError:
                    pass
                time.sleep(0.02)
            time.sleep(arg)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.wait(timeout=600)
        # the whole process group goes, as on a power cut: workers too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        rc = proc.wait(timeout=60)
        if rc == 0:
            break  # the campaign finished before this fault could fire
        assert rc == -signal.SIGKILL, proc.stderr.read()
        label = arg.split("=")[0] if kind == "failpoint" else "random moment"
        kills[label] = kills.get(label, 0) + 1
        new_calls = ledger(dut_dir)[seen_before:]
        repeated += [s for s in new_calls if s in done_before]
        if store.exists():
            with sqlite3.connect(store) as db:
                assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        time.sleep(0.05)

    final = launch(path)
    out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    ref_out, ref_err = reference.communicate(timeout=600)
    assert reference.returncode == 0, ref_err

    n_kills = sum(kills.values())
    print(f"kills survived: {n_kills}; by phase: {kills}")
    print(f"oracle calls run: {len(ledger(dut_dir))} for {BUDGET} labels "
          f"(redone because in flight at a kill: {len(ledger(dut_dir)) - BUDGET})")
    assert n_kills >= 20
    assert {k for k in kills if k != "random moment"} == set(FAILPOINTS)
    assert not repeated, f"finished oracle calls ran again: {repeated}"
    got = labels(store)
    assert len(got) == BUDGET and len({r[0] for r in got}) == BUDGET
    assert all(status != "pending" for *_, status, _ in got)
    assert got == labels(ref_dir / "runs" / "tiny" / "store.sqlite")
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
