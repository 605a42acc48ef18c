"""Executors for oracle and descriptor work (local process pool; Dask later)."""

from bodisc.execution.local import LocalExecutor, TaskOutcome

__all__ = ["LocalExecutor", "TaskOutcome"]
