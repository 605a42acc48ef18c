"""A test plug-in oracle that takes a set time per molecule and logs every call.

The label is a deterministic made-up number (the SMILES length), so campaigns with it are
fast and reproducible. Each call appends ``start <pid> <smiles>`` when it begins and
``done <pid> <smiles>`` when it ends to the ``log`` file, so a test can see which worker
process is busy with what, and kill it in the middle of a job.
"""

from __future__ import annotations

import os
import time

from pydantic import BaseModel, ConfigDict, Field

from bodisc.oracle import Oracle


class SlowOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    log: str
    seconds: float = Field(1.0, ge=0.0)


def _append(path: str, line: str) -> None:
    with open(path, "a") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


class SlowOracle(Oracle):
    name = "slow"
    property = "dipole"
    unit = "D"
    Options = SlowOptions

    def evaluate(self, smiles: str) -> float:
        _append(self.options.log, f"start {os.getpid()} {smiles}")
        time.sleep(self.options.seconds)
        _append(self.options.log, f"done {os.getpid()} {smiles}")
        return float(len(smiles))
