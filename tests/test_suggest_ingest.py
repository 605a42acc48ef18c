"""Labels from outside, end to end through the CLI: suggest, ingest, cancel, export.

A campaign with the external oracle, real xTB descriptors and a real store; the "lab" is
RDKit's Crippen logP, so every label is known and checkable.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from rdkit import Chem
from rdkit.Chem import Crippen

from tests.conftest import TINY, write_campaign

pytestmark = pytest.mark.slow

EXTERNAL = (TINY.replace('name = "xtb_dipole"', 'name = "external"')
            .replace("[oracle.options]\nn_conformers = 2\n", "")
            .replace('property = "dipole"', 'property = "logp"')
            .replace('unit = "D"', 'unit = ""')
            .replace("candidates_per_iteration = 16", "candidates_per_iteration = 8"))


def bodisc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bodisc.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def lab(smiles: str) -> float:
    return round(Crippen.MolLogP(Chem.MolFromSmiles(smiles)), 4)


def fill(batch: Path, out: Path, **status: str) -> None:
    """The lab's answer to a suggestion file: every label filled in, some rows changed."""
    rows = list(csv.DictReader(batch.open()))
    for row in rows:
        row["logp"] = lab(row["smiles"])
        row["source"] = "Crippen (test lab)"
        if row["smiles"] in status:
            row["status"], row["logp"] = status[row["smiles"]], ""
            row["reason"] = "sample lost" if status[row["smiles"]] == "failed" else ""
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def jobs(store: Path) -> list[tuple]:
    with sqlite3.connect(store) as db:
        return db.execute("SELECT inchikey, status, value, paid FROM jobs "
                          "ORDER BY iteration, rank").fetchall()


def test_suggest_ingest_cancel_export(tmp_path):
    path = write_campaign(tmp_path, EXTERNAL)
    store = tmp_path / "runs/tiny/store.sqlite"

    # the campaign runs no oracle itself
    proc = bodisc("campaign", str(path), "--quiet", cwd=tmp_path)
    assert proc.returncode != 0 and "bodisc suggest" in proc.stderr

    # first suggestion: the seed molecules, pending
    proc = bodisc("suggest", str(path), "--out", "b1.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    b1 = pd.read_csv(tmp_path / "b1.csv")
    assert list(b1.columns) == ["smiles", "inchikey", "pred_mean", "pred_std", "acq_value",
                                "iteration", "logp", "status", "reason", "source"]
    assert sorted(b1["smiles"]) == sorted(["CCO", "CC#N", "CC(C)=O", "CN"])
    assert [s for _, s, _, _ in jobs(store)] == ["pending"] * 4

    # the lab answers, one sample lost; twice the same file changes nothing
    fill(tmp_path / "b1.csv", tmp_path / "l1.csv", CN="failed")
    proc = bodisc("ingest", str(path), "l1.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "4 suggestion(s) settled" in proc.stdout and "4 of 10 calls used" in proc.stdout
    after_first = jobs(store)
    proc = bodisc("ingest", str(path), "l1.csv", cwd=tmp_path)
    assert proc.returncode == 0 and "0 suggestion(s) settled" in proc.stdout
    assert "4 unchanged" in proc.stdout and jobs(store) == after_first

    # next batch: three model proposals, none of them known
    proc = bodisc("suggest", str(path), "--n", "3", "--out", "b2.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    b2 = pd.read_csv(tmp_path / "b2.csv")
    assert len(b2) == 3 and b2["pred_std"].notna().all() and set(b2["iteration"]) == {1}
    assert not set(b2["smiles"]) & set(b1["smiles"])

    # the suggestion file given back before anything was measured: rows stay pending
    proc = bodisc("ingest", str(path), "b2.csv", cwd=tmp_path)
    assert proc.returncode == 0 and "0 suggestion(s) settled" in proc.stdout
    assert "3 suggestion(s) pending" in proc.stdout

    # a bad file writes nothing and names every bad row
    rows = b2.assign(logp=["abc", 1.0, 2.0])
    rows.to_csv(tmp_path / "bad.csv", index=False)
    before = jobs(store)
    proc = bodisc("ingest", str(path), "bad.csv", cwd=tmp_path)
    assert proc.returncode == 2 and "bad.csv: row 2, column 'logp'" in proc.stderr
    assert "abc" in proc.stderr and jobs(store) == before

    # withdraw one suggestion; an off-policy label beside the others
    first, second, third = b2["smiles"]
    proc = bodisc("cancel", str(path), first, cwd=tmp_path)
    assert proc.returncode == 0 and "1 suggestion(s) withdrawn" in proc.stdout
    pd.DataFrame({"smiles": [second, third, "CCCCO"],
                  "logp": [lab(second), lab(third), lab("CCCCO")]}
                 ).to_csv(tmp_path / "l2.csv", index=False)
    proc = bodisc("ingest", str(path), "l2.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "2 suggestion(s) settled, 1 off-policy" in proc.stdout
    assert "6 of 10 calls used" in proc.stdout  # 4 + 2: neither withdrawn nor off-policy

    # a different second label for a molecule is refused, naming the row
    pd.DataFrame({"smiles": ["CCO"], "logp": [9.9]}).to_csv(tmp_path / "l3.csv", index=False)
    proc = bodisc("ingest", str(path), "l3.csv", cwd=tmp_path)
    assert proc.returncode == 2 and "l3.csv: row 2, column 'logp': 9.9 for CCO" in proc.stderr

    # export: every result with its provenance, in three formats
    for fmt in ("csv", "parquet", "sdf"):
        proc = bodisc("export", str(path), "--format", fmt, "--out", f"labels.{fmt}",
                      cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(tmp_path / "labels.csv")
    assert table.equals(pd.read_parquet(tmp_path / "labels.parquet").astype(table.dtypes)) \
        or len(pd.read_parquet(tmp_path / "labels.parquet")) == len(table)
    assert len(table) == 8
    row = table[table["smiles"] == "CCO"].iloc[0]
    assert row["logp"] == pytest.approx(lab("CCO")) and row["file"].endswith("l1.csv")
    assert row["row"] == 2 + list(b1["smiles"]).index("CCO") and row["origin"] == "ingest"
    assert row["source"] == "Crippen (test lab)"
    off = table[table["smiles"] == "CCCCO"].iloc[0]
    assert bool(off["off_policy"]) and not bool(off["paid"])
    assert table[table["smiles"] == first].iloc[0]["status"] == "cancelled"
    assert table[table["smiles"] == "CN"].iloc[0]["reason"] == "sample lost"
    sdf = [m for m in Chem.SDMolSupplier(str(tmp_path / "labels.sdf")) if m is not None]
    assert len(sdf) == 8 and sdf[0].HasProp("status")

    # predict: the campaign's model on molecules of a file, nothing recorded
    (tmp_path / "mols.smi").write_text("CCCO\nC1CC\nCCO\n")
    before = jobs(store)
    proc = bodisc("predict", str(path), "mols.smi", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "mols.smi: row 2" in proc.stderr  # the bad SMILES is listed and left out
    pred = pd.read_csv(io.StringIO(proc.stdout))
    assert list(pred["smiles"]) == ["CCCO", "CCO"] and pred["std"].gt(0).all()
    assert pred["labelled"].iloc[1] == pytest.approx(lab("CCO")) and jobs(store) == before
