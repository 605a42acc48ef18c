"""The external oracle: labels come from outside bodisc (a lab, another cluster).

A campaign with ``[oracle] name = "external"`` runs no calculation. ``bodisc suggest``
hands out proposals and records them as pending; ``bodisc ingest`` (or
``Campaign.tell``) brings the labels back. ``bodisc campaign`` on such a campaign stops
with a message saying so, since nothing can be evaluated in the meantime.

``property`` and ``unit`` (options) name what the lab measures; left out, the
campaign's objective is taken as it is.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from bodisc.errors import MoleculeFailure
from bodisc.oracle import Oracle

__all__ = ["ExternalOptions", "ExternalOracle"]

#: The registered name of the oracle that waits for ingested labels.
NAME = "external"


class ExternalOptions(BaseModel):
    """Options of :class:`ExternalOracle`.

    Attributes:
        property: What the external labels measure (default: the objective's property).
        unit: Its unit.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    property: str | None = None
    unit: str = ""


class ExternalOracle(Oracle):
    """Stands for labels that arrive through ingest; evaluating it is an error."""

    name: ClassVar[str] = NAME
    any_property: ClassVar[bool] = True
    cost: ClassVar[float] = 1.0
    Options: ClassVar[type[BaseModel]] = ExternalOptions

    @classmethod
    def returns(cls, options: BaseModel) -> tuple[str, str]:
        """The property and unit the options name (``""``: the objective's)."""
        return getattr(options, "property", None) or "", getattr(options, "unit", "")

    def evaluate(self, smiles: str) -> float:
        """Never runs: an external campaign's labels come from ``bodisc ingest``."""
        raise MoleculeFailure("the external oracle is not run by bodisc; labels come from "
                              "bodisc ingest")
