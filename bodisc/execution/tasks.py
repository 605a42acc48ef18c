"""The functions worker processes run: one oracle call, one molecule's descriptors.

They are top level (picklable) and build what they need once per worker process.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from bodisc.oracle import Oracle, OracleResult, resolve_oracle, run_one


@lru_cache(maxsize=8)
def _oracle(name: str, options_json: str) -> Oracle:
    import json

    cls = resolve_oracle(name)
    return cls(cls.Options.model_validate(json.loads(options_json)))


def oracle_task(name: str, options_json: str, smiles: str) -> OracleResult:
    """Label one molecule with the named oracle (options as JSON, for caching)."""
    return run_one(_oracle(name, options_json), smiles)


def descriptor_task(smiles: str, names: Sequence[str], seed: int) -> tuple[list[float], float]:
    """QMex descriptors of one molecule, in the order of ``names``, and the seconds spent.

    Raises:
        MoleculeFailure: When the molecule as a whole cannot be featurised.
    """
    from bodisc.descriptors.qmex import compute_qmex

    start = time.perf_counter()
    values: dict[str, Any] = compute_qmex(smiles, list(names), seed=seed)
    return [float(values[n]) for n in names], time.perf_counter() - start
