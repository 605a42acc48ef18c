"""User oracles run whole campaigns: one named by file path, one registered as an entry point
of an installed distribution (the docs' example oracle, tests/plugins/crippen_logp.py)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from rdkit import Chem
from rdkit.Chem import Crippen

from tests.conftest import TINY, write_campaign

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).parent / "plugins" / "crippen_logp.py"


def logp_campaign(folder: Path, oracle: str, acquisition: str) -> Path:
    text = TINY.replace('property = "dipole"', 'property = "logp"').replace('unit = "D"', "")
    text = text.replace('name = "xtb_dipole"', f'name = "{oracle}"')
    text = text.replace("n_conformers = 2", "max_heavy_atoms = 5")
    text = text.replace('name = "logei"', f'name = "{acquisition}"')
    return write_campaign(folder, text)


def run(path: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bodisc.cli", "campaign", str(path), "--quiet"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def check_labels(store: Path) -> None:
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT m.smiles, j.status, j.value FROM jobs j "
                          "JOIN molecules m USING (inchikey)").fetchall()
    assert len(rows) == 10 and all(status == "done" for _, status, _ in rows)
    for smiles, _, value in rows:
        assert value == pytest.approx(Crippen.MolLogP(Chem.MolFromSmiles(smiles)))


def test_oracle_from_a_file_path_runs_a_campaign(tmp_path):
    proc = run(logp_campaign(tmp_path, f"{EXAMPLE}:CrippenLogP", "random"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "best molecules (maximize logp)" in proc.stdout
    check_labels(tmp_path / "runs/tiny/store.sqlite")


def test_oracle_from_an_entry_point_runs_a_campaign(tmp_path):
    # an installed distribution "my-oracles" that registers the oracle as crippen_logp
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(EXAMPLE, site / "my_oracles.py")
    info = site / "my_oracles-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-oracles\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[bodisc.oracles]\ncrippen_logp = my_oracles:CrippenLogP\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(site), str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    path = logp_campaign(tmp_path, "crippen_logp", "logei")
    listed = subprocess.run([sys.executable, "-m", "bodisc.cli", "validate", str(path),
                             "--set", 'oracle.name="nope"'], env=env, capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 2 and "crippen_logp" in listed.stderr  # listed as registered
    proc = run(path, tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    check_labels(tmp_path / "runs/tiny/store.sqlite")
    # without the distribution the name is unknown, and the error says what is known
    bare = run(path, tmp_path)
    assert bare.returncode == 2
    assert "oracle.name = 'crippen_logp': unknown oracle; registered:" in bare.stderr
