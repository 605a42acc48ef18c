"""Filters on generated candidates: synthetic accessibility, RDKit filter catalogues, a scaffold.

These are the ``[generator]`` settings ``sa_max``, ``filter_catalogs`` and ``scaffold``:
a candidate that fails one is removed before anything is computed for it (they are
filters, not modelled properties). :class:`CandidateFilters` applies them and names the
filter that removed a molecule, so the loop can count removals per iteration
(``filtered_sa``, ``filtered_<catalogue>``, ``filtered_scaffold``).

:data:`CATALOGUES` is the one registry of catalogue names (RDKit's
``FilterCatalogParams.FilterCatalogs``); :func:`sa_score` is Ertl and Schuffenhauer's
synthetic-accessibility score as RDKit ships it in ``rdkit.Contrib``.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from rdkit import Chem, RDConfig
from rdkit.Chem.FilterCatalog import FilterCatalog, FilterCatalogParams

from bodisc.chem.molecule import compile_smarts, parse_smiles

#: Catalogue name -> RDKit's ``FilterCatalogs`` member (PAINS, PAINS_A/B/C, BRENK, NIH,
#: ZINC, CHEMBL and its CHEMBL_* sets, ALL).
CATALOGUES: dict[str, Any] = dict(FilterCatalogParams.FilterCatalogs.names)

#: Filter name of the synthetic-accessibility threshold and of the scaffold.
SA, SCAFFOLD = "sa", "scaffold"

#: The SA score's range (1 easy .. 10 hard).
SA_RANGE = (1.0, 10.0)


@functools.cache
def _sascorer() -> ModuleType:
    """RDKit's Contrib SA_Score module (importable as a package or from its folder)."""
    try:
        from rdkit.Contrib.SA_Score import sascorer  # type: ignore[import-not-found]
    except ImportError:
        path = os.path.join(RDConfig.RDContribDir, "SA_Score")
        if path not in sys.path:
            sys.path.append(path)
        import sascorer  # type: ignore[import-not-found,no-redef]
    return sascorer


def sa_score(molecule: str | Chem.Mol) -> float:
    """Synthetic-accessibility score of a molecule (Ertl and Schuffenhauer 2009).

    Args:
        molecule: A SMILES string or a sanitised RDKit molecule.

    Returns:
        The score, from 1 (easy to make) to 10 (hard).

    Raises:
        InvalidMoleculeError: If a SMILES cannot be parsed.
    """
    mol = parse_smiles(molecule) if isinstance(molecule, str) else molecule
    return float(_sascorer().calculateScore(mol))


def check_catalogues(names: Sequence[str]) -> tuple[str, ...]:
    """The catalogue names, checked against :data:`CATALOGUES` (duplicates dropped).

    Raises:
        ValueError: Naming the unknown ones and listing the allowed names.
    """
    unknown = [n for n in names if n not in CATALOGUES]
    if unknown:
        raise ValueError(f"unknown filter catalogue(s) {unknown}; allowed: "
                         f"{', '.join(CATALOGUES)}")
    return tuple(dict.fromkeys(names))


@functools.cache
def catalogue(name: str) -> FilterCatalog:
    """RDKit's filter catalogue of that name (built once per process)."""
    params = FilterCatalogParams()
    params.AddCatalog(CATALOGUES[name])
    return FilterCatalog(params)


@dataclass(frozen=True)
class CandidateFilters:
    """The generator's filters, applied in a fixed order.

    Order (the cheapest first): the scaffold, then each catalogue as listed, then the SA
    score. A removed molecule is counted once, under the first filter that removes it.

    Attributes:
        sa_max: Largest SA score allowed; ``None``: no SA filter.
        catalogues: Catalogue names (keys of :data:`CATALOGUES`); a molecule matching
            any entry of one is removed.
        scaffold: SMARTS every molecule must contain; ``None``: no scaffold filter.
    """

    sa_max: float | None = None
    catalogues: tuple[str, ...] = ()
    scaffold: str | None = None

    @classmethod
    def from_spec(cls, spec: Any) -> CandidateFilters:
        """The filters of a ``GeneratorConfig`` (or anything with its attributes).

        Missing attributes mean no filter, so a duck-typed spec without them works.
        """
        return cls(getattr(spec, "sa_max", None),
                   check_catalogues(tuple(getattr(spec, "filter_catalogs", ()))),
                   getattr(spec, "scaffold", None))

    @property
    def active(self) -> bool:
        """Whether any filter is configured."""
        return self.sa_max is not None or bool(self.catalogues) or self.scaffold is not None

    @property
    def names(self) -> tuple[str, ...]:
        """The configured filters' names, in the order they are applied."""
        return ((SCAFFOLD,) if self.scaffold is not None else ()) + self.catalogues + (
            (SA,) if self.sa_max is not None else ())

    def rejects(self, molecule: str | Chem.Mol) -> str | None:
        """The name of the first filter that removes the molecule, or ``None`` to keep it.

        Args:
            molecule: A SMILES string or a sanitised RDKit molecule.

        Raises:
            InvalidMoleculeError: If a SMILES cannot be parsed.
        """
        if not self.active:
            return None
        mol = parse_smiles(molecule) if isinstance(molecule, str) else molecule
        if self.scaffold is not None and not mol.HasSubstructMatch(_pattern(self.scaffold)):
            return SCAFFOLD
        for name in self.catalogues:
            if catalogue(name).HasMatch(mol):
                return name
        if self.sa_max is not None and sa_score(mol) > self.sa_max:
            return SA
        return None


@functools.lru_cache(maxsize=16)
def _pattern(smarts: str) -> Chem.Mol:
    return compile_smarts(smarts)


def metric_name(filter_name: str) -> str:
    """The iteration metric counting removals by one filter (``filtered_<name>``)."""
    return f"filtered_{filter_name}"


def summary(removed: dict[str, int]) -> str:
    """One phrase for the progress line, e.g. ``"12 candidates (sa 8, PAINS 4)"``."""
    total = sum(removed.values())
    parts = ", ".join(f"{name} {n}" for name, n in removed.items() if n)
    return f"{total} candidate{'s' if total != 1 else ''} ({parts})"
