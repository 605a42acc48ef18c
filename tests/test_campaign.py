"""Real campaigns end to end: xTB, worker processes, SQLite store, MLflow."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TINY, write_campaign

pytestmark = pytest.mark.slow

PLUGIN = Path(__file__).parent / "plugins" / "ledger_oracle.py"


def ledger_campaign(folder: Path, delay_s: float = 0.0) -> Path:
    text = TINY.replace('name = "xtb_dipole"', f'name = "{PLUGIN}:LedgerXtbDipole"')
    text = text.replace("n_conformers = 2", f'n_conformers = 2\nledger = "{folder}/ledger.txt"'
                        f"\ndelay_s = {delay_s}")
    return write_campaign(folder, text)


def _sigint_default() -> None:
    # a shell's background job (`... &`) starts with SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler: give the campaign the terminal's default
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(path: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bodisc.cli", "campaign", str(path),
                             "--quiet"], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_sigint_default)


def final_labels(store: Path) -> list[tuple]:
    with sqlite3.connect(store) as db:
        return db.execute("SELECT inchikey, iteration, rank, status, value FROM jobs "
                          "ORDER BY iteration, rank").fetchall()


def test_campaign_runs_and_reports(tmp_path):
    path = ledger_campaign(tmp_path)
    proc = start(path, tmp_path)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "best molecules" in out and "MLflow UI:" in out and "results.csv" in out
    rows = final_labels(tmp_path / "runs/tiny/store.sqlite")
    assert len(rows) == 10
    ledger = (tmp_path / "ledger.txt").read_text().split()
    assert len(ledger) == len(set(ledger)) == 10

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.data.params["acquisition.name"] == "logei"
    assert run.data.metrics["iteration/calls_used"] == 10
    history = client.get_metric_history(run.info.run_id, "call/best_so_far")
    assert sorted(m.step for m in history) == list(range(1, 11))  # per oracle call
    iterations = client.get_metric_history(run.info.run_id, "iteration/calls_used")
    assert len(iterations) == 3
    arts = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert "results.csv" in arts


def test_staged_campaign_ranks_then_exploits_then_explores(tmp_path):
    """``warmup_batches = 1``, ``greedy_until = 0.6`` of 13 calls, name ``ucb``: iteration 1
    is ranked by ``rank_by`` (a signed sum; no model prediction stored, the score is the
    descriptor value), iteration 2 (7 calls spent) greedy (score = posterior mean),
    iteration 3 (10 spent) UCB (score above the mean)."""
    text = TINY.replace('name = "logei"', 'name = "ucb"\nwarmup_batches = 1\n'
                        'greedy_until = 0.6\nrank_by = "lumo - homo"')
    path = write_campaign(tmp_path, text.replace("oracle_calls = 10", "oracle_calls = 13"))
    proc = start(path, tmp_path)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    with sqlite3.connect(tmp_path / "runs/tiny/store.sqlite") as db:
        rows = db.execute("SELECT iteration, pred_mean, pred_std, acq_value FROM jobs "
                          "WHERE iteration > 0 ORDER BY iteration, rank").fetchall()
    by_it = {it: [r[1:] for r in rows if r[0] == it] for it in (1, 2, 3)}
    assert [len(v) for v in by_it.values()] == [3, 3, 3]
    ranked = [a for m, s, a in by_it[1]]
    assert all(m is None for m, s, a in by_it[1]) and ranked == sorted(ranked, reverse=True)
    assert all(abs(a - m) < 1e-9 for m, s, a in by_it[2])
    assert all(a > m + 1e-6 for m, s, a in by_it[3])


def test_kill_and_resume_holds_each_oracle_call_exactly_once(tmp_path):
    ref_dir, kill_dir = tmp_path / "ref", tmp_path / "kill"
    ref_dir.mkdir()
    kill_dir.mkdir()
    ref = start(ledger_campaign(ref_dir), ref_dir)
    path = ledger_campaign(kill_dir)
    store = kill_dir / "runs/tiny/store.sqlite"
    proc = start(path, kill_dir)
    # wait until an iteration after the seeds is under way with some of its calls done
    deadline = time.monotonic() + 400
    killed_mid_iteration = False
    while time.monotonic() < deadline and proc.poll() is None:
        if store.exists():
            try:
                with sqlite3.connect(store, timeout=1) as db:
                    row = db.execute(
                        "SELECT SUM(status = 'done'), SUM(status = 'pending') FROM jobs "
                        "WHERE iteration >= 1 AND iteration IN "
                        "(SELECT iteration FROM iterations WHERE status = 'selected')"
                    ).fetchone()
            except sqlite3.OperationalError:
                row = (None, None)
            if row[0] and row[1]:
                os.killpg(proc.pid, signal.SIGKILL)
                killed_mid_iteration = True
                break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert killed_mid_iteration, "the campaign finished before it could be killed"
    with sqlite3.connect(store) as db:
        done_at_kill = {r[0] for r in db.execute(
            "SELECT m.smiles FROM jobs j JOIN molecules m USING (inchikey) "
            "WHERE j.status != 'pending'")}
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    before = (kill_dir / "ledger.txt").read_text().split()

    resumed = start(path, kill_dir)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert "resuming iteration" in out
    after = (kill_dir / "ledger.txt").read_text().split()[len(before):]
    assert not done_at_kill & set(after), "a finished oracle call was repeated"

    ref_out, ref_err = ref.communicate(timeout=600)
    assert ref.returncode == 0, ref_err
    got = final_labels(store)
    want = final_labels(ref_dir / "runs/tiny/store.sqlite")
    assert len(got) == 10 and len({r[0] for r in got}) == 10
    assert got == want


def test_ctrl_c_stops_with_status_130_and_the_same_command_resumes(tmp_path):
    # each call sleeps 1 s after its ledger line: the campaign cannot finish its 10 calls
    # while a busy machine keeps this test from seeing the first line
    path = ledger_campaign(tmp_path, delay_s=1.0)
    proc = start(path, tmp_path)
    ledger = tmp_path / "ledger.txt"
    deadline = time.monotonic() + 120
    while not ledger.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ledger.exists(), "no oracle call finished in time"
    os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C does: the whole process group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, f"{proc.returncode}: {out[-2000:]} {err[-3000:]}"
    assert "interrupted" in out
    resumed = start(path, tmp_path)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, f"{resumed.returncode}: {out[-2000:]} {err[-3000:]}"
    labels = final_labels(tmp_path / "runs/tiny/store.sqlite")
    assert len(labels) == 10 and all(status == "done" for *_, status, _ in labels), labels
