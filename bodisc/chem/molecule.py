"""Molecules: parsing, canonical identity and the constraints every candidate must meet.

A molecule's identity in bodisc is its standard InChIKey: two SMILES of the same
molecule are the same key, so nothing is computed twice and nothing already evaluated or
failed is proposed again. Stereochemistry is dropped (the generator does not control it
and the descriptors are computed on one embedded stereoisomer).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from rdkit import Chem, RDLogger

from bodisc.errors import InvalidMoleculeError

if TYPE_CHECKING:
    from collections.abc import Sequence

RDLogger.DisableLog("rdApp.*")

#: Atoms bodisc's xTB recipes and SELFIES alphabet are written for (see config).
_MAX_SMILES_LENGTH = 2_000


class ConstraintSpec(Protocol):
    """What :func:`check_constraints` needs (``GeneratorConfig`` provides it)."""

    allowed_elements: Sequence[str]
    max_heavy_atoms: int
    min_heavy_atoms: int
    charge_rule: str
    # optional: ``forbidden_substructures: Sequence[str]`` (SMARTS)


@dataclass(frozen=True)
class MoleculeRecord:
    """A molecule as the store keeps it.

    Attributes:
        smiles: Canonical RDKit SMILES without stereochemistry or explicit hydrogens.
        inchikey: Standard InChIKey of that SMILES, the molecule's identity.
        heavy_atoms: Number of non-hydrogen atoms.
    """

    smiles: str
    inchikey: str
    heavy_atoms: int


def parse_smiles(smiles: str) -> Chem.Mol:
    """Parse and sanitise a SMILES string into an RDKit molecule (no hydrogens added).

    Raises:
        InvalidMoleculeError: With the reason when RDKit rejects it or it is empty.
    """
    if not isinstance(smiles, str) or not smiles.strip():
        raise InvalidMoleculeError("empty SMILES")
    if len(smiles) > _MAX_SMILES_LENGTH:
        raise InvalidMoleculeError(f"SMILES longer than {_MAX_SMILES_LENGTH} characters")
    mol = Chem.MolFromSmiles(smiles.strip(), sanitize=False)
    if mol is None:
        raise InvalidMoleculeError("RDKit cannot parse this SMILES")
    try:
        Chem.SanitizeMol(mol)
    except Exception as exc:  # noqa: BLE001 - RDKit raises several unrelated types
        raise InvalidMoleculeError(f"RDKit cannot sanitise it: {exc}") from None
    if mol.GetNumAtoms() == 0:
        raise InvalidMoleculeError("no atoms")
    Chem.RemoveStereochemistry(mol)
    return mol


def to_record(mol: Chem.Mol) -> MoleculeRecord:
    """Canonical SMILES, InChIKey and size of a sanitised molecule."""
    smiles = Chem.MolToSmiles(mol, isomericSmiles=False)
    key = Chem.MolToInchiKey(Chem.MolFromSmiles(smiles))
    if not key:
        raise InvalidMoleculeError("no InChIKey can be computed")
    return MoleculeRecord(smiles=smiles, inchikey=key, heavy_atoms=mol.GetNumHeavyAtoms())


def record_from_smiles(smiles: str) -> MoleculeRecord:
    """Shorthand for ``to_record(parse_smiles(smiles))``."""
    return to_record(parse_smiles(smiles))


def check_constraints(mol: Chem.Mol, spec: ConstraintSpec) -> str | None:
    """Check a sanitised molecule against the campaign's constraints.

    Args:
        mol: A molecule from :func:`parse_smiles`.
        spec: Allowed elements, heavy-atom range and charge rule.

    Returns:
        ``None`` if it is acceptable, else a one-line reason.
    """
    allowed = set(spec.allowed_elements) | {"H"}
    elements = sorted({a.GetSymbol() for a in mol.GetAtoms()})
    bad = [e for e in elements if e not in allowed]
    if bad:
        return f"element(s) {', '.join(bad)} not in allowed_elements"
    n_heavy = mol.GetNumHeavyAtoms()
    if n_heavy > spec.max_heavy_atoms:
        return f"{n_heavy} heavy atoms, more than max_heavy_atoms = {spec.max_heavy_atoms}"
    if n_heavy < spec.min_heavy_atoms:
        return f"{n_heavy} heavy atoms, fewer than min_heavy_atoms = {spec.min_heavy_atoms}"
    if len(Chem.GetMolFrags(mol)) > 1:
        return "disconnected fragments"
    radicals = sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())
    if radicals:
        return f"{radicals} radical electron(s); only closed-shell molecules are allowed"
    charges = [a.GetFormalCharge() for a in mol.GetAtoms()]
    if spec.charge_rule == "neutral" and any(charges):
        return "charged atoms; charge_rule = 'neutral' allows none"
    if spec.charge_rule == "net_neutral" and sum(charges) != 0:
        return f"net charge {sum(charges):+d}; charge_rule = 'net_neutral' requires 0"
    if any(a.GetIsotope() for a in mol.GetAtoms()):
        return "isotope labels are not supported"
    for smarts, pattern in _patterns(tuple(getattr(spec, "forbidden_substructures", ()))):
        if mol.HasSubstructMatch(pattern):
            return f"contains forbidden substructure {smarts}"
    return None


@functools.lru_cache(maxsize=64)
def _patterns(smarts: tuple[str, ...]) -> tuple[tuple[str, Chem.Mol], ...]:
    return tuple((s, compile_smarts(s)) for s in smarts)


def compile_smarts(smarts: str) -> Chem.Mol:
    """Compile a SMARTS pattern.

    Raises:
        InvalidMoleculeError: If RDKit cannot parse it.
    """
    pattern = Chem.MolFromSmarts(smarts)
    if pattern is None:
        raise InvalidMoleculeError(f"RDKit cannot parse the SMARTS {smarts!r}")
    return pattern
