"""ILR structure categories: hand-checked molecules and agreement with the paper's table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bodisc.descriptors.categories import CATEGORY_NAMES, categories, category_matrix
from bodisc.errors import InvalidMoleculeError

QMEX_DGS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "qmex_dGs"


def on(smiles: str) -> set[str]:
    return {k for k, v in categories(smiles).items() if v}


def test_names_are_the_44_columns_in_order() -> None:
    assert len(CATEGORY_NAMES) == 44 == len(set(CATEGORY_NAMES))
    assert CATEGORY_NAMES[0] == "polar" and CATEGORY_NAMES[-1] == "amide"
    assert list(categories("C")) == list(CATEGORY_NAMES)


def test_acetic_acid() -> None:
    assert on("CC(=O)O") == {
        "polar", "acid", "with_H", "with_C", "with_O", "SINGLE", "DOUBLE", "pi",
        "conjugated", "branch", "rot", "hba", "hbd", "O_single", "O_double",
        "carboxylic", "carbonyl",
    }


def test_benzene_is_nonpolar_aromatic_ring() -> None:
    flags = on("c1ccccc1")
    assert {"AROMATIC", "ring", "pi", "conjugated", "with_C", "with_H"} <= flags
    assert "polar" not in flags and "DOUBLE" not in flags and "rot" not in flags


def test_groups_and_elements() -> None:
    assert {"amine", "base", "with_N", "hba", "hbd"} <= on("CCN")
    assert {"cyano", "N_triple", "TRIPLE"} <= on("CC#N")
    assert {"ether", "O_single"} <= on("COC") and "alcohol" not in on("COC")
    assert {"alcohol", "acid"} <= on("CCO")
    assert {"amide", "carbonyl"} <= on("CC(=O)NC")
    assert {"halogen", "with_Cl", "with_Br"} <= on("ClCCBr")
    assert {"ion", "with_N"} <= on("C[N+](=O)[O-]")
    assert "cation" not in on("C[N+](=O)[O-]")
    assert {"cation", "ion"} <= on("C[NH3+]") and {"anion", "ion"} <= on("CC(=O)[O-]")
    assert "spiro" in on("C1CCC2(C1)CCC2")
    assert {"metal", "ion", "halogen"} <= on("[Na+].[Cl-]")
    assert "other" in on("C[Se]C") and "argon" in on("[Ar]")


def test_polar_follows_symmetry() -> None:
    assert categories("O")["polar"] == 1  # C2v
    assert categories("ClC(Cl)(Cl)Cl")["polar"] == 0  # Td
    assert categories("CCCC")["polar"] == 0  # anti conformer is C2h
    assert categories("Cl/C=C/Cl")["polar"] == 0 and categories("Cl/C=C\\Cl")["polar"] == 1


def test_matrix_shape_and_bad_smiles() -> None:
    M = category_matrix(["C", "CCO"])
    assert M.shape == (2, 44) and M.dtype.kind == "i"
    with pytest.raises(InvalidMoleculeError, match="cannot parse"):
        categories("C1CC")


@pytest.mark.skipif(not QMEX_DGS.is_dir(), reason="shared/data/qmex_dGs not present")
def test_agrees_with_the_published_table_on_a_sample() -> None:
    table = pd.read_csv(QMEX_DGS / "bench_dGs_with_category.csv")
    assert list(table.loc[:, "polar":].columns) == list(CATEGORY_NAMES)
    sample = table.sample(80, random_state=3)
    ours = category_matrix(sample["smiles"].tolist())
    ref = sample.loc[:, "polar":].to_numpy()
    agree = (ours == ref).mean(axis=0)
    per_column = dict(zip(CATEGORY_NAMES, agree, strict=True))
    assert all(v == 1.0 for k, v in per_column.items() if k != "polar"), per_column
    assert per_column["polar"] >= 0.9
