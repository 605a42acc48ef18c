from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdForceFieldHelpers as ff

from bodisc.chem.conformers import (
    atomic_numbers,
    embed_conformers,
    lowest_conformer,
    positions,
)
from bodisc.errors import MoleculeFailure


def test_embed_adds_hydrogens_and_sorts_by_mmff_energy():
    mol, energies = embed_conformers("CCCCO", n_conformers=4, seed=3)
    assert mol.GetNumAtoms() == 5 + 10  # C4H10O
    assert mol.GetNumConformers() >= 1 and mol.GetNumConformers() <= 4
    assert len(energies) == mol.GetNumConformers()
    assert energies == sorted(energies)
    # the energies belong to the conformers they are listed with
    props = ff.MMFFGetMoleculeProperties(mol)
    for conf_id, energy in enumerate(energies):
        field = ff.MMFFGetMoleculeForceField(mol, props, confId=conf_id)
        assert field.CalcEnergy() == pytest.approx(energy, abs=1e-4)


def test_embedding_is_deterministic_for_a_seed():
    a, ea = embed_conformers("CC(O)C(=O)N", 3, seed=11)
    b, eb = embed_conformers("CC(O)C(=O)N", 3, seed=11)
    assert ea == eb
    for conf_id in range(a.GetNumConformers()):
        np.testing.assert_array_equal(positions(a, conf_id), positions(b, conf_id))


def test_lowest_conformer_is_the_first_one():
    full, _ = embed_conformers("OCCCN", 3, seed=5)
    best = lowest_conformer("OCCCN", 3, seed=5)
    assert best.GetNumConformers() == 1
    np.testing.assert_array_equal(positions(best), positions(full, 0))


def test_helpers_give_numbers_and_angstrom_positions():
    mol = lowest_conformer("O", 1, seed=1)
    np.testing.assert_array_equal(atomic_numbers(mol), [8, 1, 1])
    xyz = positions(mol)
    assert xyz.shape == (3, 3)
    oh = np.linalg.norm(xyz[1] - xyz[0])
    assert 0.9 < oh < 1.05  # Angstrom


@pytest.mark.parametrize(
    ("smiles", "why"),
    [("[Xe]", "MMFF94 has no parameters"), ("C1CC", "cannot parse"), ("", "empty")],
)
def test_failures_say_embedding_failed(smiles, why):
    with pytest.raises(MoleculeFailure, match=f"^embedding failed: .*{why}"):
        embed_conformers(smiles, 2, seed=1)


def test_n_conformers_must_be_positive():
    with pytest.raises(ValueError):
        embed_conformers("C", 0, seed=1)


def test_stereo_free_input_keeps_connectivity():
    mol = lowest_conformer("c1ccncc1C(=O)O", 2, seed=2)
    assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == Chem.MolToSmiles(
        Chem.MolFromSmiles("c1ccncc1C(=O)O")
    )
