"""Campaigns with a causal design and with the intervention acquisition, end to end."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from bodisc.config import load_campaign
from bodisc.loop.candidates import seed_records
from bodisc.loop.features import Featuriser
from tests.conftest import write_campaign

CAUSAL = """
name = "causal"
random_seed = 5

[objective]
property = "dipole"
direction = "maximize"
unit = "D"

[pool]
source = "qm9"
subset = 400
n_seeds = 25
candidates_per_iteration = 200

[design]
kind = "causal"
batch_per_cluster = 4
descriptors = 4

[acquisition]
name = "intervention"
batch_size = 10
intervention_k = 2
intervention_descriptors = 4
intervention_bootstrap = 3

[oracle]
name = "qm9"

[oracle.options]
property = "dipole"

[budget]
oracle_calls = 45

[execution]
workers = 2

[paths]
store = "{root}/runs/{name}/store.sqlite"
export_csv = "{root}/runs/{name}/results.csv"
mlruns = "{root}/mlruns"
"""


def test_a_causal_design_is_seeded_and_differs_from_a_random_start(tmp_path, monkeypatch):
    monkeypatch.setenv("BODISC_CACHE", str(tmp_path / "cache"))
    config = load_campaign(write_campaign(tmp_path, CAUSAL))
    first = seed_records(config, Featuriser(config), np.random.default_rng(1))
    again = seed_records(config, Featuriser(config), np.random.default_rng(1))
    other = seed_records(config, Featuriser(config), np.random.default_rng(2))
    keys = [m.inchikey for m in first]
    assert len(keys) == 25 == len(set(keys))
    assert keys == [m.inchikey for m in again]  # the same generator, the same molecules
    assert keys != [m.inchikey for m in other]
    random = load_campaign(write_campaign(tmp_path, CAUSAL.replace('kind = "causal"',
                                                                   'kind = "random"')))
    drawn = seed_records(random, Featuriser(random), np.random.default_rng(1))
    assert len(drawn) == 25 and set(keys) != {m.inchikey for m in drawn}


@pytest.mark.slow
def test_interventions_choose_batches_and_the_graph_reaches_store_mlflow_and_report(
        tmp_path):
    path = write_campaign(tmp_path, CAUSAL)
    env = {**os.environ, "BODISC_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "bodisc.cli", "campaign", str(path),
                           "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    db = sqlite3.connect(tmp_path / "runs/causal/store.sqlite")
    rows = db.execute("SELECT iteration, status, acq_value FROM jobs ORDER BY id").fetchall()
    graphs = dict(db.execute("SELECT key, value FROM meta WHERE key LIKE 'causal/%'"))
    db.close()
    assert len(rows) == 45 and all(r[1] == "done" for r in rows)
    assert [sum(1 for r in rows if r[0] == it) for it in range(3)] == [25, 10, 10]
    # intervention batches carry a score (minus the distance to an intervened point)
    assert all(r[2] is not None and r[2] <= 0 for r in rows if r[0] > 0)
    assert set(graphs) == {"causal/1", "causal/2"}
    plan = json.loads(graphs["causal/2"])
    assert plan["graph"]["target"] and plan["graph"]["edges"]
    # three bootstrap resamples: each edge carries the share that found it
    assert all(e["probability"] in (0.0, 1 / 3, 2 / 3, 1.0) for e in plan["graph"]["edges"])
    assert (tmp_path / "runs/causal/causal/graph_0002.png").stat().st_size > 5000
    # MLflow: the graph as a time-stepped image, one step per iteration that learnt one
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("causal").experiment_id])[0]
    names = [a.path for a in client.list_artifacts(run.info.run_id, "causal")]
    assert "causal/graph_0001.json" in names and "causal/graph_0002.json" in names
    report = subprocess.run([sys.executable, "-m", "bodisc.cli", "report", str(path),
                             "--out", str(tmp_path / "report")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "report" / "report.html").read_text()
    assert "causal_causal.png" in page and "The causal graph (DirectLiNGAM)" in page


def test_interventions_take_part_in_a_comparison(tmp_path):
    from bodisc.compare import plan_runs

    text = CAUSAL + """
[compare]
seeds = [1, 2]

[[compare.strategies]]
name = "causal"
acquisition = "intervention"

[[compare.strategies]]
name = "ucb"
acquisition = "ucb"
"""
    path = write_campaign(tmp_path, text)
    runs = plan_runs(load_campaign(path), str(path))
    assert [r.label for r in runs] == ["causal-s1", "ucb-s1", "causal-s2", "ucb-s2"]
    assert runs[0].config.acquisition.options() == {"k": 2, "step": 1.0,
                                                    "max_descriptors": 4, "bootstrap": 3}
    assert runs[1].config.acquisition.options() == {}
    assert all(r.config.design.kind == "causal" for r in runs)  # the same start rule


def test_without_the_extra_the_campaign_file_is_refused_with_the_install_command(tmp_path):
    path = write_campaign(tmp_path, CAUSAL)
    code = ("import sys; sys.modules['lingam'] = None; "
            f"sys.argv = ['bodisc', 'validate', {str(path)!r}]; "
            "from bodisc.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install "bodisc[causal]"' in lines[0]
