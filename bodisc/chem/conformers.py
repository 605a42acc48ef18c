"""3D conformers: RDKit ETKDGv3 embedding and MMFF94 optimisation.

Every 3D geometry bodisc computes on starts here: hydrogens are added, ``n_conformers``
conformers are embedded with ETKDGv3 (``randomSeed = seed``, one thread, so the same
SMILES and seed always give the same coordinates), each is optimised with MMFF94 and
the conformers are returned sorted by their MMFF94 energy (kcal/mol), lowest first.

Strained cages (about 2 % of QM9) fail ETKDGv3's tetrahedral-centre checks; ETDG (no
torsion preferences) is tried next with the same seed and rescues some of them.

Coordinates are in Angstrom throughout.
"""

from __future__ import annotations

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdDistGeom as dg
from rdkit.Chem import rdForceFieldHelpers as ff

from bodisc.chem.molecule import parse_smiles
from bodisc.errors import InvalidMoleculeError, MoleculeFailure

__all__ = [
    "atomic_numbers",
    "embed_conformers",
    "lowest_conformer",
    "positions",
]

#: Maximum MMFF94 iterations per conformer.
_MMFF_MAX_ITERS = 2_000


def embed_conformers(smiles: str, n_conformers: int, seed: int) -> tuple[Chem.Mol, list[float]]:
    """Embed and MMFF94-optimise conformers of a molecule.

    Args:
        smiles: SMILES of the molecule (hydrogens are added here).
        n_conformers: Number of conformers to embed (at least 1).
        seed: Random seed of the ETKDGv3 embedding.

    Returns:
        The molecule with explicit hydrogens and its conformers, renumbered
        ``0 .. n-1`` in order of increasing MMFF94 energy, and those energies in
        kcal/mol (ascending). Fewer than ``n_conformers`` conformers may come back when
        some embeddings fail; at least one always does.

    Raises:
        MoleculeFailure: ``"embedding failed: <why>"`` when the SMILES is invalid, no
            conformer can be embedded, or MMFF94 has no parameters for the molecule.
    """
    if n_conformers < 1:
        raise ValueError(f"n_conformers must be >= 1, got {n_conformers}")
    try:
        mol = Chem.AddHs(parse_smiles(smiles))
    except InvalidMoleculeError as exc:
        raise MoleculeFailure(f"embedding failed: {exc}") from None

    conf_ids: list[int] = []
    for make_params in (dg.ETKDGv3, dg.ETDG):
        params = make_params()
        params.randomSeed = int(seed)
        params.numThreads = 1
        conf_ids = list(dg.EmbedMultipleConfs(mol, numConfs=int(n_conformers), params=params))
        if conf_ids:
            break
    if not conf_ids:
        raise MoleculeFailure("embedding failed: neither ETKDGv3 nor ETDG embedded a conformer")

    if not ff.MMFFHasAllMoleculeParams(mol):
        raise MoleculeFailure("embedding failed: MMFF94 has no parameters for this molecule")
    results = ff.MMFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=_MMFF_MAX_ITERS)
    energies = [float(energy) for _, energy in results]
    if not all(np.isfinite(energies)):
        raise MoleculeFailure("embedding failed: MMFF94 energy is not finite")

    order = sorted(range(len(energies)), key=lambda i: (energies[i], i))
    sorted_mol = Chem.Mol(mol)
    sorted_mol.RemoveAllConformers()
    for new_id, old in enumerate(order):
        conf = Chem.Conformer(mol.GetConformer(conf_ids[old]))
        conf.SetId(new_id)
        sorted_mol.AddConformer(conf, assignId=False)
    return sorted_mol, [energies[i] for i in order]


def lowest_conformer(smiles: str, n_conformers: int, seed: int) -> Chem.Mol:
    """The molecule with only its lowest-MMFF94-energy conformer (id 0).

    Args:
        smiles: SMILES of the molecule.
        n_conformers: Number of conformers to embed and compare.
        seed: Random seed of the ETKDGv3 embedding.

    Returns:
        A molecule with explicit hydrogens and exactly one conformer.

    Raises:
        MoleculeFailure: As :func:`embed_conformers`.
    """
    mol, _ = embed_conformers(smiles, n_conformers, seed)
    best = Chem.Conformer(mol.GetConformer(0))
    mol.RemoveAllConformers()
    best.SetId(0)
    mol.AddConformer(best, assignId=False)
    return mol


def atomic_numbers(mol: Chem.Mol) -> np.ndarray:
    """Atomic numbers of all atoms, shape ``(n_atoms,)``, dtype int."""
    return np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()], dtype=int)


def positions(mol: Chem.Mol, conf_id: int = 0) -> np.ndarray:
    """Cartesian coordinates of one conformer in Angstrom, shape ``(n_atoms, 3)``."""
    return np.array(mol.GetConformer(conf_id).GetPositions(), dtype=float)
