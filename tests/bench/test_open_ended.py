"""The open-ended benchmark, reduced: the shipped campaign file with a 30-call budget.

Real xTB labels (molecules of at most 9 heavy atoms take well under a second), a real
comparison store and MLflow store for the campaign methods. Asserted: every method spends
exactly its budget, the runs are seeded, the genetic algorithm's population rule is
JANUS's, results are reused across methods through the shared cache, runs resume, and
the command gives the documented JSON keys and one-line errors.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bodisc.bench.efficiency import STAGED_GREEDY_UNTIL, STAGED_WARMUP_BATCHES
from bodisc.bench.open_ended import (
    JanusSettings,
    calls_to_reach,
    campaign_config,
    janus_split,
    run_open_ended,
    summarise,
)
from bodisc.config import load_campaign

pytestmark = pytest.mark.slow

CAMPAIGN = Path(__file__).resolve().parents[2] / "campaigns" / "open_ended.toml"
BUDGET = 30


def _config(tmp_path, budget=BUDGET):
    return load_campaign(CAMPAIGN, {"budget.oracle_calls": budget,
                                    "generator.candidates_per_iteration": 30,
                                    "paths.mlruns": str(tmp_path / "mlruns")})


def test_janus_split_keeps_the_best_and_a_fifth():
    rng = np.random.default_rng(0)
    fitness = np.array([1.0, 5.0, 3.0, -np.inf, 2.0, 4.0, 0.5, 2.5, 3.5, 1.5])
    splits = [janus_split(fitness, 0.2, rng) for _ in range(20)]
    assert all(1 in keep for keep, _ in splits)  # the best member is always kept
    assert not any(3 in keep for keep, _ in splits)  # a failed member never is
    # two drawn (with repeats), plus the best if missed
    assert {len(keep) for keep, _ in splits} <= {1, 2, 3}
    assert all(sorted(k + r) == list(range(10)) for k, r in splits)
    # the draw favours the fitter: over many draws the top half is kept far more often
    counts = np.zeros(10)
    for _ in range(300):
        counts[janus_split(fitness, 0.2, rng)[0]] += 1
    assert counts[[1, 5, 8, 2]].sum() > 3 * counts[[0, 6, 9, 4]].sum()


def test_janus_split_falls_back_to_the_best_on_ties():
    keep, replace = janus_split(np.ones(10), 0.2, np.random.default_rng(1))
    assert keep == [0, 1] and len(replace) == 8


def test_the_staged_method_is_a_campaign_in_the_replay_stages(tmp_path):
    from bodisc.compare import plan_runs

    cfg = campaign_config(_config(tmp_path), str(CAMPAIGN), tmp_path / "out", [0, 3],
                          ["ga", "cheap", "staged"], "mu")
    runs = {(r.strategy.name, r.seed): r.config for r in plan_runs(cfg, str(CAMPAIGN))}
    assert sorted(runs) == [("cheap", 0), ("cheap", 3), ("staged", 0), ("staged", 3)]
    staged, cheap = runs[("staged", 3)].acquisition, runs[("cheap", 3)].acquisition
    assert (staged.name, staged.warmup_batches, staged.greedy_until, staged.rank_by) == (
        "ucb", STAGED_WARMUP_BATCHES, STAGED_GREEDY_UNTIL, "mu")
    assert (cheap.name, cheap.warmup_batches, cheap.greedy_until) == ("rank", 0, 0.0)
    assert runs[("staged", 3)].random_seed == 3


def test_calls_to_reach():
    curve = [None, 1.0, 1.0, 2.5, 3.0]
    assert calls_to_reach(curve, 2.5, True) == 4
    assert calls_to_reach(curve, 3.5, True) is None
    assert calls_to_reach([5.0, 4.0, 2.0], 4.0, False) == 2


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("open-ended")
    cfg = _config(tmp)
    records = run_open_ended(cfg, str(CAMPAIGN), ["mutate", "ga", "cheap", "ucb"], [0],
                             tmp / "out", settings=JanusSettings(generation_size=8),
                             message=lambda m: None)
    return tmp, cfg, records


def test_every_method_spends_its_budget_and_reports_its_figures(runs):
    _, _, records = runs
    assert [r["method"] for r in records] == ["mutate", "ga", "cheap", "ucb"]
    for r in records:
        assert r["calls"] == BUDGET
        assert len(r["best_curve"]) == BUDGET
        assert r["best"] == max(v for v in r["best_curve"] if v is not None)
        assert r["best_100"] == r["best"]  # the curve is carried past a short budget
        assert 0 < r["auc_top10"] <= r["best"]
        assert r["target"] == "dipole_max" and r["top1pct_recall_500"] is None
    ga = next(r for r in records if r["method"] == "ga")
    assert ga["calls_to_ga_best"] == calls_to_reach(ga["best_curve"], ga["best"], True)


def test_runs_are_seeded_and_share_the_cache(runs, tmp_path):
    tmp, cfg, records = runs
    again = run_open_ended(cfg, str(CAMPAIGN), ["mutate", "ga"], [0], tmp_path / "again",
                           settings=JanusSettings(generation_size=8), message=lambda m: None)
    for first, second in zip(records[:2], again, strict=True):
        assert first["best_curve"] == second["best_curve"]
        assert first["best_smiles"] == second["best_smiles"]
    # the seeds are labelled once for all four methods: far fewer oracle rows than calls
    import sqlite3

    with sqlite3.connect(tmp / "out" / "runs" / "cache.sqlite") as db:
        rows = db.execute("SELECT COUNT(*) FROM results WHERE kind = 'oracle'").fetchone()[0]
    assert rows < 4 * BUDGET - 3 * len(cfg.seed_molecules) + 1


def test_finished_runs_are_read_back_not_redone(runs):
    tmp, cfg, records = runs
    lines = (tmp / "out" / "open_ended.jsonl").read_text().splitlines()
    assert [json.loads(x)["method"] for x in lines] == ["mutate", "ga"]
    again = run_open_ended(cfg, str(CAMPAIGN), ["mutate", "ga", "cheap", "ucb"], [0],
                           tmp / "out", settings=JanusSettings(generation_size=8),
                           message=lambda m: None)
    assert len((tmp / "out" / "open_ended.jsonl").read_text().splitlines()) == 2
    assert [r["best_curve"] for r in again] == [r["best_curve"] for r in records]
    rows = summarise(again, BUDGET)
    assert {r["method"] for r in rows} == {"mutate", "ga", "cheap", "ucb"}
    assert all(0 <= r["reached_ga_best_within_half"] <= r["seeds"] for r in rows)


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "bodisc.cli", "bench", "open-ended", *args],
                          capture_output=True, text=True, cwd=cwd)


def test_cli_writes_the_issue_keys(tmp_path):
    out = _cli(str(CAMPAIGN), "--methods", "mutate,ga", "--seeds", "0", "--generation-size",
               "6", "--set", "budget.oracle_calls=20", "--set",
               f"paths.mlruns='{tmp_path / 'mlruns'}'", "--out", str(tmp_path / "o"),
               "--json", str(tmp_path / "o.json"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    payload = json.loads((tmp_path / "o.json").read_text())
    keys = {"target", "method", "seed", "top1pct_recall_500", "top1pct_recall_1000",
            "top1pct_recall_2000", "calls_to_max", "auc_top10", "best"}
    assert all(keys <= set(r) for r in payload["runs"])
    assert (tmp_path / "o" / "open_ended.png").stat().st_size > 0
    assert "| ga |" in (tmp_path / "o" / "open_ended.md").read_text()


@pytest.mark.parametrize(("args", "words"), [
    (["--methods", "ga,annealing"], ["--methods", "annealing", "mutate"]),
    (["--methods", "cheap", "--rank-by", "nonsense"], ["--rank-by", "nonsense", "mu"]),
    (["--methods", "staged", "--rank-by", "nonsense"], ["--rank-by", "nonsense", "mu"]),
])
def test_cli_bad_input_is_one_line(tmp_path, args, words):
    out = _cli(str(CAMPAIGN), *args, "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert out.returncode != 0
    lines = [x for x in out.stderr.strip().splitlines() if x.strip()]
    text = " ".join(lines)
    assert all(w in text for w in words), out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "o" / "open_ended.jsonl").exists()
