"""Reports: PNG figures and one self-contained HTML page for campaigns and comparisons.

``bodisc report TARGET`` takes a campaign file, a comparison file (a campaign file with a
``[compare]`` table) or an MLflow run id (a campaign's run, or a comparison's parent run)
and reads everything from the campaign stores (each store keeps its whole campaign file),
so a report can be made again at any time. Figures (matplotlib, Agg):

* ``best_so_far.png``: best value and top-10 mean against oracle calls, per strategy the
  median over seeds with the range of the seeds shaded;
* ``top10_auc.png``: PMO top-10 AUC per strategy, mean and standard deviation over seeds,
  each seed a dot;
* ``extrapolation.png``: predicted against observed value (with one predicted standard
  deviation) for every label beyond the training range;
* ``best_molecules.png``: the best distinct molecules of all runs, drawn by RDKit;
* ``search_map.png``: where each strategy searched: the first two principal components
  of the z-scored descriptors of every labelled molecule, one panel per strategy;
* ``pareto_<run>.png`` (runs with several objectives): the Pareto front, one panel per
  pair of objectives for three or more, its molecules drawn by RDKit.

``report.html`` holds the tables and every figure embedded as base64. The figures are
logged as MLflow artifacts (``report/``) of the campaign's run or the comparison's parent.
Numbers are right-aligned with a fixed number of decimals per column and ``n/a`` where a
figure does not apply; MLflow run ids link to the MLflow UI when its address is known
(:func:`run_link`); the best molecules carry their structural flags
(:func:`bodisc.chem.alerts.flags`).
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bodisc.config import CampaignConfig
from bodisc.errors import BodiscError, ConfigError
from bodisc.plotting import pyplot, save
from bodisc.tracking.mlflow_tracker import run_link as _tab_link
from bodisc.tracking.mlflow_tracker import ui_address as mlflow_ui_address
from bodisc.tracking.pareto_figure import draw_pareto, objective_labels

if TYPE_CHECKING:
    from bodisc.compare import Comparison

#: Figure files in the order the HTML page shows them.
FIGURES: tuple[str, ...] = ("best_so_far.png", "top10_auc.png", "extrapolation.png",
                            "best_molecules.png", "search_map.png")


@dataclass
class RunData:
    """One campaign run as a report sees it.

    Attributes:
        label: Run name shown in tables (``strategy-sSEED`` in a comparison).
        strategy: Strategy name (the acquisition for a lone campaign).
        seed: The run's ``random_seed``.
        config: The run's campaign file, as stored.
        calls: ``(inchikey, smiles, value or None, iteration)`` per oracle call, in order.
        features: Descriptors per labelled molecule, ``inchikey -> (d,)`` vector.
        extrapolation: The run's extrapolation records.
        run_id: MLflow run id, if logged.
        causal: The latest causal graph the run's interventions learnt (the plan's JSON
            form with its iteration), or ``None``.
        objectives: The objectives' properties of a run with several objectives, in file
            order (empty for one objective).
        objective_values: Per labelled molecule its value of every objective, in their
            units, shape ``(n, k)`` (NaN where a label lacks one); ``None`` for one
            objective.
        feasible: Per labelled molecule whether it meets every modelled constraint,
            shape ``(n,)``; ``None`` for one objective.
        labelled_smiles: The labelled molecules' SMILES, the rows of ``objective_values``.
    """

    label: str
    strategy: str
    seed: int
    config: CampaignConfig
    calls: list[tuple[str, str, float | None, int]]
    features: dict[str, np.ndarray] = field(default_factory=dict)
    extrapolation: list[dict[str, Any]] = field(default_factory=list)
    run_id: str | None = None
    causal: dict[str, Any] | None = None
    objectives: tuple[str, ...] = ()
    objective_values: np.ndarray | None = None
    feasible: np.ndarray | None = None
    labelled_smiles: tuple[str, ...] = ()

    @property
    def several_objectives(self) -> bool:
        """Two or more objectives with their labels loaded (a Pareto front to show)."""
        return len(self.objectives) > 1 and self.objective_values is not None


@dataclass
class ReportData:
    """Everything a report shows.

    Attributes:
        title: Heading of the page.
        runs: The runs.
        descriptor_names: Names of the descriptor columns of ``RunData.features``.
        mlflow_uri: Tracking URI to log the figures to.
        mlflow_run_id: Run that receives the figures (campaign run or comparison parent).
        mlflow_experiments: Experiment id per MLflow run id, where already known (the
            page asks MLflow for the others, to link each run).
        mlflow_ui: Address of the MLflow UI (default: see :func:`run_link`).
    """

    title: str
    runs: list[RunData]
    descriptor_names: tuple[str, ...] = ()
    mlflow_uri: str | None = None
    mlflow_run_id: str | None = None
    mlflow_experiments: dict[str, str] = field(default_factory=dict)
    mlflow_ui: str | None = None

    @property
    def config(self) -> CampaignConfig:
        """The first run's campaign (objective, unit and budget are common to all)."""
        return self.runs[0].config

    @property
    def maximize(self) -> bool:
        """Whether larger values are better."""
        return self.config.objective.direction == "maximize"

    @property
    def strategies(self) -> list[str]:
        """Strategy names in first-seen order."""
        return list(dict.fromkeys(r.strategy for r in self.runs))

    def axis_label(self) -> str:
        """``property / unit`` for axes."""
        obj = self.config.objective
        return f"{obj.property} / {obj.unit}" if obj.unit else obj.property


# -- loading ------------------------------------------------------------------------------
def load_run(store_path: Path, label: str | None = None, strategy: str | None = None,
             seed: int | None = None, cache: Any = None) -> RunData:
    """Read one run from its store; missing descriptors are computed (and cached).

    Args:
        store_path: The run's ``store.sqlite``.
        label: Name shown in tables (default: the campaign name).
        strategy: Strategy name (default: the acquisition).
        seed: Seed (default: the stored ``random_seed``).
        cache: A :class:`~bodisc.runtime.cache.ResultCache` to take descriptors from and put
            newly computed ones in.

    Raises:
        StoreError: If there is no store at ``store_path``.
    """
    from bodisc.loop.diagnostics import extrapolation_table
    from bodisc.loop.features import Featuriser
    from bodisc.store import CampaignStore

    store = CampaignStore(store_path, create=False)
    try:
        config = CampaignConfig.model_validate(store.get_meta("config"))
        featuriser = Featuriser(config)
        jobs = store.calls()
        calls = [(j.inchikey, j.smiles, j.value if j.status == "done" else None, j.iteration)
                 for j in jobs]
        labelled = {j.inchikey: j.smiles for j in jobs if j.status == "done"
                    and j.value is not None}
        cached = store.descriptors_of(list(labelled), featuriser.descriptor_set)
        vectors = {k: v for k, (status, v, _) in cached.items() if status == "done" and v}
        missing = {k: s for k, s in labelled.items() if k not in vectors}
        if missing:
            vectors.update(_compute_descriptors(featuriser, missing, cache))
        features = {k: np.array([v[c] for c in featuriser.columns], dtype=float)
                    for k, v in vectors.items()}
        extrapolation = extrapolation_table(store, featuriser)
        run_id = store.get_meta("mlflow_run_id")
        several = (objective_labels(store, config) if config.multi_objective
                   else (None, None, ()))
        causal = None
        for row in reversed(store.iterations()):
            shown = store.get_meta(f"causal/{row['iteration']}")
            if shown:
                causal = {**shown, "iteration": row["iteration"]}
                break
    finally:
        store.close()
    values, feasible, smiles = several
    return RunData(label or config.name, strategy or config.acquisition.name,
                   config.random_seed if seed is None else seed, config, calls, features,
                   extrapolation, run_id, causal,
                   tuple(o.property for o in config.objectives) if values is not None else (),
                   values, feasible, smiles)


def plot_causal_graphs(data: ReportData, out: Path) -> list[Path]:
    """The latest causal graph of each run that learnt one (``causal_<run>.png``)."""
    from bodisc.causal.draw import draw_graph

    paths = []
    for run in data.runs:
        if run.causal:
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", run.label)
            paths.append(draw_graph(run.causal["graph"], out / f"causal_{name}.png",
                                    f"{run.label}: causal graph of iteration "
                                    f"{run.causal['iteration']}"))
    return paths


def _compute_descriptors(featuriser: Any, smiles_of: dict[str, str], cache: Any
                         ) -> dict[str, list[float]]:
    """Descriptors of molecules a run never featurised (e.g. the ``random`` strategy)."""
    from bodisc.execution import LocalExecutor
    from bodisc.execution.tasks import descriptor_task

    cfg = featuriser.config
    args = (tuple(featuriser.tier_names), cfg.descriptors.conformer_seed)
    tasks = [(k, (s, *args)) for k, s in smiles_of.items()]
    out: dict[str, list[float]] = {}
    with LocalExecutor(cfg.execution.workers, cfg.execution.worker_memory_gb) as executor:
        if cache is None:
            outcomes = executor.run(descriptor_task, tasks, cfg.execution.descriptor_timeout_s)
        else:
            outcomes = cache.run("descriptors", featuriser.descriptor_set, executor,
                                 descriptor_task, tasks, {k: k for k in smiles_of},
                                 cfg.execution.descriptor_timeout_s)
        for res in outcomes:
            if res.failure is None:
                out[res.key] = list(res.value[0])
    return out


def load_comparison(config: CampaignConfig, specs: Sequence[Any] | None = None,
                    tracking_uri: str | None = None) -> ReportData:
    """The runs of a comparison that have started (see :func:`bodisc.compare.plan_runs`)."""
    from bodisc.compare import comparison_root, plan_runs
    from bodisc.runtime.cache import ResultCache

    specs = plan_runs(config) if specs is None else specs
    root = comparison_root(config)
    cache = ResultCache(root / "cache.sqlite")
    try:
        runs = [load_run(s.config.path("store"), s.label, s.strategy.name, s.seed, cache)
                for s in specs if s.config.path("store").exists()]
    finally:
        cache.close()
    if not runs:
        raise BodiscError(f"{root}: no run of comparison {config.name!r} has started; run "
                          f"bodisc compare first")
    try:
        state = json.loads((root / "compare.json").read_text())
    except (OSError, ValueError):
        state = {}
    return ReportData(f"{config.name}: {len(runs)} runs", runs,
                      _descriptor_names(runs[0].config), _uri(config, tracking_uri),
                      state.get("parent_run_id"))


def comparison_report(comparison: Comparison) -> list[Path]:
    """Write the report of a comparison into ``report/`` in its folder; returns the files.

    ``bodisc compare`` hands this to :meth:`bodisc.compare.Comparison.run`, which logs the
    files to the comparison's parent MLflow run (report imports compare, not the reverse).
    """
    data = load_comparison(comparison.config, comparison.runs, comparison.tracking_uri)
    return build_report(data, comparison.root / "report")

def load_campaign_report(config: CampaignConfig, tracking_uri: str | None = None
                         ) -> ReportData:
    """One campaign run."""
    path = config.path("store")
    if not path.exists():
        raise BodiscError(f"{path}: no campaign store; run bodisc campaign first")
    run = load_run(path, config.name)
    return ReportData(f"{config.name}", [run], _descriptor_names(config),
                      _uri(config, tracking_uri), run.run_id)


def load_mlflow_run(run_id: str, tracking_uri: str | None = None) -> ReportData:
    """A campaign run or a comparison's parent run (its child runs), by MLflow run id."""
    from mlflow.tracking import MlflowClient

    from bodisc.tracking.mlflow_tracker import tracking_uri as default_uri

    uri = tracking_uri or default_uri(Path("mlruns"))
    client = MlflowClient(tracking_uri=uri)
    try:
        run = client.get_run(run_id)
    except Exception as exc:  # noqa: BLE001 - MLflow raises several kinds
        raise BodiscError(f"MLflow run {run_id!r} not found at {uri} "
                          f"({type(exc).__name__}); give --tracking-uri") from None
    tags = run.data.tags
    if "bodisc.store" in tags:
        data = load_run(Path(tags["bodisc.store"]), tags.get("bodisc.compare.label"),
                        tags.get("strategy"), _int(tags.get("seed")))
        return ReportData(data.label, [data], _descriptor_names(data.config), uri, run_id,
                          {run_id: run.info.experiment_id})
    if "bodisc.compare.root" in tags:
        from bodisc.runtime.cache import ResultCache

        children = client.search_runs([run.info.experiment_id],
                                      f"tags.mlflow.parentRunId = '{run_id}'")
        cache = ResultCache(Path(tags["bodisc.compare.root"]) / "cache.sqlite")
        try:
            runs = [load_run(Path(c.data.tags["bodisc.store"]),
                             c.data.tags.get("bodisc.compare.label"),
                             c.data.tags.get("strategy"), _int(c.data.tags.get("seed")), cache)
                    for c in children if Path(c.data.tags.get("bodisc.store", "")).is_file()]
        finally:
            cache.close()
        if not runs:
            raise BodiscError(f"MLflow run {run_id}: no child run with a store on this machine")
        runs.sort(key=lambda r: (r.strategy, r.seed))
        known = {c.info.run_id: c.info.experiment_id for c in children}
        known[run_id] = run.info.experiment_id
        return ReportData(f"{tags['bodisc.compare']}: {len(runs)} runs", runs,
                          _descriptor_names(runs[0].config), uri, run_id, known)
    raise BodiscError(f"MLflow run {run_id} is neither a bodisc campaign nor a comparison")


def _int(text: str | None) -> int | None:
    return None if text is None else int(text)


def _uri(config: CampaignConfig, tracking_uri: str | None) -> str:
    from bodisc.tracking.mlflow_tracker import tracking_uri as default_uri

    return tracking_uri or default_uri(config.path("mlruns"))


def _descriptor_names(config: CampaignConfig) -> tuple[str, ...]:
    from bodisc.descriptors import default_descriptors

    return tuple(config.descriptors.names or default_descriptors())


# -- links to the MLflow UI ---------------------------------------------------------------
# One implementation of the UI's addresses, shared with the CLI (bodisc.tracking).


def _is_http(uri: str | None) -> bool:
    return bool(uri) and str(uri).lower().startswith(("http://", "https://"))


def _is_local_store(uri: str | None) -> bool:
    return bool(uri) and str(uri).lower().startswith(("sqlite:", "file:"))


def run_link(uri: str | None, experiment_id: str | None, run_id: str | None,
             ui_address: str | None = None) -> str | None:
    """The MLflow UI's page of a run's charts (model-training view), or ``None``.

    ``None`` without a run id, an experiment id or a UI address
    (:func:`bodisc.tracking.mlflow_tracker.ui_address`).
    """
    return _tab_link(uri, experiment_id, run_id, "model-metrics", ui_address)


@contextlib.contextmanager
def _quick_http() -> Iterator[None]:
    """No retries and a short timeout for MLflow's HTTP calls, unless the user set them."""
    wanted = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    added = [k for k in wanted if k not in os.environ]
    for key in added:
        os.environ[key] = wanted[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def experiment_ids(uri: str | None, run_ids: Sequence[str],
                   known: Mapping[str, str] | None = None) -> dict[str, str]:
    """Experiment id per MLflow run id: ``known`` ones, the others asked of MLflow.

    One client for all; the first failure (no server, no such run) ends the asking, so a
    report never waits on MLflow more than once. A ``sqlite:`` store whose file does not
    exist is not opened (opening would create it).

    Args:
        uri: The tracking URI.
        run_ids: Run ids to look up (empty ones are skipped).
        known: Experiment ids already known, e.g. from the run that was reported.

    Returns:
        The experiment ids found (run ids that could not be looked up are absent).
    """
    out = dict(known or {})
    todo = [r for r in dict.fromkeys(run_ids) if r and r not in out]
    if not todo or not uri:
        return out
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        return out
    try:
        from mlflow.tracking import MlflowClient

        with _quick_http() if _is_http(uri) else contextlib.nullcontext():
            client = MlflowClient(tracking_uri=uri)
            for run_id in todo:
                out[run_id] = client.get_run(run_id).info.experiment_id
    except Exception:  # noqa: BLE001 - MLflow raises several kinds; no link then
        pass
    return out


# -- figures ------------------------------------------------------------------------------

def _colors(names: Sequence[str]) -> dict[str, Any]:
    plt = pyplot()
    cmap = plt.get_cmap("tab10")
    return {n: cmap(i % 10) for i, n in enumerate(names)}


def curves(data: ReportData) -> dict[str, dict[str, np.ndarray]]:
    """Per run label: ``best_so_far`` and ``top10_mean`` after every call, shape ``(n,)``."""
    from bodisc.metrics import per_call_metrics

    out = {}
    for run in data.runs:
        metrics = per_call_metrics([(k, v) for k, _, v, _ in run.calls],
                                   run.config.budget.oracle_calls, data.maximize)
        out[run.label] = {
            "best_so_far": np.array([np.nan if m.best_so_far is None else m.best_so_far
                                     for m in metrics]),
            "top10_mean": np.array([np.nan if m.top10_mean is None else m.top10_mean
                                    for m in metrics]),
        }
    return out


def plot_best_so_far(data: ReportData, path: Path) -> Path:
    """Best so far and top-10 mean against oracle calls; median and range over seeds."""
    plt = pyplot()
    colors = _colors(data.strategies)
    series = curves(data)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for ax, key, title in zip(axes, ("best_so_far", "top10_mean"),
                              ("best so far", "mean of the 10 best so far"), strict=True):
        for name in data.strategies:
            runs = [r for r in data.runs if r.strategy == name]
            n = max(len(series[r.label][key]) for r in runs)
            Y = np.full((len(runs), n), np.nan)
            for i, r in enumerate(runs):
                y = series[r.label][key]
                Y[i, : len(y)] = y
            x = np.arange(1, n + 1)
            with np.errstate(all="ignore"):
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    med = np.nanmedian(Y, axis=0)
                    lo, hi = np.nanmin(Y, axis=0), np.nanmax(Y, axis=0)
            label = f"{name} ({len(runs)} seed{'s' if len(runs) != 1 else ''})"
            ax.plot(x, med, color=colors[name], lw=2, label=label)
            if len(runs) > 1:
                ax.fill_between(x, lo, hi, color=colors[name], alpha=0.18, lw=0)
        ax.set_xlabel("oracle calls")
        ax.set_ylabel(data.axis_label())
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right" if data.maximize else "upper right")
    fig.suptitle(f"{data.title}: median over seeds, shaded: range of the seeds", fontsize=10)
    fig.tight_layout()
    return save(fig, path, dpi=110)


def auc_table(data: ReportData) -> dict[str, list[tuple[int, float]]]:
    """Per strategy: ``(seed, top-10 AUC)`` of each run."""
    from bodisc.metrics import top_k_auc

    out: dict[str, list[tuple[int, float]]] = {}
    for run in data.runs:
        auc = top_k_auc([(k, v) for k, _, v, _ in run.calls], run.config.budget.oracle_calls,
                        data.maximize)
        out.setdefault(run.strategy, []).append((run.seed, auc))
    return out


def plot_auc(data: ReportData, path: Path) -> Path:
    """Top-10 AUC per strategy: mean with +- one sd (diamond, whisker), a dot per seed."""
    plt = pyplot()
    colors = _colors(data.strategies)
    table = auc_table(data)
    fig, ax = plt.subplots(figsize=(1.3 * len(table) + 2.5, 4))
    rng = np.random.default_rng(0)  # jitter of the dots only
    for i, name in enumerate(data.strategies):
        vals = np.array([a for _, a in table[name]])
        sd = vals.std(ddof=1) if len(vals) > 1 else 0.0
        ax.scatter(i - 0.15 + rng.uniform(-0.06, 0.06, len(vals)), vals, color=colors[name],
                   s=22, alpha=0.8, zorder=3)
        ax.errorbar(i + 0.1, vals.mean(), yerr=sd if len(vals) > 1 else None, fmt="D",
                    color="k", ms=6, capsize=5, zorder=4)
        ax.annotate(f"{vals.mean():.2f}", (i + 0.1, vals.mean()), xytext=(8, 0),
                    textcoords="offset points", ha="left", va="center", fontsize=8)
    ax.set_xticks(range(len(table)), data.strategies)
    ax.set_xlim(-0.6, len(table) - 0.4)
    ax.set_ylabel(f"top-10 AUC ({data.axis_label()})")
    ax.set_title(f"top-10 AUC over {data.config.budget.oracle_calls} calls (PMO); "
                 f"dots: seeds, diamond: mean +- sd", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save(fig, path, dpi=110)


def extrapolation_summaries(data: ReportData) -> dict[str, dict[str, float]]:
    """Per strategy: the extrapolation summary of all its runs' records pooled."""
    from bodisc.metrics import extrapolation_summary

    out = {}
    for name in data.strategies:
        runs = [r for r in data.runs if r.strategy == name]
        recs = [rec for r in runs for rec in r.extrapolation]
        labels = [v for r in runs for _, _, v, _ in r.calls if v is not None]
        out[name] = extrapolation_summary([r["observed"] for r in recs],
                                          [r["pred_mean"] for r in recs],
                                          [r["pred_std"] for r in recs], labels)
    return out


def plot_extrapolation(data: ReportData, path: Path) -> Path:
    """Predicted against observed for every label beyond the training range."""
    plt = pyplot()
    colors = _colors(data.strategies)
    summaries = extrapolation_summaries(data)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    points = []
    for name in data.strategies:
        recs = [rec for r in data.runs if r.strategy == name for rec in r.extrapolation]
        if not recs:
            continue
        obs = np.array([r["observed"] for r in recs])
        mean = np.array([r["pred_mean"] for r in recs])
        std = np.array([r["pred_std"] for r in recs])
        s = summaries[name]
        ax.errorbar(obs, mean, yerr=std, fmt="o", ms=4, color=colors[name], alpha=0.75,
                    elinewidth=0.8, capsize=0,
                    label=f"{name}: n={int(s['count'])}, in 68 % {s['in68']:.0%}, "
                          f"in 95 % {s['in95']:.0%}, RMSE/sd {s.get('rmse_over_std', np.nan):.2f}")
        points.extend(obs)
        points.extend(mean - std)
        points.extend(mean + std)
    if points:
        lo, hi = float(np.min(points)), float(np.max(points))
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1,
                label="predicted = observed")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        ax.legend(fontsize=7, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no label beyond the training range\n(or no model-based strategy)",
                ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"observed {data.axis_label()}")
    ax.set_ylabel(f"predicted {data.axis_label()} (+- 1 sd)")
    ax.set_title("labels beyond the training range: prediction made when chosen",
                 fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, path, dpi=110)


def forbidden_substructures(data: ReportData) -> dict[str, str]:
    """The runs' ``generator.forbidden_substructures`` as extra flags, named by their SMARTS."""
    return {s: s for r in data.runs for s in r.config.generator.forbidden_substructures}


def best_molecules(data: ReportData, n: int = 12) -> list[dict[str, Any]]:
    """The ``n`` best distinct molecules over all runs, with the runs that found them.

    Returns:
        Best first: ``smiles``, ``value``, ``runs`` (``"label (it N)"`` per run that
        labelled it) and ``flags`` (names from :func:`bodisc.chem.alerts.flags`, with the
        campaigns' forbidden substructures as extra flags).
    """
    from bodisc.chem.alerts import flags

    found: dict[str, dict[str, Any]] = {}
    for run in data.runs:
        for key, smiles, value, it in run.calls:
            if value is None:
                continue
            row = found.setdefault(key, {"smiles": smiles, "value": value, "runs": []})
            row["runs"].append(f"{run.label} (it {it})")
    rows = sorted(found.values(), key=lambda r: -r["value"] if data.maximize else r["value"])
    extra = forbidden_substructures(data)
    for row in rows[:n]:
        row["flags"] = flags(row["smiles"], extra)
    return rows[:n]


def _font(size: int) -> Any:
    """Matplotlib's DejaVu Sans at ``size`` px (PIL's default font if it cannot be had)."""
    from PIL import ImageFont

    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except (OSError, ValueError, ImportError):
        return ImageFont.load_default()


def _fit(draw: Any, text: str, font: Any, width: float) -> str:
    """``text``, cut short with an ellipsis until it is at most ``width`` px wide."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "\u2026", font=font) > width:
        text = text[:-1]
    return text.rstrip(", ") + "\u2026"


#: Molecules per row, pixels of one molecule and of the legend under it, in
#: ``best_molecules.png``; the colour of the flags line.
GRID_PER_ROW, GRID_CELL, GRID_LEGEND = 4, (260, 190), 42
FLAG_COLOR = (170, 0, 0)


def legend_lines(row: Mapping[str, Any], unit: str = "") -> list[str]:
    """The legend under one molecule of ``best_molecules.png``.

    Args:
        row: A row of :func:`best_molecules`.
        unit: The objective's unit.

    Returns:
        ``"VALUE UNIT  RUN"`` (``RUN +n``: n more runs found it), then
        ``"flags: NAME, ..."`` if the molecule raises structural flags.
    """
    runs = row["runs"]
    where = runs[0].split(" (")[0] + (f" +{len(runs) - 1}" if len(runs) > 1 else "")
    lines = [f"{format_cell(row['value'], 3)} {unit}".rstrip() + f"  {where}"]
    if row.get("flags"):
        lines.append(f"flags: {', '.join(row['flags'])}")
    return lines


def plot_best_molecules(data: ReportData, path: Path, n: int = 12) -> Path:
    """A grid of the best molecules; value, finder and structural flags under each.

    The flags (:func:`best_molecules`) are a second legend line, in red, under a
    molecule that raises any. RDKit draws the molecules (all at one scale); PIL draws
    the legends, as RDKit's two-line legends overlap.
    """
    from PIL import Image, ImageDraw
    from rdkit import Chem
    from rdkit.Chem import Draw

    rows = best_molecules(data, n)
    unit = data.config.objective.unit
    per_row, (w, h), band = GRID_PER_ROW, GRID_CELL, GRID_LEGEND
    if not rows:
        page = Image.new("RGB", (per_row * w, h), "white")
        ImageDraw.Draw(page).text((per_row * w / 2, h / 2), "no labelled molecule",
                                  fill="black", font=_font(14), anchor="mm")
        page.save(path)
        return path
    grid = Draw.MolsToGridImage([Chem.MolFromSmiles(r["smiles"]) for r in rows],
                                molsPerRow=per_row, subImgSize=(w, h))
    if not hasattr(grid, "crop"):  # an IPython Image (PNG bytes)
        grid = Image.open(io.BytesIO(grid.data))
    grid = grid.convert("RGB")
    nrow = -(-len(rows) // per_row)
    page = Image.new("RGB", (per_row * w, nrow * (h + band)), "white")
    draw, font = ImageDraw.Draw(page), _font(13)
    for i, r in enumerate(rows):
        col, row = i % per_row, i // per_row
        page.paste(grid.crop((col * w, row * h, (col + 1) * w, (row + 1) * h)),
                   (col * w, row * (h + band)))
        y = row * (h + band) + h + 2
        for text, color in zip(legend_lines(r, unit), ((0, 0, 0), FLAG_COLOR), strict=False):
            draw.text((col * w + w / 2, y), _fit(draw, text, font, w - 10), fill=color,
                      font=font, anchor="ma")
            y += 18
    page.save(path)
    return path


def pca_2d(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first two principal components of z-scored rows.

    Args:
        X: Descriptors, shape ``(n, d)``; missing values (NaN) are put at the column mean.

    Returns:
        ``(scores, explained)``: shapes ``(n, 2)`` and ``(2,)`` (share of variance).
    """
    from bodisc.metrics import standardize

    mean, std = standardize(X)
    Z = np.nan_to_num((X - mean) / std)
    Z = Z - Z.mean(axis=0)
    _, s, vt = np.linalg.svd(Z, full_matrices=False)
    comps = vt[:2]
    # a fixed sign for each component, so the map does not flip between reports
    comps = comps * np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])[:, None]
    scores = Z @ comps.T
    if scores.shape[1] < 2:
        scores = np.hstack([scores, np.zeros((len(scores), 2 - scores.shape[1]))])
    var = s**2 / max(float((s**2).sum()), 1e-300)
    return scores, np.pad(var[:2], (0, max(0, 2 - len(var[:2]))))


def plot_search_map(data: ReportData, path: Path) -> Path:
    """PCA of the descriptors of every labelled molecule; a panel per strategy."""
    plt = pyplot()
    keys = list(dict.fromkeys(k for r in data.runs for k in r.features))
    vec = {k: v for r in data.runs for k, v in r.features.items()}
    names = data.strategies
    ncol = min(3, len(names))
    nrow = -(-len(names) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(max(4.2 * ncol + 1.2, 6.5), 3.8 * nrow + 0.6),
                             squeeze=False, sharex=True, sharey=True, layout="constrained")
    if len(keys) < 3:
        for ax in axes.flat:
            ax.text(0.5, 0.5, "too few molecules with descriptors", ha="center",
                    transform=ax.transAxes)
        return save(fig, path, dpi=110)
    X = np.array([vec[k] for k in keys])
    scores, var = pca_2d(X)
    pos = {k: scores[i] for i, k in enumerate(keys)}
    values = {k: v for r in data.runs for k, _, v, _ in r.calls if v is not None}
    vmin, vmax = np.percentile(list(values.values()), [2, 98])
    seeds = {k for r in data.runs for k, _, _, it in r.calls if it == 0}
    sc = None
    for ax, name in zip(axes.flat, names, strict=False):
        ax.scatter(scores[:, 0], scores[:, 1], s=6, color="0.85", lw=0)
        mine = [k for r in data.runs if r.strategy == name for k, _, v, it in r.calls
                if v is not None and it > 0 and k in pos]
        mine.sort(key=lambda k: values[k] if data.maximize else -values[k])  # best on top
        if mine:
            P = np.array([pos[k] for k in mine])
            sc = ax.scatter(P[:, 0], P[:, 1], c=[values[k] for k in mine], s=14,
                            cmap="viridis", vmin=vmin, vmax=vmax, lw=0)
        S = np.array([pos[k] for k in seeds if k in pos])
        if len(S):
            ax.scatter(S[:, 0], S[:, 1], marker="*", s=70, color="crimson",
                       edgecolor="k", lw=0.4, label="seed molecules")
        runs = len([r for r in data.runs if r.strategy == name])
        ax.set_title(f"{name}: {len(mine)} molecules, {runs} run{'s' if runs != 1 else ''}",
                     fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel(f"PC1 ({var[0]:.0%} of variance)")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"PC2 ({var[1]:.0%})")
    axes[0, 0].legend(fontsize=7, loc="best")
    if sc is not None:
        fig.colorbar(sc, ax=axes.ravel().tolist(), shrink=0.8, label=data.axis_label())
    fig.suptitle(f"where each strategy searched (grey: all runs)\nPCA of {X.shape[1]} "
                 f"z-scored descriptors of {len(keys)} labelled molecules", fontsize=10)
    return save(fig, path, dpi=90)


# -- the Pareto front ---------------------------------------------------------------------
def plot_pareto(data: ReportData, out: Path) -> list[Path]:
    """The Pareto front of each run with several objectives (``pareto_<run>.png``).

    See :func:`draw_pareto`; runs with one objective get no figure.
    """
    paths = []
    for run in data.runs:
        if run.several_objectives:
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", run.label)
            paths.append(draw_pareto(run, out / f"pareto_{name}.png"))
    return paths


# -- the page -----------------------------------------------------------------------------
def run_rows(data: ReportData) -> list[dict[str, Any]]:
    """One row per run: calls, failures, best value and molecule, AUC, calibration."""
    from bodisc.metrics import extrapolation_summary, top_k_auc

    rows = []
    for run in data.runs:
        done = [(v, s) for _, s, v, _ in run.calls if v is not None]
        best = (max if data.maximize else min)(done) if done else (float("nan"), "")
        rec = run.extrapolation
        summary = extrapolation_summary([r["observed"] for r in rec],
                                        [r["pred_mean"] for r in rec],
                                        [r["pred_std"] for r in rec], [v for v, _ in done])
        rows.append({"run": run.label, "strategy": run.strategy, "seed": run.seed,
                     "calls": len(run.calls),
                     "failed": sum(v is None for _, _, v, _ in run.calls),
                     "best": best[0], "best_smiles": best[1],
                     "top10_auc": top_k_auc([(k, v) for k, _, v, _ in run.calls],
                                            run.config.budget.oracle_calls, data.maximize),
                     "extrapolations": int(summary["count"]),
                     "in68": summary.get("in68", float("nan")),
                     "in95": summary.get("in95", float("nan")),
                     "rmse_over_std": summary.get("rmse_over_std", float("nan")),
                     "mlflow_run_id": run.run_id or ""})
    return rows


def strategy_rows(data: ReportData) -> list[dict[str, Any]]:
    """Per strategy: mean, sd and max over seeds of the best value and top-10 AUC."""
    from types import SimpleNamespace

    from bodisc.compare import summary_table

    return summary_table([SimpleNamespace(**r) for r in run_rows(data)], data.maximize)


#: What a cell shows when its figure does not apply (``None``, NaN, an empty text).
NA = "n/a"


@dataclass(frozen=True)
class Column:
    """One column of an HTML table.

    Attributes:
        key: The rows' key.
        title: The heading.
        decimals: ``None`` for text (left-aligned); otherwise the column is numeric,
            right-aligned, with this many decimals (0: whole numbers).
    """

    key: str
    title: str
    decimals: int | None = None


class Html(str):
    """Markup a table cell shows as it is (not escaped), e.g. a link."""

    __slots__ = ()


def format_cell(value: Any, decimals: int | None = None) -> str:
    """The text of one table cell (not HTML-escaped).

    Args:
        value: The figure or text.
        decimals: ``None`` for text; else the decimals of a number (0: an integer).

    Returns:
        :data:`NA` for ``None``, NaN or an empty text; a number rounded to ``decimals``
        (never ``-0.00``); text as it is.
    """
    if value is None:
        return NA
    if isinstance(value, float) and math.isnan(value):
        return NA
    if decimals is None:
        return str(value) or NA
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value) or NA
    if math.isnan(x):
        return NA
    text = f"{x:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """An HTML table: text columns left-aligned, numbers right-aligned (class ``num``)."""
    def attr(col: Column) -> str:
        return ' class="num"' if col.decimals is not None else ""

    def cell(col: Column, v: Any) -> str:
        text = v if isinstance(v, Html) else html.escape(format_cell(v, col.decimals))
        return f"<td{attr(col)}>{text}</td>"

    head = "".join(f"<th{attr(c)}>{html.escape(c.title)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(cell(c, r.get(c.key)) for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def run_anchor(uri: str | None, experiment_id: str | None, run_id: str | None,
               ui_address: str | None = None) -> Html | str:
    """A run id as a link to its MLflow UI page (see :func:`run_link`), or as plain text.

    A link to a local store's UI says in its ``title`` that ``mlflow ui`` must be running.
    """
    link = run_link(uri, experiment_id, run_id, ui_address)
    if link is None:
        return run_id or ""
    if _is_local_store(uri) and not ui_address:
        title = (f"the MLflow UI must be running at {mlflow_ui_address(uri)}: "
                 f"mlflow ui --backend-store-uri {uri}")
    else:
        title = "open in the MLflow UI"
    return Html(f'<a href="{html.escape(link)}" title="{html.escape(title)}">'
                f"{html.escape(str(run_id))}</a>")


def _caption(name: str) -> str:
    if name.startswith("pareto"):
        return ("The Pareto front of the run's labelled molecules (one panel per pair of "
                "objectives for three or more): coloured and joined by its step line, the "
                "feasible molecules no other feasible one beats in every objective; grey "
                "dots: dominated; grey rings: infeasible (outside a constraint's window). "
                "Some molecules of the front are drawn, with arrows to their points.")
    if name.startswith("causal_"):
        return ("The causal graph (DirectLiNGAM) the interventions learnt from the labels "
                "at their latest iteration: arrows from cause to effect, weights in "
                "standard deviations (blue positive, red negative), the target in gold.")
    return _CAPTIONS.get(name, name)


_CAPTIONS = {
    "best_so_far.png": "Best value and mean of the 10 best against oracle calls (failed "
                       "calls count). Line: median over seeds; band: range of the seeds.",
    "top10_auc.png": "Top-10 AUC (PMO, Gao et al. 2022): area under the top-10 mean "
                     "against calls divided by the budget. Dots: seeds; diamond and "
                     "whisker: mean and one sd over seeds.",
    "extrapolation.png": "Every label beyond the range the surrogate was trained on: the "
                         "observed value against the prediction made when the molecule "
                         "was chosen, with one predicted standard deviation.",
    "best_molecules.png": "The best distinct molecules of all runs, with the run that "
                          "found each first (+n: found by n more runs).",
    "search_map.png": "Where each strategy searched: first two principal components of "
                      "the z-scored descriptors of every labelled molecule; colour: "
                      "label; stars: seed molecules.",
}


def write_html(data: ReportData, figures: Sequence[Path], path: Path) -> Path:
    """The self-contained page: tables, and every figure embedded as base64 PNG."""
    unit = data.config.objective.unit
    u = f" / {unit}" if unit else ""
    run_ids = [r.run_id for r in data.runs if r.run_id]
    if data.mlflow_run_id:
        run_ids.append(data.mlflow_run_id)
    known = data.mlflow_experiments
    if run_ids and mlflow_ui_address(data.mlflow_uri, data.mlflow_ui):
        known = experiment_ids(data.mlflow_uri, run_ids, known)

    def anchor(run_id: str | None) -> Html | str:
        return run_anchor(data.mlflow_uri, known.get(run_id or ""), run_id, data.mlflow_ui)

    # a standard deviation over one seed does not apply
    strat = _table([{**r, "best_std": r["best_std"] if r["runs"] > 1 else None,
                     "auc_std": r["auc_std"] if r["runs"] > 1 else None}
                    for r in strategy_rows(data)], [
        Column("strategy", "strategy"), Column("runs", "runs", 0),
        Column("best_mean", f"best{u}, mean", 3), Column("best_std", "sd", 3),
        Column("best_of_all", f"best{u} of all runs", 3),
        Column("auc_mean", f"top-10 AUC{u}, mean", 3), Column("auc_std", "sd", 3)])
    runs = _table([{**r, "mlflow_run_id": anchor(r["mlflow_run_id"])} for r in run_rows(data)],
                  [Column("run", "run"), Column("calls", "calls", 0),
                   Column("failed", "failed", 0), Column("best", f"best{u}", 3),
                   Column("best_smiles", "best molecule"), Column("top10_auc", "top-10 AUC", 3),
                   Column("extrapolations", "beyond training range", 0),
                   Column("in68", "in 68 %", 2), Column("in95", "in 95 %", 2),
                   Column("rmse_over_std", "RMSE / sd", 2),
                   Column("mlflow_run_id", "MLflow run")])
    best = _table([{**r, "runs": ", ".join(r["runs"]),
                    "flags": ", ".join(r["flags"]) or "none"} for r in best_molecules(data, 12)],
                  [Column("smiles", "SMILES"), Column("value", f"value{u}", 3),
                   Column("flags", "structural flags"), Column("runs", "found by")])
    nan = float("nan")
    extrap = _table([{"strategy": k, "count": v["count"], "in68": v.get("in68", nan),
                      "in95": v.get("in95", nan), "rmse": v.get("rmse", nan),
                      "rmse_over_std": v.get("rmse_over_std", nan),
                      "mean_abs_z": v.get("mean_abs_z", nan)}
                     for k, v in extrapolation_summaries(data).items()],
                    [Column("strategy", "strategy"),
                     Column("count", "labels beyond training range", 0),
                     Column("in68", "share in 68 % interval", 2),
                     Column("in95", "share in 95 % interval", 2),
                     Column("rmse", f"RMSE{u}", 3),
                     Column("rmse_over_std", "RMSE / sd of labels", 2),
                     Column("mean_abs_z", "mean |z|", 2)])
    report_run = (f" MLflow run: {anchor(data.mlflow_run_id)}." if data.mlflow_run_id
                  else "")
    figs = []
    for fig in figures:
        b64 = base64.b64encode(Path(fig).read_bytes()).decode("ascii")
        figs.append(f'<figure><img alt="{fig.name}" src="data:image/png;base64,{b64}">'
                    f"<figcaption>{html.escape(_caption(fig.name))}"
                    f"</figcaption></figure>")
    cfg = data.config
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(data.title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 7px; text-align: left; }}
th {{ background: #f2f2f2; }}
th.num, td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
img {{ max-width: 100%; }} figure {{ margin: 1.5em 0; }}
figcaption {{ font-size: 0.85em; color: #555; }}
</style></head><body>
<h1>{html.escape(data.title)}</h1>
<p>{html.escape(cfg.objective.direction)} {html.escape(cfg.objective.property)}
({html.escape(cfg.oracle.name)}), budget {cfg.budget.oracle_calls} oracle calls per run,
batch {cfg.acquisition.batch_size}, {len(data.runs)} run(s).{report_run}</p>
<h2>Strategies</h2>{strat}
<h2>Runs</h2>{runs}
<h2>Extrapolation: predictions beyond the training range</h2>{extrap}
<p>Per run, every such step with its z-score, distance to the training set (z-scored
descriptors) and largest Tanimoto similarity to it is in the run's
<code>extrapolation.csv</code> (MLflow artifact).</p>
<h2>Figures</h2>{''.join(figs)}
<h2>Best molecules</h2>{best}
<p>Structural flags: unstable, explosive, reactive or toxic groups
(<code>bodisc.chem.alerts</code>) and the campaign's own
<code>generator.forbidden_substructures</code> (named by their SMARTS).</p>
</body></html>
"""
    path.write_text(page)
    return path


def build_report(data: ReportData, out: Path) -> list[Path]:
    """Write every figure, the tables as CSV and ``report.html`` into ``out``."""
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    figures = [
        plot_best_so_far(data, out / "best_so_far.png"),
        plot_auc(data, out / "top10_auc.png"),
        plot_extrapolation(data, out / "extrapolation.png"),
        plot_best_molecules(data, out / "best_molecules.png"),
        plot_search_map(data, out / "search_map.png"),
        *plot_pareto(data, out),
        *plot_causal_graphs(data, out),
    ]
    pd.DataFrame(strategy_rows(data)).to_csv(out / "strategies.csv", index=False)
    pd.DataFrame(run_rows(data)).to_csv(out / "runs.csv", index=False)
    page = write_html(data, figures, out / "report.html")
    return [*figures, out / "strategies.csv", out / "runs.csv", page]


def log_report(data: ReportData, paths: Sequence[Path], message: Callable[[str], None]
               ) -> bool:
    """Log the report files as artifacts (``report/``) of the report's MLflow run."""
    if not data.mlflow_run_id or not data.mlflow_uri:
        message("MLflow: no run to log the report to")
        return False
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=data.mlflow_uri)
        for path in paths:
            client.log_artifact(data.mlflow_run_id, str(path), "report")
        experiment_id = client.get_run(data.mlflow_run_id).info.experiment_id
    except Exception as exc:  # noqa: BLE001 - the report files exist either way
        message(f"MLflow: could not log the report ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''})")
        return False
    link = _tab_link(data.mlflow_uri, experiment_id, data.mlflow_run_id,
                     "artifacts/report/report.html", data.mlflow_ui)
    message(f"MLflow: report logged to run {data.mlflow_run_id}"
            + (f": {link}" if link else ""))
    return True


def make_report(target: str, out: Path | None = None, overrides: dict[str, Any] | None = None,
                tracking_uri: str | None = None, log_mlflow: bool = True,
                message: Callable[[str], None] = print, mlflow_ui: str | None = None
                ) -> list[Path]:
    """``bodisc report``: load a campaign, comparison or MLflow run; write; log.

    Args:
        target: A campaign or comparison file (``.toml``), or an MLflow run id.
        out: Output folder (default: ``report/`` beside the store, or the comparison's
            folder).
        overrides: ``--set`` overrides for a file.
        tracking_uri: MLflow tracking URI (default: the file's ``[paths] mlruns``, or
            ``./mlruns`` for a run id).
        log_mlflow: Log the files as artifacts.
        message: Receives one-line messages.
        mlflow_ui: Address of the MLflow UI the page links runs to (default: the
            tracking URI for an ``http(s)`` server, ``http://127.0.0.1:5000`` for a
            local store; see :func:`bodisc.tracking.mlflow_tracker.ui_address`).

    Returns:
        The files written.

    Raises:
        ConfigError: If the file is not a valid campaign file.
        BodiscError: If there is nothing to report.
    """
    from bodisc.config import load_campaign

    if target.endswith(".toml") or Path(target).is_file():
        config = load_campaign(target, overrides)
        if config.compare is not None:
            from bodisc.compare import comparison_root

            data = load_comparison(config, tracking_uri=tracking_uri)
            default = comparison_root(config) / "report"
        else:
            data = load_campaign_report(config, tracking_uri)
            default = config.path("store").parent / "report"
    elif len(target) >= 8 and all(c in "0123456789abcdef" for c in target.lower()):
        data = load_mlflow_run(target, tracking_uri)
        default = Path("runs") / "reports" / target
    else:
        raise ConfigError(target, "(target)", target,
                          "not a campaign file (.toml) nor an MLflow run id (hex)")
    data.mlflow_ui = mlflow_ui or data.mlflow_ui
    paths = build_report(data, out or default)
    if log_mlflow:
        log_report(data, paths, message)
    return paths
