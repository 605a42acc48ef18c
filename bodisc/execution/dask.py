"""Oracle and descriptor work on a Dask distributed cluster.

:class:`DaskExecutor` has the interface of :class:`~bodisc.execution.LocalExecutor`
(``run(fn, tasks, timeout_s)`` yields one :class:`~bodisc.execution.TaskOutcome` per task
as it finishes) and sends the work to a Dask cluster's workers:

* ``scheduler = "tcp://host:port"``: an existing cluster (``dask scheduler`` and
  ``dask worker`` started by hand, dask-jobqueue on Slurm, ...); its workers must be able
  to import bodisc and the oracle (a ``path/to/file.py:Class`` oracle must be at the same
  path on every worker machine);
* no scheduler: a :class:`distributed.LocalCluster` of ``workers`` single-threaded worker
  processes (under nannies, with ``worker_memory_gb`` as Dask's memory limit), started
  with the campaign and stopped with it.

What happens when things go wrong:

* a worker lost mid-job (its machine dies, ``kill -9``, a Slurm job ends): the scheduler
  hands its tasks to the other workers; the campaign's jobs stay ``pending`` in the store
  until a result arrives, and every result is yielded (and committed) once;
* a task that kills every worker it runs on (a segfault in native code) is given up after
  Dask's ``distributed.scheduler.allowed-failures`` retries and reported as ``crash``;
* a task running past its time limit is reported as ``timeout after N s``, cancelled, and
  its worker restarted through its nanny (a hung native call cannot be interrupted
  otherwise); the limit counts from when the task was seen executing, so tasks queued
  behind a lost worker are not timed out;
* no worker at all for ``no_worker_timeout_s``: :class:`ClusterError` stops the campaign;
  its jobs stay pending and the next run redoes them.

At most as many tasks as the cluster has worker threads are submitted at a time, so each
task's deadline is known and work spreads over workers that join later.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from bodisc.errors import BodiscError
from bodisc.execution.feed import TaskFeed, as_queue
from bodisc.execution.local import _THREAD_VARS, LocalExecutor, TaskOutcome

if TYPE_CHECKING:
    from bodisc.config import ExecutionConfig

__all__ = ["ClusterError", "DaskExecutor", "make_executor"]

#: How often the loop wakes to check deadlines and the cluster's size, s.
_POLL_S = 1.0


class ClusterError(BodiscError):
    """The Dask cluster cannot be reached or has no workers."""

    exit_code = 4


def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Run one task on a worker.

    One OpenMP thread unless the worker's environment says otherwise, set before the task
    imports native libraries.
    """
    for var in _THREAD_VARS:
        os.environ.setdefault(var, "1")
    return fn(*args)


def _executing(dask_worker: Any) -> list[str]:
    """Keys of the tasks a worker is executing right now (run on the worker)."""
    return [str(ts.key) for ts in dask_worker.state.executing]


class DaskExecutor:
    """Runs tasks on a Dask cluster: an existing one, or a local one it starts.

    Args:
        workers: Worker processes of the local cluster (ignored with ``scheduler``).
        memory_limit_gb: Memory limit of each local worker, GB (``None``: none); Dask's
            nanny restarts a worker past 95 % of it.
        scheduler: Address of a running scheduler (``tcp://host:port``), or ``None`` to
            start a :class:`distributed.LocalCluster`.
        connect_timeout_s: How long to try to reach the scheduler.
        no_worker_timeout_s: How long work may wait with no worker before
            :class:`ClusterError` stops it.
    """

    def __init__(self, workers: int = 2, memory_limit_gb: float | None = None,
                 scheduler: str | None = None, connect_timeout_s: float = 30.0,
                 no_worker_timeout_s: float = 300.0) -> None:
        self.workers = max(1, int(workers))
        self.memory_limit_gb = memory_limit_gb
        self.scheduler = scheduler
        self.connect_timeout_s = connect_timeout_s
        self.no_worker_timeout_s = no_worker_timeout_s
        self._client: Any = None
        self._cluster: Any = None
        self.restarts = 0  # workers restarted after a timeout

    # -- connection -------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The :class:`distributed.Client`, connected (and the cluster started) on first use.

        Raises:
            ClusterError: If the scheduler cannot be reached.
        """
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self) -> Any:
        from distributed import Client, LocalCluster

        if self.scheduler:
            try:
                return Client(self.scheduler, timeout=self.connect_timeout_s,
                              set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ClusterError(
                    f"execution.scheduler = {self.scheduler!r}: cannot reach the Dask "
                    f"scheduler ({type(exc).__name__}: {exc}); start it with "
                    f"'dask scheduler' or fix the address"
                ) from None
        memory = f"{self.memory_limit_gb}GiB" if self.memory_limit_gb else 0
        self._cluster = LocalCluster(
            n_workers=self.workers, threads_per_worker=1, processes=True,
            memory_limit=memory, dashboard_address=None, silence_logs=logging.ERROR,
            env={var: "1" for var in _THREAD_VARS},
        )
        return Client(self._cluster, set_as_default=False)

    def close(self) -> None:
        """Disconnect; a local cluster is shut down (an external one keeps running)."""
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- work -------------------------------------------------------------------------
    def run(self, fn: Callable[..., Any],
            tasks: Sequence[tuple[Any, tuple[Any, ...]]] | TaskFeed,
            timeout_s: float) -> Iterator[TaskOutcome]:
        """Run ``fn(*args)`` for every ``(key, args)`` on the cluster; yield as they finish.

        Args:
            fn: A top-level function the workers can import.
            tasks: ``(key, args)`` pairs, or a :class:`~bodisc.execution.feed.TaskFeed`
                the caller adds to while outcomes come back.
            timeout_s: Time limit of one task, from when it is seen executing.

        Yields:
            One :class:`~bodisc.execution.TaskOutcome` per task, in completion order.

        Raises:
            ClusterError: If the scheduler is unreachable or no worker is there for
                ``no_worker_timeout_s``.
        """
        from distributed import wait

        queue = as_queue(tasks)
        if not queue:
            return
        client = self.client
        # future -> (key, args, submitted at, deadline clock start)
        in_flight: dict[Any, list[Any]] = {}
        no_worker_since: float | None = None
        try:
            while queue or in_flight:
                capacity = sum(client.nthreads().values())
                now = time.monotonic()
                if capacity == 0:
                    no_worker_since = no_worker_since or now
                    if now - no_worker_since > self.no_worker_timeout_s:
                        raise ClusterError(
                            f"no Dask worker for {self.no_worker_timeout_s:g} s at "
                            f"{self._address()}; the unfinished jobs stay pending"
                        )
                    for entry in in_flight.values():  # nothing runs: no deadline runs
                        entry[3] = now
                else:
                    no_worker_since = None
                while queue and len(in_flight) < max(1, capacity):
                    key, args = queue.pop()
                    fut = client.submit(_call, fn, args, pure=False,
                                        key=f"bodisc-{getattr(fn, '__name__', 'task')}-"
                                            f"{uuid.uuid4().hex}")
                    in_flight[fut] = [key, args, now, now]
                first_deadline = min(e[3] for e in in_flight.values()) + timeout_s
                try:
                    with client.as_current():
                        done, _ = wait(list(in_flight), return_when="FIRST_COMPLETED",
                                       timeout=max(0.05, min(_POLL_S, first_deadline - now)))
                except TimeoutError:
                    done = set()
                for fut in done:
                    key, _, submitted, _ = in_flight.pop(fut)
                    yield self._outcome(fut, key, submitted)
                if not done:
                    yield from self._expire(in_flight, timeout_s)
        finally:
            if in_flight:
                client.cancel(list(in_flight))

    def _outcome(self, fut: Any, key: Any, submitted: float) -> TaskOutcome:
        from distributed.scheduler import KilledWorker

        seconds = time.monotonic() - submitted
        if fut.status == "finished":
            return TaskOutcome(key, fut.result(), None, seconds)
        exc = fut.exception()
        if isinstance(exc, KilledWorker):
            return TaskOutcome(key, None, "crash: the task killed every Dask worker it ran on "
                                          f"({exc})", seconds)
        if exc is None:  # cancelled by someone else
            return TaskOutcome(key, None, f"cancelled on the Dask cluster ({fut.status})",
                               seconds)
        return TaskOutcome(key, None, f"{type(exc).__name__}: {exc}", seconds)

    def _expire(self, in_flight: dict[Any, list[Any]], timeout_s: float
                ) -> Iterator[TaskOutcome]:
        """Time out tasks executing past their limit; restart the workers running them."""
        now = time.monotonic()
        late = [f for f, e in in_flight.items() if now - e[3] >= timeout_s]
        if not late:
            return
        client = self.client
        try:
            executing = client.run(_executing, on_error="return")
        except Exception:  # noqa: BLE001 - the cluster changes under us; look again later
            return
        where: dict[str, str] = {}
        for worker, keys in executing.items():
            if isinstance(keys, list):
                for k in keys:
                    where[k] = worker
        restart: set[str] = set()
        for fut in late:
            worker = where.get(str(fut.key))
            if worker is None:  # queued, not executing: its clock starts now
                in_flight[fut][3] = now
                continue
            key, _, submitted, _ = in_flight.pop(fut)
            fut.cancel()
            restart.add(worker)
            yield TaskOutcome(key, None, f"timeout after {timeout_s:g} s", now - submitted)
        if restart:
            self._restart(sorted(restart))
            for entry in in_flight.values():  # their workers may have changed
                entry[3] = time.monotonic()

    def _restart(self, workers: list[str]) -> None:
        """Restart workers through their nannies; stop them where there is none."""
        client = self.client
        self.restarts += len(workers)
        try:
            client.restart_workers(workers, timeout=60, raise_for_error=True)
        except Exception:  # noqa: BLE001 - no nanny: the worker goes, the rest carry on
            with contextlib.suppress(Exception):
                client.retire_workers(workers, close_workers=True, remove=True)

    def _address(self) -> str:
        if self.scheduler:
            return self.scheduler
        return getattr(self._cluster, "scheduler_address", "the local cluster")


def make_executor(execution: ExecutionConfig) -> LocalExecutor | DaskExecutor:
    """The executor a campaign's ``[execution]`` section asks for.

    Args:
        execution: The validated ``[execution]`` section.
    """
    if execution.kind == "dask":
        return DaskExecutor(execution.workers, execution.worker_memory_gb,
                            scheduler=execution.scheduler)
    return LocalExecutor(execution.workers, execution.worker_memory_gb)
