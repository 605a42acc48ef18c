from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from rdkit import Chem

from bodisc.builtin_oracles.xtb import (
    XtbDipoleOptions,
    XtbDipoleOracle,
    _check_connectivity,
    connectivity,
)
from bodisc.chem.conformers import atomic_numbers, lowest_conformer, positions
from bodisc.errors import MoleculeFailure
from bodisc.oracle import resolve_oracle, run_one


@pytest.fixture(scope="module")
def oracle():
    return XtbDipoleOracle({"n_conformers": 3})


def test_registered_under_its_name():
    cls = resolve_oracle("xtb_dipole")
    assert cls is XtbDipoleOracle
    assert (cls.name, cls.property, cls.unit, cls.cost) == ("xtb_dipole", "dipole", "D", 1.0)


@pytest.mark.parametrize(
    ("smiles", "low", "high"),
    [("O", 1.5, 3.0), ("O=C=O", 0.0, 0.05), ("CC#N", 3.0, 4.8), ("CC(C)=O", 2.0, 3.8)],
)
def test_dipoles_are_plausible(oracle, smiles, low, high):
    result = run_one(oracle, smiles)
    assert result.ok, result.failure
    assert low <= result.value <= high
    assert result.extras["steps"] >= 0
    assert result.extras["fmax_eV_A"] < oracle.options.fmax
    assert result.extras["energy_eV"] < 0.0


def test_deterministic_across_calls(oracle):
    (v1, extras1) = oracle.evaluate("OCC(=O)N")
    (v2, extras2) = oracle.evaluate("OCC(=O)N")
    for name in ("dipole", "gap"):  # bitwise with one OpenMP thread
        assert v1[name] == pytest.approx(v2[name], rel=1e-9, abs=1e-9)
    assert extras1["steps"] == extras2["steps"]
    assert extras1["conformer"] == extras2["conformer"]


def test_label_is_on_the_optimised_geometry_not_the_mmff_one(oracle):
    from bodisc.descriptors import compute_qmex

    label, extras = oracle.evaluate("CC(=O)O")
    mu_mmff = compute_qmex("CC(=O)O", ["mu"])["mu"]
    assert extras["steps"] > 0
    assert label["dipole"] != pytest.approx(mu_mmff, abs=1e-6)


def test_one_call_gives_the_gap_beside_the_dipole(oracle):
    """The declared properties come back from one call, the gap being LUMO - HOMO."""
    from bodisc.descriptors import compute_qmex

    result = run_one(oracle, "CC(=O)O")
    assert result.ok, result.failure
    assert set(result.properties) == {"dipole", *XtbDipoleOracle.properties}
    assert result.properties["dipole"] == result.value
    props = result.properties
    assert props["gap"] == pytest.approx(props["lumo"] - props["homo"], abs=1e-9)
    # the optimised geometry's gap is near the force-field geometry's (QMex), not equal
    mmff = compute_qmex("CC(=O)O", ["homo", "lumo"])
    assert props["gap"] == pytest.approx(mmff["lumo"] - mmff["homo"], abs=1.0)
    assert 5.0 < props["gap"] < 20.0


def test_unembeddable_molecule_fails_with_reason(oracle):
    result = run_one(oracle, "[Xe]")
    assert not result.ok
    assert result.failure.startswith("embedding failed")


def test_too_few_steps_is_a_failure():
    oracle = XtbDipoleOracle({"n_conformers": 1, "max_steps": 1})
    with pytest.raises(MoleculeFailure, match="^optimisation did not converge in 1 steps$"):
        oracle.evaluate("CCCO")


def test_proton_transfer_is_changed_bonding():
    # gas-phase zwitterion: the ammonium proton moves to the carboxylate
    result = run_one(XtbDipoleOracle({"n_conformers": 1}), "[NH3+]CC([O-])=O")
    assert result.failure == "changed bonding during optimisation"


def test_connectivity_check_on_made_up_geometries():
    mol = lowest_conformer("CO", 1, 1)
    z, xyz = atomic_numbers(mol), positions(mol)
    graph = Chem.GetAdjacencyMatrix(mol).astype(bool)
    np.testing.assert_array_equal(connectivity(z, xyz), graph)
    _check_connectivity(z, graph, xyz)  # unchanged: no error
    hydroxyl_h = [
        a.GetIdx()
        for a in mol.GetAtoms()
        if a.GetSymbol() == "H" and a.GetNeighbors()[0].GetSymbol() == "O"
    ][0]
    far = xyz.copy()
    far[hydroxyl_h] += np.array([5.0, 0.0, 0.0])  # pull the O-H hydrogen off
    with pytest.raises(MoleculeFailure, match="^fragmented during optimisation$"):
        _check_connectivity(z, graph, far)
    moved = xyz.copy()
    carbon_h = [
        a.GetIdx()
        for a in mol.GetAtoms()
        if a.GetSymbol() == "H" and a.GetNeighbors()[0].GetSymbol() == "C"
    ][0]
    # move a C-H hydrogen onto the oxygen (O is atom 1 of "CO")
    moved[carbon_h] = xyz[1] + (xyz[1] - xyz[0]) / np.linalg.norm(xyz[1] - xyz[0]) * 0.97
    with pytest.raises(MoleculeFailure, match="^changed bonding during optimisation$"):
        _check_connectivity(z, graph, moved)


def test_options_are_validated_and_frozen():
    opts = XtbDipoleOptions()
    assert (opts.n_conformers, opts.conformer_seed, opts.fmax, opts.max_steps, opts.method) == (
        5,
        7,
        0.03,
        300,
        "GFN2-xTB",
    )
    for bad in (
        {"n_conformers": 0},
        {"n_conformers": 51},
        {"fmax": 0.0},
        {"method": "GFN1-xTB"},
        {"typo": 1},
    ):
        with pytest.raises(ValidationError):
            XtbDipoleOptions.model_validate(bad)
    with pytest.raises(ValidationError):
        opts.n_conformers = 3
