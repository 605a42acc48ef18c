"""Where an iteration's candidates come from: the seeds, the generator, or a fixed pool.

Parents are chosen among the labels so far, the generator mutates and crosses them, and
everything already labelled, failed, pending or unfeaturisable is left out; a pool
campaign draws unlabelled pool molecules instead. Each candidate is recorded in the store
with its origin, so a resumed iteration regenerates the same set from the same generator.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bodisc.config import CampaignConfig
from bodisc.loop.diagnostics import labelled
from bodisc.loop.features import Featuriser
from bodisc.store import CampaignStore, Job


def seed_records(config: CampaignConfig, features: Featuriser, rng: np.random.Generator,
                 labels: tuple[set[str], np.ndarray, np.ndarray] | None = None) -> list[Any]:
    """The molecules of iteration 0: the campaign's seeds, or its pool's start.

    A pool's start is a seeded random draw or a causal design (``[design]``). A campaign
    that starts from labelled data (``[data] labelled``) with a random design draws no
    pool seeds: its labels are the start, and an empty list lets iteration 0 be chosen
    by the model.

    Args:
        config: The campaign.
        features: Its featuriser (the pool and its descriptors).
        rng: Generator of iteration 0.
        labels: For a causal design with labelled data: ``(inchikeys, X, y)`` of the
            labelled molecules (left out of the design; the graph learns from them).
    """
    from bodisc.chem.molecule import record_from_smiles

    if config.draws_pool_seeds:
        if config.design.kind == "causal":
            return causal_seeds(config, features, rng, labels)
        return features.pool().draw(config.pool.n_seeds, rng)
    return [record_from_smiles(s) for s in config.seed_molecules]


def pool_matrix(config: CampaignConfig, features: Featuriser) -> tuple[list[Any], np.ndarray]:
    """Every featurised pool molecule and its descriptors (the campaign's columns).

    Returns:
        ``(members, X)``: the molecules in pool order and their descriptors, shape
        ``(N, d)`` (NaN where xTB gave no graph descriptor).
    """
    pool = features.pool()
    members = pool.draw(None, np.random.default_rng(0))  # all of them, in pool order
    if config.pool is not None and config.pool.is_library:
        X, found = pool.vectors([m.inchikey for m in members])
        X = np.asarray(X, dtype=float)[:, features.columns]
        keep = np.flatnonzero(found)
        return [members[i] for i in keep], X[keep]
    from bodisc.data import qm9_descriptors

    frame = qm9_descriptors([m.index for m in members], tier=features.tier,
                            workers=config.execution.workers)
    failed = set(frame.attrs["failures"])
    members = [m for m in members if m.index not in failed]
    X = frame.loc[[m.index for m in members], list(features.names)].to_numpy(dtype=float)
    return members, X


def causal_seeds(config: CampaignConfig, features: Featuriser, rng: np.random.Generator,
                 labels: tuple[set[str], np.ndarray, np.ndarray] | None = None) -> list[Any]:
    """The ``[pool] n_seeds`` molecules of a causal design (``[design] kind = "causal"``).

    The graph's sink, for every pool molecule: with labelled data (at least
    :data:`bodisc.causal.design.MIN_LABELS` of them), the labels as a ridge regression
    on the descriptors predicts them (the pool has no labels, so the graph learns on the
    labels through that linear model, the one LiNGAM's linear effects assume); else the
    campaign's cheap analogue ``acquisition.rank_by``, or none with ``sink = "none"``.
    """
    from bodisc.causal.design import MIN_LABELS, linear_sink, pool_design

    assert config.pool is not None
    members, X = pool_matrix(config, features)
    if labels is not None:
        keep = [i for i, m in enumerate(members) if m.inchikey not in labels[0]]
        members, X = [members[i] for i in keep], X[keep]
    design = config.design
    sink = None
    if labels is not None and len(labels[2]) >= MIN_LABELS:
        sink = linear_sink(labels[1], labels[2], X)
    elif design.sink == "rank_by":
        sink = np.zeros(len(members))
        for column, factor in features.proxy_columns(config.acquisition.rank_by).items():
            sink += factor * X[:, column]
    picked = pool_design(X, features.names, config.pool.n_seeds, rng, sink=sink,
                         clusters=design.clusters, batch_per_cluster=design.batch_per_cluster,
                         cluster_on=design.cluster_on, descriptors=design.descriptors,
                         reference_rows=design.reference_rows)
    return [members[int(i)] for i in picked]


def cheap_only(store: CampaignStore, it: int) -> list[Job]:
    """Cheap labels of molecules with no target job, from iterations before ``it``."""
    from bodisc.acquisition.multifidelity import CHEAP

    targeted = {j.inchikey for j in store.jobs()}
    return [j for j in store.jobs("done", fidelity=CHEAP)
            if j.value is not None and j.iteration < it and j.inchikey not in targeted]


def generate(store: CampaignStore, config: CampaignConfig, features: Featuriser,
             sign: float, it: int, rng: np.random.Generator,
             removed: dict[str, int] | None = None, share: float = 1.0) -> list[Any]:
    """New candidates of iteration ``it``, recorded in the store.

    With ``share < 1`` (an asynchronous iteration proposing fewer molecules than a batch)
    the generator makes that share of ``candidates_per_iteration`` afresh, so that
    generating and featurising costs per oracle call what it does in batch mode; the
    still-unlabelled molecules it made in the iterations since a batch's worth fill the
    candidates up to ``candidates_per_iteration`` (their descriptors are in the store).

    Args:
        store: The campaign store (labels, exclusions; candidates are added to it).
        config: The campaign.
        features: Its featuriser (the descriptor set whose failures exclude molecules;
            the pool).
        sign: +1 to maximise, -1 to minimise (parents are the best in that sense).
        it: The iteration.
        rng: The iteration's generator RNG.
        removed: If given, filled with how many candidates each ``[generator]`` filter
            removed (filter name -> count; nothing for a pool campaign or no filters).
        share: The share of ``candidates_per_iteration`` generated afresh (in ``(0, 1]``;
            pool campaigns draw their full number, their descriptors being cached).
    """
    from bodisc.chem.generator import Generator, select_parents

    exclude = store.excluded_inchikeys(features.descriptor_set, before_iteration=it)
    if config.pool is not None:  # unlabelled pool molecules instead of the generator
        drawn = features.pool().draw(config.pool.candidates_per_iteration, rng, exclude)
        if config.sa_max is not None:  # an sa_score constraint holds for pool molecules too
            from bodisc.chem.filters import SA, CandidateFilters

            sa = CandidateFilters(sa_max=config.sa_max)
            kept = [c for c in drawn if sa.rejects(c.smiles) is None]
            if removed is not None:
                removed[SA] = len(drawn) - len(kept)
            drawn = kept
        store.add_molecules([(c.inchikey, c.smiles, c.heavy_atoms, c.origin, c.parents)
                             for c in drawn], it)
        return drawn
    parents_from = _parent_scores(config, labelled(store), sign)
    if config.fidelity is not None:  # cheap labels of molecules not yet sent to the target
        parents_from += [(j.smiles, sign * j.value) for j in cheap_only(store, it)]
    if not parents_from:  # every seed failed: mutate the seeds themselves
        parents_from = [(s, 0.0) for s in store.smiles_of(
            [j.inchikey for j in store.jobs()]).values()]
    gen = config.generator
    parents = select_parents(parents_from, gen.n_best_parents, gen.n_diverse_parents, rng)
    if config.sa_max != gen.sa_max:  # an sa_score constraint is the generator's SA filter
        gen = gen.model_copy(update={"sa_max": config.sa_max})
    generator = Generator(gen)
    wanted = gen.candidates_per_iteration
    fresh = max(1, int(np.ceil(wanted * share))) if share < 1.0 else wanted
    candidates = generator.propose(parents, fresh, rng, exclude)
    if removed is not None:
        removed.update(generator.removed)
    store.add_molecules(
        [(c.inchikey, c.smiles, c.heavy_atoms, c.origin, c.parents) for c in candidates], it
    )
    if fresh < wanted:  # the recent iterations' unlabelled candidates
        from bodisc.acquisition.multifidelity import KnownMolecule

        made = {c.inchikey for c in candidates}
        back = int(np.ceil(1.0 / share))
        kept = [KnownMolecule(k, smi) for k, smi in store.generated_between(it - back, it)
                if k not in exclude and k not in made]
        candidates = list(candidates) + kept[:wanted - len(candidates)]
    return candidates


def _parent_scores(config: CampaignConfig, jobs: list[Job], sign: float
                   ) -> list[tuple[str, float]]:
    """``(smiles, score)`` of the labelled molecules for parent selection, larger better.

    One objective: the label (maximisation form). Several objectives or a modelled
    constraint: minus the non-dominated layer among the feasible labels (the front
    first), infeasible molecules after every feasible one, so the generator breeds from
    the front as a single-objective campaign breeds from its best.
    """
    from bodisc.loop.objectives import Objectives

    obj = Objectives(config)
    if not obj.several:
        return [(j.smiles, sign * j.value) for j in jobs]
    from bodisc.pareto import nondominated_layers

    Y, C, complete = obj.matrices(jobs)
    feasible = complete & obj.feasible(C)
    layers = np.full(len(jobs), -1)
    if feasible.any():
        layers[feasible] = nondominated_layers(Y[feasible])
    worst = int(layers.max()) + 1 if len(jobs) else 0
    score = np.where(layers >= 0, -layers, -worst - 1.0)
    # within the infeasible (or incomplete) ones, the first objective's order
    first = np.nan_to_num(Y[:, 0], nan=-np.inf)
    order = np.argsort(np.argsort(first, kind="stable"), kind="stable") / max(len(jobs), 1)
    score = np.where(layers >= 0, score, score + order)
    return [(j.smiles, float(v)) for j, v in zip(jobs, score, strict=True)]
