"""The campaign loop: the one stateful orchestrator.

One iteration: choose parents, generate candidates, featurise them (cached), fit the GP on
every labelled molecule, pick a batch with the acquisition strategy, record the batch as
pending oracle jobs, run the oracle in worker processes committing each result as it
lands, then record the iteration's metrics and log them to MLflow.

Iteration 0 labels the seed molecules. Every random choice of iteration ``i`` comes from
generators seeded by ``(random_seed, i)``, and everything an iteration reads is what the
store held when it began, so a campaign killed at any point and resumed makes exactly the
choices an uninterrupted run makes:

* killed before its batch was recorded, an iteration is redone from the start (the
  descriptors it computed are cached);
* killed after, only the jobs still ``pending`` are run again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bodisc.config import UNSAFE_TO_CHANGE, CampaignConfig, dotted_get, parse_proxy
from bodisc.errors import StoreError
from bodisc.failpoints import failpoint
from bodisc.store import CampaignStore, Job, NewJob


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
    """

    best: list[tuple[str, float, int]]
    calls_used: int
    failures: int
    store: Path
    csv: Path
    run_id: str | None
    stop_reason: str
    iterations: int = 0


def iteration_rngs(seed: int, iteration: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The generator and acquisition RNGs of one iteration, from ``(seed, iteration)``."""
    gen_seq, acq_seq = np.random.SeedSequence([seed, iteration]).spawn(2)
    return np.random.default_rng(gen_seq), np.random.default_rng(acq_seq)


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

    Args:
        config: The validated campaign.
        config_file: The file it came from (for messages).
        reporter: Progress sink.
        tracking_uri: Overrides the MLflow store from ``[paths] mlruns``.
        experiment: MLflow experiment (default: the campaign name); a comparison puts
            all its runs in its own.
        run_tags: Further MLflow tags of the run (e.g. ``mlflow.parentRunId``).
        run_params: Further MLflow params of the run.
        cache: A shared result cache (:class:`bodisc.compare.ResultCache`): oracle results
            and descriptors computed by any campaign sharing it are reused, never
            recomputed; each campaign still records (and pays for) its own calls.
    """

    def __init__(self, config: CampaignConfig, config_file: str = "",
                 reporter: Reporter | None = None, tracking_uri: str | None = None,
                 experiment: str | None = None, run_tags: dict[str, str] | None = None,
                 run_params: dict[str, Any] | None = None, cache: Any = None) -> None:
        from bodisc.descriptors import TIERS, default_descriptors, tier_of

        self.config = config
        self.config_file = config_file
        self.reporter = reporter or Reporter()
        self.tracking_uri = tracking_uri
        self.experiment = experiment or config.name
        self.run_tags = dict(run_tags or {})
        self.run_params = dict(run_params or {})
        self.cache = cache
        self.sign = 1.0 if config.objective.direction == "maximize" else -1.0
        self.descriptor_names = tuple(config.descriptors.names or default_descriptors())
        # The cache holds a molecule's whole tier, so campaigns that use other descriptors
        # of the same tier (and the same recipe settings) reuse it.
        tier = tier_of(self.descriptor_names)
        self.tier_names = TIERS[tier]
        self.columns = [self.tier_names.index(n) for n in self.descriptor_names]
        key = json.dumps([config.descriptors.method, config.descriptors.conformer_seed])
        self.descriptor_set = f"qmex-{tier}/" + hashlib.sha1(key.encode()).hexdigest()[:10]
        self.tier = tier
        self._pool: Any = None  # the [pool] of candidates, built on first use
        if config.pool is not None:  # xTB on the pool's own (QM9 B3LYP) geometries
            self.descriptor_set = f"qm9geom-{tier}"
        self.oracle_options = json.dumps(config.oracle.options, sort_keys=True)
        # multi-fidelity ([fidelity]): the cheap oracle's options and the cost per call
        self.fidelity = config.fidelity
        self.costs: dict[str, float] = {}
        if config.fidelity is not None:
            from bodisc.acquisition.multifidelity import fidelity_costs

            self.cheap_options = json.dumps(config.fidelity.cheap_options, sort_keys=True)
            self.costs = fidelity_costs(config)
        self.store: CampaignStore | None = None
        self.changed_on_resume: list[str] = []

    # -- set-up -----------------------------------------------------------------------
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

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> Summary:
        """Run (or resume) the campaign until its budget or wall time is spent.

        Raises:
            StoreError: If another process is running this campaign (the message names
                it), or the store cannot be used.
        """
        from bodisc.lock import CampaignLock, describe

        with CampaignLock(self.config.path("store")) as lock:
            if lock.previous:
                self.reporter.message(f"took over the lock left by a stopped run "
                                      f"({describe(lock.previous)})")
            return self._run()

    def _run(self) -> Summary:
        from bodisc.execution.dask import make_executor
        from bodisc.tracking.mlflow_tracker import Tracker, flatten

        cfg = self.config
        self.store = store = self._open_store()
        self.tracker = Tracker(cfg.path("mlruns"), self.experiment, self.reporter.message,
                               uri=self.tracking_uri)
        run_id = self.tracker.start(
            store.get_meta("mlflow_run_id"), run_name=cfg.name,
            params={**flatten(cfg.as_dict()), **self.run_params},
            tags={"bodisc.campaign": cfg.name, "bodisc.store": str(cfg.path("store")),
                  "bodisc.acquisition": cfg.acquisition.name, **self.run_tags},
        )
        if run_id is not None and store.get_meta("mlflow_run_id") is None:
            store.set_meta("mlflow_run_id", run_id)
        if self.changed_on_resume:
            self.tracker.set_tags({f"bodisc.resumed.{int(time.time())}.changed":
                                   ", ".join(self.changed_on_resume)})
        self._log_pending_iterations()
        started = time.monotonic()
        elapsed_before = float(store.get_meta("elapsed_s") or 0.0)
        self.reporter.begin(cfg.budget.oracle_calls, store.calls_used(), self._best_value())
        stop_reason = "budget spent"
        status = "FAILED"
        try:
            with make_executor(cfg.execution) as executor:
                self.executor = executor
                open_it = store.open_iteration()
                if open_it is not None:
                    self.reporter.message(f"resuming iteration {open_it}: "
                                          f"{len(store.jobs('pending', open_it))} oracle "
                                          f"calls pending")
                    self._finish_iteration(open_it)
                while True:
                    used = store.calls_used()
                    if used >= cfg.budget.oracle_calls:
                        break
                    wall = elapsed_before + time.monotonic() - started
                    if cfg.budget.wall_time_s is not None and wall >= cfg.budget.wall_time_s:
                        stop_reason = f"wall time of {cfg.budget.wall_time_s:g} s spent"
                        break
                    if self._cost_spent():
                        stop_reason = f"cost budget of {cfg.fidelity.max_cost:g} spent"
                        break
                    it = store.next_iteration()
                    if not self._start_iteration(it):
                        stop_reason = "the generator found no new valid candidates"
                        break
                    self._finish_iteration(it)
                    store.set_meta("elapsed_s", elapsed_before + time.monotonic() - started)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            stop_reason = "interrupted; run the same command to continue"
            raise
        finally:
            if status != "FINISHED":
                self.tracker.end(status)
            self.reporter.end()
        summary = self._summary(stop_reason)
        if self.fidelity is not None:
            figures = self._fidelity_figures()
            self.reporter.message(
                f"oracle calls: {figures.calls['target']} target ({cfg.oracle.name}), "
                f"{figures.calls['cheap']} cheap ({cfg.fidelity.cheap_oracle}); "
                f"cost {figures.cost:g}")
        self.tracker.end("FINISHED")
        store.close()
        return summary

    # -- one iteration ----------------------------------------------------------------
    def _labelled(self) -> list[Job]:
        assert self.store is not None
        return [j for j in self.store.jobs("done") if j.value is not None]

    def _fidelity_figures(self) -> Any:
        from bodisc.acquisition.multifidelity import fidelity_figures

        return fidelity_figures(self.store, self.costs, self.sign > 0)

    def _cost_spent(self) -> bool:
        """A multi-fidelity campaign has spent its ``[fidelity] max_cost``."""
        fid = self.fidelity
        if fid is None or fid.max_cost is None:
            return False
        return self._fidelity_figures().cost >= fid.max_cost

    def _cheap_only(self, it: int) -> list[Job]:
        """Cheap labels of molecules with no target job, from iterations before ``it``."""
        from bodisc.acquisition.multifidelity import CHEAP

        assert self.store is not None
        targeted = {j.inchikey for j in self.store.jobs()}
        return [j for j in self.store.jobs("done", fidelity=CHEAP)
                if j.value is not None and j.iteration < it and j.inchikey not in targeted]

    def _best_value(self) -> float | None:
        vals = [j.value for j in self._labelled()]
        if not vals:
            return None
        return max(vals) if self.sign > 0 else min(vals)

    def _start_iteration(self, it: int) -> bool:
        """Choose the batch of iteration ``it`` and record it; False if none could be."""
        from bodisc.chem.molecule import record_from_smiles

        store, cfg = self.store, self.config
        assert store is not None
        timings: dict[str, float] = {}
        remaining = cfg.budget.oracle_calls - store.calls_used()
        if it == 0:
            if cfg.pool is not None:  # seeds drawn from the pool
                seed_rng, _ = iteration_rngs(cfg.random_seed, 0)
                records = self.pool().draw(cfg.pool.n_seeds, seed_rng)
            else:
                records = [record_from_smiles(s) for s in cfg.seed_molecules]
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
        candidates = self._generate(it, gen_rng)
        if self.fidelity is not None:  # cheaply labelled molecules stay candidates
            from bodisc.acquisition.multifidelity import KnownMolecule

            candidates = list(candidates) + [KnownMolecule(j.inchikey, j.smiles)
                                             for j in self._cheap_only(it)]
        failpoint("generate")
        timings["generate_s"] = time.perf_counter() - t0
        if not candidates:
            return False
        q = min(cfg.acquisition.batch_size, remaining, len(candidates))
        jobs, n_scored, train_range = self._choose(it, candidates, q, acq_rng, timings)
        if not jobs:
            return False
        store.set_meta(f"timings/{it}", timings)
        failpoint("acquire")
        store.start_iteration(it, jobs, cfg.oracle.name, n_scored, train_range)
        return True

    def _generate(self, it: int, rng: np.random.Generator) -> list[Any]:
        from bodisc.chem.generator import Generator, select_parents

        store, cfg = self.store, self.config
        assert store is not None
        if cfg.pool is not None:  # unlabelled pool molecules instead of the generator
            exclude = store.excluded_inchikeys(self.descriptor_set, before_iteration=it)
            drawn = self.pool().draw(cfg.pool.candidates_per_iteration, rng, exclude)
            store.add_molecules([(c.inchikey, c.smiles, c.heavy_atoms, c.origin, c.parents)
                                 for c in drawn], it)
            return drawn
        labelled = [(j.smiles, self.sign * j.value) for j in self._labelled()]
        if self.fidelity is not None:  # cheap labels of molecules not yet sent to the target
            labelled += [(j.smiles, self.sign * j.value) for j in self._cheap_only(it)]
        if not labelled:  # every seed failed: mutate the seeds themselves
            labelled = [(s, 0.0) for s in store.smiles_of(
                [j.inchikey for j in store.jobs()]).values()]
        parents = select_parents(labelled, cfg.generator.n_best_parents,
                                 cfg.generator.n_diverse_parents, rng)
        exclude = store.excluded_inchikeys(self.descriptor_set, before_iteration=it)
        candidates = Generator(cfg.generator).propose(
            parents, cfg.generator.candidates_per_iteration, rng, exclude
        )
        store.add_molecules(
            [(c.inchikey, c.smiles, c.heavy_atoms, c.origin, c.parents) for c in candidates], it
        )
        return candidates

    def _choose(self, it: int, candidates: Sequence[Any], q: int, rng: np.random.Generator,
                timings: dict[str, float]
                ) -> tuple[list[NewJob], int, tuple[float, float] | None]:
        from bodisc.acquisition import ACQUISITIONS, AcquisitionContext, select, staged

        cfg = self.config
        if self.fidelity is not None:
            return self._choose_multifidelity(it, candidates, q, rng, timings)
        assert self.store is not None
        acq = cfg.acquisition
        name = staged(acq.name, it, self.store.calls_used(), cfg.budget.oracle_calls,
                      acq.warmup_batches, acq.greedy_until)
        spec = ACQUISITIONS[name]
        labelled = self._labelled()
        if not spec.needs_descriptors:
            ctx = AcquisitionContext(np.zeros((len(candidates), 0)), q, 0.0, rng)
            sel = select(name, ctx)
            return [NewJob(candidates[i].inchikey) for i in sel.index], len(candidates), None
        self.reporter.phase(it, "descriptors")
        t0 = time.perf_counter()
        keys = [j.inchikey for j in labelled] + [c.inchikey for c in candidates]
        smiles = [j.smiles for j in labelled] + [c.smiles for c in candidates]
        feats = self._featurise(it, keys, smiles)
        timings["descriptor_s"] = time.perf_counter() - t0
        train = [j for j in labelled if j.inchikey in feats]
        cand = [c for c in candidates if c.inchikey in feats]
        if not cand:
            return [], 0, None
        q = min(q, len(cand))
        X_c = np.array([feats[c.inchikey] for c in cand], dtype=float)
        if not spec.needs_model:
            ranking = np.zeros(X_c.shape[0])  # only the named columns: others may be NaN
            for column, factor in self._columns(acq.rank_by).items():
                ranking += factor * X_c[:, column]
            ctx = AcquisitionContext(X_c, q, 0.0, rng, ranking=self.sign * ranking)
            sel = select(name, ctx)
            return ([NewJob(cand[i].inchikey, acq_value=float(a))
                     for i, a in zip(sel.index, sel.score, strict=True)], len(cand), None)
        if len(train) < 3:
            self.reporter.message(f"iteration {it}: fewer than 3 labelled molecules with "
                                  f"descriptors; choosing at random")
            sel = select("random", AcquisitionContext(X_c, q, 0.0, rng))
            return [NewJob(cand[i].inchikey) for i in sel.index], len(cand), None
        from bodisc.surrogates.gp import SMALL_N, torch_threads

        with torch_threads(1 if len(train) < SMALL_N else None):
            return self._fit_and_select(it, train, cand, feats, q, rng, timings, name)

    def _choose_multifidelity(self, it: int, candidates: Sequence[Any], q: int,
                              rng: np.random.Generator, timings: dict[str, float]
                              ) -> tuple[list[NewJob], int, tuple[float, float] | None]:
        """Multi-fidelity batch: picks on the target posterior, then an oracle for each.

        The GP takes the fidelity as an input; the oracle of each pick follows the
        MF-GP-UCB rule (:mod:`bodisc.acquisition.multifidelity`).
        """
        from bodisc.acquisition import AcquisitionContext, select
        from bodisc.acquisition.multifidelity import (
            CHEAP,
            adapted_threshold,
            estimate_bias,
            select_with_fidelity,
            threshold,
            with_fidelity,
        )
        from bodisc.surrogates.gp import SMALL_N, torch_threads

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
        # cheap picks do not spend the target budget: a full batch, target picks capped
        remaining = cfg.budget.oracle_calls - store.calls_used()
        q = min(cfg.acquisition.batch_size, len(cand))
        X_c = np.array([feats[c.inchikey] for c in cand], dtype=float)
        n_target = sum(j.fidelity != CHEAP for j in train)
        if n_target < 1 or len(train) < 3:
            self.reporter.message(f"iteration {it}: too few labelled molecules with "
                                  f"descriptors; choosing at random (target oracle)")
            sel = select("random", AcquisitionContext(X_c, min(q, remaining), 0.0, rng))
            return [NewJob(cand[i].inchikey) for i in sel.index], len(cand), None
        self.reporter.phase(it, "fit")
        X_t = with_fidelity(np.array([feats[j.inchikey] for j in train], dtype=float),
                            [j.fidelity for j in train])
        y_t = np.array([self.sign * j.value for j in train])
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
        has_cheap = np.array([c.inchikey in cheap_keys for c in cand])
        best = float(max(self.sign * j.value for j in train if j.fidelity != CHEAP))
        with torch_threads(1 if len(train) < SMALL_N else None):
            t0 = time.perf_counter()
            gp = self._fit_surrogate(it, X_t, y_t)
            timings["fit_s"] = time.perf_counter() - t0
            timings["fit_evaluations"] = float(getattr(gp, "fit_evaluations", 0))
            failpoint("fit")
            self.reporter.phase(it, "acquire")
            t0 = time.perf_counter()
            picks = select_with_fidelity(cfg.acquisition.name, gp, X_c, has_cheap, q, best,
                                         rng, cfg.acquisition.beta, fid.beta, gamma)
            timings["score_s"] = time.perf_counter() - t0
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

    def _fit_and_select(self, it: int, train: list[Job], cand: Sequence[Any],
                        feats: dict[str, list[float]], q: int, rng: np.random.Generator,
                        timings: dict[str, float], name: str
                        ) -> tuple[list[NewJob], int, tuple[float, float] | None]:
        from bodisc.acquisition import AcquisitionContext, select
        from bodisc.surrogates import uses_categories, with_categories

        cfg = self.config
        X_c = np.array([feats[c.inchikey] for c in cand], dtype=float)
        self.reporter.phase(it, "fit")
        X_t = np.array([feats[j.inchikey] for j in train], dtype=float)
        y_t = np.array([self.sign * j.value for j in train])
        t0 = time.perf_counter()
        if uses_categories(cfg.surrogate.kind):
            X_t = with_categories(X_t, [j.smiles for j in train])
            X_c = with_categories(X_c, [c.smiles for c in cand])
        gp = self._fit_surrogate(it, X_t, y_t)
        timings["fit_s"] = time.perf_counter() - t0
        timings["fit_evaluations"] = float(getattr(gp, "fit_evaluations", 0))
        failpoint("fit")
        self.reporter.phase(it, "acquire")
        t0 = time.perf_counter()
        ctx = AcquisitionContext(X_c, q, float(y_t.max()), rng, gp, cfg.acquisition.beta)
        sel = select(name, ctx)
        mean, std = gp.predict(X_c[sel.index])
        timings["score_s"] = time.perf_counter() - t0
        jobs = [
            NewJob(cand[i].inchikey, float(self.sign * m), float(s), float(a))
            for i, m, s, a in zip(sel.index, mean, std, sel.score, strict=True)
        ]
        values = [j.value for j in train]
        return jobs, len(cand), (float(min(values)), float(max(values)))

    def _columns(self, text: str) -> dict[int, float]:
        """Descriptor column -> factor of a descriptor or signed sum (``"lumo - homo"``)."""
        columns: dict[int, float] = {}
        for name, factor in parse_proxy(text):
            column = self.descriptor_names.index(name)
            columns[column] = columns.get(column, 0.0) + factor
        return columns

    def _fit_surrogate(self, it: int, X_t: np.ndarray, y_t: np.ndarray) -> Any:
        """Build and fit the campaign's surrogate on ``X_t`` ``(n, d)``, ``y_t`` ``(n,)``.

        GP kinds start from the hyperparameters of the last earlier fit (``warm_start``)
        and, with ``restarts > 1``, from that many starting points fitted as one batched
        model. With ``refit_growth > 1`` the hyperparameters are re-optimised only once
        the labels have grown by that factor since the last optimisation; in between the
        model is conditioned on the new labels with the stored hyperparameters. Each
        fit's hyperparameters are stored (meta ``surrogate/<iteration>``), so
        a resumed campaign starts the next fit from the very values an uninterrupted one
        would, and picks the same molecules.
        """
        from bodisc.surrogates import build_surrogate

        s, store = self.config.surrogate, self.store
        assert store is not None
        options: dict[str, Any] = (
            {"subset": s.subset, "inducing": s.inducing, "seed": self.config.random_seed}
            if s.kind == "sparse" else {"mean": s.mean} if s.kind == "gp" else {})
        if s.kind == "gp" and s.mean == "proxy":  # labels here are in maximisation form
            options.update(proxy_column=self._columns(s.proxy), proxy_sign=self.sign)
        model = build_surrogate(s.kind, s.kernel, s.device, s.precision, **options)
        if not hasattr(model, "hyper_state"):
            return model.fit(X_t, y_t)
        n = len(y_t)
        last = self._last_surrogate_state(it, s.kind)
        init = last["state"] if last and s.warm_start else None
        optimised_at = n
        if last and s.refit_growth > 1.0 and n < last["optimised_at"] * s.refit_growth:
            model.fit(X_t, y_t, init=last["state"], optimise=False)  # condition only
            optimised_at = last["optimised_at"]
        elif s.restarts > 1 and s.kind == "gp":
            from bodisc.surrogates.batched import multistart_state

            rng = np.random.default_rng(np.random.SeedSequence([self.config.random_seed, it, 1]))
            init = multistart_state(X_t, y_t, s.restarts, rng, s.kernel, s.device, init)
            model.fit(X_t, y_t, init=init, optimise=False)
        else:
            model.fit(X_t, y_t, init=init)
        store.set_meta(f"surrogate/{it}", {"kind": s.kind, "state": model.hyper_state(),
                                           "optimised_at": optimised_at})
        return model

    def _last_surrogate_state(self, it: int, kind: str) -> dict[str, Any] | None:
        """What the latest fit of this kind before iteration ``it`` stored."""
        assert self.store is not None
        for j in range(it - 1, -1, -1):
            saved = self.store.get_meta(f"surrogate/{j}")
            if saved and saved.get("kind") == kind:
                saved.setdefault("optimised_at", 0)
                return saved
        return None

    def _featurise(self, it: int, keys: Sequence[str], smiles: Sequence[str]
                   ) -> dict[str, list[float]]:
        """Descriptors of the given molecules, from the cache or computed and cached."""
        from bodisc.execution.tasks import descriptor_task

        store, cfg = self.store, self.config
        assert store is not None
        cached = store.descriptors_of(keys, self.descriptor_set)
        todo = [(k, s) for k, s in dict(zip(keys, smiles, strict=True)).items()
                if k not in cached]
        if cfg.pool is not None and todo:
            self._featurise_pool(it, [k for k, _ in todo], cached)
            todo = []
        args = (tuple(self.tier_names), cfg.descriptors.conformer_seed)
        for out in self._execute("descriptors", self.descriptor_set, descriptor_task,
                                 [(k, (s, *args)) for k, s in todo], {k: k for k, _ in todo},
                                 cfg.execution.descriptor_timeout_s):
            if out.failure is None:
                vector, seconds = out.value
                store.put_descriptors(out.key, self.descriptor_set, vector, None, seconds, it)
                failpoint("descriptors")
                cached[out.key] = ("done", vector, None)
            else:
                store.put_descriptors(out.key, self.descriptor_set, None, out.failure,
                                      out.seconds, it)
                cached[out.key] = ("failed", None, out.failure)
        cols = self.columns
        return {k: [v[c] for c in cols] for k, (status, v, _) in cached.items()
                if status == "done" and v}

    def pool(self) -> Any:
        """The campaign's candidate pool (:class:`bodisc.chem.pool.QM9Pool`)."""
        from bodisc.chem.pool import QM9Pool

        assert self.config.pool is not None
        if self._pool is None:
            self._pool = QM9Pool(self.config.pool.subset, self.config.random_seed)
        return self._pool

    def _featurise_pool(self, it: int, keys: Sequence[str],
                        cached: dict[str, tuple[str, Any, Any]]) -> None:
        """Descriptors of pool molecules on their own geometries (disk-cached), stored."""
        from bodisc.data import qm9_descriptors

        store, pool = self.store, self.pool()
        assert store is not None
        index = {k: pool.get(k).index for k in keys if pool.get(k) is not None}
        frame = qm9_descriptors(list(index.values()), tier=self.tier,
                                workers=self.config.execution.workers)
        failures = frame.attrs["failures"]
        for key, i in index.items():
            if i in failures:
                store.put_descriptors(key, self.descriptor_set, None, failures[i], 0.0, it)
                cached[key] = ("failed", None, failures[i])
            else:
                vector = [float(v) for v in frame.loc[i, list(self.tier_names)]]
                store.put_descriptors(key, self.descriptor_set, vector, None, 0.0, it)
                cached[key] = ("done", vector, None)

    def _execute(self, kind: str, settings: str, fn: Any, tasks: list[tuple[Any, tuple]],
                 molecule_of: dict[Any, str], timeout_s: float) -> Any:
        """Run ``fn`` on ``tasks`` in the executor, through the shared cache if there is one.

        Yields the executor's outcomes (keyed by task key) in completion order; with a
        cache, a result another campaign computed comes back without running again.
        """
        if self.cache is None:
            return self.executor.run(fn, tasks, timeout_s)
        return self.cache.run(kind, settings, self.executor, fn, tasks, molecule_of, timeout_s)

    def _finish_iteration(self, it: int) -> None:
        """Run the pending jobs of iteration ``it``, then record and log it."""
        from bodisc.execution.tasks import oracle_task

        store, cfg = self.store, self.config
        assert store is not None
        self.reporter.phase(it, "oracle")
        t0 = time.perf_counter()
        groups = [("target", cfg.oracle.name, self.oracle_options)]
        if cfg.fidelity is not None:  # the cheap calls first: they are quick
            groups.insert(0, ("cheap", cfg.fidelity.cheap_oracle, self.cheap_options))
        for fidelity, oracle, options in groups:
            pending = store.jobs("pending", it, fidelity=fidelity)
            if not pending and fidelity != "target":
                continue
            tasks = [(j.id, (oracle, options, j.smiles)) for j in pending]
            failpoint("oracle.submitted")
            settings = json.dumps([oracle, options])
            for out in self._execute("oracle", settings, oracle_task, tasks,
                                     {j.id: j.inchikey for j in pending},
                                     cfg.execution.oracle_timeout_s):
                failpoint("oracle.result")
                if out.failure is not None:
                    store.finish_job(out.key, None, out.failure, out.seconds)
                else:
                    res = out.value
                    store.finish_job(out.key, res.value, res.failure, res.seconds, res.extras)
                failpoint("oracle.commit")
                self.reporter.progress(it, store.calls_used(), self._best_value())
        timings = dict(store.get_meta(f"timings/{it}") or {})
        timings["oracle_s"] = time.perf_counter() - t0  # this process's share, if resumed
        store.complete_iteration(it, self._iteration_metrics(it, timings))
        failpoint("iteration.complete")
        self._log_pending_iterations()

    def _iteration_metrics(self, it: int, timings: dict[str, float]) -> dict[str, float]:
        store = self.store
        assert store is not None
        jobs = store.jobs(iteration=it)
        values = [j.value for j in jobs if j.status == "done" and j.value is not None]
        row = next(r for r in store.iterations() if r["iteration"] == it)
        pick = max if self.sign > 0 else min
        metrics = {
            "best_so_far": self._best_value(),
            "batch_best": pick(values) if values else None,
            "batch_mean": float(np.mean(values)) if values else None,
            "candidates_scored": row["n_candidates"],
            "failures": sum(j.status == "failed" for j in jobs),
            "calls_used": store.calls_used(),
        }
        metrics.update({k: timings.get(k, 0.0)
                        for k in ("generate_s", "descriptor_s", "fit_s", "score_s", "oracle_s")})
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
        return {k: v for k, v in metrics.items() if v is not None}

    # -- tracking ---------------------------------------------------------------------
    def _log_pending_iterations(self) -> None:
        """Send every complete iteration not yet logged to MLflow (in order)."""
        store = self.store
        assert store is not None
        curve: list[tuple[int, Any]] | None = None
        for row in store.iterations():
            if row["status"] != "complete" or row["logged"]:
                continue
            it = row["iteration"]
            # best_so_far is logged per oracle call (below), the step being the call
            per_iteration = {k: v for k, v in row["metrics"].items() if k != "best_so_far"}
            if not self.tracker.log_metrics(per_iteration, step=it):
                return
            curve = self._call_curve() if curve is None else curve
            if not self.tracker.log_metrics_at([(m.call, m.as_dict())
                                                for i, m in curve if i == it]):
                return
            failpoint("mlflow")
            extra = self._extrapolation_records(it, row)
            for rec in extra:
                step = rec.pop("call")
                if not self.tracker.log_metrics({f"extrapolation.{k}": v
                                                 for k, v in rec.items()}, step=step):
                    return
            store.mark_logged(it)

    def _call_curve(self) -> list[tuple[int, Any]]:
        """``(iteration, CallMetrics)`` after every oracle call so far (pending: no value)."""
        from bodisc.metrics import per_call_metrics

        store = self.store
        assert store is not None
        jobs = store.jobs()
        calls = [(j.inchikey, j.value if j.status == "done" else None) for j in jobs]
        curve = per_call_metrics(calls, self.config.budget.oracle_calls, self.sign > 0)
        return [(j.iteration, m) for j, m in zip(jobs, curve, strict=True)]

    def _extrapolation_records(self, it: int, row: dict[str, Any]) -> list[dict[str, float]]:
        """Labels of iteration ``it`` outside the training range, with their predictions.

        Each record: the call number, observed value, predicted mean and standard
        deviation, z-score, the distance to the nearest training molecule in z-scored
        descriptor space and the largest Tanimoto similarity to a training molecule.
        """
        from bodisc.metrics import descriptor_distance, max_tanimoto

        lo, hi = row["train_min"], row["train_max"]
        if lo is None or hi is None:
            return []
        store = self.store
        assert store is not None
        first_call = sum(1 for j in store.jobs() if j.iteration < it)
        beyond = [j for j in store.jobs(iteration=it)
                  if j.value is not None and j.pred_mean is not None
                  and not lo <= j.value <= hi]
        if not beyond:
            return []
        train = [j for j in self._labelled() if j.iteration < it]
        feats = store.descriptors_of([j.inchikey for j in train + beyond], self.descriptor_set)
        cols = self.columns

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

    def extrapolation_table(self) -> list[dict[str, Any]]:
        """Every extrapolation record of the campaign (for the CSV artifact)."""
        store = self.store
        assert store is not None
        rows = []
        for row in store.iterations():
            for rec in self._extrapolation_records(row["iteration"], row):
                rec["iteration"] = row["iteration"]
                rows.append(rec)
        return rows

    # -- the end ----------------------------------------------------------------------
    def _summary(self, stop_reason: str, top: int = 10) -> Summary:
        import pandas as pd

        store, cfg = self.store, self.config
        assert store is not None
        frame = store.results_frame()
        csv = cfg.path("export_csv")
        csv.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(csv, index=False)
        self.tracker.log_artifact(csv)
        extrap = self.extrapolation_table()
        if extrap:
            path = csv.with_name("extrapolation.csv")
            pd.DataFrame(extrap).to_csv(path, index=False)
            self.tracker.log_artifact(path)
        self._log_extrapolation_summary(extrap, csv.with_name("extrapolation_summary.json"))
        done = self._labelled()
        done.sort(key=lambda j: (-self.sign * j.value, j.iteration, j.rank))
        best = [(j.smiles, float(j.value), j.iteration) for j in done[:top]]
        failures = sum(1 for j in store.jobs("failed"))
        return Summary(best, store.calls_used(), failures, cfg.path("store"), csv,
                       self.tracker.run_id, stop_reason, len(store.iterations()))

    def _log_extrapolation_summary(self, records: list[dict[str, Any]], path: Path) -> None:
        """Calibration and RMSE of the extrapolation steps: a JSON file, MLflow metrics."""
        from bodisc.metrics import extrapolation_summary

        store = self.store
        assert store is not None
        summary = extrapolation_summary([r["observed"] for r in records],
                                        [r["pred_mean"] for r in records],
                                        [r["pred_std"] for r in records],
                                        [j.value for j in self._labelled()])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
        self.tracker.log_metrics({f"extrapolation.{k}": v for k, v in summary.items()},
                                 step=store.calls_used())
        self.tracker.log_artifact(path)
