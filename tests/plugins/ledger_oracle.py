"""A test plug-in oracle: bodisc's xTB dipole oracle that also writes a ledger line for
every call it finishes, so tests can count real oracle calls across kills and resumes."""

from __future__ import annotations

import os

from oracles.xtb import XtbDipoleOracle


class LedgerOptions(XtbDipoleOracle.Options):
    ledger: str


class LedgerXtbDipole(XtbDipoleOracle):
    name = "ledger_xtb_dipole"
    Options = LedgerOptions

    def evaluate(self, smiles: str):
        out = super().evaluate(smiles)
        with open(self.options.ledger, "a") as fh:
            fh.write(f"{smiles}\n")
            fh.flush()
            os.fsync(fh.fileno())
        return out
