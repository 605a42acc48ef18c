"""A campaign's objectives and constraints: labels from results, matrices, the front.

One place turns what an oracle (or a user's ``tell``) returned into the job's value and
properties, the labelled jobs into the matrices the multi-objective step takes, and the
labels into the non-dominated front and its hypervolume. Everything is in maximisation
form inside (a minimised objective is negated), in the properties' units outside.

Decisions, as a user of several objectives would expect them:

* a failed call has no value for any property: it is a recorded failure, out of every
  model, and never proposed again;
* a call that gave the objective but not every modelled property (an oracle that forgot
  one) is a failure naming the missing property, for the same reason;
* an infeasible label is a label: every GP learns from it (it says where the window is
  not), but it never counts in the hypervolume or on the front;
* the hypervolume's reference point is the objectives' ``reference`` values; an
  objective without one takes the worst of the first labels (the seeds) minus 10 % of
  their range, fixed once (stored), so the hypervolume curve of a campaign is one series.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bodisc.config import CampaignConfig
from bodisc.store import Job

#: Store meta key of the hypervolume's reference point (maximisation form).
REFERENCE_KEY = "hypervolume_reference"


class Objectives:
    """The objectives and modelled constraints of one campaign.

    Args:
        config: The campaign.

    Attributes:
        names: The objectives' properties, in file order.
        signs: +1 to maximise, -1 to minimise, shape ``(k,)``.
        constraints: The modelled constraints' properties, in file order.
        lower: Their lower bounds (``None``: unbounded).
        upper: Their upper bounds.
    """

    def __init__(self, config: CampaignConfig) -> None:
        self.config = config
        self.names = tuple(o.property for o in config.objectives)
        self.signs = np.array([1.0 if o.direction == "maximize" else -1.0
                               for o in config.objectives])
        cons = config.modelled_constraints
        self.constraints = tuple(c.property for c in cons)
        self.lower = tuple(c.min for c in cons)
        self.upper = tuple(c.max for c in cons)

    @property
    def several(self) -> bool:
        """Two or more objectives, or a modelled constraint: the multi-output step."""
        return len(self.names) > 1 or bool(self.constraints)

    @property
    def modelled(self) -> tuple[str, ...]:
        """Every property a label must give: the objectives, then the constraints."""
        return self.names + tuple(p for p in self.constraints if p not in self.names)

    def label(self, value: float | None, failure: str | None,
              properties: Mapping[str, float] | None
              ) -> tuple[float | None, str | None, dict[str, float] | None]:
        """The job's value, failure and properties from one result.

        The value is the first objective's property (the oracle's own property unless
        the campaign asks another it gives). A result without every modelled property
        becomes a failure that names the first missing one.

        Returns:
            ``(value, failure, properties)``; ``properties`` is ``None`` when the result
            gave none.
        """
        if failure is not None:
            return None, failure, None
        props = {str(k): float(v) for k, v in (properties or {}).items()}
        known = dict(props)
        if value is not None:
            known.setdefault(self.names[0], float(value))
        missing = [p for p in self.modelled if p not in known]
        if missing:
            gave = ", ".join(sorted(known)) or "nothing"
            return None, f"the result gave no {missing[0]!r} (it gave: {gave})", None
        bad = [p for p in self.modelled if not math.isfinite(known[p])]
        if bad:
            return None, f"non-finite {bad[0]!r} ({known[bad[0]]!r})", None
        return known[self.names[0]], None, props or None

    def matrices(self, jobs: Sequence[Job]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Objective and constraint matrices of labelled jobs.

        Returns:
            ``Y`` ``(n, k)`` objectives in maximisation form, ``C`` ``(n, c)``
            constraint properties in their units (NaN where a job lacks one, e.g. a
            label ingested with its value only) and ``complete`` ``(n,)``: the rows with
            every modelled property.
        """
        Y = np.array([[self.value(j, p) for p in self.names] for j in jobs],
                     dtype=float).reshape(len(jobs), len(self.names)) * self.signs
        C = np.array([[self.value(j, p) for p in self.constraints] for j in jobs],
                     dtype=float).reshape(len(jobs), len(self.constraints))
        complete = np.isfinite(Y).all(axis=1) & np.isfinite(C).all(axis=1)
        return Y, C, complete

    def value(self, job: Job, name: str) -> float:
        """A job's value of one property in its units (NaN where it has none).

        The first objective's is the job's value; the others come from its properties.
        """
        if name == self.names[0] and job.value is not None:
            return float(job.value)
        v = job.property_value(name)
        return float("nan") if v is None else v

    def feasible(self, C: np.ndarray) -> np.ndarray:
        """Rows of ``C`` ``(n, c)`` within every window, shape ``(n,)``."""
        from bodisc.pareto import feasible_mask

        return feasible_mask(C, self.lower, self.upper)

    def reference(self, Y: np.ndarray) -> np.ndarray:
        """The reference point ``(k,)`` in maximisation form from the given values and ``Y``.

        Args:
            Y: The labels it is inferred from where an objective gives no ``reference``,
                maximisation form ``(n, k)``.
        """
        from bodisc.pareto import reference_point

        given = [None if o.reference is None else s * o.reference
                 for o, s in zip(self.config.objectives, self.signs, strict=True)]
        if all(g is not None for g in given):
            return np.array(given, dtype=float)
        return reference_point(Y, given)

    def stored_reference(self, store: Any, Y: np.ndarray) -> np.ndarray | None:
        """The campaign's fixed reference point: stored, or made from ``Y`` and stored.

        ``None`` while there is nothing to infer it from.
        """
        saved = store.get_meta(REFERENCE_KEY)
        if saved is not None:
            return np.array(saved, dtype=float)
        finite = Y[np.isfinite(Y).all(axis=1)] if len(Y) else Y
        try:
            ref = self.reference(finite)
        except ValueError:
            return None
        store.set_meta(REFERENCE_KEY, [float(r) for r in ref])
        return ref

    def front(self, jobs: Sequence[Job]) -> list[Job]:
        """The feasible non-dominated labelled jobs, best first by the first objective."""
        from bodisc.pareto import pareto_mask

        Y, C, complete = self.matrices(jobs)
        ok = complete & self.feasible(C)
        if not ok.any():
            return []
        idx = np.flatnonzero(ok)
        mask = pareto_mask(Y[idx])
        chosen = idx[mask]
        order = np.argsort(-Y[chosen, 0], kind="stable")
        seen: set[str] = set()
        out = []
        for i in chosen[order]:
            if jobs[i].inchikey not in seen:
                seen.add(jobs[i].inchikey)
                out.append(jobs[i])
        return out

    def hypervolume_curve(self, calls: Sequence[Job], ref: np.ndarray) -> np.ndarray:
        """Hypervolume of the feasible labels after every call, shape ``(len(calls),)``.

        Failed, pending and infeasible calls leave it where it was.
        """
        from bodisc.pareto import hypervolume_trace

        done = [j if j.status == "done" else None for j in calls]
        Y = np.full((len(calls), len(self.names)), np.nan)
        rows = [i for i, j in enumerate(done) if j is not None]
        if rows:
            Yd, Cd, complete = self.matrices([done[i] for i in rows])  # type: ignore[misc]
            ok = complete & self.feasible(Cd)
            Y[np.array(rows)[ok]] = Yd[ok]
        return hypervolume_trace(Y, ref)
