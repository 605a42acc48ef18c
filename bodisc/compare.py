"""Comparing strategies: every strategy x seed of a ``[compare]`` table as its own campaign.

A comparison is a campaign file with a ``[compare]`` table::

    [compare]
    seeds = [1, 2, 3]
    parallel = 1                      # runs at once (each uses [execution] workers)

    [[compare.strategies]]
    name = "logei"
    acquisition = "logei"

    [[compare.strategies]]
    name = "xgp-ucb"
    acquisition = "ucb"
    surrogate = "xgp"                 # optional: surrogate.kind
    batch_size = 5                    # optional: acquisition.batch_size

    [[compare.strategies]]
    name = "staged"
    acquisition = "ucb"
    warmup_batches = 2                # optional: acquisition.warmup_batches, beta and
    greedy_until = 0.5                # greedy_until likewise

Each run is a full campaign with ``random_seed`` set to the seed, its own store in a
sub-directory of the comparison's folder (``[paths] store`` with ``{name}`` the comparison
name, e.g. ``runs/compare_dipole/logei-s1/store.sqlite``) and its own MLflow child run
under one parent run. Running the same command again resumes unfinished runs and skips
finished ones. With ``parallel`` above 1, each run is a worker process of this one (its
output in ``compare-run.log`` in its folder).

All runs share one :class:`~bodisc.runtime.cache.ResultCache` (``cache.sqlite`` in the
comparison's folder): an oracle result or a molecule's descriptors computed by one run are
reused by every other run with the same settings, so a molecule is computed once across
the comparison, while each run still records the call in its own store and counts it
against its own budget. The report (:mod:`bodisc.report`) builds on this module, not the
other way round.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bodisc.config import AcquisitionConfig, CampaignConfig, StrategyConfig
from bodisc.errors import BodiscError, ConfigError
from bodisc.runtime.cache import ResultCache

#: Strategy fields that, where given, replace the campaign's ``[acquisition]`` value: those
#: both models have (``name`` is the strategy's own; its ``acquisition`` sets the name).
ACQUISITION_OVERRIDES = tuple(f for f in StrategyConfig.model_fields
                              if f != "name" and f in AcquisitionConfig.model_fields)

# -- the comparison ---------------------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    """One strategy x seed of a comparison.

    Attributes:
        label: ``<strategy>-s<seed>``, the run's folder name.
        strategy: The strategy.
        seed: Its ``random_seed``.
        config: The run's own campaign configuration.
    """

    label: str
    strategy: StrategyConfig
    seed: int
    config: CampaignConfig


def comparison_root(config: CampaignConfig) -> Path:
    """The folder of a comparison: the folder of its ``[paths] store``."""
    return config.path("store").parent


def plan_runs(config: CampaignConfig, file: str = "") -> list[RunSpec]:
    """The runs of a comparison, strategy by strategy, seed by seed.

    Raises:
        ConfigError: If the file has no ``[compare]`` table, or a run's settings are
            not valid (the field is named as in the run's campaign).
    """
    from bodisc.config import _check_semantics

    if config.compare is None:
        raise ConfigError(file, "compare", None,
                          "a comparison needs a [compare] table with seeds and strategies")
    root = comparison_root(config)
    base = config.as_dict()
    base.pop("compare", None)
    runs = []
    for seed in config.compare.seeds:  # seed by seed: a partial comparison stays balanced
        for strategy in config.compare.strategies:
            label = f"{strategy.name}-s{seed}"
            data = json.loads(json.dumps(base))
            data["name"] = f"{config.name}.{label}"
            data["random_seed"] = seed
            data["acquisition"]["name"] = strategy.acquisition
            for key in ACQUISITION_OVERRIDES:
                if getattr(strategy, key) is not None:
                    data["acquisition"][key] = getattr(strategy, key)
            if strategy.surrogate is not None:
                data["surrogate"]["kind"] = strategy.surrogate
            data["paths"] = {"store": str(root / label / "store.sqlite"),
                             "export_csv": str(root / label / "results.csv"),
                             "mlruns": str(config.path("mlruns"))}
            child = CampaignConfig.model_validate(data)
            _check_semantics(f"{file} [{label}]", child)
            runs.append(RunSpec(label, strategy, seed, child))
    return runs


def run_tags(spec: RunSpec, parent_run_id: str | None) -> dict[str, str]:
    """MLflow tags of a run: what the UI's compare view groups and filters by."""
    tags = {"strategy": spec.strategy.name, "seed": str(spec.seed),
            "acquisition": spec.config.acquisition.name,
            "surrogate": spec.config.surrogate.kind, "bodisc.compare.label": spec.label}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    return tags


def run_params(spec: RunSpec) -> dict[str, Any]:
    """MLflow params of a run besides its campaign file."""
    return {"strategy": spec.strategy.name, "seed": spec.seed,
            "acquisition": spec.config.acquisition.name, "surrogate": spec.config.surrogate.kind}


def run_finished(spec: RunSpec) -> bool:
    """True when a run spent its budget, has no open iteration and was logged to MLflow."""
    from bodisc.store import CampaignStore

    path = spec.config.path("store")
    if not path.exists():
        return False
    store = CampaignStore(path, create=False)
    try:
        return (store.calls_used() >= spec.config.budget.oracle_calls
                and store.open_iteration() is None
                and all(r["logged"] for r in store.iterations())
                and store.get_meta("mlflow_run_id") is not None)
    finally:
        store.close()


@dataclass
class RunResult:
    """What one run of a comparison found (read from its store).

    Attributes:
        label: The run's folder name.
        strategy: Strategy name.
        seed: Random seed.
        calls: Oracle calls spent.
        best: Best value found (``None`` if nothing was labelled).
        best_smiles: The molecule with that value.
        top10_auc: PMO top-10 AUC over the budget.
        run_id: MLflow run id, if logged.
        points: With several objectives: the run's feasible labels in maximisation form
            ``(n, k)``, from which :func:`summary_table` computes every run's hypervolume
            with one reference point; ``None`` with one objective.
        reference: The objectives' given reference values (maximisation form, ``None``
            where not given), with several objectives.
    """

    label: str
    strategy: str
    seed: int
    calls: int
    best: float | None
    best_smiles: str | None
    top10_auc: float
    run_id: str | None
    points: Any = None
    reference: tuple[float | None, ...] = ()


def read_result(spec: RunSpec) -> RunResult | None:
    """The result of one run from its store (``None`` if it never started)."""
    from bodisc.metrics import top_k_auc
    from bodisc.store import CampaignStore

    path = spec.config.path("store")
    if not path.exists():
        return None
    store = CampaignStore(path, create=False)
    try:
        jobs = store.calls()
        run_id = store.get_meta("mlflow_run_id")
    finally:
        store.close()
    maximize = spec.config.objective.direction == "maximize"
    calls = [(j.inchikey, j.value if j.status == "done" else None) for j in jobs]
    done = [j for j in jobs if j.status == "done" and j.value is not None]
    best = (max if maximize else min)(done, key=lambda j: j.value) if done else None
    points, reference = None, ()
    if spec.config.multi_objective:
        from bodisc.loop.objectives import Objectives

        obj = Objectives(spec.config)
        Y, C, complete = obj.matrices(done)
        points = Y[complete & obj.feasible(C)]
        reference = tuple(None if o.reference is None else float(sgn * o.reference)
                          for o, sgn in zip(spec.config.objectives, obj.signs, strict=True))
    return RunResult(spec.label, spec.strategy.name, spec.seed, len(jobs),
                     None if best is None else float(best.value),
                     None if best is None else best.smiles,
                     top_k_auc(calls, spec.config.budget.oracle_calls, maximize), run_id,
                     points, reference)


def summary_table(results: Sequence[Any], maximize: bool = True) -> list[dict[str, Any]]:
    """Per strategy: mean and sd over seeds of the best value and of the top-10 AUC.

    Args:
        results: Objects with ``strategy``, ``best`` and ``top10_auc`` (e.g.
            :class:`RunResult`); runs without a value are left out.
        maximize: Whether larger values are better (for ``best_of_all``).

    Returns:
        One row per strategy (first-seen order): ``strategy``, ``runs``, ``best_mean``,
        ``best_std``, ``best_of_all``, ``auc_mean``, ``auc_std``; with several objectives
        also ``hv_mean`` and ``hv_std``, the hypervolume of each run's feasible labels
        with one reference point for all runs (the objectives' ``reference`` values,
        else inferred from every run's labels together, botorch's rule).
    """
    volumes = _hypervolumes(results)
    rows = []
    for name in dict.fromkeys(r.strategy for r in results):
        mine = [r for r in results if r.strategy == name and r.best is not None
                and r.best == r.best]
        best = np.array([r.best for r in mine], dtype=float)
        auc = np.array([r.top10_auc for r in mine], dtype=float)
        rows.append({"strategy": name, "runs": len(mine),
                     "best_mean": float(best.mean()) if len(best) else float("nan"),
                     "best_std": float(best.std(ddof=1)) if len(best) > 1 else 0.0,
                     "best_of_all": (float(best.max() if maximize else best.min())
                                     if len(best) else float("nan")),
                     "auc_mean": float(auc.mean()) if len(auc) else float("nan"),
                     "auc_std": float(auc.std(ddof=1)) if len(auc) > 1 else 0.0})
        if volumes:
            hv = np.array([volumes[id(r)] for r in results if r.strategy == name
                           and id(r) in volumes], dtype=float)
            rows[-1].update({"hv_mean": float(hv.mean()) if len(hv) else float("nan"),
                             "hv_std": float(hv.std(ddof=1)) if len(hv) > 1 else 0.0})
    return rows


def _hypervolumes(results: Sequence[Any]) -> dict[int, float]:
    """Each multi-objective run's hypervolume (by ``id``), with one shared reference."""
    from bodisc.pareto import hypervolume, reference_point

    runs = [r for r in results if getattr(r, "points", None) is not None]
    if not runs:
        return {}
    every = np.vstack([np.asarray(r.points, dtype=float).reshape(-1, len(r.reference))
                       for r in runs])
    try:
        ref = reference_point(every, list(runs[0].reference))
    except ValueError:  # no feasible label in any run
        return {id(r): 0.0 for r in runs}
    return {id(r): hypervolume(np.asarray(r.points, dtype=float).reshape(-1, len(ref)), ref)
            for r in runs}


#: Writes the report of a finished comparison and returns its files, which are logged to the
#: parent MLflow run under ``report/`` (e.g. :func:`bodisc.report.comparison_report`).
ReportWriter = Callable[["Comparison"], Sequence[Path]]


def run_spec(spec: RunSpec, config_file: str, root: Path, experiment: str,
             parent_run_id: str | None, tracking_uri: str | None = None,
             reporter: Any = None) -> None:
    """Run (or resume) one strategy x seed in this process, through the comparison's cache.

    Args:
        spec: The run.
        config_file: The comparison's file (for messages).
        root: The comparison's folder (its ``cache.sqlite`` is shared by all runs).
        experiment: The MLflow experiment of the comparison.
        parent_run_id: The comparison's MLflow parent run.
        tracking_uri: MLflow tracking URI overriding ``[paths] mlruns``.
        reporter: The campaign's progress reporter.
    """
    from bodisc.campaign import Campaign

    cache = ResultCache(root / "cache.sqlite")
    try:
        Campaign(spec.config, config_file, reporter, tracking_uri=tracking_uri,
                 experiment=experiment, run_tags=run_tags(spec, parent_run_id),
                 run_params=run_params(spec), cache=cache).run()
    finally:
        cache.close()


def _init_run_process(parent_pid: int) -> None:
    """First thing in a run's process: die with the comparison's process (Linux)."""
    from bodisc.execution.local import _die_with_parent

    _die_with_parent(parent_pid)


def _run_logged(spec: RunSpec, config_file: str, root: Path, experiment: str,
                parent_run_id: str | None, tracking_uri: str | None) -> str | None:
    """One run in its own process, its output appended to ``<run folder>/compare-run.log``.

    The process's standard output and error (those of native code too) go to the log; the
    campaign's messages are written there one line each.

    Returns:
        ``None`` when the run finished, otherwise why it stopped (one line).
    """
    from bodisc.campaign import Reporter

    class LogReporter(Reporter):
        def message(self, text: str) -> None:
            print(text, flush=True)

    log = root / spec.label / "compare-run.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    with open(log, "ab") as fh:
        saved = os.dup(1), os.dup(2)
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            run_spec(spec, config_file, root, experiment, parent_run_id, tracking_uri,
                     LogReporter())
            return None
        except BodiscError as exc:
            print(f"bodisc: error: {exc}", file=sys.stderr, flush=True)
            return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - reported as this run's failure
            traceback.print_exc()
            sys.stderr.flush()
            return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)


class Comparison:
    """A comparison bound to its folder, cache and MLflow parent run.

    Args:
        config: The validated campaign file with its ``[compare]`` table.
        config_file: The file it came from.
        tracking_uri: MLflow tracking URI overriding ``[paths] mlruns``.
        message: Receives one-line messages.
    """

    #: Seconds the runs of an interrupted parallel comparison get to stop on their own.
    stop_grace_s = 30.0

    def __init__(self, config: CampaignConfig, config_file: str,
                 tracking_uri: str | None = None,
                 message: Callable[[str], None] = print) -> None:
        self.config = config
        self.config_file = config_file
        self.tracking_uri = tracking_uri
        self.message = message
        self.runs = plan_runs(config, config_file)
        self.root = comparison_root(config)
        self.state_file = self.root / "compare.json"
        self.parent_run_id: str | None = None
        self.parent_experiment_id: str | None = None
        self.parent_uri: str | None = None

    def links(self) -> tuple[str, str] | None:
        """UI addresses of the parent run's charts and of its runs table, once logged."""
        from bodisc.tracking.mlflow_tracker import experiment_link, run_link

        if not (self.parent_run_id and self.parent_experiment_id and self.parent_uri):
            return None
        return (run_link(self.parent_uri, self.parent_experiment_id, self.parent_run_id),
                experiment_link(self.parent_uri, self.parent_experiment_id,
                                self.parent_run_id))

    # -- the parent run ----------------------------------------------------------------
    def _parent_tracker(self) -> Any:
        from bodisc.loop.records import runs_table_columns
        from bodisc.tracking.mlflow_tracker import Tracker, flatten, shared_view

        cfg = self.config
        tracker = Tracker(cfg.path("mlruns"), cfg.name, self.message, uri=self.tracking_uri)
        state = self._state()
        assert cfg.compare is not None
        params = flatten({k: v for k, v in cfg.as_dict().items() if k != "compare"})
        params.update({"compare.seeds": list(cfg.compare.seeds),
                       "compare.strategies": ", ".join(
                           f"{s.name}={s.acquisition}/{s.surrogate or cfg.surrogate.kind}"
                           f"/q{s.batch_size or cfg.acquisition.batch_size}"
                           for s in cfg.compare.strategies)})
        strategies = ", ".join(s.name for s in cfg.compare.strategies)
        note = (f"**{cfg.name}**: comparison of {strategies} on seeds "
                f"{', '.join(map(str, cfg.compare.seeds))}, {cfg.objective.direction} "
                f"{cfg.objective.property}, {cfg.budget.oracle_calls} calls per run. "
                f"The child runs are below this run in the runs table.")
        run_id = tracker.start(state.get("parent_run_id"),
                               run_name=f"{cfg.name}: comparison of {strategies}",
                               params=params,
                               tags={"bodisc.compare": cfg.name,
                                     "bodisc.compare.root": str(self.root),
                                     "bodisc.compare.file": str(Path(self.config_file)
                                                                .resolve()),
                                     "mlflow.note.content": note},
                               view=shared_view(*runs_table_columns(cfg)))
        if run_id is not None:
            tracker.log_artifact(Path(self.config_file))
        if run_id and run_id != state.get("parent_run_id"):
            self._save_state({**state, "parent_run_id": run_id})
        return tracker

    def _state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return {}

    def _save_state(self, state: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        tmp.replace(self.state_file)

    # -- running -----------------------------------------------------------------------
    def run_one(self, spec: RunSpec, reporter: Any = None) -> None:
        """Run (or resume) one strategy x seed in this process, through the shared cache."""
        run_spec(spec, self.config_file, self.root, self.config.name,
                 self._state().get("parent_run_id"), self.tracking_uri, reporter)

    def run(self, reporter_for: Callable[[str], Any] = lambda label: None,
            parallel: int | None = None, report: ReportWriter | None = None
            ) -> list[RunResult]:
        """Run every unfinished run, then write the summary (and the report).

        Args:
            reporter_for: Makes the progress reporter of a run from its label (runs in
                this process only; parallel runs write their messages to their logs).
            parallel: Runs at once (default: ``[compare] parallel``); above 1 each run is a
                worker process of its own, its output in ``<run folder>/compare-run.log``.
            report: Writes the report at the end (its files are logged to the parent run);
                ``None``: no report.

        Returns:
            The result of every run that started.

        Raises:
            BodiscError: If a run failed (after the others ran and the summary was written).
        """
        assert self.config.compare is not None
        parent = self._parent_tracker()
        ResultCache(self.root / "cache.sqlite").close()  # made once, before runs share it
        todo = [s for s in self.runs if not run_finished(s)]
        for spec in self.runs:
            if spec not in todo:
                self.message(f"{spec.label}: finished, skipped")
        n_parallel = parallel or self.config.compare.parallel
        status = "FAILED"
        failed: list[str] = []
        try:
            if n_parallel <= 1:
                for i, spec in enumerate(todo, 1):
                    self.message(f"run {i}/{len(todo)}: {spec.label}")
                    self.run_one(spec, reporter_for(spec.label))
            else:
                failed = self._run_parallel(todo, n_parallel)
            status = "FINISHED"
        finally:
            if status != "FINISHED":
                parent.end("KILLED")
        results = [r for r in (read_result(s) for s in self.runs) if r is not None]
        self._finish(parent, results, report)
        if failed:
            raise BodiscError(f"{len(failed)} run(s) failed: {'; '.join(failed)}; run the same "
                              f"command to continue them")
        return results

    def _run_parallel(self, todo: Sequence[RunSpec], n_parallel: int) -> list[str]:
        """Up to ``n_parallel`` runs at once, each in a worker process; returns the failures.

        Every run gets a ``spawn``-ed process of its own (a pool of one), as a separate
        command would: no state is shared between runs, and a run whose process dies costs
        that run alone.
        """
        from concurrent.futures.process import BrokenProcessPool

        context = mp.get_context("spawn")
        parent_run_id = self._state().get("parent_run_id")
        waiting = list(todo)
        running: dict[Future[str | None], tuple[RunSpec, ProcessPoolExecutor]] = {}
        ended: dict[str, str | None] = {}  # label -> None (done) or why it failed
        failed: list[str] = []
        told = 0  # runs reported so far, in the order of todo
        try:
            while waiting or running:
                while waiting and len(running) < n_parallel:
                    spec = waiting.pop(0)
                    pool = ProcessPoolExecutor(1, mp_context=context,
                                               initializer=_init_run_process,
                                               initargs=(os.getpid(),))
                    future = pool.submit(_run_logged, spec, self.config_file, self.root,
                                         self.config.name, parent_run_id, self.tracking_uri)
                    running[future] = (spec, pool)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    spec, pool = running.pop(future)
                    pool.shutdown()
                    try:
                        ended[spec.label] = future.result()
                    except BrokenProcessPool:
                        ended[spec.label] = "its process died (a crash, or out of memory)"
                while told < len(todo) and todo[told].label in ended:
                    label = todo[told].label
                    told += 1
                    if ended[label] is None:
                        self.message(f"{label}: done")
                        continue
                    log = self.root / label / "compare-run.log"
                    failed.append(f"{label} ({ended[label]}; log {log})")
                    self.message(f"{label}: {failed[-1]}")
        finally:
            self._stop([pool for _, pool in running.values()])
        return failed

    def _stop(self, pools: Sequence[ProcessPoolExecutor]) -> None:
        """Stop the runs' processes after an interrupt: a grace period, then SIGTERM.

        The runs got the terminal's SIGINT as well and normally stop on their own within
        seconds; what a run committed stays in its store either way.
        """
        processes = [p for pool in pools for p in getattr(pool, "_processes", {}).values()]
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + self.stop_grace_s
        for proc in processes:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in processes:
            if proc.is_alive():
                proc.terminate()
                proc.join(5.0)

    def _finish(self, parent: Any, results: list[RunResult], report: ReportWriter | None
                ) -> None:
        import pandas as pd

        table = summary_table(results, self.config.objective.direction == "maximize")
        self.root.mkdir(parents=True, exist_ok=True)
        runs_csv = self.root / "runs.csv"
        pd.DataFrame([r.__dict__ for r in results]).to_csv(runs_csv, index=False)
        summary_csv = self.root / "summary.csv"
        pd.DataFrame(table).to_csv(summary_csv, index=False)
        metrics = {f"final/{row['strategy']}.{k}": row[k] for row in table
                   for k in ("best_mean", "best_std", "auc_mean", "auc_std")}
        calls = sum(r.calls for r in results)
        # once per finished comparison: a restart with nothing new logs nothing twice
        if self._state().get("final_logged_calls") != calls and parent.log_metrics(metrics,
                                                                                  step=calls):
            self._save_state({**self._state(), "final_logged_calls": calls})
        parent.log_artifact(runs_csv)
        parent.log_artifact(summary_csv)
        if report:
            paths = list(report(self))
            for path in paths:
                parent.log_artifact(path, "report")
            pages = [p for p in paths if Path(p).suffix == ".html"]
            if pages:
                self.message(f"report: {pages[0]}")
        parent.end("FINISHED")
        self.parent_run_id = parent.run_id
        self.parent_experiment_id = parent.experiment_id
        self.parent_uri = parent.uri


def format_table(rows: Sequence[Mapping[str, Any]], unit: str = "") -> str:
    """The summary as a Markdown table (mean +- standard deviation over seeds)."""
    u = f" / {unit}" if unit else ""
    several = any("hv_mean" in r for r in rows)
    lines = [f"| strategy | runs | best{u} (mean +- sd) | best{u} (of all) | top-10 AUC{u} "
             f"(mean +- sd) |" + (" hypervolume (mean +- sd) |" if several else ""),
             "| --- | ---: | ---: | ---: | ---: |" + (" ---: |" if several else "")]
    for r in rows:
        line = (f"| {r['strategy']} | {r['runs']} | {r['best_mean']:.2f} +- "
                f"{r['best_std']:.2f} | {r['best_of_all']:.2f} | {r['auc_mean']:.2f} +- "
                f"{r['auc_std']:.2f} |")
        if several:
            line += f" {r.get('hv_mean', float('nan')):.4g} +- {r.get('hv_std', 0.0):.2g} |"
        lines.append(line)
    return "\n".join(lines)
