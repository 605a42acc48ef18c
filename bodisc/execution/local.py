"""Oracle and descriptor work in local worker processes.

Native code (xTB, RDKit, PySCF) can crash or hang. Work therefore runs in a pool of
``spawn``-ed worker processes, each limited to one OpenMP thread, with at most one task
per worker in flight so every task's deadline is known:

* a task past its time limit: the pool is torn down (its workers killed), that task is
  reported as ``timeout after N s`` and the other tasks that were in flight are
  resubmitted to a fresh pool;
* a worker that dies (segfault, out of memory): every task in flight is retried alone in a
  fresh pool, so the one that kills its worker is identified and reported as ``crash``
  while the others complete.

Results are yielded as they complete; the caller commits each at once.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from bodisc.execution.feed import TaskFeed, as_queue

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _die_with_parent(parent_pid: int | None) -> None:
    """Make the kernel kill this worker when the process that started it dies (Linux).

    Without it, a campaign killed with SIGTERM or SIGKILL leaves its workers computing
    their molecules for minutes, beside the resumed campaign (seen with xTB). The signal
    follows the thread that started the worker; bodisc starts workers from the thread
    that runs the campaign, which outlives them.
    """
    if parent_pid is None or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no prctl: workers outlive a killed parent
        return
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


def _init_worker(memory_limit_bytes: int | None = None, parent_pid: int | None = None
                 ) -> None:
    """Run first in every worker: one thread, a memory cap, before native libraries load.

    Args:
        memory_limit_bytes: Address-space limit of the worker (``RLIMIT_AS``); an
            allocation past it fails in that worker alone (``MemoryError`` in Python, a
            crash in native code) instead of starving the machine.
        parent_pid: The campaign's process: the worker dies with it (Linux).
    """
    _die_with_parent(parent_pid)
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    # A thread pool that loaded before this ran (the parent's main module is imported
    # again here first) keeps its own count: set it too. Races between threads reorder
    # float sums, and xTB labels then differ in their last bits from run to run.
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if memory_limit_bytes:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))


@dataclass(frozen=True)
class TaskOutcome:
    """What came back for one task.

    Attributes:
        key: The caller's key for the task.
        value: The function's return value, or ``None`` on failure.
        failure: ``None``, or the reason (``timeout after ...``, ``crash ...``, or the
            exception raised in the worker).
        seconds: Wall time from submission to result.
    """

    key: Any
    value: Any
    failure: str | None
    seconds: float


class LocalExecutor:
    """A pool of worker processes that isolates crashes and hangs.

    Args:
        workers: Number of worker processes.
        memory_limit_gb: Address-space limit of each worker, GB (``None``: no limit).
    """

    def __init__(self, workers: int = 2, memory_limit_gb: float | None = None) -> None:
        self.workers = max(1, int(workers))
        self.memory_limit = int(memory_limit_gb * 2**30) if memory_limit_gb else None
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
            initargs=(self.memory_limit, os.getpid()),
        )

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = self._new_pool(self.workers)
        return self._pool

    def _kill_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for proc in list(getattr(pool, "_processes", {}).values()):
            if proc.is_alive():
                proc.kill()
        pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self._kill_pool() if exc[0] is not None else self.close()

    def run(self, fn: Callable[..., Any],
            tasks: Sequence[tuple[Any, tuple[Any, ...]]] | TaskFeed,
            timeout_s: float) -> Iterator[TaskOutcome]:
        """Run ``fn(*args)`` for every ``(key, args)`` and yield outcomes as they finish.

        Args:
            fn: A picklable top-level function.
            tasks: ``(key, args)`` pairs, or a :class:`~bodisc.execution.feed.TaskFeed`
                the caller adds to while outcomes come back.
            timeout_s: Time limit of one task, from its start.

        Yields:
            One :class:`TaskOutcome` per task, in completion order.
        """
        queue = as_queue(tasks)
        solo: list[tuple[Any, tuple[Any, ...]]] = []  # suspects, retried one at a time
        while queue or solo:
            if solo:
                yield from self._run_alone(fn, solo.pop(), timeout_s)
                continue
            broken = yield from self._run_batch(fn, queue, timeout_s)
            solo.extend(broken)

    def _run_batch(self, fn: Callable[..., Any],
                   queue: list[tuple[Any, tuple[Any, ...]]] | TaskFeed, timeout_s: float
                   ) -> Iterator[TaskOutcome]:  # returns the tasks in flight at a crash
        in_flight: dict[Future[Any], tuple[Any, tuple[Any, ...], float]] = {}
        while queue or in_flight:
            pool = self._get_pool()
            while queue and len(in_flight) < self.workers:
                key, args = queue.pop()
                try:
                    future = pool.submit(fn, *args)
                except BrokenProcessPool:  # a worker died since the last results came back
                    queue.append((key, args))  # never started: not a suspect
                    if in_flight:  # their futures fail too; the crash is dealt with below
                        break
                    self._kill_pool()  # it died outside any task: a fresh pool
                    pool = self._get_pool()
                    continue
                in_flight[future] = (key, args, time.monotonic())
            deadline = min(t for _, _, t in in_flight.values()) + timeout_s
            done, _ = wait(in_flight, timeout=max(0.0, deadline - time.monotonic()),
                           return_when=FIRST_COMPLETED)
            if not done:  # the oldest task ran out of time
                now = time.monotonic()
                expired = [f for f, (_, _, t) in in_flight.items() if now - t >= timeout_s]
                self._kill_pool()
                for fut in expired:
                    key, _, t = in_flight.pop(fut)
                    yield TaskOutcome(key, None, f"timeout after {timeout_s:g} s", now - t)
                queue.extend((k, a) for k, a, _ in in_flight.values())
                in_flight.clear()
                continue
            # results that made it back are taken before a broken pool is dealt with
            for fut in sorted(done, key=lambda f: f.exception() is not None):
                key, args, t = in_flight.pop(fut)
                try:
                    value = fut.result()
                except BrokenProcessPool:
                    self._kill_pool()
                    suspects = [(key, args)] + [(k, a) for k, a, _ in in_flight.values()]
                    return suspects
                except Exception as exc:  # noqa: BLE001 - the task's own failure
                    yield TaskOutcome(key, None, f"{type(exc).__name__}: {exc}",
                                      time.monotonic() - t)
                else:
                    yield TaskOutcome(key, value, None, time.monotonic() - t)
        return []

    def _run_alone(self, fn: Callable[..., Any], task: tuple[Any, tuple[Any, ...]],
                   timeout_s: float) -> Iterator[TaskOutcome]:
        key, args = task
        self._kill_pool()
        pool = self._new_pool(1)
        start = time.monotonic()
        fut = pool.submit(fn, *args)
        procs = list(getattr(pool, "_processes", {}).values())  # kept to read exit codes
        done, _ = wait([fut], timeout=timeout_s)
        try:
            if not done:
                yield TaskOutcome(key, None, f"timeout after {timeout_s:g} s",
                                  time.monotonic() - start)
                return
            try:
                value = fut.result()
            except BrokenProcessPool:
                code = _exit_code(procs)
                yield TaskOutcome(key, None, f"crash: worker process died ({code})",
                                  time.monotonic() - start)
            except Exception as exc:  # noqa: BLE001
                yield TaskOutcome(key, None, f"{type(exc).__name__}: {exc}",
                                  time.monotonic() - start)
            else:
                yield TaskOutcome(key, value, None, time.monotonic() - start)
        finally:
            for proc in list(getattr(pool, "_processes", {}).values()):
                if proc.is_alive():
                    proc.kill()
            pool.shutdown(wait=True, cancel_futures=True)


def _exit_code(procs: Sequence[Any], patience_s: float = 5.0) -> str:
    """How the dead worker ended, e.g. ``killed by signal 11``.

    The pool's own manager thread joins the same worker at the same time. The thread
    whose ``waitpid`` reaps the worker stores its status on the shared process object a
    moment later; the other gets ``ECHILD`` and, read at once, no status at all (seen
    under load in CI). So the status is read again until it appears or ``patience_s``
    has passed.

    Args:
        procs: The pool's worker processes (``multiprocessing.Process``).
        patience_s: How long to wait for a status.
    """
    deadline = time.monotonic() + patience_s
    for proc in procs:
        proc.join(timeout=patience_s)
    while True:
        codes = [p.exitcode for p in procs if p.exitcode is not None]
        if codes or time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    if not codes:
        return "exit status unknown"
    code = codes[0]
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"
