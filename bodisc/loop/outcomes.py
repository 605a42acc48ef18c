"""What ``Campaign.ask`` returns and ``Campaign.tell`` takes, and the rules for results.

A result is taken once: a second, identical one is a no-op, a different one is refused
(a committed label is what the campaign learnt from; replacing it would change the past),
and so is a result for a molecule the campaign never proposed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bodisc.errors import TellError
from bodisc.store import TARGET, Job


@dataclass(frozen=True)
class Proposal:
    """One molecule :meth:`Campaign.ask` proposes, recorded in the store as a pending job.

    Attributes:
        smiles: The molecule.
        inchikey: Its InChIKey (how the store knows it).
        mean: Predicted label (label units), ``None`` without a model (seeds, random).
        std: Predictive standard deviation, or ``None``.
        acquisition: The acquisition value when it was chosen, or ``None``.
        iteration: The iteration (batch) it belongs to.
        fidelity: ``target``, or ``cheap`` for a cheap call of a multi-fidelity campaign.
        oracle: The oracle that is to label it.
    """

    smiles: str
    inchikey: str
    mean: float | None
    std: float | None
    acquisition: float | None
    iteration: int
    fidelity: str = TARGET
    oracle: str = ""


@dataclass(frozen=True)
class Outcome:
    """A result for :meth:`Campaign.tell`: a label, or a failure with its reason.

    Attributes:
        molecule: The molecule's InChIKey or SMILES.
        value: The label (label units); ``None`` for a failure.
        failure: Why the molecule could not be labelled; ``None`` for a label.
        seconds: What the evaluation cost, if known.
        extras: Further values of the same calculation (stored with the label).
        fidelity: Which job of the molecule it answers (``target`` or ``cheap``).
        properties: Every property the calculation gave, name -> value; a campaign
            with several objectives or constraints needs each of its properties here
            (the first objective's may be ``value`` alone).
    """

    molecule: str
    value: float | None = None
    failure: str | None = None
    seconds: float = 0.0
    extras: Mapping[str, Any] | None = None
    fidelity: str = TARGET
    properties: Mapping[str, float] | None = None

    @classmethod
    def of(cls, molecule: str, result: Any) -> Outcome:
        """From a label, or from an :class:`~bodisc.oracle.OracleResult` of an oracle."""
        if hasattr(result, "failure") and hasattr(result, "value"):
            return cls(molecule, result.value, result.failure,
                       float(getattr(result, "seconds", 0.0)), getattr(result, "extras", None),
                       properties=getattr(result, "properties", None))
        return cls(molecule, result)


def check_outcome(out: Outcome, job: Job | None, earlier: Outcome | None, row: int) -> None:
    """Refuse a result ``tell`` cannot take, with one line naming it.

    Args:
        out: The result.
        job: The campaign's job of its molecule and fidelity (``None``: there is none).
        earlier: A result for the same job earlier in the same ``tell``.
        row: Its position in the ``tell`` (for the message).

    Raises:
        TellError: If the result cannot be taken.
    """
    where = f"result {row} ({out.molecule})"
    if (out.value is None) == (out.failure is None):
        raise TellError(f"{where}: give either a value or a failure reason, not "
                        f"{'both' if out.value is not None else 'neither'}")
    if out.value is not None and not (isinstance(out.value, numbers.Real)
                                      and not isinstance(out.value, bool)
                                      and math.isfinite(out.value)):
        raise TellError(f"{where}: value {out.value!r} is not a finite number")
    if job is None:
        raise TellError(f"{where}: this campaign has no {out.fidelity} job for that molecule; "
                        f"tell takes results of molecules that ask proposed")
    if earlier is not None:
        old_value, old_failure = earlier.value, earlier.failure
    elif job.status != "pending":
        old_value, old_failure = job.value, job.reason
    else:
        return
    new_value = None if out.value is None else float(out.value)
    if (new_value, out.failure) != (old_value, old_failure):
        had = f"value {old_value!r}" if old_failure is None else f"failure {old_failure!r}"
        new = f"value {new_value!r}" if out.failure is None else f"failure {out.failure!r}"
        raise TellError(f"{where}: already has {had}; a different result ({new}) is refused "
                        f"(a committed result is never replaced)")
