"""Thin wrappers around tblite's GFN2-xTB single point.

Units: positions go in in Angstrom; the returned :class:`tblite.interface.Result` is in
atomic units (Hartree, Bohr, e*Bohr), as tblite gives it. The constants below convert.

tblite is imported inside the functions, so importing this module stays cheap. The
number of OpenMP threads is the caller's business (set ``OMP_NUM_THREADS`` before the
worker process starts); nothing here touches the environment.

Known trap (tblite 0.8.0): ``Calculator.add("electric-field", field)`` passes ``field``
straight to the C function, which wants a ``double *``; a numpy array does not work.
:func:`singlepoint` casts a contiguous float64 copy of the field to a cffi pointer and
keeps that copy alive until the calculation is done.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bodisc.errors import MoleculeFailure

if TYPE_CHECKING:
    from tblite.interface import Result

__all__ = [
    "ANGSTROM_PER_BOHR",
    "BOHR3_TO_ANGSTROM3",
    "DEBYE_PER_E_BOHR",
    "EV_PER_HARTREE",
    "frontier_orbitals",
    "n_electrons",
    "singlepoint",
]

#: 1 Bohr in Angstrom (CODATA 2018).
ANGSTROM_PER_BOHR = 0.529177210903
#: 1 Hartree in eV (CODATA 2018).
EV_PER_HARTREE = 27.211386245988
#: 1 e*Bohr in Debye.
DEBYE_PER_E_BOHR = 2.541746
#: 1 Bohr^3 (atomic unit of polarisability volume) in Angstrom^3.
BOHR3_TO_ANGSTROM3 = ANGSTROM_PER_BOHR**3

_METHODS = ("GFN2-xTB", "GFN1-xTB", "IPEA1-xTB")


def n_electrons(numbers: Sequence[int] | np.ndarray, charge: int = 0) -> int:
    """Total number of electrons (all electrons, not only valence) of a molecule."""
    return int(np.sum(numbers)) - int(charge)


def singlepoint(
    numbers: Sequence[int] | np.ndarray,
    positions_angstrom: np.ndarray,
    charge: int = 0,
    uhf: int = 0,
    solvent: str | None = None,
    field: Sequence[float] | np.ndarray | None = None,
    method: str = "GFN2-xTB",
    *,
    accuracy: float = 1.0,
    max_iterations: int = 250,
    guess: Result | None = None,
) -> Result:
    """Run one xTB single point with tblite, silently.

    Args:
        numbers: Atomic numbers, shape ``(n_atoms,)``.
        positions_angstrom: Cartesian coordinates in Angstrom, shape ``(n_atoms, 3)``.
        charge: Total charge in e.
        uhf: Number of unpaired electrons.
        solvent: ALPB solvent name (e.g. ``"water"``, ``"octanol"``), or ``None`` for
            the gas phase. The solution state is tblite's default (``gsolv``).
        field: Uniform external electric field in atomic units (Hartree/(e*Bohr)),
            shape ``(3,)``, or ``None``.
        method: ``"GFN2-xTB"`` (default), ``"GFN1-xTB"`` or ``"IPEA1-xTB"``.
        accuracy: tblite's numerical accuracy factor (1.0 default; smaller is tighter).
        max_iterations: Maximum number of SCF cycles.
        guess: A previous :class:`~tblite.interface.Result` of the same system (same
            atoms, charge and spin) whose wavefunction starts the SCF; it is copied,
            never modified.

    Returns:
        tblite's result container, in atomic units: ``res["energy"]`` (Hartree),
        ``res["dipole"]`` (e*Bohr), ``res["charges"]`` (e), ``res["bond-orders"]``
        (Wiberg, shape ``(n, n)`` or ``(n, n, 1)``), ``res["orbital-energies"]``
        (Hartree), ``res["gradient"]`` (Hartree/Bohr) ...

    Raises:
        MoleculeFailure: ``"SCF not converged: <tblite's message>"`` on any tblite error
            (no convergence, atoms too close, spin incompatible with electron count).
        ValueError: For an unknown method or badly shaped input.
    """
    from tblite.interface import Calculator

    if method not in _METHODS:
        raise ValueError(f"unknown xTB method {method!r}; allowed: {', '.join(_METHODS)}")
    numbers = np.asarray(numbers, dtype=np.int32)
    pos = np.asarray(positions_angstrom, dtype=float)
    if pos.shape != (len(numbers), 3):
        raise ValueError(f"positions must have shape ({len(numbers)}, 3), got {pos.shape}")

    field_array = None if field is None else _field_array(field)
    keep_alive: list[Any] = []
    try:
        calc = Calculator(
            method, numbers, pos / ANGSTROM_PER_BOHR, charge=float(charge), uhf=int(uhf)
        )
        calc.set("verbosity", 0)
        if accuracy != 1.0:
            calc.set("accuracy", float(accuracy))
        if max_iterations != 250:
            calc.set("max-iter", int(max_iterations))
        if field_array is not None:
            calc.add("electric-field", _double_pointer(field_array, keep_alive))
        if solvent is not None:
            calc.add("alpb-solvation", solvent)
        if guess is not None:
            return calc.singlepoint(guess, copy=True)
        return calc.singlepoint()
    except (RuntimeError, ValueError, TypeError) as exc:
        raise MoleculeFailure(f"SCF not converged: {exc}") from None
    finally:
        keep_alive.clear()


def frontier_orbitals(res: Result) -> tuple[float, float]:
    """HOMO and LUMO energies (eV) of a single point, from its orbital occupations.

    Restricted: orbitals sorted by energy, the occupied count from the total occupation
    (a singly occupied orbital counts); spin-polarised (open shell): the highest occupied
    and the lowest empty spin orbital.

    Raises:
        ValueError: With no occupied or no virtual orbital.
    """
    eps = np.asarray(res["orbital-energies"], dtype=float)
    occ = np.asarray(res["orbital-occupations"], dtype=float)
    if eps.ndim == 2:
        homo = float(eps[occ > 0.5].max())
        lumo = float(eps[occ < 0.5].min())
        return homo * EV_PER_HARTREE, lumo * EV_PER_HARTREE
    order = np.argsort(eps, kind="stable")
    eps = eps[order]
    n_occupied = (int(round(float(occ.sum()))) + 1) // 2
    if n_occupied < 1 or n_occupied >= len(eps):
        raise ValueError("no occupied or no virtual orbital")
    return float(eps[n_occupied - 1]) * EV_PER_HARTREE, float(eps[n_occupied]) * EV_PER_HARTREE


def _field_array(field: Sequence[float] | np.ndarray) -> np.ndarray:
    """A contiguous float64 copy of a field vector; raises ValueError unless shape (3,)."""
    array = np.ascontiguousarray(field, dtype=np.float64).copy()
    if array.shape != (3,) or not np.all(np.isfinite(array)):
        raise ValueError(f"field must be 3 finite numbers, got {field!r}")
    return array


def _double_pointer(array: np.ndarray, keep_alive: list[Any]) -> Any:
    """A cffi ``double *`` to ``array`` (float64, contiguous).

    ``array`` is appended to ``keep_alive``; the caller holds that list until the C side
    is done with the pointer.
    """
    from tblite.library import ffi

    keep_alive.append(array)
    return ffi.cast("double *", array.ctypes.data)
