"""Property-based fuzzing of everything a user or the generator can feed in.

Each test states what must hold for every input hypothesis can think of: SELFIES
operators only ever yield valid molecules within the constraints; SMILES input is either
a molecule or one clear InvalidMoleculeError; a campaign file is either a valid config or
one ConfigError line, never a traceback.
"""

from __future__ import annotations

import string
from types import SimpleNamespace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bodisc.chem.generator import Generator
from bodisc.chem.molecule import check_constraints, parse_smiles, record_from_smiles
from bodisc.config import load_campaign
from bodisc.errors import ConfigError, InvalidMoleculeError
from tests.conftest import TINY, write_campaign

SPEC = SimpleNamespace(
    candidates_per_iteration=10, n_best_parents=3, n_diverse_parents=2, max_operations=3,
    crossover_fraction=0.3, replace_weight=1.0, insert_weight=1.0, delete_weight=1.0,
    allowed_elements=("C", "N", "O", "F"), max_heavy_atoms=9, min_heavy_atoms=2,
    charge_rule="neutral", forbidden_substructures=("[*]=[*]=[*]",),
    max_attempts_per_candidate=20,
)
PARENTS = ["CCO", "c1ccccc1", "CC(N)=O", "N#CC(F)C", "O=C1CCCN1", "CC(C)(C)O", "C=CC=O"]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(seed=st.integers(0, 2**32 - 1),
       parents=st.lists(st.sampled_from(PARENTS), min_size=1, max_size=4, unique=True))
def test_generator_output_is_always_valid_and_within_constraints(seed, parents):
    out = Generator(SPEC).propose(parents, 8, np.random.default_rng(seed), exclude=set())
    keys = set()
    for cand in out:
        mol = parse_smiles(cand.smiles)
        assert check_constraints(mol, SPEC) is None
        assert record_from_smiles(cand.smiles).inchikey == cand.inchikey
        keys.add(cand.inchikey)
    assert len(keys) == len(out)


SMILES_ALPHABET = "CNOFSPIBrcnos()[]=#@+-.123456789%H\\/*:Li Na Fe Cu Au Xe"


@FUZZ
@given(st.one_of(
    st.text(alphabet=SMILES_ALPHABET, max_size=60),
    st.text(max_size=30),
    st.sampled_from([
        "", " ", "[CH3]", "[CH2]", "C[O]", "[Na+].[Cl-]", "CC.O", "[Fe]", "[Au]C",
        "C[NH3+]", "CC(=O)[O-]", "[NH3+]CC([O-])=O", "C" * 400, "c1ccccc1" * 30,
        "C1CC", "c1cccc1", "N(=O)=O", "[U]", "[2H]C", "F/C=C/F", "[C@H](F)(Cl)Br",
    ]),
))
def test_any_smiles_is_a_molecule_or_one_clear_error(text):
    try:
        mol = parse_smiles(text)
    except InvalidMoleculeError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    reason = check_constraints(mol, SPEC)
    assert reason is None or (isinstance(reason, str) and "\n" not in reason)
    if reason is None:
        assert mol.GetNumHeavyAtoms() <= SPEC.max_heavy_atoms
        assert all(a.GetFormalCharge() == 0 for a in mol.GetAtoms())
        assert all(a.GetNumRadicalElectrons() == 0 for a in mol.GetAtoms())
        assert {a.GetSymbol() for a in mol.GetAtoms()} <= {"C", "N", "O", "F"}


toml_keys = st.sampled_from([
    "name", "random_seed", "seed_molecules", "objective", "generator", "budget",
    "acquisition", "oracle", "paths", "bogus", "descriptors", "execution", "surrogate",
])
toml_scalars = st.one_of(
    st.integers(-10, 10**6), st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(), st.text(alphabet=string.ascii_letters + "#=()CNO", max_size=12),
    st.lists(st.sampled_from(["CCO", "C1CC", "x", "CN"]), max_size=3),
)


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


@FUZZ
@given(edits=st.lists(st.tuples(toml_keys, st.sampled_from(["", "name", "batch_size",
                                                             "oracle_calls", "direction"]),
                                toml_scalars), max_size=4),
       drop=st.sets(st.sampled_from(['random_seed = 7\n', '[budget]\noracle_calls = 10\n',
                                     'property = "dipole"\n']), max_size=2))
def test_any_campaign_document_is_a_config_or_one_clear_error(tmp_path_factory, edits, drop):
    text = TINY
    for piece in drop:
        text = text.replace(piece, "")
    for section, key, value in edits:
        if key:
            text += f"\n[{section}]\n{key} = {_toml_value(value)}\n"
        else:
            text = f"{section} = {_toml_value(value)}\n" + text
    path = write_campaign(tmp_path_factory.mktemp("fuzz"), text)
    try:
        cfg = load_campaign(path)
    except ConfigError as exc:
        msg = str(exc)
        assert msg.startswith(str(path)) and "\n" not in msg
        return
    assert cfg.budget.oracle_calls >= cfg.acquisition.batch_size
