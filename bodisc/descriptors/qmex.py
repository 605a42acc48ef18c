"""QMex descriptors: GFN2-xTB single points and one Hessian on one (force-field) geometry.

QMex (Shimakawa, Kumada, Sato, npj Comput. Mater. 10, 11, 2024) defines 22 quantum-
mechanical descriptors. This module computes all of them with GFN2-xTB (tblite): the
fast tier (20, single points only) and the full tier, which adds ``G`` and
``log10(Q)`` from a finite-difference Hessian (:mod:`bodisc.descriptors.thermo`); the
Hessian runs only when one of those two is asked for.

Geometry: RDKit ETKDGv3 (``randomSeed = seed``) embeds ``n_conformers`` conformers,
MMFF94 optimises them, and the one lowest in MMFF94 energy is used for every descriptor
(:mod:`bodisc.chem.conformers`). All single points are on that one frozen geometry
(vertical), gas phase unless stated, GFN2-xTB, electronic temperature 300 K; the spin
of each species is the lowest allowed (``uhf = n_electrons mod 2``).

Given geometry: :func:`compute_qmex_on_geometry` runs the same recipes on positions the
caller supplies (all atoms, hydrogens included, any atom order: e.g. QM9's B3LYP
geometries) instead of an embedding. The SMILES still gives the charge, ``mw``, ``Ne/Na``
and the molecular graph, which :func:`match_geometry` puts on the given atoms (bonds from
interatomic distances, as RDKit's ``rdDetermineBonds.DetermineConnectivity``; heavy-atom
skeleton matched with hydrogen counts); where the graph does not fit the geometry only
the graph-based ``min(mbo)``, ``max(mbo)``, ``dEacid`` and ``dEbase`` are ``nan``. On
the embedded geometry it gives exactly :func:`compute_qmex`'s values.

Full tier, geometry of the Hessian: the same MMFF94 geometry, not a GFN2-xTB
optimisation. The descriptors then share no calculation with an xTB oracle (which
optimises with GFN2-xTB and reads its label there) and all 22 describe one structure.
That geometry is not a GFN2-xTB stationary point, which the recipe absorbs: translations
and rotations are projected out exactly, the rare imaginary modes are used as ``|nu|``,
and low modes get Grimme's quasi-RRHO entropy. ``G`` and ``log10(Q)`` on it track those
on a GFN2-xTB-optimised geometry closely, with an offset in ``G`` from the unrelaxed
geometry's energy (figures: ``docs/benchmarks/descriptors.md``).

======================  =========  ============================================================
name                    unit       recipe
======================  =========  ============================================================
``mw``                  g/mol      RDKit ``Descriptors.MolWt`` (average atomic weights, with H)
``Ne/Na``               1          all electrons (sum of Z minus charge) / all atoms (with H)
``homo``                eV         neutral: orbital energy of the highest occupied orbital
``lumo``                eV         neutral: orbital energy of the lowest unoccupied orbital
``Eiv``                 eV         vertical ionisation energy E(cation) - E(neutral); raw
                                   GFN2-xTB, no empirical IP shift
``Eav``                 eV         vertical electron affinity E(neutral) - E(anion); raw
                                   GFN2-xTB, no empirical EA shift (positive = bound anion)
``Vm``                  A^3        van der Waals volume of the molecule (not per mole): union of
                                   spheres with RDKit's vdW radii, counted on a 0.2 A grid
                                   (x 0.6022 gives cm^3/mol)
``alpha``               A^3        isotropic static polarisability (1/3 trace of d mu / d F),
                                   forward finite field of 1e-3 a.u. along x, y, z (3 single
                                   points); computed in Bohr^3 and converted (x 0.148185).
                                   GFN2-xTB's minimal basis gives about 2/3 of QM9's B3LYP
                                   values (Pearson r 0.74 on 300 QM9 molecules)
``alpha/Vm``            1          ``alpha`` / ``Vm`` (both in A^3)
``log10(R2)``           log10 a.u. electronic spatial extent <r^2> in Bohr^2 about the centre of
                                   nuclear charge: sum_A (Z_A - q_A) |R_A - R_c|^2 (xTB
                                   charges q_A as point populations) + sum_A <r^2>_A (free
                                   atoms, Slater-rule orbitals, :func:`slater_atomic_r2`);
                                   QM9's B3LYP <R^2> within ~10 % (Pearson r 0.93 of log10)
``G``                   Hartree    Gibbs free energy at 298.15 K, 1 atm (ideal gas), the xtb
                                   program's "total free energy": E(GFN2-xTB) + ZPE + H(T) - TS
                                   (Hartree, as xtb and the paper; xTB energies are valence-
                                   only, so the scale differs from the paper's all-electron
                                   DFT values, e.g. -22.6 vs -355.7 for glycerol). Hessian by
                                   central differences of analytic gradients (6N gradients,
                                   step 0.005 Bohr) on the MMFF94 geometry (see above);
                                   translations and rotations projected out; imaginary modes
                                   used as |nu|; Grimme's quasi-RRHO entropy (cutoff 50 cm^-1,
                                   xtb's); rotational symmetry number from the geometry;
                                   multiplicity uhf + 1. Recipe, constants: :mod:`.thermo`
``log10(Q)``            1          total molecular partition function at 298.15 K, 1 atm:
                                   q_trans(V = kT/P) q_rot q_vib q_el from the same Hessian,
                                   zero of energy at the vibrational ground state (E + ZPE,
                                   Gaussian's "V=0"), q_el = spin multiplicity; defined as
                                   -(G - E - ZPE) / (kT ln 10), so low modes are treated as in G
``log10(RA)``           log10 GHz  rotational constant A = h / (8 pi^2 I_min) from the
                                   geometry, most-abundant-isotope masses; NaN for linear
                                   molecules and atoms (I_min < 0.01 amu A^2)
``mu``                  D          neutral: magnitude of the xTB dipole moment
``min(esp)``            e          neutral: smallest xTB atomic partial charge (Mulliken-type
                                   charges of tblite, used as the atomic "electrostatic" charge)
``max(esp)``            e          neutral: largest xTB atomic partial charge
``min(mbo)``            1          neutral: smallest Wiberg bond order over the bonds of the
                                   RDKit molecular graph (with H)
``max(mbo)``            1          neutral: largest such Wiberg bond order
``dEw``                 eV         E(ALPB water) - E(gas), same geometry (tblite ALPB, gsolv)
``dEo``                 eV         E(ALPB octanol) - E(gas), same geometry
``dEacid``              eV         vertical deprotonation energy
                                   min_site E(M - H+) + E(H+) - E(M) (positive); sites:
                                   symmetry-unique H on N, O, S, P, ... (any non-C heavy atom),
                                   or, when there is none, unique H on C; of those the 3 with
                                   the most positive neutral xTB charge; the proton is removed,
                                   nothing relaxes; E(H+) = 6.246 eV is GFN2-xTB's bare proton
``dEbase``              eV         vertical protonation energy
                                   min_site E(MH+) - E(M) - E(H+) (negative: minus the proton
                                   affinity); sites: symmetry-unique N, O, S, P with a lone
                                   pair or, when there is none, unsaturated C; of those the 3
                                   with the most negative neutral xTB charge; H+ is put on the
                                   lone-pair direction (see :func:`_proton_position`) at a
                                   standard X-H length, nothing relaxes; NaN with no site
======================  =========  ============================================================

Single points done on demand (only for the names asked): neutral (``homo lumo mu
min/max(esp) min/max(mbo) log10(R2)`` and the reference for every energy difference),
cation (``Eiv``), anion (``Eav``), ALPB water (``dEw``), ALPB octanol (``dEo``), three
finite fields (``alpha``), one per site (``dEacid``, ``dEbase``). ``mw`` and ``Ne/Na``
need no geometry; ``Vm`` and ``log10(RA)`` need no single point. ``G`` and ``log10(Q)``
share one Hessian (6N + 1 gradient calculations at tblite accuracy 0.1), so the full
tier costs several times the fast tier (timings: ``docs/benchmarks/descriptors.md``).

Failure policy: a descriptor whose own calculation fails (an ion's SCF, a linear
molecule's ``RA``, no protonation site, an SCF of the Hessian) is ``nan``; the molecule
fails as a whole (:class:`~bodisc.errors.MoleculeFailure`) only when its embedding or its
neutral single point fails.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from rdkit import Chem
from rdkit.Chem import Descriptors

from bodisc.chem.conformers import atomic_numbers, lowest_conformer, positions
from bodisc.chem.molecule import parse_smiles
from bodisc.descriptors import FAST_QMEX, QMEX, thermo
from bodisc.descriptors.xtb import (
    ANGSTROM_PER_BOHR,
    BOHR3_TO_ANGSTROM3,
    DEBYE_PER_E_BOHR,
    EV_PER_HARTREE,
    frontier_orbitals,
    singlepoint,
)
from bodisc.errors import InvalidMoleculeError, MoleculeFailure

if TYPE_CHECKING:
    from tblite.interface import Result

__all__ = [
    "ALL_DESCRIPTORS",
    "DESCRIPTOR_UNITS",
    "FAST_DESCRIPTORS",
    "RECIPE_VERSION",
    "compute_qmex",
    "compute_qmex_on_geometry",
    "match_geometry",
]

#: Finite field strength for the polarisability, atomic units (Hartree/(e*Bohr)).
FIELD_STRENGTH_AU = 1.0e-3
#: Grid spacing of the van der Waals volume, Angstrom.
VOLUME_GRID_A = 0.2
#: h / (8 pi^2) in GHz * amu * Angstrom^2.
_ROT_CONST_GHZ_AMU_A2 = 505.379005
#: Below this smallest moment of inertia (amu * Angstrom^2) a molecule counts as linear.
_LINEAR_INERTIA = 1.0e-2
#: X-H bond length (Angstrom) used to place a proton on element X.
_XH_LENGTH_A = {1: 0.74, 6: 1.09, 7: 1.02, 8: 0.97, 15: 1.42, 16: 1.34}
_DEFAULT_XH_LENGTH_A = 1.10
_BASE_ELEMENTS = frozenset({7, 8, 15, 16})
#: Version of the recipes: bump it whenever a recipe changes what it returns, so that
#: descriptors cached on disk under it (:mod:`bodisc.data.qm9`) are not reused.
RECIPE_VERSION = 1
#: At most this many sites are tried for dEacid and for dEbase (chosen by xTB charge).
MAX_SITES = 3
#: Atoms of a given geometry closer than this times the sum of their covalent radii are
#: bonded (RDKit's ``rdDetermineBonds.DetermineConnectivity`` default, ``covFactor``).
_BOND_TOLERANCE = 1.3
#: Skeleton matches scored by :func:`match_geometry` at most.
_MAX_MATCHES = 10_000


class _Geometry:
    """The atoms, their frozen positions and (when known) the molecular graph on them.

    Args:
        numbers: Atomic numbers, shape ``(n_atoms,)``.
        xyz: Positions in Angstrom, shape ``(n_atoms, 3)``, in the order of ``numbers``.
        charge: Total charge of the molecule (e).
        mol: The RDKit molecule (explicit H) whose atom ``i`` is atom ``i`` here, or
            ``None`` when no graph could be put on these atoms.
        graph_failure: Why ``mol`` is ``None``.
    """

    def __init__(
        self,
        numbers: np.ndarray,
        xyz: np.ndarray,
        charge: int,
        mol: Chem.Mol | None,
        graph_failure: str = "",
    ) -> None:
        self.numbers = np.asarray(numbers, dtype=int)
        self.xyz = np.asarray(xyz, dtype=float)
        self.charge = int(charge)
        self.n_electrons = int(self.numbers.sum()) - self.charge
        self._mol = mol
        self.graph_failure = graph_failure

    @classmethod
    def from_conformer(cls, mol: Chem.Mol) -> _Geometry:
        """The geometry of conformer 0 of ``mol`` (explicit H), with its graph."""
        return cls(atomic_numbers(mol), positions(mol, 0), Chem.GetFormalCharge(mol), mol)

    @property
    def mol(self) -> Chem.Mol:
        """The molecular graph (explicit H) on these atoms.

        Raises:
            ValueError: When there is none (the graph-based descriptors become ``nan``).
        """
        if self._mol is None:
            raise ValueError(f"no molecular graph on this geometry: {self.graph_failure}")
        return self._mol

    def species(self, extra_charge: int, extra_protons: int = 0) -> tuple[int, int]:
        """Charge and unpaired electrons after adding ``extra_charge`` (e).

        ``extra_protons`` of that charge come as bare protons (no electron removed);
        the rest as removed electrons.
        """
        n_el = self.n_electrons - (extra_charge - extra_protons)
        return self.charge + extra_charge, n_el % 2


@dataclass
class _Context:
    """Lazy, cached intermediate results for one molecule.

    ``place`` turns the molecule of the SMILES (explicit H) into the geometry every
    descriptor is computed on: an embedding (:func:`compute_qmex`) or a given geometry
    (:func:`compute_qmex_on_geometry`); it runs once, on first use.
    """

    smiles: str
    place: Callable[[Chem.Mol], _Geometry]
    smiles_failure: str = "embedding failed"
    _singlepoints: dict[str, Result] = field(default_factory=dict)

    @cached_property
    def mol2d(self) -> Chem.Mol:
        try:
            return Chem.AddHs(parse_smiles(self.smiles))
        except InvalidMoleculeError as exc:
            raise MoleculeFailure(f"{self.smiles_failure}: {exc}") from None

    @cached_property
    def geometry(self) -> _Geometry:
        return self.place(self.mol2d)

    @property
    def neutral(self) -> Result:
        if "neutral" not in self._singlepoints:
            geo = self.geometry
            charge, uhf = geo.species(0)
            self._singlepoints["neutral"] = singlepoint(geo.numbers, geo.xyz, charge, uhf)
        return self._singlepoints["neutral"]

    @cached_property
    def e_neutral(self) -> float:
        return float(self.neutral["energy"])

    @cached_property
    def charges(self) -> np.ndarray:
        """Atomic partial charges of the neutral from xTB (e)."""
        return np.asarray(self.neutral["charges"], dtype=float)

    @cached_property
    def dipole(self) -> np.ndarray:
        """Dipole vector of the neutral (e*Bohr)."""
        return np.asarray(self.neutral["dipole"], dtype=float)

    def energy(self, key: str, **kwargs: Any) -> float:
        """Energy (Hartree) of a cached variant single point of the same atoms."""
        if key not in self._singlepoints:
            geo = self.geometry
            self._singlepoints[key] = singlepoint(geo.numbers, geo.xyz, **kwargs)
        return float(self._singlepoints[key]["energy"])

    def ion_energy(self, extra_charge: int) -> float:
        charge, uhf = self.geometry.species(extra_charge)
        return self.energy(f"charge{extra_charge:+d}", charge=charge, uhf=uhf)

    def solvated_energy(self, solvent: str) -> float:
        charge, uhf = self.geometry.species(0)
        return self.energy(
            f"alpb:{solvent}", charge=charge, uhf=uhf, solvent=solvent, guess=self.neutral
        )

    @cached_property
    def volume(self) -> float:
        return vdw_volume(self.geometry.numbers, self.geometry.xyz)

    @cached_property
    def thermochemistry(self) -> dict[str, Any] | None:
        """RRHO / quasi-RRHO thermochemistry at 298.15 K, 1 atm; ``None`` if the Hessian failed.

        A failure is cached as ``None`` so that ``G`` and ``log10(Q)`` share one attempt.
        """
        geo = self.geometry
        charge, uhf = geo.species(0)
        try:
            energy, hessian = thermo.xtb_hessian(geo.numbers, geo.xyz, charge, uhf)
        except MoleculeFailure:
            return None
        try:
            masses = thermo.isotope_masses(geo.numbers)
            frequencies = thermo.harmonic_frequencies(hessian, masses, geo.xyz)
            sigma = thermo.symmetry_number(geo.numbers, geo.xyz)
            return thermo.rrho(frequencies, masses, geo.xyz, sigma, uhf + 1, energy=energy)
        except (ValueError, ArithmeticError):  # numpy's LinAlgError is a ValueError
            return None

    def thermo_value(self, key: str) -> float:
        """One entry of :attr:`thermochemistry`; ValueError when the Hessian failed."""
        result = self.thermochemistry
        if result is None:
            raise ValueError("Hessian failed")
        return float(result[key])

    @cached_property
    def polarisability(self) -> float:
        """Isotropic polarisability in Angstrom^3 from forward finite fields."""
        geo = self.geometry
        charge, uhf = geo.species(0)
        mu0 = self.dipole
        diagonal = []
        for axis in range(3):
            field_vec = np.zeros(3)
            field_vec[axis] = FIELD_STRENGTH_AU
            res = singlepoint(
                geo.numbers, geo.xyz, charge, uhf, field=field_vec, guess=self.neutral
            )
            diagonal.append((float(res["dipole"][axis]) - mu0[axis]) / FIELD_STRENGTH_AU)
        return float(np.mean(diagonal)) * BOHR3_TO_ANGSTROM3


# --------------------------------------------------------------------------- recipes


def _mw(ctx: _Context) -> float:
    return float(Descriptors.MolWt(ctx.mol2d))


def _electrons_per_atom(ctx: _Context) -> float:
    mol = ctx.mol2d
    n_el = sum(a.GetAtomicNum() for a in mol.GetAtoms()) - Chem.GetFormalCharge(mol)
    return n_el / mol.GetNumAtoms()


def _frontier(ctx: _Context) -> tuple[float, float]:
    """HOMO and LUMO energies (eV) of the neutral, from its occupations."""
    return frontier_orbitals(ctx.neutral)


def _homo(ctx: _Context) -> float:
    return _frontier(ctx)[0]


def _lumo(ctx: _Context) -> float:
    return _frontier(ctx)[1]


def _eiv(ctx: _Context) -> float:
    return (ctx.ion_energy(+1) - ctx.e_neutral) * EV_PER_HARTREE


def _eav(ctx: _Context) -> float:
    return (ctx.e_neutral - ctx.ion_energy(-1)) * EV_PER_HARTREE


def _vm(ctx: _Context) -> float:
    return ctx.volume


def _alpha(ctx: _Context) -> float:
    return ctx.polarisability


def _alpha_per_volume(ctx: _Context) -> float:
    return ctx.polarisability / ctx.volume


def _log_r2(ctx: _Context) -> float:
    geo = ctx.geometry
    xyz_bohr = geo.xyz / ANGSTROM_PER_BOHR
    z = geo.numbers.astype(float)
    centre = (z[:, None] * xyz_bohr).sum(axis=0) / z.sum()
    population = z - ctx.charges
    r2 = float((population * ((xyz_bohr - centre) ** 2).sum(axis=1)).sum())
    r2 += sum(slater_atomic_r2(int(n)) for n in geo.numbers)
    return math.log10(r2)


_SLATER_SUBSHELLS = (  # (n, l) in aufbau order, up to Xe
    (1, 0),
    (2, 0),
    (2, 1),
    (3, 0),
    (3, 1),
    (4, 0),
    (3, 2),
    (4, 1),
    (5, 0),
    (4, 2),
    (5, 1),
)
_SLATER_GROUPS = (  # Slater's groups (n, is_d) from the inside out
    (1, False),
    (2, False),
    (3, False),
    (3, True),
    (4, False),
    (4, True),
    (5, False),
)
_SLATER_N_EFF = {1: 1.0, 2: 2.0, 3: 3.0, 4: 3.7, 5: 4.0}


@functools.cache
def slater_atomic_r2(z: int) -> float:
    """Electronic <r^2> (Bohr^2) of a free neutral atom from Slater-rule orbitals.

    Each electron sits in a Slater-type orbital with exponent ``(Z - s) / n*`` from
    Slater's screening rules, whose ``<r^2> = (2n* + 2)(2n* + 1) / (4 zeta^2)``; the sum
    runs over all electrons (H: 3.0, C: 11.5, O: 8.8 Bohr^2).

    Raises:
        ValueError: For Z > 54.
    """
    if not 1 <= z <= 54:
        raise ValueError(f"Slater <r^2> is tabulated for Z = 1..54, not {z}")
    occupation: list[tuple[int, int, int]] = []  # (n, l, electrons)
    left = z
    for n, ell in _SLATER_SUBSHELLS:
        count = min(left, 2 * (2 * ell + 1))
        occupation.append((n, ell, count))
        left -= count
        if not left:
            break

    total = 0.0
    for n, ell, count in occupation:
        rank = _SLATER_GROUPS.index((n, ell == 2))
        screening = 0.0
        for n2, ell2, count2 in occupation:
            rank2 = _SLATER_GROUPS.index((n2, ell2 == 2))
            if rank2 == rank:  # same group, other electrons
                others = count2 - 1 if (n2, ell2) == (n, ell) else count2
                screening += (0.30 if n == 1 else 0.35) * others
            elif rank2 < rank:  # inner groups
                screening += 0.85 * count2 if ell != 2 and n2 == n - 1 else 1.0 * count2
        n_eff = _SLATER_N_EFF[n]
        zeta = (z - screening) / n_eff
        total += count * (2 * n_eff + 2) * (2 * n_eff + 1) / (4.0 * zeta * zeta)
    return total


def _gibbs(ctx: _Context) -> float:
    return ctx.thermo_value("G")


def _log_q(ctx: _Context) -> float:
    return ctx.thermo_value("log10Q")


def _log_ra(ctx: _Context) -> float:
    return math.log10(rotational_constant_a(ctx.geometry.numbers, ctx.geometry.xyz))


def _mu(ctx: _Context) -> float:
    return float(np.linalg.norm(ctx.dipole)) * DEBYE_PER_E_BOHR


def _charges(ctx: _Context) -> np.ndarray:
    return ctx.charges


def _min_esp(ctx: _Context) -> float:
    return float(_charges(ctx).min())


def _max_esp(ctx: _Context) -> float:
    return float(_charges(ctx).max())


def _bond_orders(ctx: _Context) -> np.ndarray:
    wbo = np.asarray(ctx.neutral["bond-orders"], dtype=float)
    if wbo.ndim == 3:
        wbo = wbo.sum(axis=2)
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in ctx.geometry.mol.GetBonds()]
    if not bonds:
        raise ValueError("no bonds")
    i, j = np.array(bonds).T
    return wbo[i, j]


def _min_mbo(ctx: _Context) -> float:
    return float(_bond_orders(ctx).min())


def _max_mbo(ctx: _Context) -> float:
    return float(_bond_orders(ctx).max())


def _dew(ctx: _Context) -> float:
    return (ctx.solvated_energy("water") - ctx.e_neutral) * EV_PER_HARTREE


def _deo(ctx: _Context) -> float:
    return (ctx.solvated_energy("octanol") - ctx.e_neutral) * EV_PER_HARTREE


def _deacid(ctx: _Context) -> float:
    geo = ctx.geometry
    charge, uhf = geo.species(-1, extra_protons=-1)
    energies = []
    for h in deprotonation_sites(geo.mol, _charges(ctx)):
        keep = np.arange(len(geo.numbers)) != h
        try:
            res = singlepoint(geo.numbers[keep], geo.xyz[keep], charge, uhf)
        except MoleculeFailure:
            continue
        energies.append(float(res["energy"]))
    if not energies:
        raise ValueError("no deprotonation site converged")
    return (min(energies) + proton_energy() - ctx.e_neutral) * EV_PER_HARTREE


def _debase(ctx: _Context) -> float:
    geo = ctx.geometry
    charge, uhf = geo.species(+1, extra_protons=+1)
    numbers = np.append(geo.numbers, 1)
    energies = []
    for site, pi_site in protonation_sites(geo.mol, _charges(ctx)):
        proton = _proton_position(geo.mol, geo.xyz, site, pi_site)
        try:
            res = singlepoint(numbers, np.vstack([geo.xyz, proton]), charge, uhf)
        except MoleculeFailure:
            continue
        energies.append(float(res["energy"]))
    if not energies:
        raise ValueError("no protonation site")
    return (min(energies) - ctx.e_neutral - proton_energy()) * EV_PER_HARTREE


@functools.cache
def proton_energy(method: str = "GFN2-xTB") -> float:
    """Energy of a bare proton in Hartree (not zero in xTB: its charge self-interaction).

    GFN2-xTB gives 0.2296 Hartree (6.246 eV); computed once per process.
    """
    res = singlepoint([1], np.zeros((1, 3)), charge=1, uhf=0, method=method)
    return float(res["energy"])


@dataclass(frozen=True)
class _Recipe:
    function: Callable[[_Context], float]
    unit: str
    needs_geometry: bool = True
    needs_neutral: bool = True


_RECIPES: dict[str, _Recipe] = {
    "mw": _Recipe(_mw, "g/mol", needs_geometry=False, needs_neutral=False),
    "Ne/Na": _Recipe(_electrons_per_atom, "1", needs_geometry=False, needs_neutral=False),
    "homo": _Recipe(_homo, "eV"),
    "lumo": _Recipe(_lumo, "eV"),
    "Eiv": _Recipe(_eiv, "eV"),
    "Eav": _Recipe(_eav, "eV"),
    "Vm": _Recipe(_vm, "A^3", needs_neutral=False),
    "alpha": _Recipe(_alpha, "A^3"),
    "alpha/Vm": _Recipe(_alpha_per_volume, "1"),
    "log10(R2)": _Recipe(_log_r2, "log10(Bohr^2)"),
    "G": _Recipe(_gibbs, "Hartree", needs_neutral=False),
    "log10(Q)": _Recipe(_log_q, "1", needs_neutral=False),
    "log10(RA)": _Recipe(_log_ra, "log10(GHz)", needs_neutral=False),
    "mu": _Recipe(_mu, "D"),
    "min(esp)": _Recipe(_min_esp, "e"),
    "max(esp)": _Recipe(_max_esp, "e"),
    "min(mbo)": _Recipe(_min_mbo, "1"),
    "max(mbo)": _Recipe(_max_mbo, "1"),
    "dEw": _Recipe(_dew, "eV"),
    "dEo": _Recipe(_deo, "eV"),
    "dEacid": _Recipe(_deacid, "eV"),
    "dEbase": _Recipe(_debase, "eV"),
}

#: Every descriptor name (both tiers), in QMex order.
ALL_DESCRIPTORS: tuple[str, ...] = tuple(_RECIPES)
if ALL_DESCRIPTORS != QMEX:  # the light package lists them for the CLI and config
    raise ImportError("bodisc.descriptors.QMEX and qmex._RECIPES disagree")
#: Every fast-tier descriptor name (no Hessian), in QMex order.
FAST_DESCRIPTORS: tuple[str, ...] = FAST_QMEX
#: Unit of each descriptor ("1" for dimensionless).
DESCRIPTOR_UNITS: dict[str, str] = {name: r.unit for name, r in _RECIPES.items()}


def compute_qmex(
    smiles: str,
    names: Sequence[str] | None = None,
    *,
    seed: int = 61453,
    n_conformers: int = 3,
) -> dict[str, float]:
    """Compute QMex descriptors of one molecule.

    Only the single points the requested names need are run; the Hessian only for
    ``G`` or ``log10(Q)``. Top-level and free of state, so it can be sent to worker
    processes.

    Args:
        smiles: SMILES of the molecule.
        names: Descriptor names (see :data:`ALL_DESCRIPTORS`); ``None`` for the fast
            tier (:data:`FAST_DESCRIPTORS`).
        seed: ETKDGv3 random seed of the conformer embedding.
        n_conformers: Conformers embedded; the lowest in MMFF94 energy is used.

    Returns:
        ``{name: value}`` for each requested name, in the units of the module table;
        ``nan`` where that descriptor's own calculation failed (``G`` and ``log10(Q)``
        when an SCF of the Hessian fails).

    Raises:
        MoleculeFailure: When the molecule fails as a whole (invalid SMILES, embedding,
            neutral SCF).
        KeyError: For an unknown descriptor name; the message lists the known ones.
    """
    ctx = _Context(smiles, functools.partial(_embedded_geometry, smiles, n_conformers, seed))
    return _evaluate(ctx, names)


def compute_qmex_on_geometry(
    smiles: str,
    numbers: Sequence[int] | np.ndarray,
    positions_angstrom: np.ndarray,
    names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Compute QMex descriptors of one molecule on a given geometry (e.g. QM9's DFT one).

    The same recipes as :func:`compute_qmex` (module table), on the given atoms and
    positions instead of an ETKDG + MMFF94 embedding. The SMILES supplies the total
    charge, ``mw`` and ``Ne/Na``, and the molecular graph of the graph-based descriptors
    (``min(mbo)``, ``max(mbo)``: the bonds; ``dEacid``, ``dEbase``: sites, symmetry
    classes and proton directions). That graph is put on the geometry by
    :func:`match_geometry` (the geometry's atom order need not be RDKit's); when it
    does not fit (other composition, or a bond of the SMILES absent from the geometry),
    only those four descriptors are ``nan`` and the rest are computed on the geometry
    as given. The atom order of the geometry does not matter, except that ``dEacid``
    and ``dEbase`` may then pick another of topologically equivalent atoms (which a
    given geometry need not treat alike).

    Args:
        smiles: SMILES of the molecule.
        numbers: Atomic numbers of all atoms, hydrogens included, shape ``(n_atoms,)``.
        positions_angstrom: Cartesian coordinates in Angstrom, shape ``(n_atoms, 3)``,
            in the order of ``numbers``.
        names: Descriptor names (see :data:`ALL_DESCRIPTORS`); ``None`` for the fast
            tier (:data:`FAST_DESCRIPTORS`).

    Returns:
        ``{name: value}`` for each requested name, in the units of the module table;
        ``nan`` where that descriptor's own calculation failed.

    Raises:
        MoleculeFailure: When the molecule fails as a whole (invalid SMILES, neutral
            SCF on this geometry).
        KeyError: For an unknown descriptor name; the message lists the known ones.
        ValueError: When ``numbers`` and ``positions_angstrom`` do not fit together.
    """
    z = np.asarray(numbers, dtype=int).reshape(-1)
    xyz = np.asarray(positions_angstrom, dtype=float)
    if xyz.shape != (len(z), 3) or not len(z):
        raise ValueError(
            f"positions_angstrom must have shape (n_atoms, 3) = ({len(z)}, 3) for "
            f"{len(z)} atomic numbers, got {xyz.shape}"
        )
    if not np.isfinite(xyz).all():
        raise ValueError("positions_angstrom contains non-finite values")
    place = functools.partial(_given_geometry, numbers=z, xyz=xyz)
    return _evaluate(_Context(smiles, place, smiles_failure="invalid SMILES"), names)


def _embedded_geometry(smiles: str, n_conformers: int, seed: int, _mol: Chem.Mol) -> _Geometry:
    """The lowest-MMFF94 conformer of ETKDGv3 embeddings (:mod:`bodisc.chem.conformers`)."""
    return _Geometry.from_conformer(lowest_conformer(smiles, n_conformers, seed))


def _given_geometry(mol: Chem.Mol, numbers: np.ndarray, xyz: np.ndarray) -> _Geometry:
    """``mol``'s graph on the given atoms, reordered to ``mol``'s atom order when it fits."""
    charge = Chem.GetFormalCharge(mol)
    try:
        order = match_geometry(mol, numbers, xyz)
    except ValueError as exc:
        return _Geometry(numbers, xyz, charge, None, graph_failure=str(exc))
    placed = Chem.Mol(mol)
    conformer = Chem.Conformer(placed.GetNumAtoms())
    for i, position in enumerate(xyz[order]):
        conformer.SetAtomPosition(i, position.tolist())
    placed.RemoveAllConformers()
    placed.AddConformer(conformer, assignId=True)
    return _Geometry(numbers[order], xyz[order], charge, placed)


def _evaluate(ctx: _Context, names: Sequence[str] | None) -> dict[str, float]:
    """Every requested descriptor of one molecule; ``nan`` for those whose recipe fails."""
    requested = FAST_DESCRIPTORS if names is None else tuple(names)
    unknown = [n for n in requested if n not in _RECIPES]
    if unknown:
        raise KeyError(
            f"unknown QMex descriptor(s) {unknown}; known: {', '.join(ALL_DESCRIPTORS)}"
        )
    _ = ctx.mol2d  # an invalid SMILES fails the molecule, whatever was asked
    if any(_RECIPES[n].needs_geometry for n in requested):
        _ = ctx.geometry
    if any(_RECIPES[n].needs_neutral for n in requested):
        _ = ctx.neutral
    values: dict[str, float] = {}
    for name in requested:
        try:
            value = float(_RECIPES[name].function(ctx))
        except (MoleculeFailure, ValueError, ArithmeticError):
            value = math.nan
        values[name] = value if math.isfinite(value) else math.nan
    return values


# --------------------------------------------------------------------------- geometry


def vdw_volume(
    numbers: Sequence[int] | np.ndarray, xyz: np.ndarray, spacing: float = VOLUME_GRID_A
) -> float:
    """Van der Waals volume (Angstrom^3) of a union of atomic spheres, counted on a grid.

    Radii are RDKit's ``PeriodicTable.GetRvdw`` (H 1.2, C 1.7, N 1.6, O 1.55 A ...), the
    same as ``rdkit.Chem.AllChem.ComputeMolVolume``; a grid point counts when it lies
    inside any sphere.

    Args:
        numbers: Atomic numbers, shape ``(n,)``.
        xyz: Coordinates in Angstrom, shape ``(n, 3)``.
        spacing: Grid spacing in Angstrom.
    """
    table = Chem.GetPeriodicTable()
    radii = np.array([table.GetRvdw(int(z)) for z in numbers], dtype=float)
    xyz = np.asarray(xyz, dtype=float)
    origin = (xyz - radii[:, None]).min(axis=0) - spacing
    shape = np.ceil(((xyz + radii[:, None]).max(axis=0) - origin) / spacing).astype(int) + 2
    inside = np.zeros(shape, dtype=bool)
    for centre, radius in zip(xyz, radii, strict=True):
        lo = np.floor((centre - radius - origin) / spacing).astype(int)
        hi = np.ceil((centre + radius - origin) / spacing).astype(int) + 1
        axes = [origin[k] + spacing * np.arange(lo[k], hi[k]) - centre[k] for k in range(3)]
        d2 = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
        inside[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] |= d2 <= radius * radius
    return float(inside.sum()) * spacing**3


def match_geometry(
    mol: Chem.Mol, numbers: Sequence[int] | np.ndarray, positions_angstrom: np.ndarray
) -> np.ndarray:
    """Which atom of a given geometry is which atom of a molecule.

    Bonds of the geometry: two atoms closer than 1.3 times the sum of their RDKit
    covalent radii (the connect-the-dots criterion of RDKit's
    ``rdDetermineBonds.DetermineConnectivity``), with each hydrogen bonded only to its
    nearest atom. The molecule's heavy-atom skeleton is matched onto the geometry's by
    substructure search with single bonds, elements and hydrogen counts (so bond orders
    and charges, which a geometry does not give, play no part, and extra contacts in
    strained cages do no harm); of all matches the one with the least sum over the
    molecule's heavy-atom bonds of bond order x length is kept (double bonds land on
    the short bonds, a contact across a small ring loses to the real bond). Each heavy
    atom's hydrogens then take the geometry's hydrogens on its partner.

    Args:
        mol: The molecule with explicit hydrogens (e.g. ``Chem.AddHs`` of the SMILES).
        numbers: Atomic numbers of the geometry, shape ``(n_atoms,)``.
        positions_angstrom: Its coordinates in Angstrom, shape ``(n_atoms, 3)``.

    Returns:
        ``order``, shape ``(n_atoms,)``: atom ``i`` of ``mol`` is atom ``order[i]`` of the
        geometry (``positions_angstrom[order]`` is in ``mol``'s atom order).

    Raises:
        ValueError: When the molecule does not fit the geometry (other composition, a
            hydrogen bonded to nothing or to another hydrogen, a bond of the molecule
            absent from the geometry); the message says which.
    """
    z = np.asarray(numbers, dtype=int).reshape(-1)
    xyz = np.asarray(positions_angstrom, dtype=float).reshape(len(z), 3)
    mol_z = atomic_numbers(mol)
    if sorted(mol_z) != sorted(z):
        raise ValueError(
            f"composition differs: SMILES {_formula(mol_z)}, geometry {_formula(z)}"
        )
    dist = np.linalg.norm(xyz[:, None, :] - xyz[None, :, :], axis=-1)
    mol_heavy = [i for i, n in enumerate(mol_z) if n != 1]
    if not mol_heavy:  # H2 or a lone H: every hydrogen is like every other
        return np.arange(len(z))
    mol_h = {i: [] for i in mol_heavy}  # heavy atom -> its hydrogens
    for bond in mol.GetBonds():
        a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        if mol_z[a] == 1 and mol_z[b] == 1:
            raise ValueError("the SMILES has an H-H bond")
        if mol_z[b] == 1:
            mol_h[a].append(b)
        elif mol_z[a] == 1:
            mol_h[b].append(a)
    geo_heavy = [i for i, n in enumerate(z) if n != 1]
    geo_h = _hydrogens_of(z, dist, geo_heavy)
    heavy_bonds = [
        (
            mol_heavy.index(b.GetBeginAtomIdx()),
            mol_heavy.index(b.GetEndAtomIdx()),
            b.GetBondTypeAsDouble(),
        )
        for b in mol.GetBonds()
        if mol_z[b.GetBeginAtomIdx()] != 1 and mol_z[b.GetEndAtomIdx()] != 1
    ]
    radii = _covalent_radii(z)
    bonded = dist < _BOND_TOLERANCE * (radii[:, None] + radii[None, :])
    query = _skeleton(
        [mol_z[i] for i in mol_heavy],
        [len(mol_h[i]) for i in mol_heavy],
        [(a, b) for a, b, _ in heavy_bonds],
    )
    target = _skeleton(
        [z[i] for i in geo_heavy],
        [len(geo_h[i]) for i in geo_heavy],
        [
            (a, b)
            for a in range(len(geo_heavy))
            for b in range(a)
            if bonded[geo_heavy[a], geo_heavy[b]]
        ],
    )
    matches = np.array(
        target.GetSubstructMatches(query, uniquify=False, maxMatches=_MAX_MATCHES), dtype=int
    )
    if not len(matches):
        raise ValueError("the bonds and hydrogen counts of the SMILES do not fit the geometry")
    geo_index = np.asarray(geo_heavy)[matches]  # (n_matches, n_heavy): geometry atoms
    score = np.zeros(len(matches))
    for a, b, bond_order in heavy_bonds:
        score += bond_order * dist[geo_index[:, a], geo_index[:, b]]
    best = geo_index[int(np.argmin(score))]
    order = np.empty(len(z), dtype=int)
    for k, atom in enumerate(mol_heavy):
        order[atom] = best[k]
        order[mol_h[atom]] = geo_h[int(best[k])]
    return order


def _formula(numbers: Sequence[int] | np.ndarray) -> str:
    table = Chem.GetPeriodicTable()
    counts: dict[str, int] = {}
    for n in sorted(int(n) for n in numbers):
        symbol = table.GetElementSymbol(n)
        counts[symbol] = counts.get(symbol, 0) + 1
    return "".join(f"{s}{c if c > 1 else ''}" for s, c in counts.items())


def _covalent_radii(numbers: np.ndarray) -> np.ndarray:
    table = Chem.GetPeriodicTable()
    return np.array([table.GetRcovalent(int(n)) for n in numbers], dtype=float)


def _hydrogens_of(z: np.ndarray, dist: np.ndarray, heavy: list[int]) -> dict[int, list[int]]:
    """The hydrogens of each heavy atom of a geometry: each H goes to its nearest atom."""
    radii = _covalent_radii(z)
    owned: dict[int, list[int]] = {i: [] for i in heavy}
    for h in np.flatnonzero(z == 1):
        near = dist[h].copy()
        near[h] = np.inf
        partner = int(np.argmin(near))
        if near[partner] >= _BOND_TOLERANCE * (radii[h] + radii[partner]):
            raise ValueError(f"hydrogen {h} of the geometry is bonded to nothing")
        if z[partner] == 1:
            raise ValueError(f"hydrogen {h} of the geometry is bonded to another hydrogen")
        owned[partner].append(int(h))
    return owned


def _skeleton(
    numbers: Sequence[int], hydrogens: Sequence[int], bonds: Sequence[tuple[int, int]]
) -> Chem.Mol:
    """A bare graph for matching: elements, single bonds, H count stored as isotope + 1.

    RDKit's atom match compares the isotope whenever the query's is set, so the H counts
    must agree; no charges, bond orders or aromaticity take part.
    """
    graph = Chem.RWMol()
    for n, h in zip(numbers, hydrogens, strict=True):
        atom = Chem.Atom(int(n))
        atom.SetIsotope(int(h) + 1)
        atom.SetNoImplicit(True)
        graph.AddAtom(atom)
    for a, b in bonds:
        graph.AddBond(int(a), int(b), Chem.BondType.SINGLE)
    skeleton = graph.GetMol()
    skeleton.UpdatePropertyCache(strict=False)
    return skeleton


def rotational_constant_a(numbers: Sequence[int] | np.ndarray, xyz: np.ndarray) -> float:
    """Rotational constant A (GHz), from the smallest principal moment of inertia.

    Masses are those of the most abundant isotopes. Returns ``nan`` for linear molecules
    and single atoms (smallest moment below 0.01 amu * Angstrom^2).
    """
    table = Chem.GetPeriodicTable()
    masses = np.array([table.GetMostCommonIsotopeMass(int(z)) for z in numbers])
    xyz = np.asarray(xyz, dtype=float)
    rel = xyz - (masses[:, None] * xyz).sum(axis=0) / masses.sum()
    inertia = -np.einsum("i,ij,ik->jk", masses, rel, rel)
    inertia[np.diag_indices(3)] += (masses * (rel**2).sum(axis=1)).sum()
    smallest = float(np.linalg.eigvalsh(inertia)[0])
    if smallest < _LINEAR_INERTIA:
        return math.nan
    return _ROT_CONST_GHZ_AMU_A2 / smallest


def _symmetry_unique(mol: Chem.Mol, atoms: Sequence[int]) -> list[int]:
    """The first atom of each symmetry class among ``atoms`` (RDKit canonical ranks)."""
    ranks = list(Chem.CanonicalRankAtoms(mol, breakTies=False))
    seen: set[int] = set()
    unique = []
    for idx in atoms:
        if ranks[idx] not in seen:
            seen.add(ranks[idx])
            unique.append(idx)
    return unique


def deprotonation_sites(
    mol: Chem.Mol, charges: np.ndarray | None = None, max_sites: int = MAX_SITES
) -> list[int]:
    """Indices of the hydrogens tried for ``dEacid``.

    Symmetry-unique H bound to any heavy atom other than carbon; when there is none,
    symmetry-unique H bound to carbon. With ``charges`` (the neutral's xTB charges),
    only the ``max_sites`` most positive of them are kept.
    """
    hetero, carbon = [], []
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() != 1 or atom.GetDegree() != 1:
            continue
        partner = atom.GetNeighbors()[0].GetAtomicNum()
        (carbon if partner == 6 else hetero).append(atom.GetIdx())
    sites = _symmetry_unique(mol, hetero or carbon)
    if charges is not None:
        sites = sorted(sites, key=lambda i: (-charges[i], i))[:max_sites]
    return sites


def protonation_sites(
    mol: Chem.Mol, charges: np.ndarray | None = None, max_sites: int = MAX_SITES
) -> list[tuple[int, bool]]:
    """Atoms tried for ``dEbase``, each with a flag: protonated on its pi face.

    Symmetry-unique N, O, S, P with a lone pair (formal charge <= 0 and, for N and P,
    fewer than four neighbours; for O and S, fewer than three); when there is none,
    symmetry-unique unsaturated carbons (one double, triple or aromatic bond), which are
    protonated on the face of their pi system. With ``charges`` (the neutral's xTB
    charges), only the ``max_sites`` most negative of them are kept.
    """
    lone_pair, unsaturated = [], []
    for atom in mol.GetAtoms():
        z, degree = atom.GetAtomicNum(), atom.GetDegree()
        if z in _BASE_ELEMENTS and atom.GetFormalCharge() <= 0:
            if degree < (4 if z in (7, 15) else 3):
                lone_pair.append(atom.GetIdx())
        elif z == 6 and any(b.GetBondTypeAsDouble() > 1.0 for b in atom.GetBonds()):
            unsaturated.append(atom.GetIdx())
    sites = _symmetry_unique(mol, lone_pair or unsaturated)
    if charges is not None:
        sites = sorted(sites, key=lambda i: (charges[i], i))[:max_sites]
    return [(i, not lone_pair) for i in sites]


def _proton_position(mol: Chem.Mol, xyz: np.ndarray, site: int, pi_site: bool) -> np.ndarray:
    """Where a proton added to ``site`` is placed (Angstrom).

    Direction: for pi sites and for (near-)planar or linear sites whose bond vectors
    cancel, the normal of the plane of the first two bonds; for one-neighbour sites
    bound to a non-linear atom X (carbonyl O, C=S ...), 120 degrees from the X-site
    bond, in the plane of X's substituents, anti to X's first other neighbour; otherwise
    opposite the sum of the unit bond vectors (sp3 N, hydroxyl and ether O, pyridine N,
    nitrile N). Distance: a standard X-H bond length.
    """
    centre = xyz[site]
    atom = mol.GetAtomWithIdx(site)
    neighbours = [n.GetIdx() for n in atom.GetNeighbors()]
    units = [_unit(xyz[n] - centre) for n in neighbours]
    direction = None
    if not units:
        direction = np.array([0.0, 0.0, 1.0])
    elif len(units) == 1 and not pi_site:
        direction = -units[0]
        partner = mol.GetAtomWithIdx(neighbours[0])
        others = [n.GetIdx() for n in partner.GetNeighbors() if n.GetIdx() != site]
        if others:
            w = xyz[others[0]] - xyz[neighbours[0]]
            w_perp = w - np.dot(w, units[0]) * units[0]
            if np.linalg.norm(w_perp) > 0.1:  # X is not linear: X-site-H at 120 degrees
                direction = -0.5 * units[0] - 0.8660254 * _unit(w_perp)
    else:
        total = np.sum(units, axis=0)
        cancels = pi_site or np.linalg.norm(total) <= 0.3
        direction = _normal(units) if cancels else -_unit(total)
    length = _XH_LENGTH_A.get(atom.GetAtomicNum(), _DEFAULT_XH_LENGTH_A)
    return centre + length * _unit(direction)


def _normal(units: list[np.ndarray]) -> np.ndarray:
    """A unit vector normal to the first two bond directions (any perpendicular if linear)."""
    first = units[0]
    for other in [*units[1:], np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])]:
        cross = np.cross(first, other)
        if np.linalg.norm(cross) > 0.1:
            return _unit(cross)
    return np.array([0.0, 0.0, 1.0])


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        raise ValueError("zero-length vector")
    return vector / norm
