"""Shared fixtures: small, fast campaign files written into a temporary folder."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

TINY = """
name = "tiny"
random_seed = 7
seed_molecules = ["CCO", "CC#N", "CC(C)=O", "CN"]

[objective]
property = "dipole"
direction = "maximize"
unit = "D"

[generator]
candidates_per_iteration = 16
allowed_elements = ["C", "N", "O"]
max_heavy_atoms = 5
min_heavy_atoms = 2

[descriptors]
names = ["mu", "homo", "lumo", "mw"]

[acquisition]
name = "logei"
batch_size = 3

[oracle]
name = "xtb_dipole"

[oracle.options]
n_conformers = 2

[budget]
oracle_calls = 10

[execution]
workers = 2

[paths]
store = "{root}/runs/{name}/store.sqlite"
export_csv = "{root}/runs/{name}/results.csv"
mlruns = "{root}/mlruns"
"""


def write_campaign(folder: Path, text: str = TINY, name: str = "campaign.toml") -> Path:
    """Write a campaign file whose outputs all go under ``folder``."""
    path = folder / name
    path.write_text(textwrap.dedent(text).replace("{root}", str(folder)))
    return path


@pytest.fixture
def tiny_campaign(tmp_path: Path) -> Path:
    return write_campaign(tmp_path)


@pytest.fixture(autouse=True, scope="session")
def _one_openmp_thread():
    """One OpenMP thread in the test process, as in bodisc's workers.

    tblite's (and torch's) OpenMP threads oversubscribe small CI machines and reorder
    floating-point sums between runs.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        yield
