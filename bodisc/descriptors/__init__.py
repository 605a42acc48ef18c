"""Molecular descriptors: the 22 QMex descriptors from GFN2-xTB, computed on demand.

Two tiers (:data:`TIERS`): ``"fast"``, the 20 descriptors that need only single points
(about 0.1 s of CPU per QM9-sized molecule), and ``"full"``, all 22, adding ``G`` and
``log10(Q)`` from a finite-difference Hessian (5 to 6 times the cost: about 0.6 s).

Importing this package is cheap: no tblite, RDKit or torch is loaded until
:func:`compute_qmex` is called. The name lists here are the single source of truth
for what can be asked for; :mod:`bodisc.descriptors.qmex` checks that they agree with
its recipes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "FAST_QMEX",
    "HESSIAN_QMEX",
    "QMEX",
    "TIERS",
    "available_descriptors",
    "compute_qmex",
    "default_descriptors",
    "tier_of",
]

#: All 22 QMex descriptors in the paper's order; recipes, units and geometry are
#: documented in :mod:`bodisc.descriptors.qmex`.
QMEX: tuple[str, ...] = (
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
    "G",
    "log10(Q)",
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

#: The descriptors that need a Hessian (:mod:`bodisc.descriptors.thermo`).
HESSIAN_QMEX: tuple[str, ...] = ("G", "log10(Q)")

#: Fast-tier QMex descriptors (single points only), in the paper's order.
FAST_QMEX: tuple[str, ...] = tuple(name for name in QMEX if name not in HESSIAN_QMEX)

#: Descriptor tiers, smallest first; each contains the ones before it.
TIERS: dict[str, tuple[str, ...]] = {"fast": FAST_QMEX, "full": QMEX}


def available_descriptors() -> tuple[str, ...]:
    """Every descriptor name :func:`compute_qmex` accepts (all 22, paper order)."""
    return QMEX


def default_descriptors() -> tuple[str, ...]:
    """The default descriptor set of a campaign: the whole fast tier.

    About 12 GFN2-xTB single points per molecule (0.1 to 0.2 s on one core for a
    QM9-sized molecule).
    """
    return FAST_QMEX


def tier_of(names: Iterable[str]) -> str:
    """The smallest tier of :data:`TIERS` that contains every name (``"fast"`` for none).

    Raises:
        KeyError: For a name in no tier; the message lists the known names.
    """
    wanted = set(names)
    for tier, members in TIERS.items():
        if wanted <= set(members):
            return tier
    unknown = sorted(wanted - set(QMEX))
    raise KeyError(f"unknown descriptor(s) {unknown}; known: {', '.join(QMEX)}")


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
    MoleculeFailure` for a failed molecule). ``G`` and ``log10(Q)`` (and their Hessian)
    are computed only when asked for.
    """
    from bodisc.descriptors import qmex

    return qmex.compute_qmex(smiles, names, seed=seed, n_conformers=n_conformers)
