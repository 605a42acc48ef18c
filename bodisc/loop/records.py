"""What a campaign sends to MLflow and writes for people, from its store alone.

Complete iterations go to MLflow in order, each marked in the store once it went out, so
a run that lost its tracking server catches up on the next start; at the end the results
and extrapolation tables become CSV and JSON files and MLflow artifacts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bodisc.config import CampaignConfig
from bodisc.failpoints import failpoint
from bodisc.loop import diagnostics
from bodisc.loop.features import Featuriser
from bodisc.store import CampaignStore


def log_iterations(store: CampaignStore, tracker: Any, features: Featuriser, budget: int,
                   sign: float) -> None:
    """Send every complete iteration not yet logged to MLflow (in order).

    Per-iteration metrics take the iteration as their step; the best so far and the
    top-10 figures after every oracle call, and the extrapolation records, take the call.
    """
    if not tracker.ok:
        return
    curve: list[tuple[int, Any]] | None = None
    for row in store.iterations():
        if row["status"] != "complete" or row["logged"]:
            continue
        it = row["iteration"]
        per_iteration = {k: v for k, v in row["metrics"].items() if k != "best_so_far"}
        if not tracker.log_metrics(per_iteration, step=it):
            return
        if curve is None:
            curve = diagnostics.call_curve(store, budget, sign)
        if not tracker.log_metrics_at([(m.call, m.as_dict()) for i, m in curve if i == it]):
            return
        failpoint("mlflow")
        for rec in diagnostics.extrapolation_records(store, features, it, row):
            step = rec.pop("call")
            if not tracker.log_metrics({f"extrapolation.{k}": v for k, v in rec.items()},
                                       step=step):
                return
        store.mark_logged(it)


def export(store: CampaignStore, config: CampaignConfig, tracker: Any, features: Featuriser,
           sign: float, top: int = 10) -> tuple[list[tuple[str, float, int]], Path]:
    """Write the results CSV and the extrapolation files, log them, and rank the best.

    Returns:
        Rows ``(smiles, value, iteration)`` of the ``top`` best labels, best first, and
        the path of the results CSV.
    """
    import pandas as pd

    from bodisc.metrics import extrapolation_summary

    csv = config.path("export_csv")
    csv.parent.mkdir(parents=True, exist_ok=True)
    store.results_frame().to_csv(csv, index=False)
    tracker.log_artifact(csv)
    records = diagnostics.extrapolation_table(store, features)
    if records:
        path = csv.with_name("extrapolation.csv")
        pd.DataFrame(records).to_csv(path, index=False)
        tracker.log_artifact(path)
    done = diagnostics.labelled(store)
    summary = extrapolation_summary([r["observed"] for r in records],
                                    [r["pred_mean"] for r in records],
                                    [r["pred_std"] for r in records],
                                    [j.value for j in done])
    path = csv.with_name("extrapolation_summary.json")
    path.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    tracker.log_metrics({f"extrapolation.{k}": v for k, v in summary.items()},
                        step=store.calls_used())
    tracker.log_artifact(path)
    done.sort(key=lambda j: (-sign * j.value, j.iteration, j.rank))
    return [(j.smiles, float(j.value), j.iteration) for j in done[:top]], csv
