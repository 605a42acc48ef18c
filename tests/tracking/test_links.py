"""The MLflow addresses and view state that bodisc prints and tags."""

from __future__ import annotations

import json

from bodisc.tracking import mlflow_tracker as mt


def test_a_local_store_links_to_the_default_ui_address(monkeypatch):
    monkeypatch.delenv("BODISC_MLFLOW_UI", raising=False)
    link = mt.run_link("sqlite:////x/mlflow.db", "3", "abc")
    assert link == ("http://127.0.0.1:5000/#/experiments/3/runs/abc/model-metrics"
                    "?workflowType=machine_learning")
    assert "--port 5000" in mt.ui_command(mt.Path("mlruns"))


def test_a_server_links_to_itself_and_the_environment_names_another_ui(monkeypatch):
    assert mt.ui_address("http://host:8080/") == "http://host:8080"
    monkeypatch.setenv("BODISC_MLFLOW_UI", "http://localhost:9999")
    assert mt.ui_address("sqlite:///a.db") == "http://localhost:9999"
    assert mt.ui_address("https://mlflow.lab") == "https://mlflow.lab"


def test_the_experiment_link_opens_the_shared_view_filtered_to_a_comparison():
    link = mt.experiment_link("http://h:1", "2", "p1")
    assert link.startswith("http://h:1/#/experiments/2/runs?workflowType=machine_learning")
    assert "viewStateShareKey=bodisc" in link
    assert "searchFilter=tags.mlflow.parentRunId%20%3D%20%27p1%27" in link


def test_the_shared_view_names_columns_as_the_mlflow_ui_does():
    view = json.loads(mt.shared_view([mt.column("metrics", "final/best")],
                                     mt.column("metrics", "final/best"), ascending=True))
    assert view == {"selectedColumns": ["metrics.`final/best`"],
                    "orderByKey": "metrics.`final/best`", "orderByAsc": True}


def test_provenance_names_the_version():
    from bodisc import __version__

    tags = mt.provenance_tags()
    assert tags["bodisc.version"] == __version__
    commit = tags.get("mlflow.source.git.commit")
    assert commit is None or len(commit) == 40
