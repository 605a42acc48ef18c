"""One writer per campaign: an advisory lock file beside the store.

The lock is an ``flock`` on ``<store>.lock``, which the kernel releases when its holder
exits in any way (``kill -9`` included), so a lock left by a dead process is simply taken
over; the file also names its holder (pid, host, start time) for the message a second
``bodisc campaign`` on the same store prints before it refuses.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import IO, Any

from bodisc.errors import StoreError


class CampaignLock:
    """Exclusive lock on a campaign store.

    Args:
        store: Path of the campaign store; the lock is ``<store>.lock``.
    """

    def __init__(self, store: Path) -> None:
        self.path = Path(str(store) + ".lock")
        self._fh: IO[str] | None = None
        self.previous: dict[str, Any] | None = None

    def acquire(self) -> CampaignLock:
        """Take the lock or raise :class:`StoreError` naming the holder.

        Returns:
            ``self``; ``previous`` holds the record of a dead holder that was taken over.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fh)
            fh.close()
            raise StoreError(
                f"{self.path.with_suffix('')}: this campaign is already running "
                f"({describe(holder)}); wait for it to finish or stop it first"
            ) from None
        self.previous = _read(fh) or None
        fh.seek(0)
        fh.truncate()
        json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                   "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}, fh)
        fh.flush()
        os.fsync(fh.fileno())
        self._fh = fh
        return self

    def release(self) -> None:
        """Release the lock (the file stays, emptied)."""
        if self._fh is None:
            return
        try:
            self._fh.seek(0)
            self._fh.truncate()
            self._fh.flush()
        finally:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> CampaignLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def describe(holder: dict[str, Any] | None) -> str:
    """``pid 123 on host, started 2026-11-21 10:00:00 UTC`` (or ``holder unknown``)."""
    if not holder:
        return "holder unknown"
    return (f"pid {holder.get('pid')} on {holder.get('host')}, "
            f"started {holder.get('started')}")


def _read(fh: IO[str]) -> dict[str, Any]:
    fh.seek(0)
    try:
        data = json.loads(fh.read() or "{}")
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}
