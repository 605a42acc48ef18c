import os
import signal
import sys
import time

import pytest

from bodisc.execution import LocalExecutor


def square(x):
    return x * x


def misbehave(x):
    if x == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if x == "hang":
        time.sleep(60)
    if x == "raise":
        raise ValueError("bad molecule")
    return x.upper()


def thread_setting():
    import numpy  # noqa: F401 - a BLAS loaded, as an oracle's libraries load one
    from threadpoolctl import threadpool_info

    return os.environ.get("OMP_NUM_THREADS"), sorted({i["num_threads"] for i in threadpool_info()})


def test_runs_every_task_once():
    with LocalExecutor(2) as ex:
        out = list(ex.run(square, [(i, (i,)) for i in range(10)], timeout_s=30))
    assert sorted(o.key for o in out) == list(range(10))
    assert all(o.value == o.key**2 and o.failure is None for o in out)


def test_workers_are_single_threaded():
    with LocalExecutor(1) as ex:
        (out,) = list(ex.run(thread_setting, [(0, ())], timeout_s=30))
    # every native thread pool of the worker runs one thread: the initialiser ran before
    # any of them loaded (a BLAS loaded earlier keeps its own count and, in xTB, changed
    # labels in their last bits)
    assert out.value == ("1", [1])


def test_crash_hang_and_error_cost_only_their_own_task():
    tasks = [(x, (x,)) for x in ["a", "crash", "b", "hang", "raise", "c"]]
    start = time.monotonic()
    with LocalExecutor(2) as ex:
        out = {o.key: o for o in ex.run(misbehave, tasks, timeout_s=3)}
    assert time.monotonic() - start < 40
    assert set(out) == {"a", "crash", "b", "hang", "raise", "c"}
    for ok in "abc":
        assert out[ok].value == ok.upper() and out[ok].failure is None
    assert out["crash"].failure == "crash: worker process died (killed by signal 11)"
    assert out["hang"].failure.startswith("timeout after 3 s")
    assert out["raise"].failure == "ValueError: bad molecule"


def _write_pid_and_sleep(path):
    with open(path, "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(60)
    return "slept"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is dead
        return fh.read().split(")")[-1].split()[0] != "Z"


def worker_outlives_killed_owner(code, pid_file):
    """Run ``code`` (an owner whose worker writes its pid to ``pid_file`` and sleeps),
    SIGKILL the owner once the worker is up, and say whether the worker is still alive
    10 s later (a survivor is then killed)."""
    import subprocess
    from pathlib import Path

    owner = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parents[2])
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    worker = int(pid_file.read_text())
    assert _alive(worker)
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = _alive(worker)
    if alive:
        os.kill(worker, signal.SIGKILL)
    return alive


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="parent-death signals are Linux only")
def test_workers_die_with_a_killed_campaign_process(tmp_path):
    """SIGKILL the process that owns the pool: its worker, mid-task, goes too."""
    pid_file = tmp_path / "worker.pid"
    code = (
        "from bodisc.execution import LocalExecutor\n"
        "from tests.execution.test_local import _write_pid_and_sleep\n"
        "if __name__ == '__main__':\n"
        "    with LocalExecutor(1) as ex:\n"
        f"        list(ex.run(_write_pid_and_sleep, [(0, ({str(pid_file)!r},))], 120))\n"
    )
    assert worker_outlives_killed_owner(code, pid_file) is False


class _ReapedElsewhere:
    """A dead worker whose status another thread stores a moment after reaping it."""

    def __init__(self, delay_s: float) -> None:
        self.ready = time.monotonic() + delay_s

    def join(self, timeout: float | None = None) -> None:
        return None  # our waitpid lost the race (ECHILD): returns at once

    @property
    def exitcode(self) -> int | None:
        return -signal.SIGSEGV if time.monotonic() >= self.ready else None


def test_crash_status_is_read_after_the_pool_thread_reaps_the_worker():
    from bodisc.execution.local import _exit_code

    assert _exit_code([_ReapedElsewhere(0.2)]) == "killed by signal 11"
    assert _exit_code([_ReapedElsewhere(10.0)], patience_s=0.1) == "exit status unknown"


def pid_after(seconds):
    time.sleep(seconds)
    return os.getpid()


def test_a_worker_dying_after_a_result_came_back_is_retried_not_raised():
    # the slow task's worker dies while the loop holds the quick task's result: the next
    # submission meets a broken pool (seen in CI under load); that must not end the run
    tasks = [("slow", (3.0,)), ("quick", (0.0,)), ("next", (0.0,))]
    with LocalExecutor(2) as ex:
        outcomes = ex.run(pid_after, tasks, timeout_s=30)
        first = next(outcomes)
        assert first.key == "quick" and first.failure is None
        others = [p for p in ex._pool._processes.values() if p.pid != first.value]
        assert len(others) == 1
        os.kill(others[0].pid, signal.SIGKILL)  # the worker running "slow"
        time.sleep(1.0)  # the pool's thread marks the pool broken
        rest = {o.key: o for o in outcomes}
    assert set(rest) == {"slow", "next"}
    assert rest["next"].failure is None  # never started: not a suspect
    assert rest["slow"].failure is None  # run again alone, on a fresh worker


MAIN_WITH_NUMPY = """
import numpy  # loaded in every worker before its initialiser: spawn imports __main__ first
from bodisc.execution.local import LocalExecutor


def pools():
    from threadpoolctl import threadpool_info

    return sorted({i["num_threads"] for i in threadpool_info()})


if __name__ == "__main__":
    with LocalExecutor(1) as ex:
        (out,) = list(ex.run(pools, [(0, ())], timeout_s=60))
    print(out.value)
"""


def test_workers_are_single_threaded_whatever_the_main_module_loaded(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "main_with_numpy.py"
    script.write_text(MAIN_WITH_NUMPY)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "OPENBLAS_NUM_THREADS": "2",
                                           "OMP_NUM_THREADS": "2"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[1]"
