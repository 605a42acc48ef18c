"""Labels from outside bodisc: which job each row settles, checked before anything is written.

The rules (what ``bodisc ingest``, ``[data] labelled`` and ``Campaign.ingest`` share):

* a label (or a failure with its reason) for a pending suggestion settles it;
* a label for a molecule bodisc never proposed is accepted as **off-policy**: a new,
  unpaid job (it does not count against ``[budget] oracle_calls``);
* a row with status ``cancelled`` withdraws a pending suggestion, which then no longer
  counts as a call and is never proposed again; a label for a withdrawn suggestion is
  still taken;
* a row identical to what the store holds changes nothing, so ingesting a file twice is
  a no-op;
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


def _same(job: Job, row: Any) -> bool:
    if job.status != row.status:
        return False
    if row.status == "failed":
        return (job.reason or "") == (row.reason or "")
    if job.value is None or row.value is None:
        return False
    return math.isclose(job.value, row.value, rel_tol=1e-12, abs_tol=1e-12)


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
            ``reason``, ``source``, ``heavy_atoms``).
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
        if job is None:
            plan.labels.append(ExternalLabel(row.inchikey, row.status, row.value, row.reason,
                                             {**prov, "off_policy": True}, None, row.smiles,
                                             row.heavy_atoms))
            plan.off_policy += 1
        elif job.status in ("pending", "cancelled"):
            plan.labels.append(ExternalLabel(row.inchikey, row.status, row.value, row.reason,
                                             prov, job.id))
            plan.settled += 1
        elif _same(job, row):
            plan.unchanged += 1
        else:
            given = f"failed ({row.reason})" if row.status == "failed" else f"{row.value:.6g}"
            column = "reason" if row.status == "failed" else label
            plan.problems.append(
                f"{where}, column '{column}': {given} for {row.smiles}, which already has "
                f"{_describe(job)}; a molecule has one result per oracle (combine replicates "
                f"before ingest)")
    return plan
