"""Structural flags: named SMARTS a chemist would raise on a C/H/N/O/F molecule.

The generator may build anything its SELFIES edits reach, and a property oracle scores
a hypofluorite or a nitrosamine like any other molecule. These flags do not reject
anything (``generator.forbidden_substructures`` does that); they mark molecules that are
unstable, explosive, reactive or known toxicophores, so a person reading a report or a
``best_molecules`` table sees at once which "best" molecules nobody would make.

:data:`ALERTS` is the one registry; :func:`flags` matches it (and a campaign's own
SMARTS) against a molecule.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from rdkit import Chem

from bodisc.chem.molecule import compile_smarts  # also silences RDKit's parse messages


class Alert(NamedTuple):
    """One structural flag.

    Attributes:
        name: Short name shown in legends and tables (e.g. ``"N-F"``).
        smarts: The SMARTS pattern.
        description: Why a chemist raises it.
    """

    name: str
    smarts: str
    description: str


#: The structural flags, in the order :func:`flags` reports them.
ALERTS: tuple[Alert, ...] = (
    Alert("N-F", "[#7]-F",
          "N-fluoro: weak, oxidising N-F bond (fluorinating agents, energetic NF2 compounds)"),
    Alert("N=N-F", "[#7]=[#7]-F",
          "fluorodiazene: thermally unstable and explosive"),
    Alert("O-F", "[#8]-F",
          "hypofluorite: violent oxidiser, explosive"),
    Alert("O-O", "[#8]-,:[#8]",
          "peroxide: heat- and shock-sensitive oxidiser"),
    Alert("HO-N", "[OX2H1]-[#7]",
          "N-hydroxy (hydroxylamine, oxime, hydroxamic acid): mutagenicity alert, "
          "thermally labile"),
    Alert("N-N=O", "[#7]-[#7]=[#8]",
          "N-nitroso (nitrosamine): potent carcinogen, ICH M7 cohort of concern"),
    Alert("N=O", "[NX2]=[OX1]",
          "nitroso (C-nitroso, nitrite ester, HNO; N-nitroso also has its own flag): "
          "reactive, dimerises, mutagenicity alert"),
    Alert("N-O-N", "[#7]~[#8]~[#7]",
          "one oxygen between two nitrogens (incl. furazan rings): weak N-O bonds, "
          "energetic"),
    Alert("azide", "[#7]=[#7+]=[#7-]",
          "organic azide: explosive, toxic"),
    Alert("diazo", "[#6]=[#7+]=[#7-]",
          "diazo compound: explosive, alkylating"),
    Alert("acyl fluoride", "[CX3](=[#8,#7])F",
          "acyl or imidoyl fluoride: acylating agent, hydrolyses to HF"),
    Alert("isocyanate", "[NX2]=[CX2]=[OX1]",
          "isocyanate: reactive electrophile, respiratory sensitiser"),
)

_REGISTRY = tuple((a.name, a.smarts) for a in ALERTS)


@functools.lru_cache(maxsize=64)
def _compiled(pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[str, Chem.Mol], ...]:
    """``(name, compiled pattern)`` per ``(name, SMARTS)``; each set compiled once."""
    return tuple((name, compile_smarts(smarts)) for name, smarts in pairs)


def flags(smiles_or_mol: str | Chem.Mol | None,
          extra: Mapping[str, str] | Iterable[str] | None = None) -> list[str]:
    """Names of the structural flags a molecule raises.

    The result is a list of plain names so that callers can show or store it as they
    wish (a legend line, a table column, a CSV cell). RDKit FilterCatalog sets (PAINS,
    Brenk), which a later issue brings in through the campaign file, are to be added as
    a further keyword-only argument, matched after ``extra`` and named
    ``"<catalogue>: <entry description>"``; callers then need no change.

    Args:
        smiles_or_mol: A SMILES string or an RDKit molecule.
        extra: More flags, ``name -> SMARTS`` (e.g. a campaign's
            ``generator.forbidden_substructures`` named by their own SMARTS text,
            ``{s: s for s in smarts}``); a plain sequence of SMARTS is named that way.

    Returns:
        The names of the flags that match: :data:`ALERTS` in registry order, then
        ``extra`` in its order, each name once. Empty for an unparsable SMILES.

    Raises:
        InvalidMoleculeError: If a SMARTS in ``extra`` does not parse.
    """
    mol = smiles_or_mol
    if isinstance(mol, str):
        mol = Chem.MolFromSmiles(mol)
    if mol is None:
        return []
    if extra is None:
        more: tuple[tuple[str, str], ...] = ()
    elif isinstance(extra, Mapping):
        more = tuple((str(k), str(v)) for k, v in extra.items())
    elif isinstance(extra, str):
        more = ((extra, extra),)
    else:
        more = tuple((s, s) for s in extra)
    found: dict[str, None] = {}
    for patterns in (_compiled(_REGISTRY), _compiled(more)):
        for name, pattern in patterns:
            if name not in found and mol.HasSubstructMatch(pattern):
                found[name] = None
    return list(found)
