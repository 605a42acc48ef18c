"""The campaign: the one stateful object, with ``ask`` / ``tell`` / ``run`` as its face.

A :class:`Campaign` owns the lock, the store, the executor and the MLflow tracker; the
loop's work is done by :mod:`bodisc.loop` (the pure step, the refit schedule,
featurisation, diagnostics). One iteration: :meth:`Campaign.ask` chooses parents,
generates candidates, featurises them, fits the surrogate, picks a batch and records it
as pending oracle jobs; :meth:`Campaign.tell` commits labels or failures; :meth:`run`
is ask, evaluate with the configured oracle in worker processes (committing each result
as it lands), tell, until the budget is spent.

Iteration 0 labels the seed molecules. Every random choice of iteration ``i`` comes from
generators seeded by ``(random_seed, i)``, and everything an iteration reads is what the
store held when it began, so a campaign killed at any point and resumed makes exactly the
choices an uninterrupted run makes:

* killed before its batch was recorded, an iteration is redone from the start (the
  descriptors it computed are cached);
* killed after, only the jobs still ``pending`` are run again.

In asynchronous mode (``[execution] mode = "async"``) an iteration proposes one molecule
per free worker, so its choices also depend on the order results arrived; the store keeps
that order (see :meth:`Campaign._run_async` and ``docs/async.md``).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bodisc.config import UNSAFE_TO_CHANGE, CampaignConfig, dotted_get
from bodisc.errors import BodiscError, StoreError, TellError
from bodisc.failpoints import failpoint
from bodisc.loop import diagnostics, records
from bodisc.loop.candidates import cheap_only, generate, seed_records
from bodisc.loop.features import Featuriser
from bodisc.loop.objectives import Objectives
from bodisc.loop.outcomes import Outcome, Proposal, check_outcome
from bodisc.loop.refit import FitState, SurrogateSettings
from bodisc.loop.step import Batch, choose_batch, choose_fidelity_batch
from bodisc.store import TARGET, CampaignStore, Job, NewJob

_INCHIKEY = re.compile(r"^[A-Z]{14}-[A-Z]{10}-[A-Z]$")


class Reporter:
    """Receives progress; the CLI draws it with rich. The base class is silent."""

    def begin(self, budget: int, used: int, best: float | None) -> None:
        """The campaign starts (or resumes) with ``used`` calls of ``budget`` spent."""

    def phase(self, iteration: int, phase: str) -> None:
        """An iteration enters a phase (generate, descriptors, fit, acquire, oracle)."""

    def progress(self, iteration: int, used: int, best: float | None) -> None:
        """An oracle result was committed."""

    def message(self, text: str) -> None:
        """Something the user should read (one line)."""

    def end(self) -> None:
        """The campaign stops."""


@dataclass
class Summary:
    """What a finished (or stopped) campaign run reports.

    Attributes:
        best: Rows ``(smiles, value, iteration)`` of the best molecules, best first.
        calls_used: Oracle calls spent.
        failures: Oracle calls that failed.
        store: Path of the campaign store.
        csv: Path of the exported results.
        run_id: MLflow run id (``None`` if tracking was unavailable).
        stop_reason: Why the loop stopped.
        iterations: Iterations in the store.
        run_link: Web address of the MLflow run's charts (``None`` without a run).
        molecules_link: Web address of the run's ``best_molecules.png`` in MLflow.
        front: With several objectives: the feasible non-dominated molecules, rows
            ``(smiles, {property: value}, iteration)``, best first by the first objective.
        hypervolume: Their hypervolume (the campaign's reference point), or ``None``.
    """

    best: list[tuple[str, float, int]]
    calls_used: int
    failures: int
    store: Path
    csv: Path
    run_id: str | None
    stop_reason: str
    iterations: int = 0
    run_link: str | None = None
    molecules_link: str | None = None
    front: list[tuple[str, dict[str, float], int]] = field(default_factory=list)
    hypervolume: float | None = None


def iteration_rngs(seed: int, iteration: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The generator and acquisition RNGs of one iteration, from ``(seed, iteration)``."""
    gen_seq, acq_seq = np.random.SeedSequence([seed, iteration]).spawn(2)
    return np.random.default_rng(gen_seq), np.random.default_rng(acq_seq)


def _with_defaults(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored config with the fields added since it was written, at their defaults.

    A store made before a field existed (``objectives``, an objective's ``reference``)
    then compares equal to today's reading of the same file. A stored config that no
    longer validates is compared as it is.
    """
    try:
        return CampaignConfig.model_validate(stored).as_dict()
    except Exception:  # noqa: BLE001 - compared as stored; the caller names what changed
        return stored


def discard_store(config: CampaignConfig) -> str | None:
    """Delete a campaign's store; returns a description of what was discarded.

    Raises:
        StoreError: If the campaign is running.
    """
    from bodisc.lock import CampaignLock

    path = config.path("store")
    if not path.exists():
        return None
    with CampaignLock(path):
        store = CampaignStore(path, create=False)
        try:
            n_jobs = store.calls_used()
            n_iter = len(store.iterations())
        finally:
            store.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    return f"{path}: {n_jobs} oracle calls in {n_iter} iterations"


class Campaign:
    """A campaign bound to its store, executor and tracker.

    Use it as a context manager, or call :meth:`close` when done: :meth:`ask` and
    :meth:`tell` open the store (taking the campaign's lock) on first use; :meth:`run`
    opens and closes it itself when it is not open already.

    Args:
        config: The validated campaign.
        config_file: The file it came from (for messages).
        reporter: Progress sink.
        tracking_uri: Overrides the MLflow store from ``[paths] mlruns``.
        experiment: MLflow experiment (default: the campaign name); a comparison puts
            all its runs in its own.
        run_tags: Further MLflow tags of the run (e.g. ``mlflow.parentRunId``).
        run_params: Further MLflow params of the run.
        cache: A shared result cache (:class:`bodisc.runtime.cache.ResultCache`): oracle
            results and descriptors computed by any campaign sharing it are reused,
            never recomputed; each campaign still records (and pays for) its own calls.
        tracking: Log to MLflow (``False``: the store alone; iterations not logged are
            sent by the next run that tracks).
        features: The featuriser (default: the campaign's QMex descriptors,
            :class:`~bodisc.loop.features.Featuriser`); tests pass a cheaper one.
    """

    def __init__(self, config: CampaignConfig, config_file: str = "",
                 reporter: Reporter | None = None, tracking_uri: str | None = None,
                 experiment: str | None = None, run_tags: dict[str, str] | None = None,
                 run_params: dict[str, Any] | None = None, cache: Any = None,
                 tracking: bool = True, features: Featuriser | None = None) -> None:
        self.config = config
        self.config_file = config_file
        self.reporter = reporter or Reporter()
        self.tracking_uri = tracking_uri
        self.experiment = experiment or config.name
        self.run_tags = dict(run_tags or {})
        self.run_params = dict(run_params or {})
        self.cache = cache
        self.tracking = tracking
        self.sign = 1.0 if config.objective.direction == "maximize" else -1.0
        self.objectives = Objectives(config)
        self.features = features or Featuriser(config)
        self.oracle_options = json.dumps(config.oracle.options, sort_keys=True)
        # multi-fidelity ([fidelity]): the cheap oracle's options and the cost per call
        self.fidelity = config.fidelity
        self.costs: dict[str, float] = {}
        if config.fidelity is not None:
            from bodisc.acquisition.multifidelity import fidelity_costs

            self.cheap_options = json.dumps(config.fidelity.cheap_options, sort_keys=True)
            self.costs = fidelity_costs(config)
        self.store: CampaignStore | None = None
        self.tracker: Any = None
        self.changed_on_resume: list[str] = []
        self._resources: contextlib.ExitStack | None = None
        self._executor: Any = None
        self._descriptor_executor: Any = None

    # -- opening and closing ------------------------------------------------------------
    def open(self) -> Campaign:
        """Take the lock, open (or create) the store and start MLflow tracking.

        Raises:
            StoreError: If another process is running this campaign (the message names
                it), or the store cannot be used.
        """
        if self._resources is not None:
            return self
        from bodisc.lock import CampaignLock, describe
        from bodisc.tracking.mlflow_tracker import Tracker, flatten, shared_view

        cfg = self.config
        with contextlib.ExitStack() as stack:
            lock = stack.enter_context(CampaignLock(cfg.path("store")))
            if lock.previous:
                self.reporter.message(f"took over the lock left by a stopped run "
                                      f"({describe(lock.previous)})")
            self.store = store = self._open_store()
            stack.callback(self._close_store)
            self.tracker = Tracker(cfg.path("mlruns"), self.experiment, self.reporter.message,
                                   uri=self.tracking_uri)
            if self.tracking:
                run_id = self.tracker.start(
                    store.get_meta("mlflow_run_id"), run_name=self.run_name(),
                    params={**flatten(cfg.as_dict()), **self.run_params},
                    tags={"bodisc.campaign": cfg.name, "bodisc.store": str(cfg.path("store")),
                          "bodisc.acquisition": cfg.acquisition.name,
                          "mlflow.note.content": records.describe(cfg),
                          **self.resolved_settings(), **self.run_tags},
                    view=shared_view(*records.runs_table_columns(cfg)),
                )
                if run_id is not None and store.get_meta("mlflow_run_id") is None:
                    store.set_meta("mlflow_run_id", run_id)
                if run_id is not None and self.config_file:
                    self.tracker.log_artifact(Path(self.config_file))
                if self.changed_on_resume:
                    self.tracker.set_tags({f"bodisc.resumed.{int(time.time())}.changed":
                                           ", ".join(self.changed_on_resume)})
            for path in cfg.data.labelled:  # [data]: labels to start from (idempotent)
                plan = self.ingest(path, kind="import")
                if plan.labels:
                    self.reporter.message(f"{path}: imported {plan.summary()}")
            self._log_pending_iterations()
            self._resources = stack.pop_all()
        return self

    def run_name(self) -> str:
        """The MLflow run name: what ran (campaign, acquisition, surrogate, seed)."""
        cfg = self.config
        label = self.run_tags.get("bodisc.compare.label")  # strategy-s<seed>
        if label:
            return f"{label} ({cfg.acquisition.name}/{cfg.surrogate.kind})"
        return f"{cfg.name}: {cfg.acquisition.name}/{cfg.surrogate.kind}, seed {cfg.random_seed}"

    def resolved_settings(self) -> dict[str, str]:
        """What ``auto`` and default settings resolved to on this machine (MLflow tags).

        Tags, not params: a campaign resumed on another machine may resolve differently,
        and a tag can say so where a param cannot change.
        """
        cfg = self.config
        out = {"resolved.descriptors": ", ".join(self.features.names)}
        try:
            from bodisc.surrogates.gp import resolve_device, resolve_dtype

            device = resolve_device(cfg.surrogate.device)
            out["resolved.device"] = str(device)
            out["resolved.precision"] = str(resolve_dtype(cfg.surrogate.precision, device)
                                            ).removeprefix("torch.")
        except Exception as exc:  # noqa: BLE001 - the surrogate reports it when it runs
            out["resolved.device"] = f"unresolved ({type(exc).__name__})"
        return out

    def close(self, status: str = "FINISHED") -> None:
        """End the MLflow run with ``status``, stop the executor, close the store, unlock."""
        if self._resources is None:
            return
        resources, self._resources = self._resources, None
        try:
            if self.tracker is not None:
                self.tracker.end(status)
        finally:
            self._executor = self._descriptor_executor = None
            resources.close()

    def __enter__(self) -> Campaign:
        return self.open()

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close("FINISHED" if exc_type is None else
                   "KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")

    def _close_store(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    @property
    def executor(self) -> Any:
        """The oracle and descriptor executor (started on first use, stopped by close)."""
        if self._executor is None:
            from bodisc.execution.dask import make_executor

            assert self._resources is not None, "open the campaign first"
            self._executor = self._resources.enter_context(
                make_executor(self.config.execution))
        return self._executor

    @property
    def descriptor_executor(self) -> Any:
        """Where descriptors are computed: the executor, or in async mode a pool of its own.

        An asynchronous campaign chooses its next molecule while oracle jobs run in every
        worker; descriptor tasks sent to the same workers would wait behind those jobs
        (and a local pool's time limit would count the wait). So in async mode they run
        in a local pool of ``workers`` processes of their own, busy only while a proposal
        is being chosen.
        """
        if self.config.execution.mode != "async":
            return self.executor
        if self._descriptor_executor is None:
            from bodisc.execution.local import LocalExecutor

            assert self._resources is not None, "open the campaign first"
            ex = self.config.execution
            self._descriptor_executor = self._resources.enter_context(
                LocalExecutor(ex.workers, ex.worker_memory_gb))
        return self._descriptor_executor

    def _open_store(self) -> CampaignStore:
        store = CampaignStore(self.config.path("store"))
        stored = store.get_meta("config")
        current = self.config.as_dict()
        if stored is None:
            with store.transaction():
                store.set_meta("config", current)
                store.set_meta("campaign", self.config.name)
                store.set_meta("created_at", time.time())
            return store
        stored = _with_defaults(stored)
        changed_unsafe = [k for k in UNSAFE_TO_CHANGE
                          if dotted_get(stored, k) != dotted_get(current, k)]
        if changed_unsafe:
            store.close()
            raise StoreError(
                f"{self.config.path('store')}: the campaign file changed "
                f"{', '.join(changed_unsafe)} since this store was made; resuming would mix "
                f"incompatible results. Restore them, or start anew with --fresh"
            )
        changed_safe = sorted(k for k in current if stored.get(k) != current.get(k))
        self.changed_on_resume = changed_safe
        if changed_safe:
            self.reporter.message(f"campaign file changed {', '.join(changed_safe)}; "
                                  f"resuming with the new settings")
            with store.transaction():
                store.set_meta("config", current)
        return store

    def _store(self) -> CampaignStore:
        self.open()
        assert self.store is not None
        return self.store

    # -- ask and tell ------------------------------------------------------------------
    def ask(self, n: int | None = None) -> list[Proposal]:
        """Choose the next batch and record it as pending jobs (one iteration).

        The batch never holds a labelled, failed or pending molecule, and model-based
        strategies condition on the pending ones (kriging believer), so asking again
        before the labels are back is sound. The first ask of a campaign returns its
        seed molecules (all of them, within the budget), whatever ``n``.

        Args:
            n: Batch size (default ``[acquisition] batch_size``); at most the oracle calls
                left in ``[budget] oracle_calls``.

        Returns:
            The proposals, best first by the strategy's order; empty when the budget is
            spent or the generator found no new valid candidate.
        """
        store = self._store()
        it = store.next_iteration()
        if not self._start_iteration(it, n):
            return []
        return self.proposals(it)

    def proposals(self, iteration: int | None = None, pending_only: bool = False
                  ) -> list[Proposal]:
        """The proposals of one iteration (or of all), as :meth:`ask` returned them.

        Args:
            iteration: The iteration; ``None`` for every one.
            pending_only: Only those still waiting for a result.
        """
        store = self._store()
        rows = store.jobs("pending" if pending_only else None, iteration, fidelity=None)
        return [Proposal(j.smiles, j.inchikey, j.pred_mean, j.pred_std, j.acq_value,
                         j.iteration, j.fidelity, j.oracle) for j in rows]

    def tell(self, results: Iterable[Outcome] | Mapping[str, float]) -> int:
        """Commit labels or failures of pending jobs, all or none, exactly once.

        A result for a molecule that already has one is a no-op when it is identical
        (the same value, or the same failure reason) and refused otherwise: a label,
        once committed, is what the campaign learnt from, and replacing it would change
        the past. A result for a molecule the campaign never proposed is refused.

        Args:
            results: :class:`Outcome` items, or a mapping molecule (InChIKey or SMILES)
                -> label or :class:`~bodisc.oracle.OracleResult`.

        Returns:
            How many results were newly committed.

        Raises:
            TellError: For a result that cannot be taken (nothing is committed then).
        """
        store = self._store()
        items = ([Outcome.of(k, v) for k, v in results.items()]
                 if isinstance(results, Mapping) else list(results))
        jobs = {(j.inchikey, j.fidelity): j for j in store.jobs(fidelity=None)}
        todo: dict[int, Outcome] = {}
        rows: dict[int, tuple[Any, ...]] = {}
        for k, out in enumerate(items):
            job = jobs.get((self._inchikey(out.molecule, k), out.fidelity))
            check_outcome(out, job, todo.get(job.id) if job else None, k)
            assert job is not None
            if job.status != "pending":
                continue
            todo[job.id] = out
            value = None if out.value is None else float(out.value)
            failure, props = out.failure, dict(out.properties or {}) or None
            if out.fidelity == TARGET and out.failure is None:  # every modelled property
                value, failure, props = self.objectives.label(value, None, out.properties)
                if failure is not None:
                    raise TellError(f"result {k} ({out.molecule}): {failure}; this campaign "
                                    f"models {', '.join(self.objectives.modelled)}")
            rows[job.id] = (job.id, value, failure, float(out.seconds),
                            dict(out.extras or {}), props)
        if not todo:
            return 0
        store.finish_jobs(list(rows.values()))
        by_id = {j.id: j for j in jobs.values()}
        for it in sorted({by_id[i].iteration for i in todo}):
            self._complete_if_done(it, {})
        return len(todo)

    def ingest(self, path: str | Path, kind: str = "ingest") -> Any:
        """Take labels, failures and withdrawals from a CSV or Parquet file, all or none.

        The file's rules are :mod:`bodisc.loop.ingest`'s: a label settles a pending
        suggestion or, for a molecule never proposed, is kept as an unpaid off-policy
        label; ``status = cancelled`` withdraws a suggestion; an identical row is a no-op
        (a file ingested twice changes nothing); a different second result is refused.
        Each label keeps its provenance (file, row, time, content digest, ``source``).

        Args:
            path: The file (columns ``smiles``, the objective's property, one column per
                further objective and modelled constraint, named as its property,
                optional ``status``, ``reason``, ``source``; see
                :mod:`bodisc.data.tables`). Each label keeps every property, so it trains
                every model.
            kind: ``ingest``, or ``import`` for ``[data] labelled``.

        Returns:
            The :class:`~bodisc.loop.ingest.IngestPlan` that was carried out.

        Raises:
            InputError: If the file or any of its rows cannot be taken (one line per
                problem; nothing is written).
        """
        from bodisc.data.tables import file_digest, read_labels
        from bodisc.errors import InputError
        from bodisc.loop.ingest import IngestPlan, plan_ingest

        store = self.store if self.store is not None else self._store()  # open() imports
        cfg = self.config
        if kind == "import" and Path(path).is_file() and \
                store.get_meta(f"ingested:{file_digest(Path(path))}") is not None:
            return IngestPlan()  # [data] file imported before, unchanged: nothing to read
        table = read_labels(path, label=cfg.objective.property, constraints=cfg.generator,
                            unanswered="skip" if kind == "ingest" else "refuse",
                            properties=self.objectives.modelled[1:])
        name = str(path)
        done = store.get_meta(f"ingested:{table.digest}")
        plan = plan_ingest(table.rows, store.jobs(), name, cfg.objective.property, kind,
                           table.digest)
        if plan.problems:
            raise InputError(name, plan.problems)
        if plan.labels:
            its = store.iterations()
            iteration = max(r["iteration"] for r in its) if its else -1
            store.commit_external(plan.labels, iteration, cfg.oracle.name, origin=kind,
                                  meta={f"ingested:{table.digest}": {"file": name,
                                                                     "rows": len(table.rows)}})
            for it in sorted({r["iteration"] for r in store.iterations()
                              if r["status"] == "selected"}):
                self._complete_if_done(it, {})
        elif done is None:
            store.set_meta(f"ingested:{table.digest}", {"file": name, "rows": len(table.rows)})
        return plan

    def cancel(self, molecules: Iterable[str] | None = None, reason: str = "") -> int:
        """Withdraw pending suggestions (all of them with ``molecules=None``).

        A withdrawn suggestion no longer counts as a call and is never proposed again; a
        label that still arrives for it is taken.

        Args:
            molecules: InChIKeys or SMILES of pending suggestions.
            reason: Kept in the provenance.

        Returns:
            How many suggestions were withdrawn.

        Raises:
            TellError: For a molecule that is not a pending suggestion (nothing is
                withdrawn then).
        """
        store = self._store()
        pending = {j.inchikey: j for j in store.jobs("pending")}
        if molecules is None:
            ids = [j.id for j in pending.values()]
        else:
            ids = []
            for k, molecule in enumerate(molecules):
                key = self._inchikey(molecule, k)
                if key not in pending:
                    raise TellError(f"molecule {k} ({molecule}): not a pending suggestion")
                ids.append(pending[key].id)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        n = store.cancel_jobs(ids, {"kind": "cancel", "time": stamp, "reason": reason})
        for it in sorted({r["iteration"] for r in store.iterations()
                          if r["status"] == "selected"}):
            self._complete_if_done(it, {})
        return n

    def predict(self, smiles: Sequence[str]) -> Any:
        """The surrogate's prediction for molecules, with how far they lie from the labels.

        Fits the campaign's surrogate on every label so far and predicts the given
        molecules. Nothing is written to the store: descriptors it lacks are computed in
        the campaign's workers and dropped (for a QM9 pool they come from an RDKit
        conformer, not QM9's geometry).

        Args:
            smiles: The molecules.

        Returns:
            A pandas DataFrame in input order: ``smiles`` (as given), ``inchikey``,
            ``mean`` and ``std`` (label units), ``distance`` (to the nearest labelled
            molecule in z-scored descriptors, as the GP sees them), ``max_tanimoto`` (to
            the labelled molecules), ``labelled`` (its label, if it has one) and
            ``reason`` (why there is no prediction).

        Raises:
            BodiscError: With fewer than 3 labelled molecules that have descriptors.
        """
        import pandas as pd

        from bodisc.chem.molecule import record_from_smiles
        from bodisc.errors import InvalidMoleculeError
        from bodisc.loop.refit import fit_surrogate
        from bodisc.metrics import descriptor_distance, max_tanimoto
        from bodisc.surrogates import SURROGATES, with_categories

        store, cfg, feats = self._store(), self.config, self.features
        rows: list[dict[str, Any]] = []
        for text in smiles:
            try:
                rec = record_from_smiles(text)
                rows.append({"smiles": text, "inchikey": rec.inchikey, "_canon": rec.smiles})
            except InvalidMoleculeError as exc:
                rows.append({"smiles": text, "inchikey": None, "reason": str(exc)})
        labelled = self._labelled()
        keys = [j.inchikey for j in labelled] + [r["inchikey"] for r in rows if r["inchikey"]]
        cached = store.descriptors_of(keys, feats.descriptor_set)
        vec = {k: [v[c] for c in feats.columns] for k, (st, v, _) in cached.items()
               if st == "done" and v}
        todo = {r["inchikey"]: r["_canon"] for r in rows
                if r["inchikey"] and r["inchikey"] not in cached}
        todo.update({j.inchikey: j.smiles for j in labelled if j.inchikey not in cached})
        computed, failures = feats.compute(list(todo), list(todo.values()), self._execute)
        vec.update(computed)
        train = [j for j in labelled if j.inchikey in vec]
        if len(train) < 3:
            raise BodiscError(f"campaign {cfg.name!r}: {len(train)} labelled molecule(s) with "
                              f"descriptors; a prediction needs at least 3")
        settings = self.surrogate_settings()

        def matrix(keys: Sequence[str], smis: Sequence[str]) -> np.ndarray:
            X = np.array([vec[k] for k in keys], dtype=float).reshape(len(keys),
                                                                        len(feats.names))
            return with_categories(X, list(smis)) if SURROGATES[settings.kind].uses_categories \
                else X

        X_train = matrix([j.inchikey for j in train], [j.smiles for j in train])
        model, _ = fit_surrogate(settings, X_train, np.array([self.sign * j.value for j in train]),
                                 restart_seed=(cfg.random_seed, -1, 1))
        ok = [r for r in rows if r["inchikey"] in vec]
        if ok:
            X = matrix([r["inchikey"] for r in ok], [r["_canon"] for r in ok])
            mean, std = model.predict(X)
            raw_train = np.array([vec[j.inchikey] for j in train], dtype=float)
            train_smiles = [j.smiles for j in train]
            for r, m, sd in zip(ok, mean, std, strict=True):
                x = np.array(vec[r["inchikey"]], dtype=float)
                r.update(mean=self.sign * float(m), std=float(sd),
                         distance=descriptor_distance(raw_train, x),
                         max_tanimoto=max_tanimoto(train_smiles, r["_canon"]))
        label_of = {j.inchikey: j.value for j in labelled}
        for r in rows:
            if r["inchikey"] in label_of:
                r["labelled"] = label_of[r["inchikey"]]
            if r["inchikey"] and r["inchikey"] not in vec:
                r["reason"] = failures.get(r["inchikey"], "no descriptors")
        columns = ["smiles", "inchikey", "mean", "std", "distance", "max_tanimoto",
                   "labelled", "reason"]
        return pd.DataFrame([{k: r.get(k) for k in columns} for r in rows], columns=columns)

    def _inchikey(self, molecule: str, row: int) -> str:
        """The InChIKey of a result's molecule (given as InChIKey or SMILES)."""
        if _INCHIKEY.match(molecule):
            return molecule
        from bodisc.chem.molecule import record_from_smiles
        from bodisc.errors import InvalidMoleculeError

        try:
            return record_from_smiles(molecule).inchikey
        except InvalidMoleculeError as exc:
            raise TellError(f"result {row}: molecule {molecule!r} is neither an InChIKey "
                            f"nor a valid SMILES ({exc})") from None

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> Summary:
        """Run (or resume) the campaign until its budget or wall time is spent.

        Ask, evaluate the batch with the configured oracle and executor (each result
        committed as it lands), repeat; pending jobs left by a stopped run, or by
        :meth:`ask` without :meth:`tell`, are evaluated first. With ``[execution] mode =
        "async"`` a worker that returns gets the next proposal at once
        (:meth:`_run_async`).

        Raises:
            StoreError: If another process is running this campaign (the message names
                it), or the store cannot be used.
        """
        from bodisc.builtin_oracles.external import NAME as EXTERNAL

        if self.config.oracle.name == EXTERNAL:
            raise BodiscError(f"campaign {self.config.name!r} has oracle 'external': bodisc "
                              f"runs no calculation for it; hand out proposals with "
                              f"'bodisc suggest' and bring labels back with 'bodisc ingest'")
        opened_here = self._resources is None
        self.open()
        store, cfg = self.store, self.config
        assert store is not None
        started = time.monotonic()
        elapsed_before = float(store.get_meta("elapsed_s") or 0.0)
        self.reporter.begin(cfg.budget.oracle_calls, store.calls_used(), self._best_value())
        stop_reason = "budget spent"
        status = "FAILED"
        try:
            if cfg.execution.mode == "async":
                stop_reason = self._run_async(started, elapsed_before)
            else:
                stop_reason = self._run_batches(started, elapsed_before)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            stop_reason = "interrupted; run the same command to continue"
            raise
        finally:
            if status != "FINISHED":
                self.close(status)
            self.reporter.end()
        summary = self._summary(stop_reason)
        if self.fidelity is not None:
            figures = self._fidelity_figures()
            self.reporter.message(
                f"oracle calls: {figures.calls['target']} target ({cfg.oracle.name}), "
                f"{figures.calls['cheap']} cheap ({cfg.fidelity.cheap_oracle}); "
                f"cost {figures.cost:g}")
        if opened_here:
            self.close("FINISHED")
        return summary

    def _stop_reason(self, started: float, elapsed_before: float) -> str | None:
        """Why no further proposal may be made now (``None``: one may)."""
        store, cfg = self.store, self.config
        assert store is not None
        if store.calls_used() >= cfg.budget.oracle_calls:
            return "budget spent"
        wall = elapsed_before + time.monotonic() - started
        if cfg.budget.wall_time_s is not None and wall >= cfg.budget.wall_time_s:
            return f"wall time of {cfg.budget.wall_time_s:g} s spent"
        if self._cost_spent():
            assert cfg.fidelity is not None and cfg.fidelity.max_cost is not None
            return f"cost budget of {cfg.fidelity.max_cost:g} spent"
        return None

    def _run_batches(self, started: float, elapsed_before: float) -> str:
        """The synchronous loop: ask a batch, evaluate all of it, repeat; the stop reason."""
        store = self.store
        assert store is not None
        for open_it in store.open_iterations():
            self.reporter.message(f"resuming iteration {open_it}: "
                                  f"{len(store.jobs('pending', open_it))} oracle "
                                  f"calls pending")
            self._evaluate(open_it)
        while True:
            reason = self._stop_reason(started, elapsed_before)
            if reason is not None:
                return reason
            it = store.next_iteration()
            if not self._start_iteration(it):
                return "the generator found no new valid candidates"
            self._evaluate(it)
            store.set_meta("elapsed_s", elapsed_before + time.monotonic() - started)

    def _run_async(self, started: float, elapsed_before: float) -> str:
        """The asynchronous loop: a free worker gets the next proposal at once.

        Every pending job (of a stopped run, or handed out by :meth:`ask`) is queued
        first. While fewer than ``[execution] workers`` jobs of the campaign's oracle are
        in flight and the budget allows, an iteration proposing one molecule per free
        worker is asked, conditioned on every pending job (the kriging believer of a
        batch); each result is committed as it lands and its worker refilled. The store
        keeps, per iteration, how many results had been committed when it was asked
        (meta ``async/<iteration>``); with the jobs' commit order (``finished_at``) that
        is what a replay needs. Worker utilisation (oracle busy time over ``workers`` x
        wall time) is stored (meta ``async/utilisation``) and logged to MLflow.

        Returns:
            Why the loop stopped.
        """
        from bodisc.execution.feed import TaskFeed
        from bodisc.execution.tasks import oracle_task

        store, cfg = self.store, self.config
        assert store is not None
        workers = cfg.execution.workers
        feed = TaskFeed()
        in_flight: dict[int, Job] = {}
        cached: list[Any] = []  # results a shared cache already held
        reason: list[str] = []

        def queue(it: int) -> None:
            for job in store.jobs("pending", it, fidelity=None):
                if job.id in in_flight:
                    continue
                oracle, options = self._oracle_of(job.fidelity)
                settings = json.dumps([oracle, options])
                hit = (self.cache.take("oracle", settings, job.inchikey)
                       if self.cache is not None else None)
                if hit is not None:
                    from bodisc.execution.local import TaskOutcome

                    cached.append((job, TaskOutcome(job.id, *hit)))
                    continue
                in_flight[job.id] = job
                feed.add(job.id, (oracle, options, job.smiles))

        def refill() -> None:
            while not reason and len(in_flight) < workers:
                why = self._stop_reason(started, elapsed_before)
                if why is not None:
                    reason.append(why)
                    return
                it = store.next_iteration()
                store.set_meta(f"async/{it}", {"results_committed": store.results_committed()})
                if not self._start_iteration(it, workers - len(in_flight)):
                    reason.append("the generator found no new valid candidates")
                    return
                queue(it)
                drain_cached()

        def settle(job: Job, out: Any) -> None:
            self._commit(out, job.fidelity)
            self.reporter.progress(job.iteration, store.calls_used(), self._best_value())
            self._complete_if_done(job.iteration, {"oracle_s": float(out.seconds)})

        def drain_cached() -> None:
            while cached:
                settle(*cached.pop(0))

        open_its = store.open_iterations()
        if open_its:
            self.reporter.message(f"resuming: {len(store.jobs('pending', fidelity=None))} "
                                  f"oracle calls pending")
        for it in open_its:
            queue(it)
        drain_cached()
        refill()
        t0, busy = time.monotonic(), 0.0
        for out in self.executor.run(oracle_task, feed, cfg.execution.oracle_timeout_s):
            job = in_flight.pop(out.key)
            busy += float(out.seconds)
            if self.cache is not None:
                oracle, options = self._oracle_of(job.fidelity)
                self.cache.keep("oracle", json.dumps([oracle, options]), job.inchikey,
                                out.value, out.failure, out.seconds)
            settle(job, out)
            store.set_meta("elapsed_s", elapsed_before + time.monotonic() - started)
            refill()
        wall = time.monotonic() - t0
        if wall > 0 and busy > 0:
            utilisation = min(1.0, busy / (workers * wall))
            store.set_meta("async/utilisation", {"utilisation": utilisation, "busy_s": busy,
                                                 "wall_s": wall, "workers": workers})
            if self.tracker is not None:
                self.tracker.log_metrics({"worker_utilisation": utilisation},
                                         step=store.calls_used())
        return reason[0] if reason else "budget spent"

    # -- one iteration ----------------------------------------------------------------
    def _labelled(self) -> list[Job]:
        assert self.store is not None
        return diagnostics.labelled(self.store)

    def _best_value(self) -> float | None:
        assert self.store is not None
        return diagnostics.best_value(self.store, self.sign)

    def _fidelity_figures(self) -> Any:
        from bodisc.acquisition.multifidelity import fidelity_figures

        return fidelity_figures(self.store, self.costs, self.sign > 0)

    def _cost_spent(self) -> bool:
        """A multi-fidelity campaign has spent its ``[fidelity] max_cost``."""
        fid = self.fidelity
        if fid is None or fid.max_cost is None:
            return False
        return self._fidelity_figures().cost >= fid.max_cost

    def _start_iteration(self, it: int, n: int | None = None) -> bool:
        """Choose the batch of iteration ``it`` and record it; False if none could be."""
        store, cfg = self.store, self.config
        assert store is not None
        timings: dict[str, float] = {}
        remaining = cfg.budget.oracle_calls - store.calls_used()
        if remaining <= 0:
            return False
        records = (seed_records(cfg, self.features, iteration_rngs(cfg.random_seed, 0)[0],
                                self._design_labels())
                   if it == 0 else [])
        if records:  # none: a campaign that starts from labelled data asks the model
            store.add_molecules(
                [(r.inchikey, r.smiles, r.heavy_atoms, "seed", ()) for r in records], it
            )
            jobs = [NewJob(r.inchikey) for r in records[:remaining]]
            if cfg.fidelity is not None and cfg.fidelity.seed_cheap:
                from bodisc.acquisition.multifidelity import CHEAP

                jobs = [NewJob(r.inchikey, fidelity=CHEAP, oracle=cfg.fidelity.cheap_oracle)
                        for r in records] + jobs
            store.start_iteration(it, jobs, cfg.oracle.name, len(records), None)
            return True
        gen_rng, acq_rng = iteration_rngs(cfg.random_seed, it)
        self.reporter.phase(it, "generate")
        t0 = time.perf_counter()
        removed: dict[str, int] = {}  # [generator] filters: filter name -> candidates removed
        size = cfg.acquisition.batch_size if n is None else n
        share = (min(1.0, size / cfg.acquisition.batch_size)
                 if cfg.execution.mode == "async" else 1.0)
        candidates = generate(store, cfg, self.features, self.sign, it, gen_rng, removed,
                              share)
        if removed:
            from bodisc.chem.filters import metric_name, summary

            timings.update({metric_name(k): float(v) for k, v in removed.items()})
            if any(removed.values()):
                self.reporter.message(f"iteration {it}: filters removed {summary(removed)}")
        if self.fidelity is not None:  # cheaply labelled molecules stay candidates
            from bodisc.acquisition.multifidelity import KnownMolecule

            candidates = list(candidates) + [KnownMolecule(j.inchikey, j.smiles)
                                             for j in cheap_only(store, it)]
        failpoint("generate")
        timings["generate_s"] = time.perf_counter() - t0
        if not candidates:
            return False
        q = min(size, remaining, len(candidates))
        if q <= 0:
            return False
        if self.fidelity is not None:  # cheap picks do not spend the target budget
            jobs, n_scored, train_range = self._choose_multifidelity(it, candidates, size,
                                                                     acq_rng, timings)
        else:
            jobs, n_scored, train_range = self._choose(it, candidates, q, acq_rng, timings)
        if not jobs:
            return False
        store.set_meta(f"timings/{it}", timings)
        failpoint("acquire")
        store.start_iteration(it, jobs, cfg.oracle.name, n_scored, train_range)
        return True

    def _featurise(self, it: int, keys: Sequence[str], smiles: Sequence[str]
                   ) -> dict[str, list[float]]:
        """Descriptors of the given molecules, from the cache or computed and cached."""
        assert self.store is not None
        return self.features.vectors(self.store, it, keys, smiles, self._execute)

    def surrogate_settings(self) -> SurrogateSettings:
        """The campaign's ``[surrogate]`` as the refit schedule takes it."""
        from bodisc.surrogates import surrogate_options

        s = self.config.surrogate
        # labels here are in maximisation form: a proxy mean's sign follows the direction
        options = surrogate_options(s, self.config.random_seed, self.features.names,
                                    self.sign)
        # asynchronous: hyperparameters re-optimised once a batch's worth of labels came
        every = (self.config.acquisition.batch_size
                 if self.config.execution.mode == "async" else 1)
        return SurrogateSettings(s.kind, s.kernel, s.device, s.precision, options,
                                 s.warm_start, s.refit_growth, s.restarts, every)

    def _design_labels(self) -> tuple[set[str], np.ndarray, np.ndarray] | None:
        """What a causal design learns from when the campaign starts from labels.

        Returns:
            ``(inchikeys, X, y)``: the labelled molecules, their descriptors ``(n, d)``
            and labels in maximisation form ``(n,)``; ``None`` where the design needs no
            labels (random design, or no ``[data]``).
        """
        cfg = self.config
        if cfg.design.kind != "causal" or not cfg.data.labelled:
            return None
        known = self._labelled()
        feats = self._featurise(0, [j.inchikey for j in known], [j.smiles for j in known])
        train = [j for j in known if j.inchikey in feats]
        X = np.array([feats[j.inchikey] for j in train], dtype=float).reshape(
            len(train), len(self.features.names))
        return ({j.inchikey for j in known}, X,
                np.array([self.sign * j.value for j in train], dtype=float))

    def _choose(self, it: int, candidates: Sequence[Any], q: int, rng: np.random.Generator,
                timings: dict[str, float]
                ) -> tuple[list[NewJob], int, tuple[float, float] | None]:
        """Featurise, then run the pure step on labels, pending jobs and candidates."""
        from bodisc.acquisition import ACQUISITIONS, staged
        from bodisc.surrogates import SURROGATES, with_categories

        cfg = self.config
        assert self.store is not None
        acq = cfg.acquisition
        # batches count from 1 after the seeds; a campaign that starts from labelled data
        # and has no seeds makes its first model batch in iteration 0
        seeded = bool(cfg.seed_molecules) or cfg.draws_pool_seeds
        name = staged(acq.name, self._batch_number(it, seeded), self.store.calls_used(),
                      cfg.budget.oracle_calls, acq.warmup_batches, acq.greedy_until)
        spec = ACQUISITIONS[name]
        settings = self.surrogate_settings()
        step = {"strategy": name, "surrogate": settings, "beta": acq.beta}
        if not spec.needs_descriptors:
            batch = choose_batch(np.zeros((0, 0)), np.zeros(0),
                                 np.zeros((len(candidates), 0)), q, rng, **step)
            return self._jobs(batch, candidates), len(candidates), None
        labelled = self._labelled()
        pending = [j for j in self.store.jobs("pending") if j.iteration < it]
        self.reporter.phase(it, "descriptors")
        t0 = time.perf_counter()
        known = labelled + pending
        feats = self._featurise(it, [j.inchikey for j in known] +
                                [c.inchikey for c in candidates],
                                [j.smiles for j in known] + [c.smiles for c in candidates])
        timings["descriptor_s"] = time.perf_counter() - t0
        train = [j for j in labelled if j.inchikey in feats]
        waiting = [j for j in pending if j.inchikey in feats]
        cand = [c for c in candidates if c.inchikey in feats]
        if not cand:
            return [], 0, None

        def matrix(rows: Sequence[Any]) -> np.ndarray:
            X = np.array([feats[r.inchikey] for r in rows], dtype=float).reshape(
                len(rows), len(self.features.names))
            if spec.needs_model and SURROGATES[settings.kind].uses_categories:
                X = with_categories(X, [r.smiles for r in rows])
            return X

        ranking = None
        if name == "rank":  # only the named columns: others may be NaN
            X_c = np.array([feats[c.inchikey] for c in cand], dtype=float)
            ranking = np.zeros(X_c.shape[0])
            for column, factor in self.features.proxy_columns(acq.rank_by).items():
                ranking += factor * X_c[:, column]
            ranking = self.sign * ranking
        if spec.needs_model:
            self.reporter.phase(it, "fit")
        if spec.needs_model and self.objectives.several:
            batch = self._choose_several(it, train, matrix, cand, waiting, q, rng, step)
        else:
            batch = choose_batch(matrix(train), np.array([self.sign * j.value for j in train]),
                                 matrix(cand), q, rng, **step,
                                 previous=self._last_fit(it, settings.kind),
                                 X_pending=matrix(waiting) if waiting else None,
                                 ranking=ranking, restart_seed=(cfg.random_seed, it, 1),
                                 names=self.features.names, options=acq.options())
        if batch.strategy != name:
            from bodisc.loop.step import min_labels

            self.reporter.message(f"iteration {it}: fewer than {min_labels(name)} labelled "
                                  f"molecules with descriptors; choosing at random")
        timings.update(batch.timings)
        if batch.info and "plan" in batch.info:
            self._record_graph(it, batch.info["plan"])
        if batch.fit is not None:
            self.store.set_meta(f"surrogate/{it}", batch.fit.as_dict())
        if batch.fits:
            self.store.set_meta(f"surrogates/{it}", [None if f is None else f.as_dict()
                                                     for f in batch.fits])
        if batch.mean is not None:
            failpoint("fit")
            self.reporter.phase(it, "acquire")
            values = [j.value for j in train]
            return self._jobs(batch, cand), len(cand), (float(min(values)), float(max(values)))
        return self._jobs(batch, cand), len(cand), None

    def _batch_number(self, it: int, seeded: bool) -> int:
        """Which batch (1: the first after the seeds) iteration ``it`` counts as.

        In batch mode an iteration is a batch. An asynchronous iteration proposes one
        molecule, so it counts as the batch its oracle calls would have fallen in:
        ``[acquisition] warmup_batches`` means the same number of calls in both modes.
        """
        if self.config.execution.mode != "async":
            return it if seeded else it + 1
        assert self.store is not None
        seeds = len(self.store.jobs(None, 0)) if seeded else 0
        return (self.store.calls_used() - seeds) // self.config.acquisition.batch_size + 1

    def _choose_several(self, it: int, train: Sequence[Job], matrix: Any,
                        cand: Sequence[Any], waiting: Sequence[Job], q: int,
                        rng: np.random.Generator, step: dict[str, Any]) -> Batch:
        """The multi-output step: one GP per objective and per modelled constraint.

        Labels without every modelled property (a plain label ingested with its value
        only) are left out of the fits. The hypervolume's reference point is the
        campaign's fixed one (:meth:`Objectives.stored_reference`).
        """
        from bodisc.loop.step import choose_multi_batch

        obj = self.objectives
        Y, C, complete = obj.matrices(train)
        rows = [j for j, ok in zip(train, complete, strict=True) if ok]
        ref = obj.stored_reference(self.store, Y[complete]) if len(obj.names) > 1 else None
        return choose_multi_batch(
            matrix(rows), Y[complete], matrix(cand), q, rng, **step,
            C_train=C[complete] if obj.constraints else None, lower=obj.lower,
            upper=obj.upper, ref_point=ref,
            X_pending=matrix(waiting) if waiting else None,
            likely=self.config.acquisition.feasibility,
            options=self.config.acquisition.options(),
            restart_seed=(self.config.random_seed, it, 1),
            previous=self._last_fits(it, len(obj.names) + len(obj.constraints)))

    def _record_graph(self, it: int, plan: Any) -> None:
        """Keep an intervention's plan and graph (store meta ``causal/<it>``).

        MLflow gets it with the iteration's other records (:func:`records.log_iterations`),
        the report draws it from the store.
        """
        assert self.store is not None
        self.store.set_meta(f"causal/{it}", plan.to_dict())

    def _jobs(self, batch: Batch, cand: Sequence[Any]) -> list[NewJob]:
        """The pending jobs of a batch (means in label units)."""
        if batch.mean is None or batch.std is None:
            acq = [None if batch.strategy == "random" else float(a) for a in batch.score]
            return [NewJob(cand[i].inchikey, acq_value=a)
                    for i, a in zip(batch.index, acq, strict=True)]
        return [NewJob(cand[i].inchikey, float(self.sign * m), float(s), float(a))
                for i, m, s, a in zip(batch.index, batch.mean, batch.std, batch.score,
                                      strict=True)]

    def _last_fit(self, it: int, kind: str) -> FitState | None:
        """The refit schedule's state from the latest fit of this kind before ``it``."""
        assert self.store is not None
        for j in range(it - 1, -1, -1):
            saved = self.store.get_meta(f"surrogate/{j}")
            if saved and saved.get("kind") == kind:
                return FitState.from_dict(saved)
        return None

    def _last_fits(self, it: int, count: int) -> tuple[FitState | None, ...]:
        """The refit states of the latest multi-output fit before ``it`` (``count`` models).

        Empty when there is none yet (or it had another number of models): the step then
        fits every model from scratch.
        """
        assert self.store is not None
        for j in range(it - 1, -1, -1):
            saved = self.store.get_meta(f"surrogates/{j}")
            if saved is not None:
                if len(saved) != count:
                    return ()
                return tuple(None if s is None else FitState.from_dict(s) for s in saved)
        return ()

    def _choose_multifidelity(self, it: int, candidates: Sequence[Any], size: int,
                              rng: np.random.Generator, timings: dict[str, float]
                              ) -> tuple[list[NewJob], int, tuple[float, float] | None]:
        """Multi-fidelity batch of ``size`` picks, target ones capped by the budget.

        The threshold of the MF-GP-UCB rule comes from the store (the bias between the
        oracles, the calls so far); the pure step
        (:func:`~bodisc.loop.step.choose_fidelity_batch`) fits and picks. Pending jobs are
        kept out of the candidates but not conditioned on.
        """
        from bodisc.acquisition import AcquisitionContext, select
        from bodisc.acquisition.multifidelity import (
            CHEAP,
            adapted_threshold,
            estimate_bias,
            threshold,
        )

        store, cfg, fid = self.store, self.config, self.fidelity
        assert store is not None and fid is not None
        target = self._labelled()
        cheap = [j for j in store.jobs("done", fidelity=CHEAP) if j.value is not None]
        self.reporter.phase(it, "descriptors")
        t0 = time.perf_counter()
        labelled = target + cheap
        feats = self._featurise(it, [j.inchikey for j in labelled] + [c.inchikey for c in
                                                                       candidates],
                                [j.smiles for j in labelled] + [c.smiles for c in candidates])
        timings["descriptor_s"] = time.perf_counter() - t0
        train = [j for j in labelled if j.inchikey in feats]
        cand = [c for c in candidates if c.inchikey in feats]
        if not cand:
            return [], 0, None
        remaining = cfg.budget.oracle_calls - store.calls_used()
        q = min(size, len(cand))
        X_c = np.array([feats[c.inchikey] for c in cand], dtype=float)
        n_target = sum(j.fidelity != CHEAP for j in train)
        if n_target < 1 or len(train) < 3:
            self.reporter.message(f"iteration {it}: too few labelled molecules with "
                                  f"descriptors; choosing at random (target oracle)")
            sel = select("random", AcquisitionContext(X_c, min(q, remaining), 0.0, rng))
            return [NewJob(cand[i].inchikey) for i in sel.index], len(cand), None
        self.reporter.phase(it, "fit")
        cheap_value = {j.inchikey: j.value for j in cheap}
        bias = fid.bias if fid.bias is not None else estimate_bias(
            [(j.value, cheap_value[j.inchikey]) for j in target if j.inchikey in cheap_value])
        gamma = threshold(bias, self.costs[CHEAP], self.costs["target"])
        doublings = 0
        if fid.adapt_threshold:  # MF-GP-UCB's heuristic, from the calls after the seeds
            gamma, doublings = adapted_threshold(
                gamma, [j.fidelity for j in store.jobs(fidelity=None) if j.iteration > 0],
                self.costs[CHEAP], self.costs["target"])
        cheap_keys = {j.inchikey for j in store.jobs(fidelity=CHEAP)}
        settings = self.surrogate_settings()
        picks, fit, step_timings = choose_fidelity_batch(
            np.array([feats[j.inchikey] for j in train], dtype=float),
            [j.fidelity for j in train], np.array([self.sign * j.value for j in train]),
            X_c, np.array([c.inchikey in cheap_keys for c in cand]), q, rng,
            strategy=cfg.acquisition.name, surrogate=settings, beta=cfg.acquisition.beta,
            fidelity_beta=fid.beta, gamma=gamma, previous=self._last_fit(it, settings.kind),
            restart_seed=(cfg.random_seed, it, 1))
        if fit is not None:
            store.set_meta(f"surrogate/{it}", fit.as_dict())
        failpoint("fit")
        self.reporter.phase(it, "acquire")
        timings.update(step_timings)
        timings["fidelity_bias"], timings["fidelity_gamma"] = float(bias), float(gamma)
        timings["fidelity_doublings"] = float(doublings)
        over = [i for i, p in enumerate(picks) if p.fidelity != CHEAP][remaining:]
        picks = [p for i, p in enumerate(picks) if i not in over]
        jobs = [NewJob(cand[p.index].inchikey, self.sign * p.mean, p.std, p.score,
                       fidelity=p.fidelity,
                       oracle=fid.cheap_oracle if p.fidelity == CHEAP else None)
                for p in picks]
        values = [j.value for j in train if j.fidelity != CHEAP]
        return jobs, len(cand), (float(min(values)), float(max(values)))

    def _execute(self, kind: str, settings: str, fn: Any, tasks: list[tuple[Any, tuple]],
                 molecule_of: dict[Any, str], timeout_s: float) -> Any:
        """Run ``fn`` on ``tasks`` in the executor, through the shared cache if there is one.

        Yields the executor's outcomes (keyed by task key) in completion order; with a
        cache, a result another campaign computed comes back without running again.
        """
        if not tasks:
            return iter(())
        executor = self.descriptor_executor if kind == "descriptors" else self.executor
        if self.cache is None:
            return executor.run(fn, tasks, timeout_s)
        return self.cache.run(kind, settings, executor, fn, tasks, molecule_of, timeout_s)

    def _evaluate(self, it: int) -> None:
        """Run the pending jobs of iteration ``it`` with the oracles, then complete it."""
        from bodisc.execution.tasks import oracle_task

        store, cfg = self.store, self.config
        assert store is not None
        self.reporter.phase(it, "oracle")
        t0 = time.perf_counter()
        groups = [TARGET] if cfg.fidelity is None else ["cheap", TARGET]  # cheap: quick
        for fidelity in groups:
            oracle, options = self._oracle_of(fidelity)
            pending = store.jobs("pending", it, fidelity=fidelity)
            if not pending and fidelity != TARGET:
                continue
            tasks = [(j.id, (oracle, options, j.smiles)) for j in pending]
            failpoint("oracle.submitted")
            settings = json.dumps([oracle, options])
            for out in self._execute("oracle", settings, oracle_task, tasks,
                                     {j.id: j.inchikey for j in pending},
                                     cfg.execution.oracle_timeout_s):
                self._commit(out, fidelity)
                self.reporter.progress(it, store.calls_used(), self._best_value())
        self._complete_if_done(it, {"oracle_s": time.perf_counter() - t0})

    def _oracle_of(self, fidelity: str) -> tuple[str, str]:
        """The oracle name and options (JSON) of a job of this fidelity."""
        if fidelity != TARGET and self.config.fidelity is not None:
            return self.config.fidelity.cheap_oracle, self.cheap_options
        return self.config.oracle.name, self.oracle_options

    def _commit(self, out: Any, fidelity: str) -> None:
        """Commit one executor outcome (an :class:`~bodisc.oracle.OracleResult` or a failure)."""
        assert self.store is not None
        failpoint("oracle.result")
        if out.failure is not None:
            self.store.finish_job(out.key, None, out.failure, out.seconds)
        elif fidelity != TARGET:
            res = out.value
            self.store.finish_job(out.key, res.value, res.failure, res.seconds, res.extras)
        else:  # the objective's value, and every property the campaign models
            res = out.value
            value, failure, props = self.objectives.label(res.value, res.failure,
                                                          res.properties)
            self.store.finish_job(out.key, value, failure, res.seconds, res.extras, props)
        failpoint("oracle.commit")

    def _complete_if_done(self, it: int, timings: dict[str, float]) -> None:
        """Once no job of iteration ``it`` is pending: its metrics, then MLflow."""
        store = self.store
        assert store is not None
        if store.jobs("pending", it, fidelity=None):
            return
        recorded = dict(store.get_meta(f"timings/{it}") or {})
        recorded.update(timings)  # this process's oracle share, if resumed
        store.complete_iteration(it, self._iteration_metrics(it, recorded))
        failpoint("iteration.complete")
        self._log_pending_iterations()

    def _iteration_metrics(self, it: int, timings: dict[str, float]) -> dict[str, float]:
        store = self.store
        assert store is not None
        metrics = diagnostics.iteration_metrics(store, it, self.sign, timings)
        metrics.update({k: v for k, v in timings.items() if k.startswith("filtered_")})
        if self.fidelity is not None:  # per-fidelity calls, oracle seconds and cost
            figures = self._fidelity_figures()
            for fidelity in ("target", "cheap"):
                metrics[f"calls_{fidelity}"] = figures.calls[fidelity]
                metrics[f"oracle_cpu_s_{fidelity}"] = figures.seconds[fidelity]
            metrics["cost"] = figures.cost
            metrics["failures_cheap"] = sum(j.status == "failed" for j in store.jobs(
                iteration=it, fidelity="cheap"))
            metrics.update({k: timings[k] for k in ("fidelity_bias", "fidelity_gamma",
                                                    "fidelity_doublings") if k in timings})
        return metrics

    # -- tracking ---------------------------------------------------------------------
    def _log_pending_iterations(self) -> None:
        """Send every complete iteration not yet logged to MLflow (in order)."""
        assert self.store is not None
        records.log_iterations(self.store, self.tracker, self.features, self.config,
                               self.sign)

    def extrapolation_table(self) -> list[dict[str, Any]]:
        """Every extrapolation record of the campaign (for the CSV artifact)."""
        assert self.store is not None
        return diagnostics.extrapolation_table(self.store, self.features)

    def results(self) -> Any:
        """Every oracle job with its molecule, as a pandas DataFrame."""
        return self._store().results_frame()

    # -- the end ----------------------------------------------------------------------
    def _summary(self, stop_reason: str, top: int = 10) -> Summary:
        store, cfg = self.store, self.config
        assert store is not None
        best, csv = records.export(store, cfg, self.tracker, self.features, self.sign, top)
        failures = sum(1 for j in store.jobs("failed"))
        front: list[tuple[str, dict[str, float], int]] = []
        volume = None
        obj = self.objectives
        if len(obj.names) > 1:
            labelled = self._labelled()
            front = [(j.smiles, {p: obj.value(j, p) for p in obj.modelled}, j.iteration)
                     for j in obj.front(labelled)]
            curve = diagnostics.hypervolume_curve(store, cfg)
            volume = curve[-1] if curve else None
        return Summary(best, store.calls_used(), failures, cfg.path("store"), csv,
                       self.tracker.run_id, stop_reason, len(store.iterations()),
                       self.tracker.link(), self.tracker.link("artifacts/best_molecules.png"),
                       front, volume)
