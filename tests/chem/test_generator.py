from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import FrozenInstanceError
from types import SimpleNamespace

import numpy as np
import pytest
from rdkit import Chem

from bodisc.chem.generator import Candidate, Generator, select_parents
from bodisc.chem.molecule import check_constraints, parse_smiles, record_from_smiles
from bodisc.config import GeneratorConfig

PARENTS = ["CCO", "c1ccccc1", "CC(N)=O"]
CONFIG = GeneratorConfig(max_heavy_atoms=9, allowed_elements=("C", "N", "O", "F"), max_operations=2)


def _propose(seed: int, n: int = 60, exclude: frozenset[str] = frozenset(), **update):
    config = CONFIG.model_copy(update=update) if update else CONFIG
    return Generator(config).propose(PARENTS, n, np.random.default_rng(seed), exclude)


def _as_rows(candidates: list[Candidate]) -> list[list[object]]:
    return [[c.smiles, c.inchikey, c.heavy_atoms, c.origin, list(c.parents)] for c in candidates]


@pytest.fixture(scope="module")
def batch() -> list[Candidate]:
    return _propose(seed=1, n=100)


# --- validity ------------------------------------------------------------------------


def test_candidates_are_valid_canonical_and_within_constraints(batch) -> None:
    assert batch
    for c in batch:
        mol = parse_smiles(c.smiles)
        rec = record_from_smiles(c.smiles)
        assert (rec.smiles, rec.inchikey, rec.heavy_atoms) == (c.smiles, c.inchikey, c.heavy_atoms)
        assert check_constraints(mol, CONFIG) is None
        assert not any(a.GetFormalCharge() for a in mol.GetAtoms())


def test_candidates_are_distinct_and_not_parents(batch) -> None:
    keys = [c.inchikey for c in batch]
    assert len(set(keys)) == len(keys)
    parent_keys = {record_from_smiles(p).inchikey for p in PARENTS}
    assert not parent_keys & set(keys)


def test_candidate_provenance(batch) -> None:
    canonical = {record_from_smiles(p).smiles for p in PARENTS}
    origins = {c.origin for c in batch}
    assert origins <= {"mutation", "crossover"}
    assert origins == {"mutation", "crossover"}
    for c in batch:
        assert set(c.parents) <= canonical
        assert len(c.parents) == (2 if c.origin == "crossover" else 1)
        if c.origin == "crossover":
            assert c.parents[0] != c.parents[1]


def test_candidate_is_frozen(batch) -> None:
    with pytest.raises(FrozenInstanceError):
        batch[0].smiles = "C"  # type: ignore[misc]


def test_yield_is_at_least_80_percent(batch) -> None:
    assert len(batch) >= 80


def test_excluded_keys_are_never_proposed() -> None:
    first = _propose(seed=3)
    exclude = frozenset(c.inchikey for c in first[::2])
    second = _propose(seed=3, exclude=exclude)
    assert second
    assert not exclude & {c.inchikey for c in second}


def test_net_neutral_allows_zwitterions_only() -> None:
    batch = _propose(seed=5, n=80, charge_rule="net_neutral")
    for c in batch:
        charges = [a.GetFormalCharge() for a in Chem.MolFromSmiles(c.smiles).GetAtoms()]
        assert sum(charges) == 0


# --- determinism ---------------------------------------------------------------------


def test_same_seed_same_output(batch) -> None:
    assert _propose(seed=1, n=100) == batch


def test_different_seed_different_output(batch) -> None:
    assert _propose(seed=2, n=100) != batch


def test_generator_instance_is_reusable() -> None:
    gen = Generator(CONFIG)
    a = gen.propose(PARENTS, 30, np.random.default_rng(0), ())
    b = gen.propose(PARENTS, 30, np.random.default_rng(0), ())
    assert a == b


_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from bodisc.chem.generator import Generator, select_parents
    from bodisc.config import GeneratorConfig

    config = GeneratorConfig(max_heavy_atoms=9, allowed_elements=("C", "N", "O", "F"))
    labelled = [(s, float(len(s))) for s in %(pool)r]
    parents = select_parents(labelled, 2, 2, np.random.default_rng(11))
    out = Generator(config).propose(%(parents)r, 40, np.random.default_rng(11), set())
    rows = [[c.smiles, c.inchikey, c.heavy_atoms, c.origin, list(c.parents)] for c in out]
    json.dump({"parents": parents, "rows": rows}, sys.stdout)
    """
)

_POOL = ["CCO", "CCCC", "CCCCC", "c1ccccc1", "CC(N)=O", "FC(F)F", "OCCO", "CCCN"]


def test_determinism_across_processes_and_hash_seeds() -> None:
    config = GeneratorConfig(max_heavy_atoms=9, allowed_elements=("C", "N", "O", "F"))
    labelled = [(s, float(len(s))) for s in _POOL]
    expected = {
        "parents": select_parents(labelled, 2, 2, np.random.default_rng(11)),
        "rows": _as_rows(Generator(config).propose(PARENTS, 40, np.random.default_rng(11), set())),
    }
    script = _SCRIPT % {"pool": _POOL, "parents": PARENTS}
    for hash_seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        assert json.loads(done.stdout) == expected


# --- termination and edge cases ------------------------------------------------------


def test_impossible_constraints_return_empty_without_looping() -> None:
    config = GeneratorConfig(
        allowed_elements=("C",), max_heavy_atoms=1, max_attempts_per_candidate=5
    )
    assert Generator(config).propose(["C"], 10, np.random.default_rng(0), ()) == []


def test_returns_fewer_when_few_molecules_exist() -> None:
    # Only C1..C2 carbon/oxygen molecules fit: far fewer than 50.
    config = GeneratorConfig(allowed_elements=("C", "O"), max_heavy_atoms=2)
    out = Generator(config).propose(["CO"], 50, np.random.default_rng(0), ())
    assert 0 < len(out) < 50
    assert len({c.inchikey for c in out}) == len(out)


def test_no_usable_parents_or_zero_n() -> None:
    gen = Generator(CONFIG)
    rng = np.random.default_rng(0)
    assert gen.propose([], 10, rng, ()) == []
    assert gen.propose(["not a smiles"], 10, rng, ()) == []
    assert gen.propose(PARENTS, 0, rng, ()) == []


def test_duplicate_parents_are_used_once() -> None:
    out = Generator(CONFIG).propose(["CCO", "OCC"], 20, np.random.default_rng(0), ())
    assert all(c.origin == "mutation" for c in out)
    assert all(c.parents == ("CCO",) for c in out)


def test_all_zero_edit_weights_rejected() -> None:
    config = CONFIG.model_copy(
        update={"replace_weight": 0.0, "insert_weight": 0.0, "delete_weight": 0.0}
    )
    with pytest.raises(ValueError, match="weights"):
        Generator(config)


def test_duck_typed_config() -> None:
    config = SimpleNamespace(
        max_operations=1,
        crossover_fraction=0.0,
        replace_weight=1.0,
        insert_weight=0.0,
        delete_weight=0.0,
        allowed_elements=["C", "N", "O"],
        max_heavy_atoms=6,
        min_heavy_atoms=1,
        charge_rule="neutral",
        max_attempts_per_candidate=20,
    )
    out = Generator(config).propose(["CCCC"], 10, np.random.default_rng(0), ())
    assert out
    # One replacement keeps the SELFIES length, so never more than four heavy atoms.
    assert all(c.heavy_atoms <= 4 for c in out)


def test_crossover_children_carry_tokens_from_both_parents() -> None:
    config = CONFIG.model_copy(update={"crossover_fraction": 1.0, "max_operations": 1})
    parents = ["CCCCCC", "NNNN"]
    out = Generator(config).propose(parents, 10, np.random.default_rng(0), ())
    assert out
    for c in out:
        assert c.origin == "crossover"
        assert set(c.parents) == set(parents)
        symbols = {a.GetSymbol() for a in parse_smiles(c.smiles).GetAtoms()}
        assert symbols == {"C", "N"}


# --- parent selection ----------------------------------------------------------------


def test_select_parents_best_first_with_deterministic_ties() -> None:
    labelled = [("CCO", 1.0), ("CCN", 3.0), ("CCC", 3.0), ("CO", 2.0), ("C", float("nan"))]
    best = select_parents(labelled, 3, 0, np.random.default_rng(0))
    assert best == ["CCC", "CCN", "CO"]


def test_select_parents_keeps_best_value_of_duplicates() -> None:
    labelled = [("CCO", 1.0), ("CCN", 2.0), ("CCO", 5.0)]
    assert select_parents(labelled, 1, 0, np.random.default_rng(0)) == ["CCO"]


def test_select_parents_adds_diverse_molecule() -> None:
    alkanes = ["C" * k for k in range(5, 12)]
    labelled = [(s, float(len(s))) for s in alkanes] + [("c1ccncc1", 0.0)]
    picked = select_parents(labelled, 2, 1, np.random.default_rng(0))
    assert picked[:2] == ["CCCCCCCCCCC", "CCCCCCCCCC"]
    assert picked[2] == "c1ccncc1"


def test_select_parents_distinct_and_bounded() -> None:
    labelled = [(s, float(i)) for i, s in enumerate(_POOL)]
    picked = select_parents(labelled, 3, 3, np.random.default_rng(0))
    assert len(picked) == 6 and len(set(picked)) == 6
    assert picked[:3] == [_POOL[7], _POOL[6], _POOL[5]]
    assert set(picked) <= set(_POOL)
    assert select_parents(labelled, 3, 3, np.random.default_rng(0)) == picked


def test_select_parents_fewer_when_not_enough() -> None:
    labelled = [("CCO", 1.0), ("CCN", 2.0)]
    assert select_parents(labelled, 5, 5, np.random.default_rng(0)) == ["CCN", "CCO"]
    assert select_parents(labelled, 1, 5, np.random.default_rng(0)) == ["CCN", "CCO"]
    assert select_parents([], 5, 5, np.random.default_rng(0)) == []
