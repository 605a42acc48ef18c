"""MLflow down: the campaign goes on, says so once, and logs everything on a later start."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_campaign_survives_unreachable_tracking_and_catches_up(tiny_campaign, tmp_path):
    base = [sys.executable, "-m", "bodisc.cli", "campaign", str(tiny_campaign), "--quiet"]
    # nothing listens on port 9 (discard) on loopback: every MLflow call fails
    down = subprocess.run(base + ["--set", "budget.oracle_calls=7",
                                  "--tracking-uri", "http://127.0.0.1:9"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert down.returncode == 0, down.stderr
    assert down.stdout.count("MLflow tracking unavailable") == 1
    assert "MLflow run: not logged" in down.stdout

    up = subprocess.run(base, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert up.returncode == 0, up.stderr
    assert "MLflow tracking unavailable" not in up.stdout

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "iteration/calls_used")]
    # iterations 0 and 1 ran while tracking was down, 2 afterwards: all three are logged
    assert steps == [0, 1, 2]
