"""The PySCF DFT oracle against DFT computed here, independently, on the same geometry."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from bodisc.builtin_oracles.pyscf import PyscfDipoleOptions, PyscfDipoleOracle, PyscfGapOracle
from bodisc.config import load_campaign
from bodisc.errors import ConfigError
from bodisc.oracle import resolve_oracle, run_one
from tests.conftest import TINY, write_campaign

E_BOHR_IN_DEBYE = 2.541746
HARTREE_IN_EV = 27.211386


@pytest.fixture(scope="module")
def oracle():
    return PyscfDipoleOracle({"geometry": {"n_conformers": 2}, "device": "cpu"})


def reference(xyz: list[list[float]]) -> tuple[float, float, float, float]:
    """B3LYP/def2-SVP (density fitting) with PySCF, the dipole from the density matrix.

    Returns the dipole magnitude (D), HOMO and LUMO (eV) and the total energy (Hartree).
    """
    from pyscf import dft, gto

    mol = gto.M(atom=[(int(row[0]), tuple(row[1:])) for row in xyz], basis="def2-svp",
                unit="Angstrom", verbose=0)
    mf = dft.RKS(mol).density_fit()
    mf.xc = "b3lyp"
    mf.conv_tol = 1e-10
    energy = mf.kernel()
    assert mf.converged
    density = mf.make_rdm1()
    electronic = np.einsum("xij,ji->x", mol.intor("int1e_r"), density)
    nuclear = mol.atom_charges() @ mol.atom_coords()  # Bohr
    dipole = np.linalg.norm(nuclear - electronic) * E_BOHR_IN_DEBYE
    occupied = mf.mo_occ > 0
    homo = mf.mo_energy[occupied].max() * HARTREE_IN_EV
    lumo = mf.mo_energy[~occupied].min() * HARTREE_IN_EV
    return float(dipole), float(homo), float(lumo), float(energy)


#: B3LYP/def2-SVP dipoles near the gas-phase experiment (1.85, 1.47, 1.85 D), in D.
EXPECTED = {"O": (1.7, 2.2), "N": (1.4, 1.9), "CF": (1.6, 2.2)}


@pytest.mark.parametrize("smiles", ["O", "N", "CF"])
def test_dipole_matches_pyscf_run_here(oracle, smiles):
    result = run_one(oracle, smiles)
    assert result.ok, result.failure
    dipole, homo, lumo, energy = reference(result.extras["xyz"])
    assert result.value == pytest.approx(dipole, abs=2e-4)
    assert result.extras["homo_eV"] == pytest.approx(homo, abs=1e-4)
    assert result.extras["lumo_eV"] == pytest.approx(lumo, abs=1e-4)
    assert result.extras["gap_eV"] == pytest.approx(lumo - homo, abs=1e-4)
    assert result.extras["energy_Eh"] == pytest.approx(energy, abs=1e-7)
    assert result.extras["device"] == "cpu"
    low, high = EXPECTED[smiles]
    assert low < result.value < high


def test_geometry_is_the_xtb_oracles():
    from bodisc.builtin_oracles.xtb import XtbDipoleOracle

    dft = run_one(PyscfDipoleOracle({"geometry": {"n_conformers": 2}}), "C=O")
    xtb = run_one(XtbDipoleOracle({"n_conformers": 2}), "C=O")
    assert dft.ok and xtb.ok
    assert dft.extras["xtb_energy_eV"] == pytest.approx(xtb.extras["energy_eV"], abs=1e-8)
    assert dft.value != pytest.approx(xtb.value, abs=1e-3)  # DFT, not the xTB dipole


def test_scf_not_converged_is_a_recorded_failure():
    result = run_one(PyscfDipoleOracle({"max_cycle": 2, "device": "cpu"}), "CC=O")
    assert not result.ok and result.value is None
    assert result.failure.startswith("DFT SCF not converged in 2 cycles (b3lyp/def2-svp")


def test_registered_and_gap_variant():
    assert resolve_oracle("pyscf_dipole") is PyscfDipoleOracle
    assert resolve_oracle("pyscf_gap") is PyscfGapOracle
    assert (PyscfGapOracle.property, PyscfGapOracle.unit) == ("gap", "eV")
    assert PyscfDipoleOracle.cost > 1.0


def test_options_are_validated():
    opts = PyscfDipoleOptions()
    assert (opts.functional, opts.basis, opts.density_fit) == ("b3lyp", "def2-svp", True)
    with pytest.raises(ValidationError, match="unknown exchange-correlation"):
        PyscfDipoleOptions(functional="b3lpy")
    with pytest.raises(ValidationError, match="unknown basis"):
        PyscfDipoleOptions(basis="def2-svq")
    with pytest.raises(ValidationError):
        PyscfDipoleOptions(conv_tol=0)


def test_bad_option_in_a_campaign_file_names_the_field(tmp_path):
    text = TINY.replace('name = "xtb_dipole"', 'name = "pyscf_dipole"')
    text = text.replace("n_conformers = 2", 'basis = "def2-svq"')
    with pytest.raises(ConfigError, match=r"oracle\.options\.basis = 'def2-svq': unknown basis"):
        load_campaign(write_campaign(tmp_path, text))
    text = text.replace('basis = "def2-svq"', "[oracle.options.geometry]\nfmax = -1")
    with pytest.raises(ConfigError, match=r"oracle\.options\.geometry\.fmax"):
        load_campaign(write_campaign(tmp_path, text))


def test_shipped_dft_campaign_is_valid():
    from pathlib import Path

    cfg = load_campaign(Path(__file__).parents[2] / "campaigns" / "dipole_dft.toml")
    assert cfg.oracle.name == "pyscf_dipole"
