from __future__ import annotations

import pytest
from rdkit import Chem

from bodisc.chem.alerts import ALERTS, flags
from bodisc.errors import InvalidMoleculeError


@pytest.mark.parametrize(("smiles", "expected"), [
    ("CCO", []),
    ("CC(=O)O", []),
    ("FC(F)(F)C#N", []),
    ("CON", []),                          # O-alkyl hydroxylamine: no free N-OH
    ("CC[N+](=O)[O-]", []),               # nitro is not nitroso
    ("CN=NC", []),                        # azo alone is not flagged
    ("FN=NC=C", ["N-F", "N=N-F"]),
    ("NC(F)(F)F", []),                    # C-F next to N is no N-F
    ("CN(C)F", ["N-F"]),
    ("COF", ["O-F"]),
    ("COOC", ["O-O"]),
    ("C1OO1", ["O-O"]),
    ("CC=NO", ["HO-N"]),                  # oxime
    ("CC(=O)NO", ["HO-N"]),               # hydroxamic acid
    ("CN(C)N=O", ["N-N=O", "N=O"]),
    ("CC(C)(C)N=O", ["N=O"]),
    ("N=O", ["N=O"]),                     # HNO
    ("CON=O", ["N=O"]),                   # methyl nitrite
    ("CONOC", []),                        # O-N-O: not N-O-N
    ("c1cnon1", ["N-O-N"]),               # furazan
    ("CN=[N+]=[N-]", ["azide"]),
    ("C=[N+]=[N-]", ["diazo"]),
    ("CC(=O)F", ["acyl fluoride"]),
    ("CN=C=O", ["isocyanate"]),
    # no N-F here: the fluorine sits on carbon, an imidoyl fluoride
    ("NC=CC=CC=NC(F)=NC=O", ["acyl fluoride"]),
])
def test_flags_of_known_molecules(smiles: str, expected: list[str]) -> None:
    assert flags(smiles) == expected


def test_registry_names_are_unique_and_every_pattern_compiles() -> None:
    names = [a.name for a in ALERTS]
    assert len(names) == len(set(names))
    assert 8 <= len(ALERTS) <= 12
    for alert in ALERTS:
        assert Chem.MolFromSmarts(alert.smarts) is not None, alert.name
        assert alert.description


def test_registry_order_then_extra_each_name_once() -> None:
    mol = Chem.MolFromSmiles("FN=NCO")
    extra = {"[#7]=[#7]": "[#7]=[#7]", "N-F": "[#7]-F", "ether": "COC"}
    assert flags(mol, extra) == ["N-F", "N=N-F", "[#7]=[#7]"]
    # a plain sequence of SMARTS is named by the SMARTS text
    assert flags("FN=NCO", ["[OX2H1]", "[#7]=[#7]"]) == ["N-F", "N=N-F", "[OX2H1]",
                                                         "[#7]=[#7]"]
    assert flags("CCO", "[OX2H1]") == ["[OX2H1]"]


def test_explicit_hydrogens_do_not_hide_the_n_hydroxy_flag() -> None:
    assert flags(Chem.AddHs(Chem.MolFromSmiles("CCNO"))) == ["HO-N"]


@pytest.mark.parametrize("smiles", ["not a smiles", "C1CC", "C(C)(C)(C)(C)C"])
def test_unparsable_smiles_has_no_flags(smiles: str) -> None:
    assert flags(smiles, {"any": "*"}) == []
    assert flags(None) == []


def test_a_bad_extra_smarts_is_an_error() -> None:
    with pytest.raises(InvalidMoleculeError):
        flags("CCO", {"broken": "[#7"})
