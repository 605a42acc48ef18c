"""PySCF DFT oracle: the dipole moment (and frontier orbitals) on the xTB geometry.

Recipe for one molecule (one worker process, one call):

1. the GFN2-xTB-optimised geometry of :mod:`bodisc.builtin_oracles.xtb`:
   ``n_conformers`` ETKDGv3 + MMFF94 conformers, the lowest in GFN2-xTB energy optimised
   with GFN2-xTB, checked for changed bonding (the ``[oracle.options.geometry]`` table
   takes the xTB oracle's options);
2. one Kohn-Sham DFT single point with PySCF at that geometry: ``functional``
   (default B3LYP, PySCF's libxc definition) in the ``basis`` (default def2-SVP),
   restricted for closed shells and unrestricted otherwise, with density fitting
   (PySCF's default auxiliary basis) when ``density_fit``; ``conv_tol`` (Hartree) and
   ``max_cycle`` bound the SCF; ``threads`` OpenMP threads;
3. the label is the magnitude of the DFT dipole moment of the converged density, in
   Debye. The extras carry the HOMO, LUMO and HOMO-LUMO gap (eV), the total energy
   (Hartree), the number of basis functions, where it ran (``cpu``/``gpu``) and the
   geometry (``xyz``: atomic number and Angstrom coordinates per atom).

With ``device = "auto"`` the SCF runs on the GPU through gpu4pyscf when that package
is importable and a CUDA device is present; ``"cpu"`` never uses it and ``"gpu"``
fails each molecule with the reason when it cannot.

Failure reasons (one line, as :class:`~bodisc.errors.MoleculeFailure`): the xTB
geometry's (``embedding failed``, ``SCF not converged`` of xTB, ``optimisation did not
converge``, ``fragmented``/``changed bonding``), and ``DFT SCF not converged in N
cycles (...)``.

Costs, B3LYP/def2-SVP with density fitting on one core: well under a second for water,
seconds for QM9-sized molecules, tens of seconds beyond 15 heavy atoms.
"""

from __future__ import annotations

import importlib.util
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bodisc.builtin_oracles.xtb import XtbDipoleOptions, optimised_geometry
from bodisc.errors import MoleculeFailure
from bodisc.oracle import Oracle

__all__ = ["PyscfDipoleOptions", "PyscfDipoleOracle", "PyscfGapOracle", "xtb_geometry",
           "gpu_available"]

#: 1 Hartree in eV.
EV_PER_HARTREE = 27.211386245988


class PyscfDipoleOptions(BaseModel):
    """Options of :class:`PyscfDipoleOracle` (the ``[oracle.options]`` table).

    Attributes:
        functional: Exchange-correlation functional, as PySCF (libxc) names it.
        basis: Orbital basis set, as PySCF names it.
        density_fit: Density fitting (RI-J) with PySCF's default auxiliary basis.
        conv_tol: SCF energy convergence threshold, Hartree.
        max_cycle: Maximum SCF cycles; past it the molecule fails.
        threads: OpenMP threads of the DFT calculation in each worker.
        device: ``auto`` (gpu4pyscf when importable and a GPU is present), ``cpu``
            or ``gpu``.
        geometry: Options of the xTB geometry (those of ``xtb_dipole``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    functional: str = "b3lyp"
    basis: str = "def2-svp"
    density_fit: bool = True
    conv_tol: float = Field(1e-9, gt=0.0, le=1e-3)
    max_cycle: int = Field(100, ge=1, le=10_000)
    threads: int = Field(1, ge=1, le=256)
    device: Literal["auto", "cpu", "gpu"] = "auto"
    geometry: XtbDipoleOptions = XtbDipoleOptions()

    @field_validator("functional")
    @classmethod
    def _known_functional(cls, value: str) -> str:
        from pyscf.dft import libxc

        try:
            libxc.parse_xc(value)
        except Exception:  # noqa: BLE001 - libxc raises KeyError or ValueError
            raise ValueError(
                "unknown exchange-correlation functional; give a name PySCF/libxc "
                "knows, e.g. b3lyp, pbe0, wb97x, m06-2x"
            ) from None
        return value.lower()

    @field_validator("basis")
    @classmethod
    def _known_basis(cls, value: str) -> str:
        import warnings

        from pyscf.gto import basis

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "maybe in basis-set-exchange"
                found = basis.load(value, "C")
        except Exception:  # noqa: BLE001 - PySCF raises several kinds
            found = None
        if not found:
            raise ValueError(
                "unknown basis set (or no carbon in it); give a name PySCF knows, "
                "e.g. def2-svp, def2-tzvp, 6-31g*, cc-pvdz"
            )
        return value.lower()


def gpu_available() -> bool:
    """True when gpu4pyscf is importable and CUDA sees at least one device."""
    if importlib.util.find_spec("gpu4pyscf") is None:
        return False
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:  # noqa: BLE001 - no driver, no device, broken install
        return False


def xtb_geometry(smiles: str, opts: XtbDipoleOptions) -> tuple[np.ndarray, np.ndarray,
                                                                int, dict[str, Any]]:
    """The GFN2-xTB-optimised geometry of the xTB dipole oracle.

    Args:
        smiles: SMILES of the molecule.
        opts: The xTB oracle's options (conformers, seed, convergence).

    Returns:
        ``(numbers, positions, charge, extras)``: atomic numbers ``(n,)``, positions in
        Angstrom ``(n, 3)``, the net charge, and ``xtb_energy_eV``, ``xtb_steps``,
        ``conformer``.

    Raises:
        MoleculeFailure: As :class:`bodisc.builtin_oracles.xtb.XtbDipoleOracle`.
    """
    geo = optimised_geometry(smiles, opts)
    return geo.numbers, geo.positions, geo.charge, {
        "xtb_energy_eV": geo.energy_ev, "xtb_steps": geo.steps, "conformer": geo.conformer}


class PyscfDipoleOracle(Oracle):
    """Dipole moment (D) from PySCF DFT on the GFN2-xTB-optimised lowest conformer."""

    name: ClassVar[str] = "pyscf_dipole"
    property: ClassVar[str] = "dipole"
    unit: ClassVar[str] = "D"
    properties: ClassVar[dict[str, str]] = {"gap": "eV", "homo": "eV", "lumo": "eV"}
    cost: ClassVar[float] = 50.0
    Options: ClassVar[type[BaseModel]] = PyscfDipoleOptions

    def evaluate(self, smiles: str) -> tuple[dict[str, float], dict[str, Any]]:
        """Run the DFT single point of one molecule and return its dipole moment.

        Args:
            smiles: SMILES of the molecule.

        Returns:
            ``dipole`` (D), ``gap``, ``homo`` and ``lumo`` (eV), and the extras listed in
            the module docstring
            (``homo_eV``, ``lumo_eV``, ``gap_eV``, ``energy_Eh``, ``scf_cycles``, ``nao``,
            ``device``, ``xyz``, and the xTB geometry's ``xtb_energy_eV``, ``xtb_steps``,
            ``conformer``).

        Raises:
            MoleculeFailure: With one of the reasons in the module docstring.
        """
        opts: PyscfDipoleOptions = self.options  # type: ignore[assignment]
        numbers, xyz, charge, extras = xtb_geometry(smiles, opts.geometry)
        result = dft_single_point(numbers, xyz, charge, opts)
        extras.update(result)
        extras["xyz"] = [[int(z), *map(float, p)] for z, p in zip(numbers, xyz, strict=True)]
        return {"dipole": float(result["dipole_D"]), "gap": float(result["gap_eV"]),
                "homo": float(result["homo_eV"]), "lumo": float(result["lumo_eV"])}, extras


class PyscfGapOracle(PyscfDipoleOracle):
    """HOMO-LUMO gap (eV) of the same DFT calculation as :class:`PyscfDipoleOracle`."""

    name: ClassVar[str] = "pyscf_gap"
    property: ClassVar[str] = "gap"
    unit: ClassVar[str] = "eV"
    properties: ClassVar[dict[str, str]] = {"dipole": "D", "homo": "eV", "lumo": "eV"}


def dft_single_point(numbers: np.ndarray, xyz: np.ndarray, charge: int,
                     opts: PyscfDipoleOptions) -> dict[str, Any]:
    """One Kohn-Sham DFT single point with PySCF.

    Args:
        numbers: Atomic numbers, shape ``(n,)``.
        xyz: Positions in Angstrom, shape ``(n, 3)``.
        charge: Net charge.
        opts: Functional, basis, density fitting, convergence, threads, device.

    Returns:
        ``dipole_D``, ``homo_eV``, ``lumo_eV``, ``gap_eV``, ``energy_Eh``,
        ``scf_cycles``, ``nao``, ``device``.

    Raises:
        MoleculeFailure: When the SCF does not converge, or ``device = "gpu"`` and no
            GPU can be used.
    """
    from pyscf import dft, gto, lib

    lib.num_threads(opts.threads)
    spin = (int(np.sum(numbers)) - charge) % 2
    mol = gto.M(atom=[(int(z), tuple(map(float, p))) for z, p in zip(numbers, xyz, strict=True)],
                basis=opts.basis, charge=charge, spin=spin, unit="Angstrom", verbose=0)
    mf = dft.RKS(mol) if spin == 0 else dft.UKS(mol)
    mf.xc = opts.functional
    mf.conv_tol = opts.conv_tol
    mf.max_cycle = opts.max_cycle
    if opts.density_fit:
        mf = mf.density_fit()
    use_gpu = opts.device == "gpu" or (opts.device == "auto" and gpu_available())
    if use_gpu:
        if not gpu_available():
            raise MoleculeFailure("device = 'gpu' but gpu4pyscf or a CUDA device is missing")
        mf = mf.to_gpu()
    cycles = {"n": 0}

    def count(envs: dict[str, Any]) -> None:
        cycles["n"] = int(envs.get("cycle", cycles["n"])) + 1

    mf.callback = count
    energy = float(mf.kernel())
    if not mf.converged:
        raise MoleculeFailure(
            f"DFT SCF not converged in {opts.max_cycle} cycles ({opts.functional}/"
            f"{opts.basis}, conv_tol {opts.conv_tol:g})"
        )
    dipole = np.asarray(_to_numpy(mf.dip_moment(unit="Debye", verbose=0)), dtype=float)
    mo_energy = _to_numpy(mf.mo_energy)
    mo_occ = _to_numpy(mf.mo_occ)
    if spin:  # UKS: alpha and beta orbitals together
        mo_energy, mo_occ = np.concatenate(mo_energy), np.concatenate(mo_occ)
    occupied, virtual = mo_energy[mo_occ > 0], mo_energy[mo_occ == 0]
    homo = float(occupied.max()) * EV_PER_HARTREE
    lumo = float(virtual.min()) * EV_PER_HARTREE if virtual.size else float("nan")
    return {
        "dipole_D": float(np.linalg.norm(dipole)),
        "homo_eV": homo,
        "lumo_eV": lumo,
        "gap_eV": lumo - homo,
        "energy_Eh": energy,
        "scf_cycles": cycles["n"],
        "nao": int(mol.nao),
        "device": "gpu" if use_gpu else "cpu",
    }


def _to_numpy(value: Any) -> Any:
    """Arrays from gpu4pyscf are CuPy arrays; bring them to the host."""
    if hasattr(value, "get") and not isinstance(value, np.ndarray | dict | list | tuple):
        return value.get()
    if isinstance(value, list | tuple):
        return [_to_numpy(v) for v in value]
    return np.asarray(value)

