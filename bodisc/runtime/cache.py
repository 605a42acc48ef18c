"""A result cache that campaigns share, so a molecule is computed once among them.

Oracle results and descriptors are kept in one SQLite file (WAL mode) keyed by the kind of
work, its settings and the molecule's InChIKey. A process claims the molecules it is about to
compute; another process that needs one of them waits for that result instead of computing
it again. A comparison's runs share one (``cache.sqlite`` in its folder), and so do the
methods of the open-ended benchmark.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bodisc.errors import StoreError

_CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    kind TEXT NOT NULL,
    settings TEXT NOT NULL,
    molecule TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('claimed', 'done')),
    payload BLOB,
    owner TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (kind, settings, molecule)
)
"""


class ResultCache:
    """Oracle results and descriptors shared by campaigns, e.g. the runs of a comparison.

    Rows are keyed by ``(kind, settings, molecule)``: the kind of work (``oracle`` or
    ``descriptors``), its settings (oracle name and options; descriptor set, which encodes
    the tier and recipe settings) and the molecule's InChIKey. A process about to compute a
    molecule first *claims* it; a process that finds a claim of another live process waits
    for that result instead of computing it again. Claims of dead processes are taken over.

    Args:
        path: The cache file; its folder is created.
        poll_s: How often to look for results another process is computing.
        stale_s: A claim not refreshed for this long (another host) counts as abandoned.

    Attributes:
        computed: Work items this process computed, per kind.
        reused: Work items this process took from the cache, per kind.
    """

    def __init__(self, path: str | Path, poll_s: float = 0.5, stale_s: float = 3600.0) -> None:
        self.path = Path(path)
        self.poll_s = poll_s
        self.stale_s = stale_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.computed: dict[str, int] = {}
        self.reused: dict[str, int] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_CACHE_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the result cache ({exc})") from None

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    # -- rows -------------------------------------------------------------------------
    def lookup(self, kind: str, settings: str, molecules: Sequence[str]
               ) -> dict[str, tuple[Any, str | None, float]]:
        """Finished results: ``molecule -> (value, failure, seconds)``."""
        out: dict[str, tuple[Any, str | None, float]] = {}
        items = list(molecules)
        for i in range(0, len(items), 500):
            chunk = items[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for mol, payload in self._db.execute(
                f"SELECT molecule, payload FROM results WHERE kind = ? AND settings = ? AND "
                f"status = 'done' AND molecule IN ({marks})", [kind, settings, *chunk]
            ):
                out[mol] = pickle.loads(payload)
        return out

    def put(self, kind: str, settings: str, molecule: str, value: Any, failure: str | None,
            seconds: float) -> None:
        """Store one finished result (the value must pickle)."""
        payload = pickle.dumps((value, failure, seconds), protocol=pickle.HIGHEST_PROTOCOL)
        self._write(
            "INSERT INTO results VALUES (?, ?, ?, 'done', ?, ?, ?) ON CONFLICT"
            "(kind, settings, molecule) DO UPDATE SET status = 'done', payload = excluded."
            "payload, owner = excluded.owner, updated_at = excluded.updated_at",
            (kind, settings, molecule, payload, self.owner, time.time()),
        )

    def take(self, kind: str, settings: str, molecule: str) -> tuple[Any, Any, Any] | None:
        """One molecule's result ``(value, failure, seconds)`` if cached (counted as reused).

        For callers that run work one task at a time (an asynchronous campaign); they
        give back what they computed with :meth:`keep`. No claim is taken.
        """
        found = self.lookup(kind, settings, [molecule])
        if molecule not in found:
            return None
        self.reused[kind] = self.reused.get(kind, 0) + 1
        return found[molecule]

    def keep(self, kind: str, settings: str, molecule: str, value: Any, failure: str | None,
             seconds: float) -> None:
        """Store a result computed outside :meth:`run` (counted as computed)."""
        self.put(kind, settings, molecule, value, failure, seconds)
        self.computed[kind] = self.computed.get(kind, 0) + 1

    def claim(self, kind: str, settings: str, molecules: Sequence[str]) -> set[str]:
        """Claim the molecules nobody is computing; returns those this process now holds."""
        mine: set[str] = set()
        now = time.time()
        self._write("BEGIN IMMEDIATE")
        try:
            for mol in molecules:
                row = self._db.execute(
                    "SELECT status, owner, updated_at FROM results WHERE kind = ? AND "
                    "settings = ? AND molecule = ?", (kind, settings, mol)).fetchone()
                if row is not None and (row[0] == "done" or (
                        row[1] != self.owner and self._alive(row[1], row[2], now))):
                    continue
                self._db.execute(
                    "INSERT OR REPLACE INTO results VALUES (?, ?, ?, 'claimed', NULL, ?, ?)",
                    (kind, settings, mol, self.owner, now))
                mine.add(mol)
            self._db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise
        return mine

    def _alive(self, owner: str, updated_at: float, now: float) -> bool:
        host, _, pid = owner.rpartition(":")
        if host != socket.gethostname():
            return now - updated_at < self.stale_s
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, ValueError):
            return True
        return True

    def _write(self, sql: str, args: Sequence[Any] = ()) -> None:
        try:
            self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot write the result cache ({exc})") from None

    def counts(self) -> dict[str, int]:
        """Finished results in the cache, per kind."""
        return dict(self._db.execute(
            "SELECT kind, COUNT(*) FROM results WHERE status = 'done' GROUP BY kind"))

    # -- running work through the cache ----------------------------------------------
    def run(self, kind: str, settings: str, executor: Any, fn: Callable[..., Any],
            tasks: Sequence[tuple[Any, tuple[Any, ...]]], molecule_of: Mapping[Any, str],
            timeout_s: float) -> Iterator[Any]:
        """Like ``executor.run(fn, tasks, timeout_s)``, computing each molecule only once.

        Args:
            kind: ``oracle`` or ``descriptors``.
            settings: Everything besides the molecule that decides the result.
            executor: A :class:`~bodisc.execution.LocalExecutor` (or one like it).
            fn: The task function.
            tasks: ``(task key, args)`` pairs.
            molecule_of: The molecule key of each task key.
            timeout_s: Time limit of one task.

        Yields:
            One :class:`~bodisc.execution.local.TaskOutcome` per task (cached ones first).
        """
        from bodisc.execution.local import TaskOutcome

        todo = {key: args for key, args in tasks}
        while todo:
            found = self.lookup(kind, settings, [molecule_of[k] for k in todo])
            for key in [k for k in todo if molecule_of[k] in found]:
                value, failure, seconds = found[molecule_of[key]]
                del todo[key]
                self.reused[kind] = self.reused.get(kind, 0) + 1
                yield TaskOutcome(key, value, failure, seconds)
            if not todo:
                return
            mine = self.claim(kind, settings, [molecule_of[k] for k in todo])
            if not mine:
                time.sleep(self.poll_s)  # others are computing them: wait for their results
                continue
            batch = [(k, todo[k]) for k in todo if molecule_of[k] in mine]
            for out in executor.run(fn, batch, timeout_s):
                self.put(kind, settings, molecule_of[out.key], out.value, out.failure,
                         out.seconds)
                self.computed[kind] = self.computed.get(kind, 0) + 1
                del todo[out.key]
                yield out
