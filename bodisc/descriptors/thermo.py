"""Ideal-gas thermochemistry from a GFN2-xTB Hessian: ``G`` and ``log10(Q)`` of QMex.

Three steps, each a function here:

1. :func:`xtb_hessian`: the Cartesian Hessian by central finite differences of analytic
   GFN2-xTB gradients (tblite): every coordinate displaced by +-``step`` (default
   0.005 Bohr, as the xtb program), 6N gradient calls, each SCF restarted from the
   wavefunction of the undisplaced geometry, tblite accuracy 0.1 (ten times tighter
   than its default; frequencies change by < 0.5 cm^-1 below that), symmetrised.
2. :func:`harmonic_frequencies`: mass-weighting (most-abundant-isotope masses), the
   three translations and three rotations (two for a linear molecule) projected out
   exactly by working in their orthogonal complement, eigenvalues to wavenumbers;
   imaginary modes come back as negative numbers.
3. :func:`rrho`: rigid-rotor / harmonic-oscillator statistical mechanics of the ideal
   gas with Grimme's quasi-RRHO entropy for low modes, as the xtb program does it.

Recipe of :func:`rrho` (defaults: 298.15 K, 1 atm = 101325 Pa):

* **imaginary modes** (negative numbers) are turned real (``|nu|``, Grimme's
  suggestion, also ASE's ``MSRRHOThermo``) and counted in ``n_imaginary``. On a
  force-field geometry that is not a GFN2-xTB stationary point they are mostly soft
  torsions (rare: ``docs/benchmarks/descriptors.md``); dropping them would make ``G``
  jump whenever one changes sign. (The xtb program inverts only those above its "imag. cutoff" of
  -20 cm^-1, meant for optimised geometries, and drops the rest.)
* **quasi-RRHO** (Grimme, Chem. Eur. J. 18, 9955, 2012): each mode's entropy is
  ``w S_HO + (1 - w) S_FR`` with ``w = 1 / (1 + (nu0 / nu)^4)`` and ``nu0`` =
  ``rotor_cutoff`` (50 cm^-1, xtb's default); ``S_FR = k (1/2 + ln sqrt(8 pi^3 mu' kT
  / h^2))`` is the entropy of a free rotor with moment ``mu' = mu B / (mu + B)``,
  ``mu = h / (8 pi^2 nu)``, ``B`` the mean
  principal moment of inertia of the molecule (as xtb and ASE). Energy and enthalpy
  stay harmonic. ``rotor_cutoff=0`` gives plain RRHO.
* ``G = E + ZPE + H_thermal - T S`` (Hartree), ``H_thermal`` = vibrational thermal
  energy + rotational (3/2 kT, linear kT) + translational 5/2 kT (includes pV = kT);
  ``S`` = translational (Sackur-Tetrode at ``pressure``) + rotational (with the
  symmetry number) + vibrational + electronic ``k ln(2S+1)``.
* ``log10(Q)``: the molecular partition function q_trans(V = kT/P) x q_rot x q_vib x
  q_el, **zero of energy at the vibrational ground state** (the "V=0" convention of
  Gaussian: ``E + ZPE``) and at the electronic ground state (q_el = spin
  multiplicity). It is defined through ``G`` itself, ``log10 Q = -(G - E - ZPE) / (kT
  ln 10)``, so the two share one treatment of low modes; with ``rotor_cutoff=0`` it
  is exactly the product of the textbook factors. (The bottom-of-the-well zero would
  make ``log10 Q`` mostly ``-ZPE / (kT ln 10)``, a second copy of the size; the QMex
  paper's values, 14 for glycerol, 20 for a C16 anthraquinone, are of the V=0 kind.)
* **symmetry number**: :func:`symmetry_number` counts the proper rotations that map
  the geometry onto itself (within 0.1 Angstrom), the rotational symmetry number of
  its point group; internal rotors (methyl groups) are not counted.

Constants are CODATA 2018. Units: Hessian Hartree/Bohr^2, positions Angstrom, masses
amu, frequencies cm^-1, energies Hartree, entropy Hartree/K.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bodisc.errors import MoleculeFailure

__all__ = [
    "ATM_PA",
    "ROOM_TEMPERATURE_K",
    "harmonic_frequencies",
    "isotope_masses",
    "is_linear",
    "rrho",
    "symmetry_number",
    "xtb_hessian",
]

#: 298.15 K.
ROOM_TEMPERATURE_K = 298.15
#: 1 atm in Pa.
ATM_PA = 101325.0

# CODATA 2018 (SI).
_H = 6.62607015e-34  # Planck, J s
_KB = 1.380649e-23  # Boltzmann, J/K
_C_CM = 2.99792458e10  # speed of light, cm/s
_AMU = 1.66053906660e-27  # kg
_HARTREE_J = 4.3597447222071e-18  # J
_BOHR_M = 0.529177210903e-10  # m
_ANGSTROM_PER_BOHR = 0.529177210903
_AMU_A2 = _AMU * 1e-20  # amu * Angstrom^2 in kg m^2
#: sqrt(Hartree / (Bohr^2 amu)) as an angular frequency, expressed in cm^-1.
_AU_FREQ_TO_CM = math.sqrt(_HARTREE_J / (_BOHR_M**2 * _AMU)) / (2.0 * math.pi * _C_CM)

#: Finite-difference step of the Hessian (Bohr), as the xtb program.
HESSIAN_STEP_BOHR = 0.005
#: tblite accuracy factor for the Hessian's gradients (1.0 is tblite's default).
HESSIAN_ACCURACY = 0.1
#: Default quasi-RRHO rotor cutoff nu0 (cm^-1), xtb's default.
ROTOR_CUTOFF_CM = 50.0
#: Smallest moment of inertia (amu Angstrom^2) of a non-linear molecule.
_LINEAR_INERTIA = 1.0e-2
#: Largest atom displacement (Angstrom) a symmetry operation may leave.
SYMMETRY_TOLERANCE_A = 0.1


# --------------------------------------------------------------------------- Hessian


def xtb_hessian(
    numbers: Sequence[int] | np.ndarray,
    positions_angstrom: np.ndarray,
    charge: int = 0,
    uhf: int = 0,
    *,
    step: float = HESSIAN_STEP_BOHR,
    accuracy: float = HESSIAN_ACCURACY,
    method: str = "GFN2-xTB",
) -> tuple[float, np.ndarray]:
    """GFN2-xTB energy and Cartesian Hessian by central differences of gradients.

    One tblite calculator is built and moved through the 6N displaced geometries;
    each SCF starts from the converged wavefunction of the undisplaced geometry.

    Args:
        numbers: Atomic numbers, shape ``(n,)``.
        positions_angstrom: Coordinates in Angstrom, shape ``(n, 3)``.
        charge: Total charge (e).
        uhf: Number of unpaired electrons.
        step: Displacement of each coordinate, Bohr.
        accuracy: tblite's accuracy factor for every SCF.
        method: tblite method name.

    Returns:
        The energy of the undisplaced geometry (Hartree) and the symmetrised Hessian,
        shape ``(3n, 3n)``, Hartree/Bohr^2, coordinates ordered ``x1 y1 z1 x2 ...``.

    Raises:
        MoleculeFailure: ``"Hessian failed: <tblite's message>"`` when any SCF fails.
    """
    from tblite.interface import Calculator

    numbers = np.asarray(numbers, dtype=np.int32)
    bohr = np.asarray(positions_angstrom, dtype=float).reshape(-1, 3) / _ANGSTROM_PER_BOHR
    n3 = bohr.size
    hessian = np.zeros((n3, n3))
    try:
        calc = Calculator(method, numbers, bohr, charge=float(charge), uhf=int(uhf))
        calc.set("verbosity", 0)
        calc.set("accuracy", float(accuracy))
        reference = calc.singlepoint()
        energy = float(reference["energy"])
        for i in range(n3):
            gradients = []
            for sign in (1.0, -1.0):
                displaced = bohr.copy().reshape(-1)
                displaced[i] += sign * step
                calc.update(positions=displaced.reshape(-1, 3))
                res = calc.singlepoint(reference, copy=True)
                gradients.append(np.asarray(res["gradient"], dtype=float).reshape(-1))
            hessian[i] = (gradients[0] - gradients[1]) / (2.0 * step)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise MoleculeFailure(f"Hessian failed: {exc}") from None
    return energy, 0.5 * (hessian + hessian.T)


# --------------------------------------------------------------------------- frequencies


def isotope_masses(numbers: Sequence[int] | np.ndarray) -> np.ndarray:
    """Masses of the most abundant isotopes (amu), as in Gaussian and ``log10(RA)``."""
    from rdkit import Chem

    table = Chem.GetPeriodicTable()
    return np.array([table.GetMostCommonIsotopeMass(int(z)) for z in numbers], dtype=float)


def _principal_moments(masses: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Principal moments of inertia (amu Angstrom^2), ascending."""
    rel = positions - (masses[:, None] * positions).sum(axis=0) / masses.sum()
    inertia = -np.einsum("i,ij,ik->jk", masses, rel, rel)
    inertia[np.diag_indices(3)] += (masses * (rel**2).sum(axis=1)).sum()
    return np.clip(np.linalg.eigvalsh(inertia), 0.0, None)


def is_linear(masses: Sequence[float] | np.ndarray, positions: np.ndarray) -> bool:
    """Whether the molecule is linear (smallest moment below 0.01 amu Angstrom^2).

    A single atom counts as linear here; :func:`rrho` treats it separately.
    """
    masses = np.asarray(masses, dtype=float)
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    return bool(_principal_moments(masses, positions)[0] < _LINEAR_INERTIA)


def _external_modes(masses: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Orthonormal mass-weighted translation and rotation vectors, shape ``(3n, k)``."""
    n = len(masses)
    sqrt_m = np.sqrt(masses)
    rel = positions - (masses[:, None] * positions).sum(axis=0) / masses.sum()
    vectors = []
    for axis in range(3):
        unit = np.zeros(3)
        unit[axis] = 1.0
        translation = np.zeros((n, 3))
        translation[:, axis] = sqrt_m
        vectors.append(translation.ravel())
        vectors.append((np.cross(unit, rel) * sqrt_m[:, None]).ravel())
    u, s, _ = np.linalg.svd(np.array(vectors).T, full_matrices=False)
    rank = 5 if is_linear(masses, positions) and n > 1 else 6
    rank = min(rank, int((s > 1e-8 * s.max()).sum()))
    return u[:, :rank]


def harmonic_frequencies(
    hessian: np.ndarray,
    masses: Sequence[float] | np.ndarray,
    positions: np.ndarray | None = None,
) -> np.ndarray:
    """Harmonic vibrational wavenumbers (cm^-1) of a Cartesian Hessian.

    Args:
        hessian: Cartesian Hessian, shape ``(3n, 3n)``, Hartree/Bohr^2.
        masses: Atomic masses in amu, shape ``(n,)``.
        positions: Coordinates in Angstrom, shape ``(n, 3)``. With them the three
            translations and the three rotations (two for a linear molecule) are
            projected out and ``3n - 6`` (``3n - 5``) frequencies come back; without,
            all ``3n`` eigenvalues are converted.

    Returns:
        Ascending wavenumbers in cm^-1; an imaginary mode comes back negative
        (``-|nu|``).
    """
    masses = np.asarray(masses, dtype=float)
    hessian = np.asarray(hessian, dtype=float)
    if hessian.shape != (3 * len(masses), 3 * len(masses)):
        raise ValueError(f"hessian must be {3 * len(masses)} x {3 * len(masses)}")
    inv_sqrt = np.repeat(masses, 3) ** -0.5
    weighted = hessian * inv_sqrt[:, None] * inv_sqrt[None, :]
    weighted = 0.5 * (weighted + weighted.T)
    if positions is not None:
        if len(masses) == 1:
            return np.zeros(0)
        external = _external_modes(masses, np.asarray(positions, dtype=float).reshape(-1, 3))
        q, _ = np.linalg.qr(np.hstack([external, np.eye(len(weighted))]))
        internal = q[:, external.shape[1] : len(weighted)]
        weighted = internal.T @ weighted @ internal
    eigenvalues = np.linalg.eigvalsh(weighted)  # Hartree / (Bohr^2 amu)
    return np.sign(eigenvalues) * np.sqrt(np.abs(eigenvalues)) * _AU_FREQ_TO_CM


# --------------------------------------------------------------------------- symmetry


def symmetry_number(
    numbers: Sequence[int] | np.ndarray,
    positions: np.ndarray,
    tolerance: float = SYMMETRY_TOLERANCE_A,
) -> int:
    """Rotational symmetry number: the proper rotations mapping the geometry onto itself.

    Every rotation about the centre of mass that sends each atom within ``tolerance``
    (Angstrom) of an atom of the same element is counted (the identity included):
    water 2, ammonia 3, methane 12, benzene 12. Linear molecules: 2 when
    centrosymmetric, else 1. Internal rotors are not counted (a methyl group on a
    chiral frame gives 1).

    Candidates come from mapping two reference atoms (non-collinear with the centre)
    onto every pair of atoms with the same elements, distances from the centre and
    distance between them; each candidate is checked on all atoms.
    """
    numbers = np.asarray(numbers, dtype=int)
    xyz = np.asarray(positions, dtype=float).reshape(-1, 3)
    if len(numbers) == 1:
        return 1
    masses = isotope_masses(numbers)
    xyz = xyz - (masses[:, None] * xyz).sum(axis=0) / masses.sum()
    radius = np.linalg.norm(xyz, axis=1)
    if is_linear(masses, xyz):
        return 2 if _maps_onto_itself(numbers, xyz, -xyz, tolerance) else 1

    def partners(i: int) -> np.ndarray:
        same = (numbers == numbers[i]) & (np.abs(radius - radius[i]) <= 2 * tolerance)
        return np.flatnonzero(same)

    away = np.flatnonzero(radius > 0.5)
    if not len(away):
        return 1
    a = min(away, key=lambda i: (len(partners(i)), -radius[i]))
    ua = xyz[a] / radius[a]
    off_axis = [
        j for j in away if np.linalg.norm(np.cross(ua, xyz[j] / radius[j])) > 0.3
    ]
    if not off_axis:
        return 1
    b = min(off_axis, key=lambda j: (len(partners(j)), -radius[j]))
    frame = _frame(xyz[a], xyz[b])
    d_ab = np.linalg.norm(xyz[a] - xyz[b])
    rotations: list[np.ndarray] = []
    for a2 in partners(a):
        for b2 in partners(b):
            if a2 == b2 or abs(np.linalg.norm(xyz[a2] - xyz[b2]) - d_ab) > 2 * tolerance:
                continue
            rotation = _frame(xyz[a2], xyz[b2]) @ frame.T
            if not _maps_onto_itself(numbers, xyz, xyz @ rotation.T, tolerance):
                continue
            if all(np.abs(rotation - r).max() > 1e-2 for r in rotations):
                rotations.append(rotation)
    return max(1, len(rotations))


def _frame(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Right-handed orthonormal frame (columns) from two non-parallel vectors."""
    e1 = u / np.linalg.norm(u)
    e2 = v - np.dot(v, e1) * e1
    e2 /= np.linalg.norm(e2)
    return np.column_stack([e1, e2, np.cross(e1, e2)])


def _maps_onto_itself(
    numbers: np.ndarray, xyz: np.ndarray, moved: np.ndarray, tolerance: float
) -> bool:
    """Whether every moved atom lies within ``tolerance`` of a distinct same-element atom."""
    distance = np.linalg.norm(moved[:, None, :] - xyz[None, :, :], axis=2)
    distance[numbers[:, None] != numbers[None, :]] = np.inf
    nearest = distance.argmin(axis=1)
    return bool(
        np.all(distance[np.arange(len(xyz)), nearest] <= tolerance)
        and len(set(nearest.tolist())) == len(xyz)
    )


# --------------------------------------------------------------------------- RRHO


def rrho(
    frequencies: Sequence[float] | np.ndarray,
    masses: Sequence[float] | np.ndarray,
    positions: np.ndarray,
    symmetry_number: int = 1,
    spin_multiplicity: int = 1,
    temperature: float = ROOM_TEMPERATURE_K,
    pressure: float = ATM_PA,
    *,
    energy: float = 0.0,
    rotor_cutoff: float = ROTOR_CUTOFF_CM,
) -> dict[str, Any]:
    """Ideal-gas RRHO thermochemistry with quasi-RRHO low modes (see the module docs).

    Args:
        frequencies: Vibrational wavenumbers in cm^-1 (``3n - 6`` or ``3n - 5``, as from
            :func:`harmonic_frequencies`); negative ones are imaginary modes and are
            used as ``|nu|``; exact zeros are skipped.
        masses: Atomic masses in amu, shape ``(n,)``.
        positions: Coordinates in Angstrom, shape ``(n, 3)``.
        symmetry_number: Rotational symmetry number (>= 1).
        spin_multiplicity: 2S + 1 of the electronic ground state, its degeneracy.
        temperature: Temperature in K.
        pressure: Pressure in Pa (standard state of the translational part).
        energy: Electronic energy in Hartree (0 gives corrections only).
        rotor_cutoff: Quasi-RRHO cutoff nu0 in cm^-1; 0 gives plain RRHO.

    Returns:
        A dict with ``G``, ``H``, ``ZPE``, ``E`` (Hartree), ``S`` (Hartree/K),
        ``log10Q`` and its parts ``log10Q_trans``, ``log10Q_rot``, ``log10Q_vib``,
        ``log10Q_el`` (dimensionless, V=0 zero of energy), ``n_imaginary``, ``linear``
        and ``symmetry_number``.
    """
    if temperature <= 0 or pressure <= 0 or symmetry_number < 1 or spin_multiplicity < 1:
        raise ValueError("temperature, pressure, symmetry number and multiplicity must be > 0")
    masses = np.asarray(masses, dtype=float)
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    freqs = np.asarray(frequencies, dtype=float)
    n_imaginary = int((freqs < 0).sum())
    freqs = np.abs(freqs[freqs != 0.0])

    kt = _KB * temperature  # J
    moments = _principal_moments(masses, positions) * _AMU_A2  # kg m^2
    single_atom = len(masses) == 1
    linear = not single_atom and bool(moments[0] < _LINEAR_INERTIA * _AMU_A2)

    # translation, V = kT / P
    mass = masses.sum() * _AMU
    ln_q_trans = 1.5 * math.log(2 * math.pi * mass * kt / _H**2) + math.log(kt / pressure)
    s_trans = ln_q_trans + 2.5  # in units of k
    h_trans = 2.5  # in units of kT

    # rotation
    if single_atom:
        ln_q_rot, s_rot, h_rot = 0.0, 0.0, 0.0
    elif linear:
        ln_q_rot = math.log(8 * math.pi**2 * moments[2] * kt / (symmetry_number * _H**2))
        s_rot, h_rot = ln_q_rot + 1.0, 1.0
    else:
        ln_q_rot = 0.5 * math.log(math.pi) - math.log(symmetry_number) + 1.5 * math.log(
            8 * math.pi**2 * kt / _H**2
        ) + 0.5 * math.log(float(np.prod(moments)))
        s_rot, h_rot = ln_q_rot + 1.5, 1.5

    # vibration: harmonic energy, quasi-RRHO entropy
    x = _H * _C_CM * freqs / kt  # h c nu / kT
    zpe = 0.5 * float(x.sum())  # in units of kT
    h_vib = float((x / np.expm1(x)).sum())  # thermal part, units of kT
    s_ho = x / np.expm1(x) - np.log1p(-np.exp(-x))
    if rotor_cutoff > 0 and len(freqs):
        b_av = float(moments.mean())
        mu = _H / (8 * math.pi**2 * _C_CM * freqs)  # kg m^2
        mu_eff = mu * b_av / (mu + b_av)
        s_rotor = 0.5 + np.log(np.sqrt(8 * math.pi**3 * mu_eff * kt) / _H)
        weight = 1.0 / (1.0 + (rotor_cutoff / freqs) ** 4)
        s_vib = float((weight * s_ho + (1.0 - weight) * s_rotor).sum())
    else:
        s_vib = float(s_ho.sum())

    s_el = math.log(spin_multiplicity)
    kt_hartree = kt / _HARTREE_J
    s_total = s_trans + s_rot + s_vib + s_el  # units of k
    h_total = energy + kt_hartree * (zpe + h_vib + h_rot + h_trans)
    g_total = h_total - kt_hartree * s_total
    ln10 = math.log(10.0)
    ln_q = -(g_total - energy - zpe * kt_hartree) / kt_hartree
    return {
        "G": g_total,
        "H": h_total,
        "S": s_total * _KB / _HARTREE_J,
        "ZPE": zpe * kt_hartree,
        "E": energy,
        "log10Q": ln_q / ln10,
        "log10Q_trans": ln_q_trans / ln10,
        "log10Q_rot": ln_q_rot / ln10,
        "log10Q_vib": (ln_q - ln_q_trans - ln_q_rot - s_el) / ln10,
        "log10Q_el": s_el / ln10,
        "n_imaginary": n_imaginary,
        "linear": linear,
        "symmetry_number": int(symmetry_number),
    }
