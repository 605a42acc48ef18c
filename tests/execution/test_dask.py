"""Oracle work on real Dask clusters: a LocalCluster, and a scheduler and workers started
with the ``dask`` command, one of which is killed in the middle of a campaign."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bodisc.execution.dask import ClusterError, DaskExecutor
from tests.conftest import TINY, write_campaign

SLOW = Path(__file__).parents[1] / "plugins" / "slow_oracle.py"
DASK = Path(sys.executable).parent / "dask"


def square(x):
    return x * x


def misbehave(x):
    if x == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if x == "hang":
        time.sleep(120)
    if x == "raise":
        raise ValueError("bad molecule")
    return x.upper()


def threads():
    return os.environ.get("OMP_NUM_THREADS"), os.getpid()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_local_cluster_runs_every_task_once_on_single_threaded_workers():
    with DaskExecutor(2) as ex:
        out = list(ex.run(square, [(i, (i,)) for i in range(12)], timeout_s=60))
        info = list(ex.run(threads, [(i, ()) for i in range(4)], timeout_s=60))
    assert sorted(o.key for o in out) == list(range(12))
    assert all(o.value == o.key**2 and o.failure is None for o in out)
    assert {o.value[0] for o in info} == {"1"}


def test_local_cluster_takes_tasks_added_while_it_runs():
    """An asynchronous campaign adds a task for every result that comes back."""
    from bodisc.execution.feed import TaskFeed

    feed = TaskFeed([(0, (0,)), (1, (1,))])
    seen = []
    with DaskExecutor(2) as ex:
        for out in ex.run(square, feed, timeout_s=60):
            seen.append((out.key, out.value))
            if out.key < 6:
                feed.add(out.key + 2, (out.key + 2,))
    assert sorted(seen) == [(k, k * k) for k in range(8)]


@pytest.mark.slow
def test_local_cluster_isolates_crash_hang_and_error():
    import dask

    tasks = [(x, (x,)) for x in ["a", "crash", "b", "hang", "raise", "c"]]
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}), \
            DaskExecutor(2) as ex:
        out = {o.key: o for o in ex.run(misbehave, tasks, timeout_s=8)}
        assert ex.restarts == 1
        # the cluster still works after the hang was cut off
        (after,) = list(ex.run(square, [(0, (3,))], timeout_s=60))
    assert sorted(out) == sorted(x for x, _ in tasks)
    assert [out[k].value for k in "abc"] == ["A", "B", "C"]
    assert out["crash"].failure.startswith("crash")
    assert out["hang"].failure == "timeout after 8 s"
    assert out["raise"].failure == "ValueError: bad molecule"
    assert after.value == 9


def test_unreachable_scheduler_is_one_clear_error():
    port = free_port()
    ex = DaskExecutor(scheduler=f"tcp://127.0.0.1:{port}", connect_timeout_s=2)
    with pytest.raises(ClusterError, match=f"tcp://127.0.0.1:{port}.*cannot reach"):
        list(ex.run(square, [(0, (1,))], timeout_s=10))


# --------------------------------------------------------------------------- campaigns


def slow_campaign(folder: Path, execution: str, seconds: float = 1.0) -> Path:
    text = TINY.replace('name = "xtb_dipole"', f'name = "{SLOW}:SlowOracle"')
    text = text.replace("n_conformers = 2", f'log = "{folder}/calls.log"\nseconds = {seconds}')
    text = text.replace('name = "logei"', 'name = "random"')
    text = text.replace("workers = 2", f"workers = 2\n{execution}")
    return write_campaign(folder, text)


def start(path: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bodisc.cli", "campaign", str(path),
                             "--quiet"], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def jobs(store: Path) -> list[tuple]:
    with sqlite3.connect(store) as db:
        return db.execute("SELECT j.inchikey, m.smiles, j.status, j.value FROM jobs j "
                          "JOIN molecules m USING (inchikey) ORDER BY j.id").fetchall()


def calls(folder: Path) -> list[tuple[str, int, str]]:
    path = folder / "calls.log"
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines()]
    return [(r[0], int(r[1]), r[2]) for r in rows if len(r) == 3]


def check_labelled_once(store: Path, budget: int) -> list[tuple]:
    rows = jobs(store)
    assert len(rows) == budget
    assert len({r[0] for r in rows}) == budget  # every molecule once
    assert all(r[2] == "done" for r in rows)
    assert all(r[3] == float(len(r[1])) for r in rows)  # the slow oracle's label
    return rows


def spawn(cmd: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)


@pytest.fixture
def hand_started_cluster(tmp_path):
    """A ``dask scheduler`` and two ``dask worker`` processes (each under its nanny) on
    loopback; yields the address and the two worker process groups."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "cluster-logs"
    logs.mkdir()
    procs = [spawn([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                    "--no-dashboard"], logs / "scheduler.log")]
    for i in range(2):
        procs.append(spawn(
            [str(DASK), "worker", address, "--nthreads", "1", "--nworkers", "1",
             "--no-dashboard", "--name", f"w{i}", "--local-directory", str(tmp_path / f"w{i}")],
            logs / f"w{i}.log"))
    try:
        from distributed import Client

        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=90)
        yield address, procs[1:]
    finally:
        for proc in procs[::-1]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.mark.slow
def test_campaign_survives_a_worker_killed_mid_job(tmp_path, hand_started_cluster):
    address, workers = hand_started_cluster
    path = slow_campaign(tmp_path, f'kind = "dask"\nscheduler = "{address}"', seconds=1.5)
    proc = start(path, tmp_path)
    victim = workers[0]
    killed: str | None = None
    first_seen: dict[tuple[int, str], float] = {}
    deadline = time.monotonic() + 300
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        log = calls(tmp_path)
        now = time.monotonic()
        finished = {(pid, s) for kind, pid, s in log if kind == "done"}
        busy = [(pid, s) for kind, pid, s in log if kind == "start" and (pid, s) not in finished]
        for job in busy:
            first_seen.setdefault(job, now)
        # a job the victim started less than 0.5 s ago (each takes 1.5 s): surely mid-job
        mine = [(pid, s) for pid, s in busy
                if _group_of(pid) == victim.pid and now - first_seen[(pid, s)] < 0.5]
        if len(finished) >= 4 and mine:  # past the seeds, and the victim is mid-job
            os.killpg(victim.pid, signal.SIGKILL)
            killed = mine[0][1]
        time.sleep(0.05)
    out, err = proc.communicate(timeout=300)
    assert killed is not None, "the worker was never caught mid-job"
    assert proc.returncode == 0, err
    rows = check_labelled_once(tmp_path / "runs/tiny/store.sqlite", 10)
    assert killed in {r[1] for r in rows}
    # the molecule in flight on the dead worker was redone by the other one
    victim_pids = {pid for kind, pid, s in calls(tmp_path) if s == killed and kind == "start"}
    redone = [pid for kind, pid, s in calls(tmp_path) if s == killed and kind == "done"]
    assert len(victim_pids) == 2 and len(redone) == 1
    assert "budget spent" in out


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


@pytest.mark.slow
def test_campaign_on_a_local_cluster(tmp_path):
    path = slow_campaign(tmp_path, 'kind = "dask"', seconds=0.2)
    proc = start(path, tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    check_labelled_once(tmp_path / "runs/tiny/store.sqlite", 10)
    pids = {pid for _, pid, _ in calls(tmp_path)}
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes did the work


@pytest.mark.slow
def test_async_campaign_on_a_local_cluster(tmp_path):
    """Asynchronous mode on Dask: each result frees a worker that gets the next molecule."""
    path = slow_campaign(tmp_path, 'kind = "dask"\nmode = "async"', seconds=0.3)
    proc = start(path, tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    store = tmp_path / "runs/tiny/store.sqlite"
    check_labelled_once(store, 10)
    with sqlite3.connect(store) as db:
        sizes = [n for (n,) in db.execute(
            "SELECT COUNT(*) FROM jobs WHERE iteration > 0 GROUP BY iteration")]
        utilisation = db.execute(
            "SELECT value FROM meta WHERE key = 'async/utilisation'").fetchone()
    assert sizes and max(sizes) <= 2  # one proposal per free worker, never a batch of 3
    assert utilisation is not None
    assert len({pid for _, pid, _ in calls(tmp_path)}) == 2
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert 0.0 < run.data.metrics["worker_utilisation"] <= 1.0
    history = client.get_metric_history(run.info.run_id, "call/best_so_far")
    assert sorted(m.step for m in history) == list(range(1, 11))  # step = oracle calls


def test_execution_settings_are_validated(tmp_path):
    from bodisc.config import load_campaign
    from bodisc.errors import ConfigError

    cfg = load_campaign(write_campaign(tmp_path, TINY.replace(
        "workers = 2", 'workers = 2\nkind = "dask"\nscheduler = "tcp://10.0.0.5:8786"')))
    assert (cfg.execution.kind, cfg.execution.scheduler) == ("dask", "tcp://10.0.0.5:8786")
    with pytest.raises(ConfigError, match='execution.scheduler.*needs execution.kind = "dask"'):
        load_campaign(write_campaign(tmp_path, TINY.replace(
            "workers = 2", 'workers = 2\nscheduler = "tcp://10.0.0.5:8786"')))
    with pytest.raises(ConfigError, match="execution.scheduler = '10.0.0.5:8786'"):
        load_campaign(write_campaign(tmp_path, TINY.replace(
            "workers = 2", 'workers = 2\nkind = "dask"\nscheduler = "10.0.0.5:8786"')))
    with pytest.raises(ConfigError, match="execution.kind = 'slurm'"):
        load_campaign(write_campaign(tmp_path, TINY.replace(
            "workers = 2", 'workers = 2\nkind = "slurm"')))
