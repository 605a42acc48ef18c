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


def seed_records(config: CampaignConfig, features: Featuriser,
                 rng: np.random.Generator) -> list[Any]:
    """The molecules of iteration 0: the campaign's seeds, or a seeded draw from its pool.

    A campaign that starts from labelled data (``[data] labelled``) draws no pool seeds:
    its labels are the start, and an empty list lets iteration 0 be chosen by the model.
    """
    from bodisc.chem.molecule import record_from_smiles

    if config.pool is not None and not config.data.labelled:
        return features.pool().draw(config.pool.n_seeds, rng)
    return [record_from_smiles(s) for s in config.seed_molecules]


def cheap_only(store: CampaignStore, it: int) -> list[Job]:
    """Cheap labels of molecules with no target job, from iterations before ``it``."""
    from bodisc.acquisition.multifidelity import CHEAP

    targeted = {j.inchikey for j in store.jobs()}
    return [j for j in store.jobs("done", fidelity=CHEAP)
            if j.value is not None and j.iteration < it and j.inchikey not in targeted]


def generate(store: CampaignStore, config: CampaignConfig, features: Featuriser,
             sign: float, it: int, rng: np.random.Generator) -> list[Any]:
    """New candidates of iteration ``it``, recorded in the store.

    Args:
        store: The campaign store (labels, exclusions; candidates are added to it).
        config: The campaign.
        features: Its featuriser (the descriptor set whose failures exclude molecules;
            the pool).
        sign: +1 to maximise, -1 to minimise (parents are the best in that sense).
        it: The iteration.
        rng: The iteration's generator RNG.
    """
    from bodisc.chem.generator import Generator, select_parents

    exclude = store.excluded_inchikeys(features.descriptor_set, before_iteration=it)
    if config.pool is not None:  # unlabelled pool molecules instead of the generator
        drawn = features.pool().draw(config.pool.candidates_per_iteration, rng, exclude)
        store.add_molecules([(c.inchikey, c.smiles, c.heavy_atoms, c.origin, c.parents)
                             for c in drawn], it)
        return drawn
    parents_from = [(j.smiles, sign * j.value) for j in labelled(store)]
    if config.fidelity is not None:  # cheap labels of molecules not yet sent to the target
        parents_from += [(j.smiles, sign * j.value) for j in cheap_only(store, it)]
    if not parents_from:  # every seed failed: mutate the seeds themselves
        parents_from = [(s, 0.0) for s in store.smiles_of(
            [j.inchikey for j in store.jobs()]).values()]
    gen = config.generator
    parents = select_parents(parents_from, gen.n_best_parents, gen.n_diverse_parents, rng)
    candidates = Generator(gen).propose(parents, gen.candidates_per_iteration, rng, exclude)
    store.add_molecules(
        [(c.inchikey, c.smiles, c.heavy_atoms, c.origin, c.parents) for c in candidates], it
    )
    return candidates
