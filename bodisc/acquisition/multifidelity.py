"""Multi-fidelity campaigns: a cheap oracle beside the expensive one, chosen per molecule.

A ``[fidelity]`` table adds a cheap oracle (e.g. the GFN2-xTB dipole, ``xtb_dipole``) to a
campaign whose own oracle, the *target*, is expensive (e.g. the PySCF DFT dipole,
``pyscf_dipole``). Not to be confused with the QMex descriptor ``mu``: that is a single
point on the force-field geometry computed for every candidate; the cheap *oracle* is the
more careful calculation (xTB-optimised geometry of the best of several conformers), paid
for per molecule and recorded as a label of its own.

**Model.** One exact GP (:mod:`bodisc.surrogates.gp`) over ``[descriptors, t]``, with
``t = 1`` for a target label and ``t = 0`` for a cheap one: the fidelity is one more input
of the Matern ARD kernel, as in the fidelity-as-input models of BOCA (Kandasamy et al.,
ICML 2017) and botorch's ``SingleTaskMultiFidelityGP``. Its lengthscale on ``t`` is fitted
with the others: a long one says the cheap labels speak for the target, a short one that
they do not. The target posterior is the GP at ``t = 1``; cheap labels move it through the
learned correlation. Using the project's GP as it is keeps its cached Cholesky scoring,
kriging-believer batches and warm starts.

**Rule** (MF-GP-UCB; Kandasamy, Dasarathy, Oliva, Schneider, Poczos, NeurIPS 2016). The
campaign's acquisition (LogEI, UCB, ...) picks a batch on the target posterior. Each pick
``x`` then goes to the cheap oracle when

* it has no cheap label yet, and
* ``sqrt(beta) * sigma_cheap(x) >= gamma``, with ``gamma = bias * sqrt(cost_cheap /
  cost_target)``,

and otherwise to the target oracle. ``sigma_cheap`` is the GP's standard deviation at
``t = 0`` (label units), before the batch is conditioned on. ``bias`` is the paper's
``zeta``, a bound on ``|f_target - f_cheap|``; by default it is estimated as the largest
difference seen over molecules labelled by both (the seeds, with ``seed_cheap``). The
threshold is the paper's choice in its analysis, ``gamma = sqrt(lambda_cheap /
lambda_target) * zeta``: while the cheap oracle is still uncertain at ``x`` by more than
the bias it cannot remove, scaled down by the cost ratio, a cheap call buys information
the expensive one would otherwise pay for; once the cheap value is known (or predictable),
only the target oracle can tell more. In practice a new molecule is screened cheaply
first, and a molecule whose cheap label keeps it among the acquisition's picks is then
sent to the target oracle: molecules with a cheap label and no target label stay
candidates in later iterations. Costs are the oracles' declared ``cost`` (xTB 1, PySCF 50)
unless ``[fidelity]`` overrides them.

**Adapting the threshold** (``adapt_threshold``, on by default): the paper's practical
heuristic. Every time the cheap oracle has been called ``ceil(cost_target / cost_cheap)``
times in a row (as much as one target call costs) with no target call, ``gamma`` doubles
for the rest of the campaign. Without it a generator that keeps proposing new molecules
keeps the cheap oracle busy and the target oracle starves (figures:
``docs/benchmarks/multifidelity.md``). The count runs over the stored jobs after the
seeds, in order, so a resumed campaign uses the very ``gamma`` an uninterrupted one
would.

Budget: ``[budget] oracle_calls`` counts target calls; ``[fidelity] max_cost`` (optional)
stops the campaign once both oracles' calls cost that much (checked between iterations,
so the last batch may pass it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bodisc.acquisition import AcquisitionContext, select

#: The fidelity name of the cheap oracle's jobs (the campaign's own are ``"target"``).
CHEAP = "cheap"
TARGET = "target"


@dataclass(frozen=True)
class KnownMolecule:
    """A candidate already in the store (cheap label, no target label yet)."""

    inchikey: str
    smiles: str


@dataclass(frozen=True)
class Pick:
    """One chosen molecule and the oracle it goes to.

    Attributes:
        index: Index into the candidates.
        fidelity: ``"cheap"`` or ``"target"``.
        mean: Posterior mean at that fidelity (maximisation form).
        std: Posterior standard deviation at that fidelity.
        score: Acquisition value on the target posterior when it was picked.
    """

    index: int
    fidelity: str
    mean: float
    std: float
    score: float


def with_fidelity(X: np.ndarray, fidelity: str | Sequence[str]) -> np.ndarray:
    """Descriptors ``(m, d)`` with the fidelity column appended: ``(m, d + 1)``.

    Args:
        X: Descriptors, shape ``(m, d)``.
        fidelity: One fidelity for every row, or one per row.
    """
    if isinstance(fidelity, str):
        t = np.full(X.shape[0], 1.0 if fidelity == TARGET else 0.0)
    else:
        t = np.array([1.0 if f == TARGET else 0.0 for f in fidelity])
    return np.hstack([np.asarray(X, dtype=float).reshape(len(t), -1), t[:, None]])


def threshold(bias: float, cheap_cost: float, target_cost: float) -> float:
    """MF-GP-UCB's ``gamma = bias * sqrt(cheap_cost / target_cost)``."""
    return float(bias) * float(np.sqrt(cheap_cost / target_cost))


def adapted_threshold(gamma: float, fidelities: Sequence[str], cheap_cost: float,
                      target_cost: float) -> tuple[float, int]:
    """``gamma`` doubled once per run of ``ceil(target_cost / cheap_cost)`` cheap calls.

    Args:
        gamma: The starting threshold (:func:`threshold`).
        fidelities: The fidelity of every call so far after the seeds, in order.
        cheap_cost: Cost of one cheap call.
        target_cost: Cost of one target call.

    Returns:
        The threshold now and how many times it doubled.
    """
    run_length = max(1, int(np.ceil(target_cost / cheap_cost)))
    doublings = streak = 0
    for fidelity in fidelities:
        streak = streak + 1 if fidelity == CHEAP else 0
        if streak >= run_length:
            doublings += 1
            streak = 0
    return float(gamma) * 2.0**doublings, doublings


def estimate_bias(pairs: Sequence[tuple[float, float]]) -> float:
    """The largest ``|target - cheap|`` over molecules labelled by both (0 with none)."""
    return max((abs(t - c) for t, c in pairs), default=0.0)


def cheap_first(cheap_std: np.ndarray, has_cheap: np.ndarray, beta: float,
                gamma: float) -> np.ndarray:
    """Which picks go to the cheap oracle.

    Args:
        cheap_std: Posterior standard deviation at the cheap fidelity, shape ``(q,)``.
        has_cheap: Whether each pick already has a cheap job, shape ``(q,)``.
        beta: Confidence width.
        gamma: The threshold (:func:`threshold`).

    Returns:
        Boolean mask, shape ``(q,)``: True for the cheap oracle.
    """
    informative = np.sqrt(beta) * np.asarray(cheap_std, dtype=float) >= gamma
    return informative & ~np.asarray(has_cheap, dtype=bool)


def select_with_fidelity(name: str, gp: Any, X_c: np.ndarray, has_cheap: np.ndarray, q: int,
                         best: float, rng: np.random.Generator, acq_beta: float,
                         beta: float, gamma: float) -> list[Pick]:
    """Pick ``q`` candidates on the target posterior, then an oracle for each.

    Args:
        name: The campaign's acquisition (a registered, model-based one).
        gp: A GP fitted on ``[descriptors, t]`` (:func:`with_fidelity`).
        X_c: Candidate descriptors without the fidelity column, shape ``(m, d)``.
        has_cheap: Whether each candidate has a cheap job, shape ``(m,)``.
        q: Batch size.
        best: Best target label (maximisation form).
        rng: The iteration's seeded generator.
        acq_beta: UCB weight of the acquisition.
        beta: Confidence width of the fidelity rule.
        gamma: The rule's threshold.

    Returns:
        The picks in the order chosen.
    """
    ctx = AcquisitionContext(with_fidelity(X_c, TARGET), q, best, rng, gp, acq_beta)
    sel = select(name, ctx)
    idx = np.asarray(sel.index, dtype=int)
    t_mean, t_std = gp.predict(with_fidelity(X_c[idx], TARGET))
    c_mean, c_std = gp.predict(with_fidelity(X_c[idx], CHEAP))
    cheap = cheap_first(c_std, np.asarray(has_cheap, dtype=bool)[idx], beta, gamma)
    return [Pick(int(i), CHEAP if c else TARGET, float(cm if c else tm), float(cs if c else ts),
                 float(a))
            for i, c, tm, ts, cm, cs, a in zip(idx, cheap, t_mean, t_std, c_mean, c_std,
                                               sel.score, strict=True)]


@dataclass(frozen=True)
class FidelityFigures:
    """What a multi-fidelity (or single-fidelity) campaign spent, from its store.

    Attributes:
        calls: Calls per fidelity (every status).
        seconds: Oracle seconds per fidelity (workers' wall time; one thread each).
        cost: Calls weighted by the declared costs.
        best_target: Best target label (objective direction), or ``None``.
    """

    calls: dict[str, int]
    seconds: dict[str, float]
    cost: float
    best_target: float | None


def fidelity_figures(store: Any, costs: dict[str, float], maximize: bool = True
                     ) -> FidelityFigures:
    """Calls, seconds and cost per fidelity of a campaign store.

    Args:
        store: A :class:`~bodisc.store.CampaignStore`.
        costs: Cost of one call per fidelity.
        maximize: Objective direction.
    """
    jobs = store.jobs(fidelity=None)
    calls = {f: sum(j.fidelity == f for j in jobs) for f in costs}
    seconds = {f: float(sum(j.seconds or 0.0 for j in jobs if j.fidelity == f))
               for f in costs}
    values = [j.value for j in jobs
              if j.fidelity == TARGET and j.status == "done" and j.value is not None]
    best = (max(values) if maximize else min(values)) if values else None
    cost = float(sum(costs[f] * n for f, n in calls.items()))
    return FidelityFigures(calls, seconds, cost, best)


def spent_until(store: Any, value: float, maximize: bool = True) -> dict[str, Any] | None:
    """Calls and oracle seconds spent until a target label first reached ``value``.

    Jobs count in the order their results were committed; a job counts once finished.

    Returns:
        ``target_calls``, ``cheap_calls``, ``target_s``, ``cheap_s``, ``oracle_s``, and the
        ``smiles``, ``value``, ``iteration`` and ``finished_at`` (epoch seconds) of the
        label reaching it; ``None`` if no target label reached ``value``.
    """
    jobs = [j for j in store.jobs(fidelity=None) if j.status != "pending"]
    jobs.sort(key=lambda j: (j.finished_at or 0.0, j.id))
    calls = {TARGET: 0, CHEAP: 0}
    seconds = {TARGET: 0.0, CHEAP: 0.0}
    for j in jobs:
        calls[j.fidelity] = calls.get(j.fidelity, 0) + 1
        seconds[j.fidelity] = seconds.get(j.fidelity, 0.0) + (j.seconds or 0.0)
        reached = j.value is not None and (j.value >= value if maximize else j.value <= value)
        if j.fidelity == TARGET and j.status == "done" and reached:
            return {"target_calls": calls[TARGET], "cheap_calls": calls[CHEAP],
                    "target_s": round(seconds[TARGET], 2), "cheap_s": round(seconds[CHEAP], 2),
                    "oracle_s": round(seconds[TARGET] + seconds[CHEAP], 2),
                    "smiles": j.smiles, "value": j.value, "iteration": j.iteration,
                    "finished_at": j.finished_at}
    return None


def fidelity_costs(config: Any) -> dict[str, float]:
    """Cost of one call per fidelity: ``[fidelity]`` overrides, else the declared costs."""
    from bodisc.oracle import resolve_oracle

    fid = config.fidelity
    cheap = fid.cheap_cost if fid.cheap_cost is not None else resolve_oracle(fid.cheap_oracle).cost
    target = (fid.target_cost if fid.target_cost is not None
              else resolve_oracle(config.oracle.name).cost)
    return {CHEAP: float(cheap), TARGET: float(target)}
