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
finished ones.

All runs share one :class:`ResultCache` (``cache.sqlite`` in the comparison's folder):
an oracle result or a molecule's descriptors computed by one run are reused by every other
run with the same settings, so a molecule is computed once across the comparison, while
each run still records the call in its own store and counts it against its own budget.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bodisc.config import AcquisitionConfig, CampaignConfig, StrategyConfig
from bodisc.errors import BodiscError, ConfigError, StoreError

#: Strategy fields that, where given, replace the campaign's ``[acquisition]`` value: those
#: both models have (``name`` is the strategy's own; its ``acquisition`` sets the name).
ACQUISITION_OVERRIDES = tuple(f for f in StrategyConfig.model_fields
                              if f != "name" and f in AcquisitionConfig.model_fields)

_CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    kind TEXT NOT NULL,
    settings TEXT NOT NULL,
    molecule TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('claimed', 'done')),
    payload BLOB,
    owner TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (kind, settings, molecule)
)
"""


class ResultCache:
    """Oracle results and descriptors shared by the campaigns of a comparison (SQLite, WAL).

    Rows are keyed by ``(kind, settings, molecule)``: the kind of work (``oracle`` or
    ``descriptors``), its settings (oracle name and options; descriptor set, which encodes
    the tier and recipe settings) and the molecule's InChIKey. A process about to compute a
    molecule first *claims* it; a process that finds a claim of another live process waits
    for that result instead of computing it again. Claims of dead processes are taken over.

    Args:
        path: The cache file; its folder is created.
        poll_s: How often to look for results another process is computing.
        stale_s: A claim not refreshed for this long (another host) counts as abandoned.

    Attributes:
        computed: Work items this process computed, per kind.
        reused: Work items this process took from the cache, per kind.
    """

    def __init__(self, path: str | Path, poll_s: float = 0.5, stale_s: float = 3600.0) -> None:
        self.path = Path(path)
        self.poll_s = poll_s
        self.stale_s = stale_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.computed: dict[str, int] = {}
        self.reused: dict[str, int] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_CACHE_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the result cache ({exc})") from None

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    # -- rows -------------------------------------------------------------------------
    def lookup(self, kind: str, settings: str, molecules: Sequence[str]
               ) -> dict[str, tuple[Any, str | None, float]]:
        """Finished results: ``molecule -> (value, failure, seconds)``."""
        out: dict[str, tuple[Any, str | None, float]] = {}
        items = list(molecules)
        for i in range(0, len(items), 500):
            chunk = items[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for mol, payload in self._db.execute(
                f"SELECT molecule, payload FROM results WHERE kind = ? AND settings = ? AND "
                f"status = 'done' AND molecule IN ({marks})", [kind, settings, *chunk]
            ):
                out[mol] = pickle.loads(payload)
        return out

    def put(self, kind: str, settings: str, molecule: str, value: Any, failure: str | None,
            seconds: float) -> None:
        """Store one finished result (the value must pickle)."""
        payload = pickle.dumps((value, failure, seconds), protocol=pickle.HIGHEST_PROTOCOL)
        self._write(
            "INSERT INTO results VALUES (?, ?, ?, 'done', ?, ?, ?) ON CONFLICT"
            "(kind, settings, molecule) DO UPDATE SET status = 'done', payload = excluded."
            "payload, owner = excluded.owner, updated_at = excluded.updated_at",
            (kind, settings, molecule, payload, self.owner, time.time()),
        )

    def claim(self, kind: str, settings: str, molecules: Sequence[str]) -> set[str]:
        """Claim the molecules nobody is computing; returns those this process now holds."""
        mine: set[str] = set()
        now = time.time()
        self._write("BEGIN IMMEDIATE")
        try:
            for mol in molecules:
                row = self._db.execute(
                    "SELECT status, owner, updated_at FROM results WHERE kind = ? AND "
                    "settings = ? AND molecule = ?", (kind, settings, mol)).fetchone()
                if row is not None and (row[0] == "done" or (
                        row[1] != self.owner and self._alive(row[1], row[2], now))):
                    continue
                self._db.execute(
                    "INSERT OR REPLACE INTO results VALUES (?, ?, ?, 'claimed', NULL, ?, ?)",
                    (kind, settings, mol, self.owner, now))
                mine.add(mol)
            self._db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise
        return mine

    def _alive(self, owner: str, updated_at: float, now: float) -> bool:
        host, _, pid = owner.rpartition(":")
        if host != socket.gethostname():
            return now - updated_at < self.stale_s
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, ValueError):
            return True
        return True

    def _write(self, sql: str, args: Sequence[Any] = ()) -> None:
        try:
            self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot write the result cache ({exc})") from None

    def counts(self) -> dict[str, int]:
        """Finished results in the cache, per kind."""
        return dict(self._db.execute(
            "SELECT kind, COUNT(*) FROM results WHERE status = 'done' GROUP BY kind"))

    # -- running work through the cache ----------------------------------------------
    def run(self, kind: str, settings: str, executor: Any, fn: Callable[..., Any],
            tasks: Sequence[tuple[Any, tuple[Any, ...]]], molecule_of: Mapping[Any, str],
            timeout_s: float) -> Iterator[Any]:
        """Like ``executor.run(fn, tasks, timeout_s)``, computing each molecule only once.

        Args:
            kind: ``oracle`` or ``descriptors``.
            settings: Everything besides the molecule that decides the result.
            executor: A :class:`~bodisc.execution.LocalExecutor` (or one like it).
            fn: The task function.
            tasks: ``(task key, args)`` pairs.
            molecule_of: The molecule key of each task key.
            timeout_s: Time limit of one task.

        Yields:
            One :class:`~bodisc.execution.local.TaskOutcome` per task (cached ones first).
        """
        from bodisc.execution.local import TaskOutcome

        todo = {key: args for key, args in tasks}
        while todo:
            found = self.lookup(kind, settings, [molecule_of[k] for k in todo])
            for key in [k for k in todo if molecule_of[k] in found]:
                value, failure, seconds = found[molecule_of[key]]
                del todo[key]
                self.reused[kind] = self.reused.get(kind, 0) + 1
                yield TaskOutcome(key, value, failure, seconds)
            if not todo:
                return
            mine = self.claim(kind, settings, [molecule_of[k] for k in todo])
            if not mine:
                time.sleep(self.poll_s)  # others are computing them: wait for their results
                continue
            batch = [(k, todo[k]) for k in todo if molecule_of[k] in mine]
            for out in executor.run(fn, batch, timeout_s):
                self.put(kind, settings, molecule_of[out.key], out.value, out.failure,
                         out.seconds)
                self.computed[kind] = self.computed.get(kind, 0) + 1
                del todo[out.key]
                yield out


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
    """

    label: str
    strategy: str
    seed: int
    calls: int
    best: float | None
    best_smiles: str | None
    top10_auc: float
    run_id: str | None


def read_result(spec: RunSpec) -> RunResult | None:
    """The result of one run from its store (``None`` if it never started)."""
    from bodisc.metrics import top_k_auc
    from bodisc.store import CampaignStore

    path = spec.config.path("store")
    if not path.exists():
        return None
    store = CampaignStore(path, create=False)
    try:
        jobs = store.jobs()
        run_id = store.get_meta("mlflow_run_id")
    finally:
        store.close()
    maximize = spec.config.objective.direction == "maximize"
    calls = [(j.inchikey, j.value if j.status == "done" else None) for j in jobs]
    done = [j for j in jobs if j.status == "done" and j.value is not None]
    best = (max if maximize else min)(done, key=lambda j: j.value) if done else None
    return RunResult(spec.label, spec.strategy.name, spec.seed, len(jobs),
                     None if best is None else float(best.value),
                     None if best is None else best.smiles,
                     top_k_auc(calls, spec.config.budget.oracle_calls, maximize), run_id)


def summary_table(results: Sequence[Any], maximize: bool = True) -> list[dict[str, Any]]:
    """Per strategy: mean and sd over seeds of the best value and of the top-10 AUC.

    Args:
        results: Objects with ``strategy``, ``best`` and ``top10_auc`` (e.g.
            :class:`RunResult`); runs without a value are left out.
        maximize: Whether larger values are better (for ``best_of_all``).

    Returns:
        One row per strategy (first-seen order): ``strategy``, ``runs``, ``best_mean``,
        ``best_std``, ``best_of_all``, ``auc_mean``, ``auc_std``.
    """
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
    return rows


class Comparison:
    """A comparison bound to its folder, cache and MLflow parent run.

    Args:
        config: The validated campaign file with its ``[compare]`` table.
        config_file: The file it came from.
        tracking_uri: MLflow tracking URI overriding ``[paths] mlruns``.
        overrides: The ``--set`` overrides (passed on to parallel runs).
        message: Receives one-line messages.
    """

    def __init__(self, config: CampaignConfig, config_file: str,
                 tracking_uri: str | None = None, overrides: Sequence[str] = (),
                 message: Callable[[str], None] = print) -> None:
        self.config = config
        self.config_file = config_file
        self.tracking_uri = tracking_uri
        self.overrides = list(overrides)
        self.message = message
        self.runs = plan_runs(config, config_file)
        self.root = comparison_root(config)
        self.state_file = self.root / "compare.json"

    # -- the parent run ----------------------------------------------------------------
    def _parent_tracker(self) -> Any:
        from bodisc.tracking.mlflow_tracker import Tracker, flatten

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
        run_id = tracker.start(state.get("parent_run_id"), run_name=f"{cfg.name} (comparison)",
                               params=params,
                               tags={"bodisc.compare": cfg.name,
                                     "bodisc.compare.root": str(self.root),
                                     "bodisc.compare.file": str(Path(self.config_file)
                                                                .resolve())})
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
        from bodisc.campaign import Campaign

        parent = self._state().get("parent_run_id")
        cache = ResultCache(self.root / "cache.sqlite")
        try:
            Campaign(spec.config, self.config_file, reporter, tracking_uri=self.tracking_uri,
                     experiment=self.config.name, run_tags=run_tags(spec, parent),
                     run_params=run_params(spec), cache=cache).run()
        finally:
            cache.close()

    def run(self, reporter_for: Callable[[str], Any] = lambda label: None,
            only: str | None = None, parallel: int | None = None,
            report: bool = True) -> list[RunResult]:
        """Run every unfinished run, then write the summary (and the report).

        Args:
            reporter_for: Makes the progress reporter of a run from its label.
            only: Run just this label (used by the parallel runner's worker processes).
            parallel: Runs at once (default: ``[compare] parallel``); above 1 each run is a
                separate ``bodisc compare --only`` process.
            report: Write the report and log it to the parent run at the end.

        Returns:
            The result of every run that started.
        """
        assert self.config.compare is not None
        if only is not None:
            specs = [s for s in self.runs if s.label == only]
            if not specs:
                raise ConfigError(self.config_file, "--only", only,
                                  f"choose one of: {', '.join(s.label for s in self.runs)}")
            self.run_one(specs[0], reporter_for(only))
            return [r for r in (read_result(s) for s in specs) if r is not None]
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
        """Each run in its own ``bodisc compare --only`` process; returns the failures."""
        base = [sys.executable, "-m", "bodisc.cli", "compare", self.config_file, "--quiet"]
        for item in self.overrides:
            base += ["--set", item]
        if self.tracking_uri:
            base += ["--tracking-uri", self.tracking_uri]

        def one(spec: RunSpec) -> tuple[str, int, str]:
            log = self.root / spec.label / "compare-run.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a") as fh:
                proc = subprocess.run(base + ["--only", spec.label], stdout=fh,
                                      stderr=subprocess.STDOUT, check=False)
            return spec.label, proc.returncode, str(log)

        failed = []
        with ThreadPoolExecutor(max_workers=n_parallel) as pool:
            for label, code, log in pool.map(one, todo):
                if code == 0:
                    self.message(f"{label}: done")
                    continue
                lines = Path(log).read_text(errors="replace").strip().splitlines()
                failed.append(f"{label} (exit status {code}: {lines[-1] if lines else ''}; "
                              f"log {log})")
                self.message(f"{label}: {failed[-1]}")
        return failed

    def _finish(self, parent: Any, results: list[RunResult], report: bool) -> None:
        import pandas as pd

        table = summary_table(results, self.config.objective.direction == "maximize")
        self.root.mkdir(parents=True, exist_ok=True)
        runs_csv = self.root / "runs.csv"
        pd.DataFrame([r.__dict__ for r in results]).to_csv(runs_csv, index=False)
        summary_csv = self.root / "summary.csv"
        pd.DataFrame(table).to_csv(summary_csv, index=False)
        metrics = {f"{row['strategy']}.{k}": row[k] for row in table
                   for k in ("best_mean", "best_std", "auc_mean", "auc_std")}
        parent.log_metrics(metrics, step=0)
        parent.log_artifact(runs_csv)
        parent.log_artifact(summary_csv)
        if report:
            from bodisc.report import build_report, load_comparison

            paths = build_report(load_comparison(self.config, self.runs),
                                 self.root / "report")
            for path in paths:
                parent.log_artifact(path, "report")
            self.message(f"report: {self.root / 'report' / 'report.html'}")
        parent.end("FINISHED")
        self.parent_run_id = parent.run_id


def format_table(rows: Sequence[Mapping[str, Any]], unit: str = "") -> str:
    """The summary as a Markdown table (mean +- standard deviation over seeds)."""
    u = f" / {unit}" if unit else ""
    lines = [f"| strategy | runs | best{u} (mean +- sd) | best{u} (of all) | top-10 AUC{u} "
             f"(mean +- sd) |", "| --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['strategy']} | {r['runs']} | {r['best_mean']:.2f} +- "
                     f"{r['best_std']:.2f} | {r['best_of_all']:.2f} | {r['auc_mean']:.2f} +- "
                     f"{r['auc_std']:.2f} |")
    return "\n".join(lines)
