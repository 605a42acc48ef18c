"""Thermochemistry (G, log10(Q)) against independent references: ASE's IdealGasThermo and
MSRRHOThermo on the same frequencies, ASE's Vibrations with tblite's ASE calculator,
textbook partition functions written out here, and the QMex paper's own values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import Atoms, units
from ase.thermochemistry import HarmonicThermo, IdealGasThermo, MSRRHOThermo
from ase.vibrations import Vibrations
from tblite.ase import TBLite
from tblite.interface import Calculator

from bodisc.chem.conformers import atomic_numbers, lowest_conformer, positions
from bodisc.descriptors import qmex, thermo
from bodisc.errors import MoleculeFailure

HARTREE = 27.211386245988  # eV
BOHR = 0.529177210903  # Angstrom
T, P = 298.15, 101325.0
# SI constants (CODATA 2018) for the textbook formulas below
H_SI, KB_SI, C_CM, AMU = 6.62607015e-34, 1.380649e-23, 2.99792458e10, 1.66053906660e-27



def prepared(smiles):
    """Geometry, masses, energy, frequencies and symmetry number of an MMFF conformer."""
    mol = lowest_conformer(smiles, 3, 61453)
    z, xyz = atomic_numbers(mol), positions(mol)
    masses = thermo.isotope_masses(z)
    energy, hessian = thermo.xtb_hessian(z, xyz)
    freqs = thermo.harmonic_frequencies(hessian, masses, xyz)
    return z, xyz, masses, energy, freqs, thermo.symmetry_number(z, xyz)


@pytest.fixture(scope="module")
def molecules():
    return {s: prepared(s) for s in ("O", "CCO", "O=C=O")}


def ase_atoms(z, xyz, masses):
    atoms = Atoms(numbers=z, positions=xyz)
    atoms.set_masses(masses)
    return atoms


@pytest.mark.parametrize(("smiles", "multiplicity"), [("O", 1), ("CCO", 1), ("CCO", 2)])
def test_plain_rrho_matches_ase_ideal_gas(molecules, smiles, multiplicity):
    z, xyz, masses, energy, freqs, sigma = molecules[smiles]
    ours = thermo.rrho(freqs, masses, xyz, sigma, multiplicity, T, P, energy=energy,
                       rotor_cutoff=0.0)
    ref = IdealGasThermo(freqs * units.invcm, "nonlinear", potentialenergy=energy * HARTREE,
                         atoms=ase_atoms(z, xyz, masses), symmetrynumber=sigma,
                         spin=(multiplicity - 1) / 2)
    g_ref = ref.get_gibbs_energy(T, P, verbose=False)
    assert ours["G"] * HARTREE == pytest.approx(g_ref, abs=1e-5)
    assert ours["H"] * HARTREE == pytest.approx(ref.get_enthalpy(T, verbose=False), abs=1e-5)
    assert ours["S"] * HARTREE == pytest.approx(ref.get_entropy(T, P, verbose=False), rel=1e-5)
    assert ours["ZPE"] * HARTREE == pytest.approx(ref.get_ZPE_correction(), rel=1e-6)
    # log10 Q (V=0) is -(G - E - ZPE) / (kT ln 10), whoever computes G
    log_q_ref = -(g_ref - energy * HARTREE - ref.get_ZPE_correction()) / (
        units.kB * T * math.log(10)
    )
    assert ours["log10Q"] == pytest.approx(log_q_ref, abs=1e-4)
    assert ours["log10Q_el"] == pytest.approx(math.log10(multiplicity))


def test_linear_molecule_matches_ase(molecules):
    z, xyz, masses, energy, freqs, sigma = molecules["O=C=O"]
    assert len(freqs) == 3 * 3 - 5 and sigma == 2
    ours = thermo.rrho(freqs, masses, xyz, sigma, energy=energy, rotor_cutoff=0.0)
    ref = IdealGasThermo(freqs * units.invcm, "linear", potentialenergy=energy * HARTREE,
                         atoms=ase_atoms(z, xyz, masses), symmetrynumber=2, spin=0)
    assert ours["linear"]
    assert ours["G"] * HARTREE == pytest.approx(ref.get_gibbs_energy(T, P, verbose=False),
                                                abs=1e-5)


def test_partition_function_is_the_textbook_product(molecules):
    z, xyz, masses, energy, freqs, sigma = molecules["CCO"]
    ours = thermo.rrho(freqs, masses, xyz, sigma, 1, T, P, energy=energy, rotor_cutoff=0.0)
    kt = KB_SI * T
    q_trans = (2 * math.pi * masses.sum() * AMU * kt / H_SI**2) ** 1.5 * kt / P
    inertia = Atoms(numbers=z, positions=xyz, masses=masses).get_moments_of_inertia()
    inertia = inertia * AMU * 1e-20  # kg m^2
    q_rot = math.sqrt(math.pi * np.prod(inertia)) / sigma * (8 * math.pi**2 * kt / H_SI**2) ** 1.5
    x = H_SI * C_CM * freqs / kt
    log_q_vib = -np.log1p(-np.exp(-x)).sum() / math.log(10)  # zero at the v = 0 level
    assert ours["log10Q_trans"] == pytest.approx(math.log10(q_trans), abs=1e-4)
    assert ours["log10Q_rot"] == pytest.approx(math.log10(q_rot), abs=1e-4)
    assert ours["log10Q_vib"] == pytest.approx(log_q_vib, abs=1e-4)
    assert ours["log10Q"] == pytest.approx(
        math.log10(q_trans) + math.log10(q_rot) + log_q_vib, abs=1e-4
    )


def test_quasi_rrho_entropy_matches_ase_msrrho(molecules):
    z, xyz, masses, *_ = molecules["CCO"]
    freqs = np.array([12.0, 35.0, 70.0, 140.0, 400.0, 1200.0, 3000.0])  # low modes on purpose
    atoms = ase_atoms(z, xyz, masses)
    quasi = thermo.rrho(freqs, masses, xyz, rotor_cutoff=50.0)
    plain = thermo.rrho(freqs, masses, xyz, rotor_cutoff=0.0)
    s_msrrho = MSRRHOThermo(freqs * units.invcm, atoms, tau=50.0).get_entropy(T, verbose=False)
    s_harmonic = HarmonicThermo(freqs * units.invcm).get_entropy(T, verbose=False)
    assert (quasi["S"] - plain["S"]) * HARTREE == pytest.approx(s_msrrho - s_harmonic, rel=1e-4)
    assert quasi["H"] == pytest.approx(plain["H"], abs=1e-12)  # only the entropy changes
    assert quasi["S"] < plain["S"]  # a free rotor has less entropy than a 12 cm^-1 oscillator


def test_imaginary_modes_are_used_as_real_and_counted(molecules):
    z, xyz, masses, *_ = molecules["CCO"]
    real = thermo.rrho([80.0, 500.0, 1500.0], masses, xyz)
    imaginary = thermo.rrho([-80.0, 500.0, 1500.0], masses, xyz)
    assert imaginary["G"] == pytest.approx(real["G"], abs=1e-14)
    assert imaginary["n_imaginary"] == 1 and real["n_imaginary"] == 0


def test_water_frequencies_match_ase_vibrations(molecules, tmp_path):
    z, xyz, masses, _, freqs, _ = molecules["O"]
    atoms = ase_atoms(z, xyz, masses)
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0, accuracy=0.1)
    vib = Vibrations(atoms, name=str(tmp_path / "vib"), delta=0.005, nfree=2)
    vib.run()
    reference = np.sort(vib.get_frequencies().real)[-3:]
    assert len(freqs) == 3
    np.testing.assert_allclose(freqs, reference, atol=2.0)  # cm^-1
    assert 1500 < freqs[0] < 1700 and 3400 < freqs[1] < freqs[2] < 3700


def test_hessian_matches_gradient_difference_of_direct_tblite(molecules):
    z, xyz, *_ = molecules["O"]
    _, hessian = thermo.xtb_hessian(z, xyz)
    h = 0.005
    pos = xyz / BOHR
    grads = []
    for sign in (1, -1):
        moved = pos.copy()
        moved[1, 0] += sign * h
        calc = Calculator("GFN2-xTB", z, moved)
        calc.set("verbosity", 0)
        calc.set("accuracy", 0.1)
        grads.append(np.asarray(calc.singlepoint()["gradient"]).ravel())
    column = (grads[0] - grads[1]) / (2 * h)
    np.testing.assert_allclose(hessian[3], column, atol=2e-4)  # Hartree/Bohr^2


def test_diatomic_spring_has_the_textbook_frequency():
    k = 0.5  # Hartree / Bohr^2 along x
    hessian = np.zeros((6, 6))
    hessian[np.ix_([0, 3], [0, 3])] = [[k, -k], [-k, k]]
    masses = np.array([1.00782503, 34.96885268])  # H, 35Cl
    freqs = thermo.harmonic_frequencies(hessian, masses, np.array([[0, 0, 0], [1.27, 0, 0]]))
    mu = masses.prod() / masses.sum() * AMU
    k_si = k * 4.3597447222071e-18 / (BOHR * 1e-10) ** 2
    expected = math.sqrt(k_si / mu) / (2 * math.pi * C_CM)
    assert freqs == pytest.approx([expected], rel=1e-8)
    assert len(thermo.harmonic_frequencies(hessian, masses)) == 6  # unprojected: all 3N


@pytest.mark.parametrize(
    ("smiles", "sigma"),
    [("O", 2), ("N", 3), ("C", 12), ("c1ccccc1", 12), ("CC", 6), ("C=C", 4), ("O=C=O", 2),
     ("C#N", 1), ("CCO", 1), ("CC(C)=O", 2), ("FC(F)F", 3)],
)
def test_symmetry_numbers_of_force_field_geometries(smiles, sigma):
    mol = lowest_conformer(smiles, 3, 61453)
    assert thermo.symmetry_number(atomic_numbers(mol), positions(mol)) == sigma


def direct_energy(smiles):
    mol = lowest_conformer(smiles, 3, 61453)
    calc = Calculator("GFN2-xTB", atomic_numbers(mol), positions(mol) / BOHR)
    calc.set("verbosity", 0)
    return float(calc.singlepoint()["energy"])


@pytest.mark.parametrize(("smiles", "log_q_range"), [("O", (7.5, 9.0)), ("CCO", (10.5, 12.5))])
def test_full_tier_is_finite_and_plausible(smiles, log_q_range):
    values = qmex.compute_qmex(smiles, ["G", "log10(Q)"])
    # G - E: ZPE + thermal - TS, positive and well below 0.1 Hartree for these
    assert 0.0 < values["G"] - direct_energy(smiles) < 0.1
    assert log_q_range[0] < values["log10(Q)"] < log_q_range[1]


def test_log_q_of_glycerol_is_near_the_qmex_paper():
    # The paper's (predicted) QMex value for glycerol: log10(Q) = 14.2445
    # (shared/data/qmex_dGs); it uses the same V=0 zero of energy.
    assert qmex.compute_qmex("OCC(O)CO", ["log10(Q)"])["log10(Q)"] == pytest.approx(14.24, abs=0.4)


def test_hessian_runs_only_for_g_or_q_and_once(monkeypatch):
    calls = []
    real = thermo.xtb_hessian

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(thermo, "xtb_hessian", counting)
    qmex.compute_qmex("CCO")  # the fast tier
    assert calls == []
    qmex.compute_qmex("CCO", ["G", "log10(Q)", "mu"])
    assert len(calls) == 1


def test_failing_hessian_gives_nan_and_keeps_the_molecule(monkeypatch):
    calls = []

    def failing(*args, **kwargs):
        calls.append(args)
        raise MoleculeFailure("Hessian failed: SCF did not converge")

    monkeypatch.setattr(thermo, "xtb_hessian", failing)
    values = qmex.compute_qmex("CCO", ["mu", "G", "log10(Q)"])
    assert math.isnan(values["G"]) and math.isnan(values["log10(Q)"])
    assert math.isfinite(values["mu"])
    assert len(calls) == 1  # the failure is remembered, not retried for log10(Q)


def test_real_scf_failure_in_the_hessian_is_a_molecule_failure():
    mol = lowest_conformer("CO", 1, 1)
    with pytest.raises(MoleculeFailure, match="^Hessian failed: "):
        thermo.xtb_hessian(atomic_numbers(mol), positions(mol), charge=0, uhf=1)
