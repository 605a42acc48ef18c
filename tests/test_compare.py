"""A real two-strategy, two-seed comparison: runs, shared cache, MLflow parent and children.

The oracle is bodisc's xTB dipole oracle with a ledger line per real execution
(tests/plugins/ledger_oracle.py), so the tests count what was really computed.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY, write_campaign

pytestmark = pytest.mark.slow

PLUGIN = Path(__file__).parent / "plugins" / "ledger_oracle.py"
BUDGET = 7
COMPARE = """
[compare]
seeds = [1, 2]

[[compare.strategies]]
name = "logei"
acquisition = "logei"

[[compare.strategies]]
name = "random"
acquisition = "random"
"""


def comparison_file(folder: Path) -> Path:
    """The TINY campaign with the ledger oracle, a budget of 7 and a [compare] table."""
    text = TINY.replace('name = "xtb_dipole"', f'name = "{PLUGIN}:LedgerXtbDipole"')
    text = text.replace("n_conformers = 2", f'n_conformers = 2\nledger = "{folder}/ledger.txt"')
    text = text.replace("oracle_calls = 10", f"oracle_calls = {BUDGET}")
    return write_campaign(folder, text + COMPARE)


def bodisc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bodisc.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=900)


_DONE: dict[str, dict] = {}  # test_report imports the fixture: one run for both modules


@pytest.fixture(scope="session")
def tiny_comparison(tmp_path_factory) -> dict:
    """Run the comparison once, two runs at a time (one worker each), for all tests here.

    Runs at once are worker processes of the comparison (no second ``bodisc`` command);
    each writes its output to ``compare-run.log`` in its folder.
    """
    if "result" not in _DONE:
        _DONE["result"] = run_tiny_comparison(tmp_path_factory.mktemp("compare"))
    return _DONE["result"]


def run_tiny_comparison(folder: Path) -> dict:
    """``bodisc compare`` on the tiny comparison in ``folder``; what the tests read."""
    path = comparison_file(folder)
    proc = bodisc("compare", str(path), "--quiet", "--parallel", "2",
                  "--set", "execution.workers=1", cwd=folder)
    logs = "".join(f"\n--- {log}\n{log.read_text()[-3000:]}"
                   for log in sorted(folder.glob("runs/tiny/*/compare-run.log")))
    assert proc.returncode == 0, proc.stdout + proc.stderr + logs
    return {"folder": folder, "file": path, "out": proc.stdout,
            "root": folder / "runs" / "tiny", "mlflow": f"sqlite:///{folder}/mlruns/mlflow.db"}


def store_jobs(store: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(store) as db:
        return db.execute("SELECT m.smiles, j.status, j.inchikey FROM jobs j JOIN molecules m "
                          "USING (inchikey) ORDER BY j.iteration, j.rank").fetchall()


LABELS = ["logei-s1", "random-s1", "logei-s2", "random-s2"]


def test_every_run_pays_its_budget_and_each_molecule_is_computed_once(tiny_comparison):
    root = tiny_comparison["root"]
    jobs = {label: store_jobs(root / label / "store.sqlite") for label in LABELS}
    for label, rows in jobs.items():
        assert len(rows) == BUDGET, label  # cached or not, each call counts in its run
    distinct = {smiles for rows in jobs.values() for smiles, _, _ in rows}
    ledger = (tiny_comparison["folder"] / "ledger.txt").read_text().split()
    # the seed molecules alone are in every run: without the cache they would be
    # computed four times
    assert len(ledger) == len(set(ledger)), "a molecule was computed twice"
    assert set(ledger) <= distinct
    failed = {s for rows in jobs.values() for s, status, _ in rows if status == "failed"}
    assert set(ledger) | failed == distinct
    assert sum(len(r) for r in jobs.values()) > len(distinct)
    with sqlite3.connect(root / "cache.sqlite") as db:
        counts = dict(db.execute("SELECT kind, COUNT(*) FROM results WHERE status = 'done' "
                                 "GROUP BY kind"))
    assert counts["oracle"] == len(distinct)
    assert counts["descriptors"] > 0
    assert "| logei | 2 |" in tiny_comparison["out"]
    assert "| random | 2 |" in tiny_comparison["out"]


def test_mlflow_parent_and_child_runs_with_per_call_metrics(tiny_comparison):
    import mlflow
    from mlflow.tracking import MlflowClient

    from bodisc.metrics import top_k_auc

    mlflow.set_tracking_uri(tiny_comparison["mlflow"])
    runs = mlflow.search_runs(experiment_names=["tiny"])
    parents = runs[runs["tags.bodisc.compare"].notna()]
    assert len(parents) == 1
    parent_id = parents["run_id"].iloc[0]
    children = runs[runs["tags.mlflow.parentRunId"] == parent_id]
    assert len(children) == 4
    assert sorted(zip(children["tags.strategy"], children["tags.seed"], strict=True)) == [
        ("logei", "1"), ("logei", "2"), ("random", "1"), ("random", "2")]
    assert set(children["params.acquisition"]) == {"logei", "random"}
    assert set(children["params.surrogate"]) == {"gp"}
    for key in ("best_so_far", "top10_mean", "top10_auc"):
        assert children[f"metrics.call/{key}"].notna().all(), key
    assert (children["status"] == "FINISHED").all()
    assert parents["status"].iloc[0] == "FINISHED"

    client = MlflowClient(tiny_comparison["mlflow"])
    root = tiny_comparison["root"]
    for _, child in children.iterrows():
        run_id = child["run_id"]
        history = client.get_metric_history(run_id, "call/top10_auc")
        assert sorted(m.step for m in history) == list(range(1, BUDGET + 1))
        label = child["tags.bodisc.compare.label"]
        rows = store_jobs(root / label / "store.sqlite")
        with sqlite3.connect(root / label / "store.sqlite") as db:
            values = [v for (v,) in db.execute("SELECT value FROM jobs ORDER BY iteration, rank")]
        calls = [(key, v) for (_, _, key), v in zip(rows, values, strict=True)]
        last = max(history, key=lambda m: m.step).value
        assert last == pytest.approx(top_k_auc(calls, BUDGET))
        best = client.get_metric_history(run_id, "call/best_so_far")
        assert max(best, key=lambda m: m.step).value == pytest.approx(
            max(v for v in values if v is not None))
        arts = {a.path for a in client.list_artifacts(run_id)}
        assert {"results.csv", "extrapolation_summary.json"} <= arts
    parent_arts = {a.path for a in client.list_artifacts(parent_id, "report")}
    assert {"report/report.html", "report/best_so_far.png", "report/top10_auc.png",
            "report/search_map.png"} <= parent_arts
    assert "final/logei.auc_mean" in client.get_run(parent_id).data.metrics


def test_rerun_skips_finished_runs_and_computes_nothing(tiny_comparison):
    ledger = tiny_comparison["folder"] / "ledger.txt"
    before = ledger.read_text()
    proc = bodisc("compare", str(tiny_comparison["file"]), "--quiet", "--no-report",
                  cwd=tiny_comparison["folder"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("finished, skipped") == 4
    assert ledger.read_text() == before
    # the parent's and the children's final figures were logged once, not again
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tiny_comparison["mlflow"])
    exp = client.get_experiment_by_name("tiny")
    for run in client.search_runs([exp.experiment_id]):
        finals = [k for k in run.data.metrics if k.startswith("final/")]
        assert finals, run.info.run_name
        for key in finals:
            assert len(client.get_metric_history(run.info.run_id, key)) == 1, key


def test_the_comparison_prints_links_and_names_its_runs(tiny_comparison):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tiny_comparison["mlflow"])
    exp = client.get_experiment_by_name("tiny")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    out = tiny_comparison["out"]
    base = f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}"
    assert f"MLflow run: {base}/runs/{parent.info.run_id}/model-metrics?" in out
    assert f"MLflow runs table: {base}/runs?workflowType=machine_learning" in out
    assert parent.info.run_id in out.split("MLflow runs table:")[1]  # filtered to it
    assert parent.info.run_name == "tiny: comparison of logei, random"
    assert "seeds 1, 2" in parent.data.tags["mlflow.note.content"]
    names = sorted(r.info.run_name for r in runs if r.info.run_id != parent.info.run_id)
    assert names == ["logei-s1 (logei/gp)", "logei-s2 (logei/gp)", "random-s1 (random/gp)",
                     "random-s2 (random/gp)"]
    arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "campaign.toml" in arts


def test_parallel_runs_pick_the_same_molecules_as_sequential_ones(tiny_comparison, tmp_path):
    root = tiny_comparison["root"]
    assert all((root / label / "compare-run.log").is_file() for label in LABELS)
    path = comparison_file(tmp_path)
    # seed 1 only, one run at a time, in this process's own folder and cache
    proc = bodisc("compare", str(path), "--quiet", "--no-report", "--parallel", "1",
                  "--set", "execution.workers=1", "--set", "compare.seeds=[1]", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "run 2/2: random-s1" in proc.stdout
    for label in ("logei-s1", "random-s1"):
        sequential = store_jobs(tmp_path / "runs" / "tiny" / label / "store.sqlite")
        assert sequential == store_jobs(root / label / "store.sqlite"), label
        assert not (tmp_path / "runs" / "tiny" / label / "compare-run.log").exists()

def fake_run(spec, config_file, root, experiment, parent_run_id, tracking_uri):
    """Stands in for a run's worker: one run crashes its process, one fails, two finish."""
    import os

    if spec.label == "random-s1":
        os._exit(3)
    return "ValueError: boom" if spec.label == "logei-s2" else None


def test_a_failed_or_crashed_parallel_run_costs_that_run_alone(tmp_path, monkeypatch):
    import bodisc.compare
    from bodisc.config import load_campaign

    comparison = bodisc.compare.Comparison(load_campaign(comparison_file(tmp_path)),
                                           "c.toml", message=(said := []).append)
    monkeypatch.setattr(bodisc.compare, "_run_logged", fake_run)
    failed = comparison._run_parallel(comparison.runs, 2)
    root = tmp_path / "runs" / "tiny"
    assert failed == [f"random-s1 (its process died (a crash, or out of memory); log "
                      f"{root / 'random-s1' / 'compare-run.log'})",
                      f"logei-s2 (ValueError: boom; log {root / 'logei-s2' / 'compare-run.log'})"]
    assert said == ["logei-s1: done", f"random-s1: {failed[0]}", f"logei-s2: {failed[1]}",
                    "random-s2: done"]  # in the order of the runs, whatever order they end

def test_a_bad_compare_table_is_one_line(tmp_path):
    path = comparison_file(tmp_path)
    path.write_text(path.read_text().replace('acquisition = "random"', 'acquisition = "rnd"'))
    proc = bodisc("compare", str(path), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "compare.strategies[1].acquisition = 'rnd'" in proc.stderr
    assert "choose one of" in proc.stderr
    plain = write_campaign(tmp_path, TINY, "plain.toml")
    proc = bodisc("compare", str(plain), cwd=tmp_path)
    assert proc.returncode == 2 and "[compare] table" in proc.stderr


def test_unknown_keys_in_the_compare_table_are_refused(tmp_path):
    from bodisc.config import load_campaign
    from bodisc.errors import ConfigError

    path = comparison_file(tmp_path)
    path.write_text(path.read_text().replace('name = "random"\n', 'name = "random"\nq = 4\n'))
    with pytest.raises(ConfigError) as err:
        load_campaign(path)
    assert str(err.value).count("\n") == 0
    assert "compare.strategies[1].q = 4: unknown field" in str(err.value)
    assert "name, acquisition, surrogate, batch_size, beta, warmup_batches" in str(err.value)
    path = comparison_file(tmp_path)
    path.write_text(path.read_text().replace("seeds = [1, 2]", "seeds = [1, 1]"))
    with pytest.raises(ConfigError, match="seeds must be distinct"):
        load_campaign(path)


def test_plan_runs_gives_each_run_its_own_store_seed_and_strategy(tmp_path):
    from bodisc.compare import plan_runs, run_tags
    from bodisc.config import load_campaign

    path = comparison_file(tmp_path)
    path.write_text(path.read_text().replace('acquisition = "random"',
                                             'acquisition = "ucb"\nbatch_size = 2\n'
                                             'surrogate = "xgp"\nbeta = 4.0\n'
                                             'warmup_batches = 1\ngreedy_until = 0.5'))
    runs = plan_runs(load_campaign(path), str(path))
    assert [r.label for r in runs] == LABELS
    stores = {r.config.path("store") for r in runs}
    assert len(stores) == 4
    assert all(s.parent.parent == tmp_path / "runs" / "tiny" for s in stores)
    ucb = runs[3]
    assert (ucb.config.random_seed, ucb.config.acquisition.name,
            ucb.config.acquisition.batch_size, ucb.config.surrogate.kind) == (2, "ucb", 2, "xgp")
    assert (ucb.config.acquisition.beta, ucb.config.acquisition.warmup_batches,
            ucb.config.acquisition.greedy_until) == (4.0, 1, 0.5)
    assert runs[0].config.acquisition.batch_size == 3
    assert (runs[0].config.acquisition.beta, runs[0].config.acquisition.warmup_batches,
            runs[0].config.acquisition.greedy_until) == (2.0, 0, 0.0)
    assert run_tags(ucb, "abc") == {
        "strategy": "random", "seed": "2", "acquisition": "ucb", "surrogate": "xgp",
        "bodisc.compare.label": "random-s2", "mlflow.parentRunId": "abc"}
