"""SELFIES alphabets and the edit operators the generator applies to token tuples.

Every operator is a pure function: it takes a tuple of SELFIES tokens (as
:func:`selfies.split_selfies` yields them) and returns a new tuple, drawing every random
choice from the :class:`numpy.random.Generator` it is given, so the same generator state
always gives the same child.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import selfies as sf

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

Tokens = tuple[str, ...]

#: Branch and ring tokens kept in the alphabet: enough to make branches and rings of the
#: sizes a small molecule has, without the long-range (``3``) forms.
STRUCTURE_TOKENS: tuple[str, ...] = (
    "[Branch1]",
    "[=Branch1]",
    "[#Branch1]",
    "[Branch2]",
    "[Ring1]",
    "[=Ring1]",
    "[Ring2]",
)

_ATOM_TOKEN = re.compile(r"^\[(?P<bond>[=#/\\]?)(?P<symbol>[A-Z][a-z]?)(?P<rest>[^\]]*)\]$")


def token_element(token: str) -> str | None:
    """Element symbol of an atom token, e.g. ``"[=N]"`` -> ``"N"``.

    Returns:
        The symbol, or ``None`` for branch/ring tokens and tokens that are not atoms.

    """
    inner = token.strip("[]").lstrip("=#/\\")
    if inner.startswith(("Branch", "Ring")):
        return None
    match = _ATOM_TOKEN.match(token)
    return match.group("symbol") if match else None


def _keep_atom_token(token: str, elements: set[str], allow_charges: bool) -> bool:
    match = _ATOM_TOKEN.match(token)
    if match is None or token_element(token) not in elements:
        return False
    rest = match.group("rest")
    if "@" in rest or match.group("bond") in ("/", "\\"):
        return False
    return allow_charges or not any(c in rest for c in "+-")


def build_alphabet(allowed_elements: Sequence[str], charge_rule: str) -> Tokens:
    """SELFIES tokens the operators may write.

    Args:
        allowed_elements: Element symbols (hydrogen is never a token of its own).
        charge_rule: ``"neutral"`` drops charged tokens; ``"net_neutral"`` and ``"any"``
            keep them (the constraints check decides on the whole molecule).

    Returns:
        Sorted atom tokens of the semantic-robust alphabet for those elements, without
        stereo tokens, plus :data:`STRUCTURE_TOKENS`. An allowed element the robust
        alphabet lacks (``Si``) gets its plain single-bond token ``[Si]``; SELFIES has no
        valence rule for it, so over-bonded results are left to RDKit to reject.

    """
    elements = {e for e in allowed_elements if e != "H"}
    allow_charges = charge_rule != "neutral"
    atoms = {
        t for t in sf.get_semantic_robust_alphabet() if _keep_atom_token(t, elements, allow_charges)
    }
    covered = {token_element(t) for t in atoms}
    atoms |= {f"[{e}]" for e in elements if e not in covered}
    return tuple(sorted(atoms | set(STRUCTURE_TOKENS)))


def split(selfies_string: str) -> Tokens:
    """Tokens of a SELFIES string."""
    return tuple(sf.split_selfies(selfies_string))


def join(tokens: Sequence[str]) -> str:
    """SELFIES string of a token sequence."""
    return "".join(tokens)


def _pick(alphabet: Sequence[str], rng: np.random.Generator) -> str:
    return alphabet[int(rng.integers(len(alphabet)))]


def replace(tokens: Tokens, alphabet: Sequence[str], rng: np.random.Generator) -> Tokens:
    """Replace one randomly chosen token by a random alphabet token (same length).

    An empty input gets one token instead.
    """
    if not tokens:
        return (_pick(alphabet, rng),)
    i = int(rng.integers(len(tokens)))
    return tokens[:i] + (_pick(alphabet, rng),) + tokens[i + 1 :]


def insert(tokens: Tokens, alphabet: Sequence[str], rng: np.random.Generator) -> Tokens:
    """Insert a random alphabet token at a random position (one token longer)."""
    i = int(rng.integers(len(tokens) + 1))
    return tokens[:i] + (_pick(alphabet, rng),) + tokens[i:]


def delete(tokens: Tokens, rng: np.random.Generator) -> Tokens:
    """Remove one randomly chosen token (one token shorter).

    A single token is returned unchanged: a molecule is never reduced to nothing.
    """
    if len(tokens) <= 1:
        return tokens
    i = int(rng.integers(len(tokens)))
    return tokens[:i] + tokens[i + 1 :]


def crossover(tokens_a: Tokens, tokens_b: Tokens, rng: np.random.Generator) -> Tokens:
    """Single-point crossover: a non-empty prefix of ``a`` plus a non-empty suffix of ``b``.

    If either parent is empty the other is returned.
    """
    if not tokens_a or not tokens_b:
        return tokens_a or tokens_b
    cut_a = int(rng.integers(1, len(tokens_a) + 1))
    cut_b = int(rng.integers(len(tokens_b)))
    return tokens_a[:cut_a] + tokens_b[cut_b:]
