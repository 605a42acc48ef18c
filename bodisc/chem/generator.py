"""Candidate generation: parent selection and SELFIES mutation/crossover.

Everything here is deterministic given the inputs and the state of the
:class:`numpy.random.Generator` passed in: parents are encoded from their canonical
SMILES, alphabets are sorted, and nothing iterates over a set of strings, so the same
seed gives the same candidates in the same order in any process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import selfies as sf
from rdkit.Chem import rdFingerprintGenerator
from rdkit.DataStructs import ExplicitBitVect
from rdkit.SimDivFilters.rdSimDivPickers import MaxMinPicker

from bodisc.chem import selfies_ops as ops
from bodisc.chem.filters import CandidateFilters
from bodisc.chem.molecule import (
    MoleculeRecord,
    check_constraints,
    parse_smiles,
    record_from_smiles,
    to_record,
)
from bodisc.errors import InvalidMoleculeError

if TYPE_CHECKING:
    from collections.abc import Container, Sequence

Origin = Literal["mutation", "crossover"]

_MORGAN = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)


class GeneratorSpec(Protocol):
    """The ``GeneratorConfig`` attributes :class:`Generator` reads."""

    max_operations: int
    crossover_fraction: float
    replace_weight: float
    insert_weight: float
    delete_weight: float
    allowed_elements: Sequence[str]
    max_heavy_atoms: int
    min_heavy_atoms: int
    charge_rule: str
    max_attempts_per_candidate: int
    # optional: ``sa_max``, ``filter_catalogs``, ``scaffold`` (see CandidateFilters)


@dataclass(frozen=True)
class Candidate:
    """A proposed molecule.

    Attributes:
        smiles: Canonical SMILES (as :func:`~bodisc.chem.molecule.to_record` writes it).
        inchikey: Standard InChIKey, the molecule's identity.
        heavy_atoms: Number of non-hydrogen atoms.
        origin: ``"mutation"`` or ``"crossover"``.
        parents: Canonical SMILES of the parent(s) it was made from.

    """

    smiles: str
    inchikey: str
    heavy_atoms: int
    origin: Origin
    parents: tuple[str, ...]


def select_parents(
    labelled: Sequence[tuple[str, float]],
    n_best: int,
    n_diverse: int,
    rng: np.random.Generator,
) -> list[str]:
    """Pick the best molecules plus a few structurally diverse others.

    Args:
        labelled: ``(canonical smiles, value)`` pairs; larger values are better (negate
            them for minimisation). NaN values are ignored; a SMILES given twice keeps its
            best value.
        n_best: How many of the highest values to take (ties broken by SMILES order).
        n_diverse: How many others to add, chosen by MaxMin diversity on Morgan
            fingerprints relative to the best ones.
        rng: Source of the picker's seed (one draw, always made).

    Returns:
        Distinct SMILES, the best first (best to worst), then the diverse picks; fewer
        than ``n_best + n_diverse`` when there are not enough molecules.

    """
    seed = int(rng.integers(0, 2**31 - 1))
    ranked = _rank(labelled)
    best = ranked[: max(n_best, 0)]
    if n_diverse <= 0 or len(ranked) == len(best):
        return best
    fps = {s: _fingerprint(s) for s in ranked}
    anchors = [s for s in best if fps[s] is not None]
    rest = [s for s in ranked[len(best) :] if fps[s] is not None]
    if not rest:
        return best
    pool = anchors + rest
    size = len(anchors) + min(n_diverse, len(rest))
    picks = MaxMinPicker().LazyBitVectorPick(
        [fps[s] for s in pool], len(pool), size, firstPicks=list(range(len(anchors))), seed=seed
    )
    return best + [pool[i] for i in list(picks)[len(anchors) :]]


def _rank(labelled: Sequence[tuple[str, float]]) -> list[str]:
    values: dict[str, float] = {}
    for smiles, value in labelled:
        v = float(value)
        if math.isnan(v):
            continue
        values[smiles] = max(v, values.get(smiles, -math.inf))
    return sorted(values, key=lambda s: (-values[s], s))


def _fingerprint(smiles: str) -> ExplicitBitVect | None:
    try:
        return _MORGAN.GetFingerprint(parse_smiles(smiles))
    except InvalidMoleculeError:
        return None


@dataclass(frozen=True)
class _Parent:
    smiles: str
    inchikey: str
    tokens: ops.Tokens


class Generator:
    """Proposes new molecules by SELFIES edits and crossover of parent molecules.

    The filters of the config (``sa_max``, ``filter_catalogs``, ``scaffold``, see
    :class:`~bodisc.chem.filters.CandidateFilters`) are applied to each new distinct
    child; a removed child counts as a failed attempt (like a forbidden substructure),
    so the generator keeps trying up to ``n * max_attempts_per_candidate`` attempts.
    Filtering draws no random numbers: without filters the candidates are exactly those
    of a generator that has none.

    Args:
        config: A ``GeneratorConfig`` or anything with the same attributes.

    Attributes:
        removed: After :meth:`propose`, how many distinct children each configured
            filter removed (every configured filter present, 0 included; empty without
            filters).

    Raises:
        ValueError: If the replace, insert and delete weights are all zero, or a filter
            catalogue is unknown.

    """

    def __init__(self, config: GeneratorSpec) -> None:
        self.config = config
        self.filters = CandidateFilters.from_spec(config)
        self.removed: dict[str, int] = {}
        self.alphabet = ops.build_alphabet(config.allowed_elements, config.charge_rule)
        weights = np.array(
            [config.replace_weight, config.insert_weight, config.delete_weight], dtype=float
        )
        if not np.all(np.isfinite(weights)) or weights.sum() <= 0:
            raise ValueError("replace, insert and delete weights must not all be zero")
        self._edit_p = weights / weights.sum()

    def propose(
        self,
        parents: Sequence[str],
        n: int,
        rng: np.random.Generator,
        exclude: Container[str] = (),
    ) -> list[Candidate]:
        """Make up to ``n`` distinct new candidates from the parents.

        Args:
            parents: Parent SMILES (canonical SMILES preferred; order matters for
                determinism). Parents that cannot be parsed or encoded are skipped.
            n: How many candidates are wanted.
            rng: Source of every random choice.
            exclude: InChIKeys that must not be proposed (already evaluated or failed).

        Returns:
            At most ``n`` candidates, distinct by InChIKey, none excluded and none a
            parent; fewer when ``n * max_attempts_per_candidate`` attempts do not find
            enough. How many children the filters removed is in :attr:`removed`.

        """
        self.removed = dict.fromkeys(self.filters.names, 0)
        pool = self._encode_parents(parents)
        if not pool or n <= 0:
            return []
        banned = {p.inchikey for p in pool}
        found: list[Candidate] = []
        for _ in range(n * self.config.max_attempts_per_candidate):
            candidate = self._attempt(pool, rng)
            if candidate is None or candidate.inchikey in banned:
                continue
            if candidate.inchikey in exclude:
                continue
            banned.add(candidate.inchikey)
            reason = self.filters.rejects(candidate.smiles) if self.filters.active else None
            if reason is not None:  # banned above: counted once, never checked again
                self.removed[reason] += 1
                continue
            found.append(candidate)
            if len(found) >= n:
                break
        return found

    def crossover(self, first: str, second: str, rng: np.random.Generator) -> Candidate | None:
        """One SELFIES crossover child of two parents, edited like :meth:`propose` does.

        Args:
            first: Parent SMILES whose token prefix the child takes.
            second: Parent SMILES whose token suffix the child takes.
            rng: Source of every random choice.

        Returns:
            The child, or ``None`` when it is invalid, breaks a constraint, or a parent
            cannot be encoded.
        """
        pool = self._encode_parents([first, second])
        if len(pool) < 2:
            return None
        return self._child(pool[0].tokens, pool[1].tokens, (pool[0].smiles, pool[1].smiles), rng)

    def _encode_parents(self, parents: Sequence[str]) -> list[_Parent]:
        pool: list[_Parent] = []
        seen: list[str] = []
        for smiles in parents:
            try:
                record = record_from_smiles(smiles)
                tokens = ops.split(sf.encoder(record.smiles))
            except (InvalidMoleculeError, sf.EncoderError):
                continue
            if record.inchikey in seen or not tokens:
                continue
            seen.append(record.inchikey)
            pool.append(_Parent(record.smiles, record.inchikey, tokens))
        return pool

    def _attempt(self, pool: list[_Parent], rng: np.random.Generator) -> Candidate | None:
        cfg = self.config
        if len(pool) >= 2 and rng.random() < cfg.crossover_fraction:
            i, j = (int(k) for k in rng.choice(len(pool), size=2, replace=False))
            return self._child(pool[i].tokens, pool[j].tokens,
                               (pool[i].smiles, pool[j].smiles), rng)
        parent = pool[int(rng.integers(len(pool)))]
        n_edits = int(rng.integers(1, cfg.max_operations + 1))
        return self._edited(parent.tokens, n_edits, "mutation", (parent.smiles,), rng)

    def _child(self, first: ops.Tokens, second: ops.Tokens, used: tuple[str, ...],
               rng: np.random.Generator) -> Candidate | None:
        """A crossover child with 0 to ``max_operations - 1`` further edits."""
        tokens = ops.crossover(first, second, rng)
        n_edits = int(rng.integers(0, self.config.max_operations))
        return self._edited(tokens, n_edits, "crossover", used, rng)

    def _edited(self, tokens: ops.Tokens, n_edits: int, origin: Origin, used: tuple[str, ...],
                rng: np.random.Generator) -> Candidate | None:
        for _ in range(n_edits):
            tokens = self._edit(tokens, rng)
        record = self._decode(tokens)
        if record is None:
            return None
        return Candidate(record.smiles, record.inchikey, record.heavy_atoms, origin, used)

    def _edit(self, tokens: ops.Tokens, rng: np.random.Generator) -> ops.Tokens:
        kind = int(rng.choice(3, p=self._edit_p))
        if kind == 0:
            return ops.replace(tokens, self.alphabet, rng)
        if kind == 1:
            return ops.insert(tokens, self.alphabet, rng)
        return ops.delete(tokens, rng)

    def _decode(self, tokens: ops.Tokens) -> MoleculeRecord | None:
        try:
            smiles = sf.decoder(ops.join(tokens))
        except sf.DecoderError:
            return None
        if not smiles:
            return None
        try:
            mol = parse_smiles(smiles)
            if check_constraints(mol, self.config) is not None:
                return None
            return to_record(mol)
        except InvalidMoleculeError:
            return None
