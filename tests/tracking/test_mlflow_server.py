"""A campaign logging to a real ``mlflow server`` on loopback (SQLite backend in tmp_path)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

MLFLOW = Path(sys.executable).with_name("mlflow")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def mlflow_server(tmp_path):
    """``mlflow server`` on a free loopback port; yields its URI, stops it afterwards."""
    port = free_port()
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
         "--artifacts-destination", str(tmp_path / "server-artifacts")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "mlflow server did not start in 180 s"
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


def test_campaign_runs_land_on_the_tracking_server(tiny_campaign, tmp_path, mlflow_server):
    """What the MLflow UI shows of a campaign, read back through MLflow's client."""
    import json
    import re

    import pandas as pd
    from mlflow.tracking import MlflowClient
    from PIL import Image

    def campaign() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "bodisc.cli", "campaign", str(tiny_campaign), "--quiet",
             "--set", "budget.oracle_calls=7", "--tracking-uri", mlflow_server],
            capture_output=True, text=True, cwd=tmp_path, timeout=600)

    proc = campaign()
    assert proc.returncode == 0, proc.stderr
    assert "MLflow tracking unavailable" not in proc.stdout
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # nothing went to the local store

    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("tiny")
    (run,) = client.search_runs([exp.experiment_id])
    run_id = run.info.run_id
    # the printed link opens this run's charts in the model-training view
    link = f"{mlflow_server}/#/experiments/{exp.experiment_id}/runs/{run_id}/model-metrics"
    assert f"MLflow run: {link}?workflowType=machine_learning" in proc.stdout
    picture = link.replace("/model-metrics", "/artifacts/best_molecules.png")
    assert f"molecules:  {picture}?workflowType=machine_learning" in proc.stdout
    assert "mlflow ui" not in proc.stdout  # a tracking server serves its own UI
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(exp.tags["mlflow.sharedViewState.bodisc"])

    assert run.info.status == "FINISHED"
    assert run.info.run_name == "tiny: logei/gp, seed 7"
    note = run.data.tags["mlflow.note.content"]
    assert "maximize dipole (D)" in note and "xtb_dipole" in note and "budget 7" in note
    assert run.data.tags["resolved.device"] == "cpu"
    assert run.data.tags["resolved.descriptors"] == "mu, homo, lumo, mw"
    assert run.data.tags["bodisc.version"]
    assert run.data.params["acquisition.name"] == "logei"

    # one meaning of "step" per prefix
    metrics = run.data.metrics
    assert metrics, "no metrics"
    assert all(re.match(r"^(call|iteration|final)/", k) for k in metrics), sorted(metrics)
    assert metrics["iteration/calls_used"] == metrics["final/calls"] == 7
    steps = [m.step for m in client.get_metric_history(run_id, "call/top10_auc")]
    assert sorted(steps) == list(range(1, 8))
    for key in ("call/best_so_far", "call/top10_mean"):
        assert len(client.get_metric_history(run_id, key)) == 7
    # the shared view's columns are metrics and params this run has
    for col in view["selectedColumns"]:
        kind, key = re.match(r"^(metrics|params)\.`(.+)`$", col).groups()
        assert key in (metrics if kind == "metrics" else run.data.params), col

    # the best molecules: a sorted table with the unit, a readable picture, the campaign file
    arts = {a.path for a in client.list_artifacts(run_id)}
    assert {"results.csv", "best_molecules.csv", "best_molecules.png",
            "campaign.toml"} <= arts
    best = pd.read_csv(client.download_artifacts(run_id, "best_molecules.csv", str(tmp_path)))
    assert list(best.columns[:3]) == ["rank", "smiles", "dipole / D"]
    assert best["dipole / D"].is_monotonic_decreasing and len(best) >= 5
    assert best["dipole / D"].iloc[0] == pytest.approx(metrics["final/best"])
    assert best["smiles"].iloc[0] in note  # the description names the best molecule
    png = client.download_artifacts(run_id, "best_molecules.png", str(tmp_path))
    with Image.open(png) as image:
        assert image.size[0] >= 600 and image.size[1] >= 200
    images = [a.path for a in client.list_artifacts(run_id, "images")]
    assert images and all("molecules~best" in p for p in images)  # key molecules/best
    # the artifact went through the server into its own artifact store
    assert list((tmp_path / "server-artifacts").rglob("results.csv"))

    # starting the finished campaign again logs no summary twice
    again = campaign()
    assert again.returncode == 0, again.stderr
    for key in [k for k in metrics if k.startswith("final/")]:
        assert len(client.get_metric_history(run_id, key)) == 1, key
    assert len(client.get_metric_history(run_id, "call/best_so_far")) == 7
    assert [a.path for a in client.list_artifacts(run_id, "images")] == images
