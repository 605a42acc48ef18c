"""Open-ended search with a real oracle: bodisc against search without a model.

Every method starts from the campaign file's seed molecules, proposes molecules with the
same SELFIES mutation and crossover under the same constraints (``[generator]``), labels
them with the same oracle (``[oracle]``) and spends the same budget
(``[budget] oracle_calls``, every call paid for, failures included). Methods
(:data:`METHODS`):

* ``mutate``: random SELFIES mutation, no selection: each call labels a mutant (1 to
  ``max_operations`` edits) of a molecule drawn uniformly from those labelled so far.
* ``ga``: the JANUS genetic algorithm (Nigam, Pollice and Aspuru-Guzik, Digital
  Discovery 2022) without its neural-network classifier, i.e. with no surrogate. Each
  generation keeps ``keep_ratio`` of the population, drawn with JANUS's probability
  ``1 / (3 ** ((F50 - f) / (F50 - F25)) + 1)`` (``F50`` the fitness at the keep rank,
  ``F25`` the best below it) and always with the best; the first half of the others is
  replaced by mutants, the second half by crossovers with a kept molecule, the children
  drawn at random among the new ones (exploration); then ``generation_size`` mutants of
  the best molecule, the most Tanimoto-similar to it first, are labelled (exploitation,
  ``top_mols = 1``), and the ``num_exchanges`` best of them replace the worst of the
  population. The published population of 5,000 does not fit a 500-call budget: the
  generation size is scaled to the budget (:class:`JanusSettings`, 20 by default, so that
  500 calls make about 13 generations); the crossover is bodisc's SELFIES crossover, not
  JANUS's path-based one; the initial population is the seed molecules and mutants of
  them.
* ``cheap``, ``logei``, ``ucb``, ``thompson``, ``staged``: bodisc campaigns run by
  :class:`bodisc.compare.Comparison` (each with its own store and MLflow run); ``cheap``
  labels the candidates ranked first by the descriptor named by ``--rank-by`` (the
  descriptor-level xTB dipole ``mu`` for the dipole), the others fit bodisc's GP;
  ``staged`` runs the stages of :func:`bodisc.acquisition.staged` (the first batches
  ranked as ``cheap`` ranks, greedy batches, then UCB).

All methods share the comparison's :class:`~bodisc.runtime.cache.ResultCache`: a molecule is
labelled once for all methods and seeds, each run still pays for its own calls.

Per run the bench records the calls in order and reports the best value after given
numbers of calls, the PMO top-10 AUC, and how many calls the run needed to reach the
genetic algorithm's final best of the same seed (``calls_to_ga_best``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bodisc.bench.efficiency import STAGED_GREEDY_UNTIL, STAGED_WARMUP_BATCHES
from bodisc.config import CampaignConfig
from bodisc.errors import ConfigError
from bodisc.plotting import pyplot, save

#: The methods run outside a campaign (no surrogate, no descriptors).
SEARCH_METHODS = ("mutate", "ga")
#: The methods run as bodisc campaigns: method -> its ``[[compare.strategies]]`` fields.
#: ``staged`` is the QM9 replay's ``gp_proxy_staged`` schedule on this campaign's GP (2
#: batches ranked by ``--rank-by``, greedy to half the budget, then UCB), chosen on QM9
#: and not tuned here.
CAMPAIGN_METHODS: dict[str, dict[str, Any]] = {
    "cheap": {"acquisition": "rank"},
    "logei": {"acquisition": "logei"},
    "ucb": {"acquisition": "ucb"},
    "thompson": {"acquisition": "thompson"},
    "staged": {"acquisition": "ucb", "warmup_batches": STAGED_WARMUP_BATCHES,
               "greedy_until": STAGED_GREEDY_UNTIL},
}
#: Every method, in table order.
METHODS = SEARCH_METHODS + tuple(CAMPAIGN_METHODS)
#: The call counts the table reports the best value at.
CHECKPOINTS = (100, 250, 500)


@dataclass(frozen=True)
class JanusSettings:
    """The JANUS genetic algorithm's settings, scaled to a small budget.

    Attributes:
        generation_size: Molecules per population (JANUS: 5,000).
        keep_ratio: Share of the population kept each generation (JANUS: 0.2).
        explore_samples: Mutants tried per molecule to be replaced (JANUS: 5).
        exploit_samples: Mutants of the best tried before the similarity filter, per
            molecule labelled (JANUS: 400 per generation of 5,000 over its 400 samples;
            here a multiple of the generation size).
        num_exchanges: Best local-search molecules moved into the population (JANUS: 5).
    """

    generation_size: int = 20
    keep_ratio: float = 0.2
    explore_samples: int = 5
    exploit_samples: int = 5
    num_exchanges: int = 2


# -- labelling through the shared cache ---------------------------------------------------
class Labeller:
    """Labels molecules with the campaign's oracle, counting calls against the budget.

    Args:
        config: The campaign (its ``[oracle]``, ``[execution]`` and ``[budget]``).
        executor: A :class:`~bodisc.execution.local.LocalExecutor` or Dask executor.
        cache: The comparison's :class:`~bodisc.runtime.cache.ResultCache`, or ``None``.
        maximize: Whether larger labels are better.
    """

    def __init__(self, config: CampaignConfig, executor: Any, cache: Any,
                 maximize: bool) -> None:
        self.config = config
        self.executor = executor
        self.cache = cache
        self.sign = 1.0 if maximize else -1.0
        self.options = json.dumps(config.oracle.options, sort_keys=True)
        self.settings = json.dumps([config.oracle.name, self.options])
        #: One ``(inchikey, smiles, value or None, failure or None)`` per call, in order.
        self.calls: list[tuple[str, str, float | None, str | None]] = []
        self.seen: dict[str, float] = {}  # inchikey -> fitness (maximisation form; -inf failed)

    @property
    def left(self) -> int:
        """Calls left in the budget."""
        return self.config.budget.oracle_calls - len(self.calls)

    def label(self, molecules: Sequence[tuple[str, str]]) -> list[float]:
        """Label ``(inchikey, smiles)`` pairs not labelled before, within the budget.

        Returns:
            The fitness (maximisation form, ``-inf`` for a failure) of each molecule that
            was labelled, in the order given; molecules beyond the budget are dropped.
        """
        from bodisc.execution.tasks import oracle_task

        todo = [(k, s) for k, s in dict(molecules).items() if k not in self.seen][: self.left]
        if not todo:
            return []
        tasks = [(k, (self.config.oracle.name, self.options, s)) for k, s in todo]
        timeout = self.config.execution.oracle_timeout_s
        if self.cache is None:
            outs = self.executor.run(oracle_task, tasks, timeout)
        else:
            outs = self.cache.run("oracle", self.settings, self.executor, oracle_task, tasks,
                                  {k: k for k, _ in todo}, timeout)
        results: dict[str, tuple[float | None, str | None]] = {}
        for out in outs:
            if out.failure is not None:
                results[out.key] = (None, out.failure)
            else:
                value = out.value.value
                results[out.key] = (None if value is None or value != value else float(value),
                                    out.value.failure)
        fitness = []
        for key, smiles in todo:  # recorded in the order asked, not of completion
            value, failure = results[key]
            self.calls.append((key, smiles, value, failure))
            f = -np.inf if value is None else self.sign * value
            self.seen[key] = f
            fitness.append(f)
        return fitness


# -- the two searches without a model ---------------------------------------------------
def _seed_records(config: CampaignConfig) -> list[tuple[str, str]]:
    from bodisc.chem.molecule import record_from_smiles

    records = [record_from_smiles(s) for s in config.seed_molecules]
    return list({r.inchikey: r.smiles for r in records}.items())


def run_mutate(config: CampaignConfig, labeller: Labeller, rng: np.random.Generator) -> None:
    """Random SELFIES mutation: mutants of uniformly drawn labelled molecules.

    Labels the seeds, then batches of ``[acquisition] batch_size`` mutants until the
    budget is spent (or no new molecule can be made).
    """
    from bodisc.chem.generator import Generator

    gen = Generator(config.generator)
    seeds = _seed_records(config)
    labeller.label(seeds)
    smiles_of = dict(seeds)
    q = config.acquisition.batch_size
    while labeller.left > 0:
        parents = [smiles_of[k] for k in smiles_of if np.isfinite(labeller.seen.get(k, -np.inf))]
        parents = parents or [s for _, s in seeds]
        batch: dict[str, str] = {}
        for _ in range(q * config.generator.max_attempts_per_candidate):
            if len(batch) >= min(q, labeller.left):
                break
            parent = parents[int(rng.integers(len(parents)))]
            child = gen.propose([parent], 1, rng, exclude=labeller.seen.keys() | batch.keys())
            if child:
                batch[child[0].inchikey] = child[0].smiles
        if not batch:
            return
        smiles_of.update(batch)
        labeller.label(list(batch.items()))


def janus_split(fitness: np.ndarray, keep_ratio: float, rng: np.random.Generator
                ) -> tuple[list[int], list[int]]:
    """JANUS's choice of the population members kept for the next generation.

    Args:
        fitness: Fitness of each member (maximisation form, ``-inf`` for a failed one),
            shape ``(n,)``.
        keep_ratio: Share kept.
        rng: Source of the draws.

    Returns:
        ``(keep, replace)``: member indices; the best member is always kept. Falls back to
        the best ``keep_ratio`` share when the probabilities are undefined (ties).
    """
    n = len(fitness)
    order = np.argsort(-fitness, kind="stable")
    n_keep = max(1, int(n * keep_ratio))
    f50 = fitness[order[min(n_keep, n - 1)]]
    below = fitness[fitness < f50]
    keep: list[int]
    if np.isfinite(f50) and len(below) and np.isfinite(below.max()) and below.max() < f50:
        f25 = below.max()
        expo = np.clip((f50 - fitness) / (f50 - f25), -50.0, 50.0)
        prob = np.where(np.isfinite(fitness), 1.0 / (3.0 ** expo + 1.0), 0.0)
        prob = prob / prob.sum()
        drawn = rng.choice(n, size=n_keep, p=prob)
        keep = list(dict.fromkeys(int(i) for i in drawn))
        if int(order[0]) not in keep:
            keep.append(int(order[0]))
    else:
        keep = [int(i) for i in order[:n_keep]]
    replace = [i for i in range(n) if i not in keep]
    return keep, replace


def run_ga(config: CampaignConfig, labeller: Labeller, rng: np.random.Generator,
           settings: JanusSettings = JanusSettings()) -> None:
    """The JANUS genetic algorithm without a surrogate, until the budget is spent."""
    from bodisc.chem.generator import Generator
    from bodisc.metrics import tanimoto_to

    gen = Generator(config.generator)
    size = settings.generation_size
    seeds = _seed_records(config)
    smiles_of = dict(seeds)
    # initial population: the seeds, then mutants of them up to the generation size
    start = dict(seeds)
    for _ in range(size * config.generator.max_attempts_per_candidate):
        if len(start) >= size:
            break
        parent = seeds[int(rng.integers(len(seeds)))][1]
        child = gen.propose([parent], 1, rng, exclude=start.keys())
        if child:
            start[child[0].inchikey] = child[0].smiles
    smiles_of.update(start)
    labeller.label(list(start.items()))
    population = [k for k in start if k in labeller.seen]

    def new(children: Sequence[Any], found: dict[str, str]) -> None:
        for c in children:
            if c is not None and c.inchikey not in labeller.seen and c.inchikey not in found:
                found[c.inchikey] = c.smiles

    while labeller.left > 0 and population:
        fitness = np.array([labeller.seen[k] for k in population])
        keep_i, replace_i = janus_split(fitness, settings.keep_ratio, rng)
        keep = [population[i] for i in keep_i]
        replace = [population[i] for i in replace_i]
        # exploration: mutate the first half of the replaced, cross the second half
        want = size - len(keep)
        found: dict[str, str] = {}
        for _ in range(20):
            if len(found) >= want:
                break
            half = replace[: len(replace) // 2] or keep
            for key in half:
                new(gen.propose([smiles_of[key]], settings.explore_samples, rng,
                                exclude=labeller.seen.keys()), found)
            for key in replace[len(replace) // 2:]:
                mate = keep[int(rng.integers(len(keep)))]
                new([gen.crossover(smiles_of[key], smiles_of[mate], rng)], found)
        keys = list(found)
        chosen = [keys[int(i)] for i in rng.permutation(len(keys))[:want]]
        smiles_of.update({k: found[k] for k in chosen})
        labeller.label([(k, found[k]) for k in chosen])
        population = keep + [k for k in chosen if k in labeller.seen]
        if labeller.left <= 0:
            break
        # exploitation: mutants of the best, the most similar to it first
        best = max(population, key=lambda k: labeller.seen[k])
        local: dict[str, str] = {}
        new(gen.propose([smiles_of[best]], size * settings.exploit_samples, rng,
                        exclude=labeller.seen.keys()), local)
        if not local and not found:
            return  # nothing new can be made
        keys = list(local)
        sims = tanimoto_to(smiles_of[best], [local[k] for k in keys])
        ranked = [keys[int(i)] for i in np.argsort(-sims, kind="stable")[:size]]
        smiles_of.update({k: local[k] for k in ranked})
        labeller.label([(k, local[k]) for k in ranked])
        labelled = [k for k in ranked if k in labeller.seen]
        # exchange: the best local molecules replace the worst of the population
        best_local = sorted(labelled, key=lambda k: -labeller.seen[k])[: settings.num_exchanges]
        population.sort(key=lambda k: -labeller.seen[k])
        for i, k in enumerate(best_local):
            if k in population:
                continue
            if len(population) - 1 - i > 0:  # the worst go; the best member never does
                population[-1 - i] = k
            else:  # a population shrunk by failures grows back
                population.append(k)


# -- the bench ---------------------------------------------------------------------------
def _seed_rng(seed: int, method: str) -> np.random.Generator:
    return np.random.default_rng([seed, METHODS.index(method), 2024])


def campaign_config(config: CampaignConfig, file: str, out: Path, seeds: Sequence[int],
                    methods: Sequence[str], rank_by: str) -> CampaignConfig:
    """The comparison of the campaign methods: runs, store folder and cache under ``out``."""
    data = config.as_dict()
    data["compare"] = {"seeds": list(seeds), "parallel": 1, "strategies": [
        {"name": m, **CAMPAIGN_METHODS[m]} for m in methods if m in CAMPAIGN_METHODS]}
    data["acquisition"]["rank_by"] = rank_by
    data["paths"] = {**data["paths"], "store": str(out / "runs" / "store.sqlite"),
                     "export_csv": str(out / "runs" / "results.csv")}
    return CampaignConfig.model_validate(data)


def run_record(method: str, seed: int, calls: Sequence[tuple[str, str, float | None]],
               budget: int, maximize: bool, wall_s: float, target: str = "") -> dict[str, Any]:
    """The figures of one run from its calls ``(inchikey, smiles, value or None)``.

    The keys of the QM9 replay that do not apply to an open-ended search (the top-1 %
    shares, calls to the pool's best) are there as ``None``.
    """
    from bodisc.metrics import per_call_metrics, top_k_auc

    pairs = [(k, v) for k, _, v in calls]
    curve = per_call_metrics(pairs, budget, maximize) if pairs else []
    best_curve = [m.best_so_far for m in curve]
    done = [(v, s) for _, s, v in calls if v is not None]
    best = (max if maximize else min)(done) if done else None
    rec: dict[str, Any] = {
        "benchmark": "open_ended", "target": target, "method": method, "seed": seed,
        "calls": len(calls), "top1pct_recall_500": None, "top1pct_recall_1000": None,
        "top1pct_recall_2000": None, "calls_to_max": None,
        "best": None if best is None else best[0],
        "best_smiles": None if best is None else best[1],
        "auc_top10": top_k_auc(pairs, budget, maximize) if pairs else 0.0,
        "failed": sum(v is None for _, _, v in calls),
        "best_curve": best_curve, "wall_s": wall_s,
    }
    for c in CHECKPOINTS:
        rec[f"best_{c}"] = best_curve[min(c, len(best_curve)) - 1] if best_curve else None
    return rec


def calls_to_reach(curve: Sequence[float | None], value: float, maximize: bool) -> int | None:
    """First call (1-based) at which a best-so-far curve reaches ``value``; ``None`` never."""
    for i, b in enumerate(curve, 1):
        if b is not None and (b >= value if maximize else b <= value):
            return i
    return None


def run_open_ended(config: CampaignConfig, file: str, methods: Sequence[str],
                   seeds: Sequence[int], out: Path, rank_by: str = "mu",
                   settings: JanusSettings = JanusSettings(),
                   progress: Callable[[dict[str, Any]], None] = lambda r: None,
                   message: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run (or resume) every method x seed; returns one record per finished run.

    Runs of ``mutate`` and ``ga`` are kept in ``out/open_ended.jsonl`` (a run is redone
    from the cache when it was interrupted); campaign runs in ``out/runs/<method>-s<seed>``.

    Raises:
        ConfigError: For an unknown method or ``rank_by`` not among the descriptors.
    """
    from bodisc.compare import Comparison
    from bodisc.descriptors import default_descriptors
    from bodisc.execution.dask import make_executor
    from bodisc.runtime.cache import ResultCache
    from bodisc.store import CampaignStore

    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ConfigError(file, "--methods", bad[0], f"choose from {', '.join(METHODS)}")
    names = config.descriptors.names or default_descriptors()
    ranked = {m for m, fields in CAMPAIGN_METHODS.items()
              if fields["acquisition"] == "rank" or fields.get("warmup_batches")}
    if ranked & set(methods) and rank_by not in names:
        raise ConfigError(file, "--rank-by", rank_by,
                          f"the ranking descriptor must be one of the campaign's descriptors "
                          f"({', '.join(names)})")
    maximize = config.objective.direction == "maximize"
    target = f"{config.objective.property}_{'max' if maximize else 'min'}"
    budget = config.budget.oracle_calls
    out.mkdir(parents=True, exist_ok=True)
    runs_file = out / "open_ended.jsonl"
    done = {(r["method"], r["seed"]): r for r in _read_jsonl(runs_file)}
    records: list[dict[str, Any]] = []
    cache = ResultCache(out / "runs" / "cache.sqlite")
    try:
        with make_executor(config.execution) as executor:
            for seed in seeds:
                for method in [m for m in SEARCH_METHODS if m in methods]:
                    if (method, seed) in done:
                        records.append(done[(method, seed)])
                        continue
                    t0 = time.perf_counter()
                    labeller = Labeller(config, executor, cache, maximize)
                    rng = _seed_rng(seed, method)
                    if method == "ga":
                        run_ga(config, labeller, rng, settings)
                    else:
                        run_mutate(config, labeller, rng)
                    rec = run_record(method, seed, [c[:3] for c in labeller.calls], budget,
                                     maximize, time.perf_counter() - t0, target)
                    if method == "ga":
                        rec["ga_settings"] = asdict(settings)
                    with open(runs_file, "a") as fh:
                        fh.write(json.dumps(rec) + "\n")
                    records.append(rec)
                    progress(rec)
    finally:
        cache.close()
    if any(m in CAMPAIGN_METHODS for m in methods):
        cfg = campaign_config(config, file, out, seeds, methods, rank_by)
        comparison = Comparison(cfg, file, message=message)
        comparison.run(report=None)
        for spec in comparison.runs:
            t0 = time.perf_counter()
            store = CampaignStore(spec.config.path("store"), create=False)
            try:
                jobs = store.jobs()
                elapsed = float(store.get_meta("elapsed_s") or 0.0)
            finally:
                store.close()
            calls = [(j.inchikey, j.smiles, j.value if j.status == "done" else None)
                     for j in jobs]
            rec = run_record(spec.strategy.name, spec.seed, calls, budget, maximize,
                             elapsed or time.perf_counter() - t0, target)
            records.append(rec)
            progress(rec)
    ga_best = {r["seed"]: r["best"] for r in records if r["method"] == "ga"}
    for rec in records:
        target = ga_best.get(rec["seed"])
        rec["calls_to_ga_best"] = (None if target is None else
                                   calls_to_reach(rec["best_curve"], target, maximize))
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(records, key=lambda r: (order[r["method"]], r["seed"]))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a kill
    return out


def summarise(records: Sequence[dict[str, Any]], budget: int, half: int | None = None
              ) -> list[dict[str, Any]]:
    """Per method: mean and sd over seeds of the figures, and the GA-best counts.

    Counts how many seeds reached the genetic algorithm's final best of the same seed
    within ``half`` calls (default: half the budget).
    """
    half = budget // 2 if half is None else half
    rows = []
    for method in dict.fromkeys(r["method"] for r in records):
        mine = [r for r in records if r["method"] == method]
        row: dict[str, Any] = {"method": method, "seeds": len(mine)}
        for key in [f"best_{c}" for c in CHECKPOINTS if c <= budget] + ["best", "auc_top10"]:
            vals = np.array([r[key] for r in mine if r[key] is not None], dtype=float)
            row[key] = float(vals.mean()) if len(vals) else None
            row[key + "_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        reach = [r["calls_to_ga_best"] for r in mine]
        row["reached_ga_best"] = sum(c is not None for c in reach)
        row["reached_ga_best_within_half"] = sum(c is not None and c <= half for c in reach)
        known = sorted(c for c in reach if c is not None)
        row["median_calls_to_ga_best"] = (float(np.median(known)) if len(known) == len(reach)
                                          and known else None)
        rows.append(row)
    return rows


def format_table(rows: Sequence[dict[str, Any]], budget: int, unit: str = "") -> str:
    """A Markdown table of :func:`summarise` rows."""
    cps = [c for c in CHECKPOINTS if c <= budget]
    head = (["method", "seeds"] + [f"best @{c}" for c in cps]
            + ["top-10 AUC", f"reached GA best within {budget // 2}", "median calls to GA best"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def fmt(row: dict[str, Any], key: str) -> str:
        v = row[key]
        return "n/a" if v is None else f"{v:.2f} ± {row[key + '_sd']:.2f}"

    for row in rows:
        cells = [row["method"], str(row["seeds"])] + [fmt(row, f"best_{c}") for c in cps]
        cells += [fmt(row, "auc_top10"),
                  f"{row['reached_ga_best_within_half']}/{row['seeds']}",
                  "n/a" if row["median_calls_to_ga_best"] is None
                  else f"{row['median_calls_to_ga_best']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if unit:
        lines.append(f"\nValues in {unit}; mean ± sd over seeds.")
    return "\n".join(lines)


def plot_curves(records: Sequence[dict[str, Any]], path: Path, ylabel: str) -> Path:
    """Best so far against calls: mean over seeds per method."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method in dict.fromkeys(r["method"] for r in records):
        curves = [r["best_curve"] for r in records if r["method"] == method and r["best_curve"]]
        n = min(len(c) for c in curves)
        arr = np.array([[np.nan if v is None else v for v in c[:n]] for c in curves])
        ax.plot(np.arange(1, n + 1), np.nanmean(arr, axis=0), label=method)
    ax.set_xlabel("oracle calls")
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    return save(fig, path, dpi=120)
