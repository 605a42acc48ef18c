"""Reports of a real comparison: valid PNGs, a self-contained HTML page, MLflow artifacts."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bodisc.report import FIGURES, make_report, pca_2d
from tests.test_compare import tiny_comparison  # noqa: F401 - the shared session fixture


def check_png(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        assert img.format == "PNG"
        img.verify()
    with Image.open(path) as img:
        img.load()
        arr = np.asarray(img.convert("L"))
    assert arr.std() > 5, f"{path.name} is blank"
    return img.size


def check_html(path: Path, strategies: list[str]) -> str:
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == len(FIGURES)
    for b64 in images:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'src="(?!data:)', text), "the page refers to an outside file"
    for name in strategies:
        assert f"<td>{name}</td>" in text
    return text


@pytest.mark.slow
def test_comparison_report_files(tiny_comparison):  # noqa: F811
    out = tiny_comparison["root"] / "report"
    for name in FIGURES:
        width, height = check_png(out / name)
        assert width > 300 and height > 200, name
    text = check_html(out / "report.html", ["logei", "random"])
    assert "logei-s2" in text and "top-10 AUC" in text


@pytest.mark.slow
def test_report_from_mlflow_run_ids_logs_artifacts(tiny_comparison, tmp_path):  # noqa: F811
    from mlflow.tracking import MlflowClient

    folder, uri = tiny_comparison["folder"], tiny_comparison["mlflow"]
    parent = json.loads((tiny_comparison["root"] / "compare.json").read_text())["parent_run_id"]
    # the parent run: its child runs, found through MLflow, and their stores
    paths = make_report(parent, tmp_path / "parent", tracking_uri=uri, log_mlflow=False)
    assert {p.name for p in paths} >= set(FIGURES) | {"report.html"}
    text = check_html(tmp_path / "parent" / "report.html", ["logei", "random"])
    assert all(f"<td>{label}</td>" in text
               for label in ("logei-s1", "logei-s2", "random-s1", "random-s2"))

    client = MlflowClient(uri)
    (child,) = client.search_runs(
        [client.get_run(parent).info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent}' and tags.strategy = 'logei' "
        f"and tags.seed = '2'")
    proc = subprocess.run([sys.executable, "-m", "bodisc.cli", "report", child.info.run_id,
                           "--tracking-uri", uri, "--out", str(tmp_path / "child")],
                          capture_output=True, text=True, cwd=folder, timeout=600)
    assert proc.returncode == 0, proc.stderr
    text = check_html(tmp_path / "child" / "report.html", ["logei"])
    assert "logei-s2" in text and "random-s1" not in text
    for name in FIGURES:
        check_png(tmp_path / "child" / name)
    arts = {a.path for a in client.list_artifacts(child.info.run_id, "report")}
    assert {f"report/{name}" for name in FIGURES} | {"report/report.html"} <= arts


def test_pca_2d_finds_the_direction_of_largest_variance():
    rng = np.random.default_rng(3)
    t = rng.normal(size=200)
    # two correlated columns and a noise column, on very different scales
    X = np.column_stack([t * 100.0, t * 0.01 + 1e-4 * rng.normal(size=200),
                         rng.normal(size=200)])
    X[5, 2] = np.nan  # a missing value sits at the mean
    scores, var = pca_2d(X)
    assert scores.shape == (200, 2)
    assert var[0] == pytest.approx(2 / 3, abs=0.05)
    assert abs(np.corrcoef(scores[:, 0], t)[0, 1]) > 0.99
    again, _ = pca_2d(X)
    np.testing.assert_allclose(scores, again)


def test_report_refuses_an_unknown_target(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bodisc.cli", "report", "no-such-thing"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "not a campaign file (.toml) nor an MLflow run id" in proc.stderr
