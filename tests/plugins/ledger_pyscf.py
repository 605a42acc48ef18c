"""A test plug-in oracle: bodisc's PySCF DFT dipole oracle that also writes a ledger line
for every call it finishes, so tests can count real DFT calls across kills and resumes."""

from __future__ import annotations

import os

from oracles.pyscf import PyscfDipoleOptions, PyscfDipoleOracle


class LedgerPyscfOptions(PyscfDipoleOptions):
    ledger: str


class LedgerPyscfDipole(PyscfDipoleOracle):
    name = "ledger_pyscf_dipole"
    Options = LedgerPyscfOptions

    def evaluate(self, smiles: str):
        out = super().evaluate(smiles)
        with open(self.options.ledger, "a") as fh:
            fh.write(f"{smiles}\n")
            fh.flush()
            os.fsync(fh.fileno())
        return out
