"""The shared result cache on its own: rows, claims, and running work through it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bodisc.execution.local import TaskOutcome
from bodisc.runtime.cache import ResultCache


class InlineExecutor:
    """Runs tasks in this process and remembers what it ran."""

    def __init__(self) -> None:
        self.ran: list[Any] = []

    def run(self, fn: Callable[..., Any], tasks: Sequence[tuple[Any, tuple[Any, ...]]],
            timeout_s: float) -> Iterator[TaskOutcome]:
        for key, args in tasks:
            self.ran.append(key)
            yield TaskOutcome(key, fn(*args), None, 0.25)


def square(x: int) -> int:
    return x * x


def test_put_and_lookup_by_kind_and_settings(tmp_path):
    cache = ResultCache(tmp_path / "sub" / "cache.sqlite")
    try:
        cache.put("oracle", "xtb", "AAA", 1.5, None, 2.0)
        cache.put("oracle", "xtb", "BBB", None, "crash", 0.1)
        assert cache.lookup("oracle", "xtb", ["AAA", "BBB", "CCC"]) == {
            "AAA": (1.5, None, 2.0), "BBB": (None, "crash", 0.1)}
        assert cache.lookup("oracle", "pyscf", ["AAA"]) == {}
        assert cache.lookup("descriptors", "xtb", ["AAA"]) == {}
        assert cache.counts() == {"oracle": 2}
    finally:
        cache.close()


def test_a_live_claim_is_respected_and_a_dead_one_taken_over(tmp_path):
    path = tmp_path / "cache.sqlite"
    mine, other = ResultCache(path), ResultCache(path)
    try:
        other.owner = f"{mine.owner.rpartition(':')[0]}:{os.getppid()}"  # a live process
        assert other.claim("oracle", "xtb", ["AAA"]) == {"AAA"}
        assert mine.claim("oracle", "xtb", ["AAA", "BBB"]) == {"BBB"}
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
        other.owner = f"{mine.owner.rpartition(':')[0]}:{dead}"
        assert other.claim("oracle", "xtb", ["CCC"]) == {"CCC"}
        assert mine.claim("oracle", "xtb", ["CCC"]) == {"CCC"}  # its owner is gone
        other.put("oracle", "xtb", "AAA", 4.0, None, 1.0)
        assert mine.claim("oracle", "xtb", ["AAA"]) == set()  # done: nothing to claim
    finally:
        mine.close()
        other.close()


def test_run_computes_each_molecule_once_across_caches(tmp_path):
    path = tmp_path / "cache.sqlite"
    first, second = ResultCache(path), ResultCache(path)
    try:
        tasks = [(k, (x,)) for k, x in (("a", 2), ("b", 3))]
        ex1 = InlineExecutor()
        out1 = {o.key: o.value for o in first.run("oracle", "sq", ex1, square, tasks,
                                                  {"a": "A", "b": "B"}, 10.0)}
        assert out1 == {"a": 4, "b": 9} and sorted(ex1.ran) == ["a", "b"]
        assert first.computed == {"oracle": 2} and first.reused == {}

        ex2 = InlineExecutor()
        tasks2 = [("x", (2,)), ("y", (5,))]
        out2 = list(second.run("oracle", "sq", ex2, square, tasks2, {"x": "A", "y": "C"}, 10.0))
        assert [(o.key, o.value) for o in out2] == [("x", 4), ("y", 25)]  # cached ones first
        assert out2[0].seconds == 0.25 and ex2.ran == ["y"]
        assert second.computed == {"oracle": 1} and second.reused == {"oracle": 1}
    finally:
        first.close()
        second.close()
