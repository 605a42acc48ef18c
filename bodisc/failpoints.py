"""Failpoints: named places where a test can make the campaign die on purpose.

The reliability tests must kill a campaign inside every phase (generation, descriptors,
fit, acquisition, oracle calls, commit, MLflow logging), some of which last milliseconds,
so killing at random times alone would rarely hit them. ``BODISC_FAILPOINTS`` names
failpoints and on which hit to fire, e.g. ``fit=2`` or ``oracle.commit=5,mlflow=1``; when
a named failpoint is reached for that many times, the process sends itself ``SIGKILL``,
exactly what an out-of-memory killer or a pulled plug does. Without the variable a
failpoint is one dictionary look-up.
"""

from __future__ import annotations

import os
import signal

ENV = "BODISC_FAILPOINTS"

#: Every failpoint the campaign has, in loop order (tests iterate over it).
FAILPOINTS: tuple[str, ...] = (
    "generate",            # after candidates are generated and recorded
    "descriptors",         # after one molecule's descriptors are committed
    "fit",                 # after the surrogate is fitted
    "acquire",             # after the batch is chosen, before it is recorded
    "oracle.submitted",    # with the batch recorded as pending, before any result
    "oracle.result",       # a result arrived, before it is committed
    "oracle.commit",       # right after a result is committed
    "iteration.complete",  # after the iteration's metrics are committed
    "mlflow",              # inside MLflow logging of an iteration
)


def _parse(spec: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        name, _, count = item.partition("=")
        out[name] = int(count or 1)
    return out


_armed: dict[str, int] = _parse(os.environ.get(ENV, ""))
_hits: dict[str, int] = {}


def failpoint(name: str) -> None:
    """Die with SIGKILL if ``name`` is armed and reached its hit count."""
    if not _armed or name not in _armed:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= _armed[name]:
        os.kill(os.getpid(), signal.SIGKILL)
