"""What a campaign reports about itself: per-iteration metrics, the call curve, extrapolation.

Functions of the store alone (and the featuriser, for descriptor distances), so a resumed
campaign reports what an uninterrupted one would.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bodisc.loop.features import Featuriser
from bodisc.store import CampaignStore, Job


def labelled(store: CampaignStore) -> list[Job]:
    """Target jobs with a label, in submission order."""
    return [j for j in store.jobs("done") if j.value is not None]


def best_value(store: CampaignStore, sign: float) -> float | None:
    """The best label so far (``sign`` +1 maximises, -1 minimises); ``None`` if none."""
    vals = [j.value for j in labelled(store)]
    if not vals:
        return None
    return max(vals) if sign > 0 else min(vals)


def call_curve(store: CampaignStore, budget: int, sign: float) -> list[tuple[int, Any]]:
    """``(iteration, CallMetrics)`` after every oracle call so far (pending: no value)."""
    from bodisc.metrics import per_call_metrics

    jobs = store.calls()
    calls = [(j.inchikey, j.value if j.status == "done" else None) for j in jobs]
    curve = per_call_metrics(calls, budget, sign > 0)
    return [(j.iteration, m) for j, m in zip(jobs, curve, strict=True)]


def hypervolume_curve(store: CampaignStore, config: Any) -> list[float] | None:
    """Hypervolume of the feasible labels after every oracle call (two or more objectives).

    The reference point is the campaign's fixed one (stored once it can be made);
    ``None`` for a campaign with one objective or before any label.
    """
    from bodisc.loop.objectives import Objectives

    obj = Objectives(config)
    if len(obj.names) < 2:
        return None
    calls = store.calls()
    Y, _, complete = obj.matrices([j for j in calls if j.status == "done"])
    ref = obj.stored_reference(store, Y[complete])
    if ref is None:
        return None
    return [float(v) for v in obj.hypervolume_curve(calls, ref)]


def iteration_metrics(store: CampaignStore, it: int, sign: float,
                      timings: dict[str, float]) -> dict[str, float]:
    """The metrics of a finished iteration: best so far, batch figures, counts, timings."""
    jobs = store.jobs(iteration=it)
    values = [j.value for j in jobs if j.status == "done" and j.value is not None]
    row = next(r for r in store.iterations() if r["iteration"] == it)
    pick = max if sign > 0 else min
    metrics = {
        "best_so_far": best_value(store, sign),
        "batch_best": pick(values) if values else None,
        "batch_mean": float(np.mean(values)) if values else None,
        "candidates_scored": row["n_candidates"],
        "failures": sum(j.status == "failed" for j in jobs),
        "calls_used": store.calls_used(),
    }
    metrics.update({k: timings.get(k, 0.0)
                    for k in ("generate_s", "descriptor_s", "fit_s", "score_s", "oracle_s")})
    return {k: v for k, v in metrics.items() if v is not None}


def extrapolation_records(store: CampaignStore, features: Featuriser, it: int,
                          row: dict[str, Any]) -> list[dict[str, float]]:
    """Labels of iteration ``it`` outside the training range, with their predictions.

    Each record: the call number, observed value, predicted mean and standard
    deviation, z-score, the distance to the nearest training molecule in z-scored
    descriptor space and the largest Tanimoto similarity to a training molecule.
    """
    from bodisc.metrics import descriptor_distance, max_tanimoto

    lo, hi = row["train_min"], row["train_max"]
    if lo is None or hi is None:
        return []
    first_call = sum(1 for j in store.calls() if j.iteration < it)
    beyond = [j for j in store.jobs(iteration=it)
              if j.value is not None and j.pred_mean is not None
              and not lo <= j.value <= hi]
    if not beyond:
        return []
    train = [j for j in labelled(store) if j.iteration < it]
    feats = store.descriptors_of([j.inchikey for j in train + beyond],
                                 features.descriptor_set)
    cols = features.columns

    def vector(key: str) -> list[float] | None:
        status, vec, _ = feats.get(key, ("failed", None, None))
        return [vec[c] for c in cols] if status == "done" and vec else None

    X_train = np.array([v for v in (vector(j.inchikey) for j in train) if v is not None],
                       dtype=float).reshape(-1, len(cols))
    train_smiles = [j.smiles for j in train]
    out = []
    for j in beyond:
        std = max(j.pred_std or 0.0, 1e-12)
        x = vector(j.inchikey)
        out.append({"call": first_call + j.rank + 1, "observed": j.value,
                    "pred_mean": j.pred_mean, "pred_std": j.pred_std,
                    "z": (j.value - j.pred_mean) / std,
                    "distance": (float("nan") if x is None
                                 else descriptor_distance(X_train, np.array(x))),
                    "max_tanimoto": max_tanimoto(train_smiles, j.smiles)})
    return out


def extrapolation_table(store: CampaignStore, features: Featuriser) -> list[dict[str, Any]]:
    """Every extrapolation record of the campaign (for the CSV artifact)."""
    rows = []
    for row in store.iterations():
        for rec in extrapolation_records(store, features, row["iteration"], row):
            rec["iteration"] = row["iteration"]
            rows.append(rec)
    return rows
