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
    from mlflow.tracking import MlflowClient

    proc = subprocess.run(
        [sys.executable, "-m", "bodisc.cli", "campaign", str(tiny_campaign), "--quiet",
         "--set", "budget.oracle_calls=7", "--tracking-uri", mlflow_server],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "MLflow tracking unavailable" not in proc.stdout
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # nothing went to the local store

    client = MlflowClient(mlflow_server)
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["acquisition.name"] == "logei"
    assert run.data.metrics["calls_used"] == 7
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "top10_auc")]
    assert sorted(steps) == list(range(1, 8))
    for key in ("best_so_far", "top10_mean"):
        assert len(client.get_metric_history(run.info.run_id, key)) == 7
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "results.csv" in arts
    # the artifact went through the server into its own artifact store
    assert list((tmp_path / "server-artifacts").rglob("results.csv"))
