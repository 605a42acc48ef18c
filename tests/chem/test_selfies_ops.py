from __future__ import annotations

import numpy as np
import pytest
import selfies as sf

from bodisc.chem import selfies_ops as ops

CNOF = ("C", "N", "O", "F")
A = ("[C]", "[C]", "[C]", "[C]", "[C]")
B = ("[N]", "[O]", "[N]", "[O]")


def _rngs(n: int = 50):
    return (np.random.default_rng(seed) for seed in range(n))


# --- alphabet ------------------------------------------------------------------------


def test_alphabet_neutral_has_only_allowed_elements_and_no_charges() -> None:
    alphabet = ops.build_alphabet(CNOF, "neutral")
    elements = {ops.token_element(t) for t in alphabet} - {None}
    assert elements == set(CNOF)
    assert not any("+" in t or "-" in t for t in alphabet)
    assert not any("@" in t for t in alphabet)
    assert "[H]" not in alphabet


def test_alphabet_is_sorted_unique_and_has_structure_tokens() -> None:
    alphabet = ops.build_alphabet(CNOF, "neutral")
    assert list(alphabet) == sorted(set(alphabet))
    for token in ("[Branch1]", "[=Branch1]", "[Ring1]", "[Ring2]"):
        assert token in alphabet
    assert "[Branch3]" not in alphabet


def test_alphabet_keeps_charges_when_allowed() -> None:
    for rule in ("net_neutral", "any"):
        alphabet = ops.build_alphabet(CNOF, rule)
        assert "[N+1]" in alphabet and "[O-1]" in alphabet


def test_alphabet_does_not_confuse_branch_with_bromine() -> None:
    no_br = ops.build_alphabet(("C", "N"), "neutral")
    with_br = ops.build_alphabet(("C", "Br"), "neutral")
    assert "[Br]" in with_br and "[Br]" not in no_br
    assert "[#Branch2]" not in with_br and "[=Branch3]" not in with_br


def test_alphabet_only_carbon() -> None:
    alphabet = ops.build_alphabet(("C",), "neutral")
    atoms = [t for t in alphabet if ops.token_element(t) is not None]
    assert atoms == ["[#C]", "[=C]", "[C]"]


def test_alphabet_element_outside_robust_alphabet_gets_plain_token() -> None:
    assert "[Si]" in ops.build_alphabet(("C", "Si"), "neutral")


def test_every_alphabet_token_decodes() -> None:
    for token in ops.build_alphabet(CNOF, "any"):
        sf.decoder("[C]" + token + "[C]")


@pytest.mark.parametrize(
    ("token", "element"),
    [
        ("[=N]", "N"),
        ("[#C]", "C"),
        ("[C@@H1]", "C"),
        ("[Cl]", "Cl"),
        ("[Br]", "Br"),
        ("[=Branch1]", None),
        ("[Ring2]", None),
        ("[O-1]", "O"),
        ("[#Branch2]", None),
    ],
)
def test_token_element(token: str, element: str | None) -> None:
    assert ops.token_element(token) == element


# --- operators -----------------------------------------------------------------------


def test_split_and_join_round_trip() -> None:
    text = sf.encoder("CC(=O)N")
    assert ops.join(ops.split(text)) == text


def test_replace_keeps_length_and_changes_at_most_one_token() -> None:
    alphabet = ops.build_alphabet(CNOF, "neutral")
    for rng in _rngs():
        child = ops.replace(A, alphabet, rng)
        assert len(child) == len(A)
        diffs = [i for i, (x, y) in enumerate(zip(A, child, strict=True)) if x != y]
        assert len(diffs) <= 1
        assert all(child[i] in alphabet for i in diffs)


def test_replace_of_empty_gives_one_token() -> None:
    child = ops.replace((), ("[N]",), np.random.default_rng(0))
    assert child == ("[N]",)


def test_insert_adds_one_alphabet_token() -> None:
    positions = set()
    for rng in _rngs():
        child = ops.insert(A, ("[N]",), rng)
        assert len(child) == len(A) + 1
        assert child.count("[N]") == 1
        positions.add(child.index("[N]"))
    assert positions == set(range(len(A) + 1))


def test_insert_into_empty() -> None:
    assert ops.insert((), ("[O]",), np.random.default_rng(0)) == ("[O]",)


def test_delete_removes_one_token() -> None:
    for rng in _rngs():
        child = ops.delete(B, rng)
        assert len(child) == len(B) - 1
        # A deletion leaves the others in order.
        assert any(B[:i] + B[i + 1 :] == child for i in range(len(B)))


def test_delete_never_empties() -> None:
    assert ops.delete(("[C]",), np.random.default_rng(0)) == ("[C]",)
    assert ops.delete((), np.random.default_rng(0)) == ()


def test_crossover_is_prefix_of_a_plus_suffix_of_b() -> None:
    lengths = set()
    for rng in _rngs(100):
        child = ops.crossover(A, B, rng)
        n_a = child.count("[C]")
        assert n_a >= 1 and n_a <= len(A)
        assert child[:n_a] == A[:n_a]
        suffix = child[n_a:]
        assert len(suffix) >= 1 and len(suffix) <= len(B)
        assert suffix == B[len(B) - len(suffix) :]
        lengths.add(len(child))
    assert len(lengths) > 3


def test_crossover_with_empty_parent_returns_other() -> None:
    rng = np.random.default_rng(0)
    assert ops.crossover((), B, rng) == B
    assert ops.crossover(A, (), rng) == A


def test_operators_are_pure_and_deterministic() -> None:
    alphabet = ops.build_alphabet(CNOF, "neutral")
    before = tuple(A)

    def run(seed: int) -> list[tuple[str, ...]]:
        rng = np.random.default_rng(seed)
        return [
            ops.replace(A, alphabet, rng),
            ops.insert(A, alphabet, rng),
            ops.delete(A, rng),
            ops.crossover(A, B, rng),
        ]

    assert run(7) == run(7)
    assert before == A
    assert len({tuple(run(s)[1]) for s in range(20)}) > 1
