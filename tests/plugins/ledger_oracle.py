"""Test plug-in oracles: bodisc's xTB and PySCF DFT dipole oracles that also write a ledger
line for every call they finish, so tests can count real oracle calls across kills and
resumes."""

from __future__ import annotations

import os
import time

from bodisc.builtin_oracles.pyscf import PyscfDipoleOptions, PyscfDipoleOracle
from bodisc.builtin_oracles.xtb import XtbDipoleOracle


def _record(ledger: str, smiles: str) -> None:
    with open(ledger, "a") as fh:
        fh.write(f"{smiles}\n")
        fh.flush()
        os.fsync(fh.fileno())


class LedgerOptions(XtbDipoleOracle.Options):
    ledger: str
    delay_s: float = 0.0  # seconds to sleep after each call (keeps a campaign busy)


class LedgerXtbDipole(XtbDipoleOracle):
    name = "ledger_xtb_dipole"
    Options = LedgerOptions

    def evaluate(self, smiles: str):
        out = super().evaluate(smiles)
        _record(self.options.ledger, smiles)
        time.sleep(self.options.delay_s)
        return out


class LedgerPyscfOptions(PyscfDipoleOptions):
    ledger: str


class LedgerPyscfDipole(PyscfDipoleOracle):
    name = "ledger_pyscf_dipole"
    Options = LedgerPyscfOptions

    def evaluate(self, smiles: str):
        out = super().evaluate(smiles)
        _record(self.options.ledger, smiles)
        return out
