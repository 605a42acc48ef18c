"""Executors for oracle and descriptor work: a local process pool and Dask distributed."""

from bodisc.execution.local import LocalExecutor, TaskOutcome

__all__ = ["LocalExecutor", "TaskOutcome"]
