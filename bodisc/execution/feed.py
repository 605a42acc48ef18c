"""A task queue its consumer adds to while an executor runs it (asynchronous campaigns).

An executor's ``run`` takes tasks as a list and yields outcomes as they finish. Given a
:class:`TaskFeed` instead, it keeps taking tasks from the feed until the feed is empty and
nothing is in flight; the consumer adds the next task while it handles an outcome (the
executor is suspended at that ``yield``), so a free worker gets it on the executor's next
look at the queue. The executors use the feed as a stack whose top is the next task: the
retry paths put a task back on top with ``append``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Task = tuple[Any, tuple[Any, ...]]


class TaskFeed:
    """Tasks ``(key, args)`` in the order they are to start; :meth:`add` queues one more."""

    def __init__(self, tasks: Iterable[Task] = ()) -> None:
        self._items: list[Task] = list(tasks)[::-1]  # the next task is the last item

    def add(self, key: Any, args: tuple[Any, ...]) -> None:
        """Queue a task behind every task already queued."""
        self._items.insert(0, (key, args))

    def pop(self) -> Task:
        """Take the next task."""
        return self._items.pop()

    def append(self, task: Task) -> None:
        """Put a task back at the front (an executor's retry)."""
        self._items.append(task)

    def extend(self, tasks: Iterable[Task]) -> None:
        """Put tasks back at the front, the last one first."""
        self._items.extend(tasks)

    def __len__(self) -> int:
        return len(self._items)


def as_queue(tasks: Iterable[Task] | TaskFeed) -> list[Task] | TaskFeed:
    """An executor's queue: the feed itself, or a list of the tasks, next task last."""
    return tasks if isinstance(tasks, TaskFeed) else list(tasks)[::-1]
