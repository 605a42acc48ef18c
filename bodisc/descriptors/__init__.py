"""Molecular descriptors: QMex from GFN2-xTB (fast tier), computed on demand.

Importing this package is cheap: no tblite, RDKit or torch is loaded until
:func:`compute_qmex` is called. The name lists here are the single source of truth
for what can be asked for; :mod:`bodisc.descriptors.qmex` checks that they agree with
its recipes.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["FAST_QMEX", "available_descriptors", "compute_qmex", "default_descriptors"]

#: Fast-tier QMex descriptors (no Hessian), in the paper's order; the recipes, units and
#: geometry are documented in :mod:`bodisc.descriptors.qmex`.
FAST_QMEX: tuple[str, ...] = (
    "mw",
    "Ne/Na",
    "homo",
    "lumo",
    "Eiv",
    "Eav",
    "Vm",
    "alpha",
    "alpha/Vm",
    "log10(R2)",
    "log10(RA)",
    "mu",
    "min(esp)",
    "max(esp)",
    "min(mbo)",
    "max(mbo)",
    "dEw",
    "dEo",
    "dEacid",
    "dEbase",
)


def available_descriptors() -> tuple[str, ...]:
    """Every descriptor name :func:`compute_qmex` accepts."""
    return FAST_QMEX


def default_descriptors() -> tuple[str, ...]:
    """The default descriptor set of a campaign: the whole fast tier.

    About 12 GFN2-xTB single points per molecule (0.1 to 0.2 s on one core for a
    QM9-sized molecule).
    """
    return FAST_QMEX


def compute_qmex(
    smiles: str,
    names: Sequence[str] | None = None,
    *,
    seed: int = 61453,
    n_conformers: int = 3,
) -> dict[str, float]:
    """Compute QMex descriptors of one molecule (lazy front of :mod:`.qmex`).

    See :func:`bodisc.descriptors.qmex.compute_qmex` for the arguments, units and the
    failure policy (``nan`` for a failed descriptor, :class:`~bodisc.errors.
    MoleculeFailure` for a failed molecule).
    """
    from bodisc.descriptors import qmex

    return qmex.compute_qmex(smiles, names, seed=seed, n_conformers=n_conformers)
