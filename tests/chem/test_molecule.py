from __future__ import annotations

from types import SimpleNamespace

import pytest

from bodisc.chem.molecule import (
    MoleculeRecord,
    check_constraints,
    parse_smiles,
    record_from_smiles,
    to_record,
)
from bodisc.config import GeneratorConfig
from bodisc.errors import BodiscError, InvalidMoleculeError

NEUTRAL = GeneratorConfig(allowed_elements=("C", "N", "O", "F"), max_heavy_atoms=12)
NET_NEUTRAL = NEUTRAL.model_copy(update={"charge_rule": "net_neutral"})
ANY_CHARGE = NEUTRAL.model_copy(update={"charge_rule": "any"})


def _problem(smiles: str, spec: object = NEUTRAL) -> str | None:
    return check_constraints(parse_smiles(smiles), spec)


# --- parsing -------------------------------------------------------------------------


@pytest.mark.parametrize("smiles", ["", "   ", "\n"])
def test_empty_smiles_is_rejected(smiles: str) -> None:
    with pytest.raises(InvalidMoleculeError, match="empty"):
        parse_smiles(smiles)


@pytest.mark.parametrize("smiles", [None, 42])
def test_non_string_is_rejected(smiles: object) -> None:
    with pytest.raises(InvalidMoleculeError):
        parse_smiles(smiles)  # type: ignore[arg-type]


@pytest.mark.parametrize("smiles", ["not a smiles", "C1CC", "C(C", "xyz", "C==C"])
def test_garbage_is_rejected(smiles: str) -> None:
    with pytest.raises(InvalidMoleculeError, match="parse"):
        parse_smiles(smiles)


@pytest.mark.parametrize("smiles", ["c1cccc1", "C(C)(C)(C)(C)C"])
def test_unsanitisable_is_rejected(smiles: str) -> None:
    with pytest.raises(InvalidMoleculeError, match="sanitise"):
        parse_smiles(smiles)


def test_too_long_smiles_is_rejected() -> None:
    with pytest.raises(InvalidMoleculeError, match="longer"):
        parse_smiles("C" * 5_000)


def test_invalid_molecule_error_is_a_bodisc_error() -> None:
    assert issubclass(InvalidMoleculeError, BodiscError)


def test_surrounding_whitespace_is_ignored() -> None:
    assert record_from_smiles("  CCO \n") == record_from_smiles("CCO")


# --- identity ------------------------------------------------------------------------


def test_two_smiles_of_ethanol_are_one_molecule() -> None:
    a, b, c = (record_from_smiles(s) for s in ("CCO", "OCC", "C(O)C"))
    assert a == b == c
    assert a.smiles == "CCO"
    assert a.inchikey == "LFQSCWFLJHTTHZ-UHFFFAOYSA-N"
    assert a.heavy_atoms == 3


def test_aromatic_and_kekule_forms_are_one_molecule() -> None:
    assert record_from_smiles("c1ccccc1") == record_from_smiles("C1=CC=CC=C1")


def test_stereochemistry_is_dropped() -> None:
    r, s = record_from_smiles("C[C@H](N)O"), record_from_smiles("C[C@@H](N)O")
    assert r == s
    assert "@" not in r.smiles


def test_different_molecules_have_different_keys() -> None:
    assert record_from_smiles("CCO").inchikey != record_from_smiles("COC").inchikey


def test_to_record_fields() -> None:
    rec = to_record(parse_smiles("CC(=O)N"))
    assert isinstance(rec, MoleculeRecord)
    assert rec.smiles == "CC(N)=O"
    assert rec.heavy_atoms == 4
    assert len(rec.inchikey) == 27


# --- constraints ---------------------------------------------------------------------


@pytest.mark.parametrize("smiles", ["CCO", "c1ccccc1", "CC(=O)N", "FC(F)F", "C"])
def test_ordinary_molecules_pass(smiles: str) -> None:
    assert _problem(smiles) is None


def test_disallowed_element() -> None:
    problem = _problem("CCCl")
    assert problem is not None and "Cl" in problem


def test_too_many_heavy_atoms() -> None:
    assert _problem("C" * 12) is None
    problem = _problem("C" * 13)
    assert problem is not None and "max_heavy_atoms" in problem


def test_too_few_heavy_atoms() -> None:
    spec = NEUTRAL.model_copy(update={"min_heavy_atoms": 3})
    assert _problem("CCC", spec) is None
    problem = _problem("CC", spec)
    assert problem is not None and "min_heavy_atoms" in problem


@pytest.mark.parametrize("smiles", ["C[NH3+]", "CC(=O)[O-]", "C[N+](C)(C)C"])
def test_charged_atoms_rejected_under_neutral(smiles: str) -> None:
    problem = _problem(smiles)
    assert problem is not None and "neutral" in problem
    assert _problem(smiles, NET_NEUTRAL) is not None
    assert _problem(smiles, ANY_CHARGE) is None


def test_zwitterion_only_under_net_neutral_or_any() -> None:
    betaine = "C[N+](C)(C)CC(=O)[O-]"
    assert _problem(betaine) is not None
    assert _problem(betaine, NET_NEUTRAL) is None
    assert _problem(betaine, ANY_CHARGE) is None


def test_disconnected_fragments() -> None:
    problem = _problem("CC.O")
    assert problem is not None and "disconnected" in problem


@pytest.mark.parametrize("smiles", ["[CH3]", "C[CH2]", "[CH2]", "C[O]"])
def test_radicals(smiles: str) -> None:
    problem = _problem(smiles, ANY_CHARGE)
    assert problem is not None and "radical" in problem


def test_isotopes() -> None:
    problem = _problem("[13CH4]")
    assert problem is not None and "isotope" in problem


def test_hydrogen_is_always_allowed() -> None:
    assert _problem("[H]C([H])([H])O") is None


def test_duck_typed_spec() -> None:
    spec = SimpleNamespace(
        allowed_elements=["C", "O"], max_heavy_atoms=3, min_heavy_atoms=1, charge_rule="any"
    )
    assert _problem("CCO", spec) is None
    assert _problem("CCN", spec) is not None


def test_forbidden_substructures_are_refused():
    from types import SimpleNamespace

    spec = SimpleNamespace(allowed_elements=("C", "N", "O"), max_heavy_atoms=20,
                           min_heavy_atoms=1, charge_rule="neutral",
                           forbidden_substructures=("[*]=[*]=[*]", "[#8]-[#8]"))
    from bodisc.chem.molecule import check_constraints, parse_smiles

    assert "forbidden substructure [*]=[*]=[*]" in check_constraints(parse_smiles("C=C=C"), spec)
    assert "[#8]-[#8]" in check_constraints(parse_smiles("COOC"), spec)
    assert check_constraints(parse_smiles("CC(=O)OC"), spec) is None
