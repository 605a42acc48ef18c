"""What a campaign sends to MLflow and writes for people, from its store alone.

Complete iterations go to MLflow in order, each marked in the store once it went out, so
a run that lost its tracking server catches up on the next start. Metric names carry the
meaning of their step: ``iteration/...`` at the iteration, ``call/...`` at the oracle
call, ``final/...`` once per finished campaign (a restart logs them again only if more
calls were made). Every :data:`MOLECULES_EVERY` iterations and at the end the best
molecules go out as a sorted CSV and a picture; at the end the results and extrapolation
tables become CSV and JSON files and MLflow artifacts.
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
from bodisc.tracking.mlflow_tracker import CALL, FINAL, ITERATION

#: Iterations between two uploads of the best molecules (table and picture).
MOLECULES_EVERY = 5


def log_iterations(store: CampaignStore, tracker: Any, features: Featuriser,
                   config: CampaignConfig, sign: float) -> None:
    """Send every complete iteration not yet logged to MLflow (in order).

    Per-iteration metrics (``iteration/...``) take the iteration as their step; the best
    so far, the top-10 figures (``call/...``) and the extrapolation records
    (``call/extrapolation...``) take the oracle call. ``call/top10_auc`` is the area
    under the top-10 mean so far divided by the calls so far (an average, not a ramp);
    the budget-wide figure is ``final/top10_auc``.
    """
    if not tracker.ok:
        return
    budget = config.budget.oracle_calls
    curve: list[tuple[int, Any]] | None = None
    volumes: list[float] | None = None
    for row in store.iterations():
        if row["status"] != "complete" or row["logged"]:
            continue
        it = row["iteration"]
        per_iteration = {f"{ITERATION}{k}": v for k, v in row["metrics"].items()
                         if k != "best_so_far"}
        if not tracker.log_metrics(per_iteration, step=it):
            return
        if curve is None:
            curve = diagnostics.call_curve(store, budget, sign)
            volumes = diagnostics.hypervolume_curve(store, config)
        at_calls = []
        for call, (i, m) in enumerate(curve, 1):
            if i == it:
                values = m.as_dict()
                if "top10_auc" in values:
                    values["top10_auc"] = values["top10_auc"] * budget / call
                if volumes:
                    values["hypervolume"] = volumes[call - 1]
                at_calls.append((call, {f"{CALL}{k}": v for k, v in values.items()}))
        if not tracker.log_metrics_at(at_calls):
            return
        failpoint("mlflow")
        for rec in diagnostics.extrapolation_records(store, features, it, row):
            step = rec.pop("call")
            if not tracker.log_metrics({f"{CALL}extrapolation.{k}": v for k, v in rec.items()},
                                       step=step):
                return
        if it % MOLECULES_EVERY == 0:
            log_molecules(store, config, tracker, sign)
        log_causal_graph(store, config, tracker, it)
        store.mark_logged(it)


def log_causal_graph(store: CampaignStore, config: CampaignConfig, tracker: Any,
                     it: int) -> Path | None:
    """Draw and upload the causal graph an iteration's interventions learnt, if any.

    The graph (store meta ``causal/<it>``) goes out as the time-stepped image
    ``causal/graph`` (step: the iteration) and as ``causal/graph_<it>.json``.

    Returns:
        The PNG written, or ``None`` for an iteration without a graph.
    """
    shown = store.get_meta(f"causal/{it}")
    if not shown:
        return None
    from bodisc.causal.draw import draw_graph

    folder = config.path("export_csv").parent / "causal"
    png = draw_graph(shown["graph"], folder / f"graph_{it:04d}.png",
                     f"{config.name}: causal graph of iteration {it}")
    data = folder / f"graph_{it:04d}.json"
    data.write_text(json.dumps(shown, indent=1))
    if tracker.ok:
        tracker.log_image(png, "causal/graph", step=it)
        tracker.log_artifact(data, "causal")
    return png


def log_molecules(store: CampaignStore, config: CampaignConfig, tracker: Any,
                  sign: float, upload: bool = True) -> None:
    """Write the best molecules (the sorted CSV and the picture) and upload them.

    The picture also goes out as the time-stepped image ``molecules/best`` (step: the
    oracle calls so far), which MLflow shows among the run's charts with a slider over
    the steps. ``upload=False`` writes the files only.
    """
    from bodisc.tracking.molecules import write_best

    csv, png = write_best(store, config, sign, config.path("export_csv").parent)
    if not (upload and tracker.ok):
        return
    tracker.log_artifact(csv)
    if png is not None:
        tracker.log_artifact(png)
        tracker.log_image(png, "molecules/best", step=store.calls_used())


def export(store: CampaignStore, config: CampaignConfig, tracker: Any, features: Featuriser,
           sign: float, top: int = 10) -> tuple[list[tuple[str, float, int]], Path]:
    """Write the results CSV and the extrapolation files, log them, and rank the best.

    A campaign with several objectives also gets ``pareto.png`` beside the CSV (see
    :func:`bodisc.tracking.pareto_figure.draw_pareto`), uploaded as an artifact and as
    the time-stepped image ``pareto/front`` (step: the oracle calls) when the final
    figures go out.

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
    tracker.log_artifact(path)
    done.sort(key=lambda j: (-sign * j.value, j.iteration, j.rank))
    best = [(j.smiles, float(j.value), j.iteration) for j in done[:top]]
    calls = store.calls_used()
    # once per finished campaign: a restart with nothing new logs nothing twice
    upload = tracker.ok and store.get_meta("mlflow_final_calls") != str(calls)
    log_molecules(store, config, tracker, sign, upload)  # the files, tracked or not
    if config.multi_objective:
        from bodisc.tracking.pareto_figure import write_pareto

        pareto = write_pareto(store, config, csv.with_name("pareto.png"))
        if upload and pareto is not None:
            tracker.log_artifact(pareto)
            tracker.log_image(pareto, "pareto/front", step=calls)
    if upload:
        final = {"best": best[0][1] if best else None, "calls": calls,
                 "failures": sum(1 for _ in store.jobs("failed")),
                 **final_figures(store, config, sign),
                 **{f"extrapolation.{k}": v for k, v in summary.items()}}
        if tracker.log_metrics({f"{FINAL}{k}": v for k, v in final.items()}, step=calls):
            store.set_meta("mlflow_final_calls", str(calls))
    if tracker.ok:
        tracker.set_tags({"mlflow.note.content": describe(config, calls, best)})
    return best, csv


def final_figures(store: CampaignStore, config: CampaignConfig, sign: float
                  ) -> dict[str, float | None]:
    """The campaign's top-10 mean, PMO top-10 AUC and (several objectives) hypervolume."""
    from bodisc.metrics import per_call_metrics, top_k_auc

    calls = [(j.inchikey, j.value if j.status == "done" else None) for j in store.calls()]
    budget = config.budget.oracle_calls
    curve = per_call_metrics(calls, budget, sign > 0)
    out = {"top10_mean": curve[-1].top10_mean if curve else None,
           "top10_auc": top_k_auc(calls, budget, sign > 0) if calls else None}
    volumes = diagnostics.hypervolume_curve(store, config)
    if volumes:
        out["hypervolume"] = volumes[-1]
    return out


def runs_table_columns(config: CampaignConfig) -> tuple[list[str], str, bool]:
    """The runs table's columns, sort column and order for the experiment's shared view.

    The best value, top-10 AUC and calls of each run beside what distinguishes runs
    (acquisition, surrogate, seed), best run first.
    """
    from bodisc.tracking.mlflow_tracker import column

    metrics = [f"{CALL}best_so_far", f"{FINAL}best", f"{FINAL}top10_auc", f"{FINAL}calls"]
    params = ["acquisition.name", "surrogate.kind", "random_seed"]
    columns = ([column("metrics", m) for m in metrics]
               + [column("params", p) for p in params])
    return columns, column("metrics", f"{FINAL}best"), config.objective.direction == "minimize"


def describe(config: CampaignConfig, calls: int | None = None,
             best: list[tuple[str, float, int]] | None = None) -> str:
    """The run's description (MLflow's ``mlflow.note.content``, Markdown).

    What is sought with which oracle and budget; with ``best``, the best molecule so far.
    """
    obj = config.objective
    unit = f" {obj.unit}" if obj.unit else ""
    lines = [f"**{config.name}**: {obj.direction} {obj.property}{unit and f' ({obj.unit})'}"
             f" with oracle `{config.oracle.name}`, {config.acquisition.name} on a "
             f"{config.surrogate.kind} surrogate, budget {config.budget.oracle_calls} calls,"
             f" seed {config.random_seed}."]
    if calls is not None:
        lines.append(f"\n{calls} calls made.")
    if best:
        smiles, value, it = best[0]
        lines.append(f" Best: `{smiles}` = {value:.4g}{unit} (iteration {it}).")
    return "".join(lines)


#: Formats of :func:`export_labels` (``bodisc export --format``).
EXPORT_FORMATS: tuple[str, ...] = ("csv", "parquet", "sdf")


def labels_frame(store: CampaignStore, config: CampaignConfig) -> Any:
    """Every result of the campaign with its molecule, oracle, provenance and reason.

    One row per job (every fidelity), in order. Columns: ``smiles``, ``inchikey``, the
    objective's property (its value; empty for a failure), ``status`` (``pending``,
    ``done``, ``failed``, ``cancelled``), ``reason``, ``oracle``, ``fidelity``,
    ``iteration``, ``rank``, ``paid`` (counts against the budget), ``off_policy``,
    ``pred_mean``, ``pred_std``, ``acq_value``, ``seconds`` and the provenance of labels
    from outside: ``origin`` (``oracle``, ``ingest``, ``import``), ``file``, ``row``,
    ``time``, ``source``.
    """
    import pandas as pd

    prop = config.objective.property
    rows = []
    for j in store.jobs(fidelity=None):
        prov = json.loads(j.provenance) if j.provenance else {}
        rows.append({"smiles": j.smiles, "inchikey": j.inchikey, prop: j.value,
                     "status": j.status, "reason": j.reason, "oracle": j.oracle,
                     "fidelity": j.fidelity, "iteration": j.iteration, "rank": j.rank,
                     "paid": j.paid, "off_policy": bool(prov.get("off_policy", False)),
                     "pred_mean": j.pred_mean, "pred_std": j.pred_std,
                     "acq_value": j.acq_value, "seconds": j.seconds,
                     "origin": prov.get("kind", "oracle"), "file": prov.get("file"),
                     "row": prov.get("row"), "time": prov.get("time"),
                     "source": prov.get("source")})
    columns = ["smiles", "inchikey", prop, "status", "reason", "oracle", "fidelity",
               "iteration", "rank", "paid", "off_policy", "pred_mean", "pred_std",
               "acq_value", "seconds", "origin", "file", "row", "time", "source"]
    return pd.DataFrame(rows, columns=columns)


def export_labels(store: CampaignStore, config: CampaignConfig, fmt: str, path: Path) -> Path:
    """Write :func:`labels_frame` as CSV, Parquet or SDF; returns ``path``.

    SDF has one record per job with the columns as SD properties. The file is written
    under a temporary name first, then renamed, so a reader never sees half of it.
    """
    frame = labels_frame(store, config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "csv":
        frame.to_csv(tmp, index=False)
    elif fmt == "parquet":
        frame.to_parquet(tmp, index=False)
    elif fmt == "sdf":
        from rdkit import Chem

        writer = Chem.SDWriter(str(tmp))
        try:
            for rec in frame.to_dict("records"):
                mol = Chem.MolFromSmiles(rec["smiles"])
                if mol is None:
                    continue
                mol.SetProp("_Name", rec["inchikey"])
                for key, value in rec.items():
                    if key != "smiles" and value is not None and value == value:
                        mol.SetProp(key, str(value))
                writer.write(mol)
        finally:
            writer.close()
    else:
        raise ValueError(f"unknown export format {fmt!r}; allowed: {', '.join(EXPORT_FORMATS)}")
    tmp.replace(path)
    return path
