"""Labels from outside bodisc: which job each row settles, checked before anything is written.

The rules (what ``bodisc ingest``, ``[data] labelled`` and ``Campaign.ingest`` share):

* a label (or a failure with its reason) for a pending suggestion settles it;
* a label for a molecule bodisc never proposed is accepted as **off-policy**: a new,
  unpaid job (it does not count against ``[budget] oracle_calls``);
* a row with status ``cancelled`` withdraws a pending suggestion, which then no longer
  counts as a call and is never proposed again; a label for a withdrawn suggestion is
  still taken;
* a row identical to what the store holds (the same status and value and, where both
  have them, the same properties) changes nothing, so ingesting a file twice is a no-op;
* a row's properties (a campaign with several objectives or modelled constraints) are
  kept with its label, so the label trains every model;
* a second, different result for a molecule that has one is refused, naming the row: one
  molecule has one label per oracle, the label the campaign learnt from. Replicates are
  not combined; average them before ingest (decision: a combined label would need a
  noise model per molecule that the GP does not have).

Every problem of a file is collected; with one, nothing of the file is written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bodisc.store import ExternalLabel, Job


@dataclass
class IngestPlan:
    """What a file does to a store, row by row.

    Attributes:
        labels: The writes, in file order.
        settled: Pending (or withdrawn) suggestions that get a result.
        off_policy: Results for molecules bodisc never proposed.
        withdrawn: Pending suggestions withdrawn.
        unchanged: Rows identical to what the store holds.
        problems: One line per refused row (nothing may be written when not empty).
    """

    labels: list[ExternalLabel] = field(default_factory=list)
    settled: int = 0
    off_policy: int = 0
    withdrawn: int = 0
    unchanged: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: what the file changed."""
        return (f"{self.settled} suggestion(s) settled, {self.off_policy} off-policy "
                f"label(s), {self.withdrawn} withdrawn, {self.unchanged} unchanged")


def _close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def _other_property(job: Job, row: Any) -> str | None:
    """The first property of the row that the job, which has properties, gives otherwise.

    ``None`` when they agree, or when either has no properties (nothing to compare).
    """
    given = getattr(row, "properties", None)
    if not given or not job.properties:
        return None
    for name, value in given.items():
        if not _close(job.property_value(name), value):
            return name
    return None


def _same(job: Job, row: Any) -> bool:
    if job.status != row.status:
        return False
    if row.status == "failed":
        return (job.reason or "") == (row.reason or "")
    return _close(job.value, row.value) and _other_property(job, row) is None


def _describe(job: Job) -> str:
    if job.status == "failed":
        return f"failed ({job.reason})"
    if job.status == "cancelled":
        return "withdrawn"
    return f"{job.value:.6g}" if job.value is not None else job.status


def plan_ingest(rows: Sequence[Any], jobs: Sequence[Job], file: str, label: str,
                kind: str = "ingest", digest: str | None = None,
                now: float | None = None) -> IngestPlan:
    """Decide what each row does, checking them all.

    Args:
        rows: Validated rows (:class:`bodisc.data.tables.LabelRow`: ``row``, ``smiles``,
            ``inchikey``, ``value``, ``status`` of ``done``/``failed``/``cancelled``,
            ``reason``, ``source``, ``heavy_atoms`` and, optionally, ``properties``,
            which are stored with the label).
        jobs: The campaign's target jobs (:meth:`CampaignStore.jobs`).
        file: The file's name as the user gave it (messages and provenance).
        label: The label column's name (messages).
        kind: ``ingest`` or ``import`` (``[data] labelled``), kept in the provenance.
        digest: The file's content hash, kept in the provenance.
        now: The time recorded in the provenance (default: now).

    Returns:
        The plan; ``problems`` lists refused rows, one line each.
    """
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now if now is not None
                                                              else time.time()))
    by_key = {j.inchikey: j for j in jobs}
    plan = IngestPlan()
    for row in rows:
        prov: dict[str, Any] = {"kind": kind, "file": file, "row": row.row, "time": stamp}
        if getattr(row, "source", None):
            prov["source"] = row.source
        if digest:
            prov["digest"] = digest
        job = by_key.get(row.inchikey)
        where = f"{file}: row {row.row}"
        if row.status == "cancelled":
            if job is None:
                plan.problems.append(f"{where}, column 'status': 'cancelled' for {row.smiles}, "
                                     f"which was never proposed; nothing to withdraw")
            elif job.status == "pending":
                plan.labels.append(ExternalLabel(row.inchikey, "cancelled", None, None, prov,
                                                 job.id))
                plan.withdrawn += 1
            elif job.status == "cancelled":
                plan.unchanged += 1
            else:
                plan.problems.append(f"{where}, column 'status': cannot withdraw {row.smiles}: "
                                     f"it already has a result ({_describe(job)})")
            continue
        properties = getattr(row, "properties", None) if row.status == "done" else None
        if job is None:
            plan.labels.append(ExternalLabel(row.inchikey, row.status, row.value, row.reason,
                                             {**prov, "off_policy": True}, None, row.smiles,
                                             row.heavy_atoms, properties))
            plan.off_policy += 1
        elif job.status in ("pending", "cancelled"):
            plan.labels.append(ExternalLabel(row.inchikey, row.status, row.value, row.reason,
                                             prov, job.id, properties=properties))
            plan.settled += 1
        elif _same(job, row):
            plan.unchanged += 1
        else:
            given = f"failed ({row.reason})" if row.status == "failed" else f"{row.value:.6g}"
            column = "reason" if row.status == "failed" else label
            has = _describe(job)
            other = (_other_property(job, row) if job.status == row.status == "done"
                     and _close(job.value, row.value) else None)
            if other is not None:  # the same label, another property
                column, given = other, f"{properties[other]:.6g}"
                kept = job.property_value(other)
                has = f"{kept:.6g}" if kept is not None else f"no {other!r}"
            plan.problems.append(
                f"{where}, column '{column}': {given} for {row.smiles}, which already has "
                f"{has}; a molecule has one result per oracle (combine replicates "
                f"before ingest)")
    return plan
