"""A test plug-in oracle that really crashes, hangs and exhausts memory on chosen molecules.

Any other molecule gets a deterministic made-up label (its SMILES length), so campaigns with
it are fast and their choices reproducible.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
from pydantic import BaseModel, ConfigDict

from bodisc.oracle import Oracle


class MisbehavingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    crash_on: tuple[str, ...] = ()
    hang_on: tuple[str, ...] = ()
    allocate_on: tuple[str, ...] = ()


class MisbehavingOracle(Oracle):
    name = "misbehaving"
    property = "dipole"
    unit = "D"
    Options = MisbehavingOptions

    def evaluate(self, smiles: str) -> float:
        if smiles in self.options.crash_on:
            os.kill(os.getpid(), signal.SIGSEGV)
        if smiles in self.options.hang_on:
            time.sleep(3600)
        if smiles in self.options.allocate_on:
            block = np.ones(64 * 2**30 // 8)  # 64 GB, far past the worker's limit
            return float(block.sum())
        return float(len(smiles))
