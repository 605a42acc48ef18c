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

from bodisc.config import load_campaign
from bodisc.report import (
    FIGURES,
    FLAG_COLOR,
    GRID_CELL,
    GRID_LEGEND,
    NA,
    ReportData,
    RunData,
    best_molecules,
    format_cell,
    legend_lines,
    make_report,
    mlflow_ui_address,
    pca_2d,
    plot_best_molecules,
    run_link,
    write_html,
)
from bodisc.tracking.mlflow_tracker import DEFAULT_UI as DEFAULT_UI_ADDRESS
from tests.test_compare import tiny_comparison  # noqa: F401 - the shared session fixture

UI_QUERY = "/model-metrics?workflowType=machine_learning"


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
    # a sqlite store: each run id links to the default ``mlflow ui`` address, the
    # experiment id asked of the store
    links = re.findall(r'<a href="([^"]+)" title="the MLflow UI must be running at ', text)
    assert len(links) >= 4
    address = mlflow_ui_address(tiny_comparison["mlflow"])  # BODISC_MLFLOW_UI or default
    assert all(re.fullmatch(re.escape(address) + r"/#/experiments/\w+/runs/"
                            r"[0-9a-f]{32}" + re.escape(UI_QUERY), link) for link in links)


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
    experiment = MlflowClient(uri).get_run(parent).info.experiment_id
    assert (f'href="{mlflow_ui_address(uri)}/#/experiments/{experiment}/runs/{parent}'
            f'{UI_QUERY}"' in text)

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


# -- the page without a campaign: links, number formats, structural flags ----------------
def small_report(campaign: Path, uri: str | None = None, parent: str | None = None,
                 known: dict[str, str] | None = None) -> ReportData:
    """Two runs of made-up calls: an N-F molecule, ethanol in both, a C-nitroso."""
    config = load_campaign(campaign, {"generator.forbidden_substructures": ["[#6]-[#7]=[#8]"]})
    logei = [("K1", "FN=NC=C", 3.4567, 1), ("K2", "CCO", 1.0, 0), ("K3", "CC#N", None, 1)]
    rand = [("K2", "CCO", 1.0, 0), ("K4", "CCN=O", -0.0001, 1)]
    runs = [RunData("logei-s1", "logei", 1, config, logei, run_id="aaa111"),
            RunData("random-s1", "random", 1, config, rand)]
    return ReportData("small", runs, mlflow_uri=uri, mlflow_run_id=parent,
                      mlflow_experiments=known or {})


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_run_link_for_servers_and_local_stores(monkeypatch):
    monkeypatch.delenv("BODISC_MLFLOW_UI", raising=False)
    page = f"/#/experiments/3/runs/abc{UI_QUERY}"
    assert run_link("http://mlflow.example:5000/", "3", "abc") == (
        f"http://mlflow.example:5000{page}")
    assert run_link("https://me:secret@host/mlflow", "3", "abc") == f"https://host/mlflow{page}"
    assert run_link("sqlite:////x/mlruns/mlflow.db", "3", "abc") == f"{DEFAULT_UI_ADDRESS}{page}"
    assert run_link("databricks", "3", "abc", "http://ui:8080/") == f"http://ui:8080{page}"
    assert run_link("databricks", "3", "abc") is None
    assert run_link("http://host:5000", None, "abc") is None
    assert run_link("http://host:5000", "3", None) is None
    monkeypatch.setenv("BODISC_MLFLOW_UI", "http://localhost:9999/")
    assert run_link("sqlite:///a.db", "3", "abc") == f"http://localhost:9999{page}"
    assert run_link("https://host", "3", "abc") == f"https://host{page}"


def test_run_ids_link_to_the_ui_only_where_the_experiment_is_known(tiny_campaign, tmp_path):
    uri = f"http://127.0.0.1:{closed_port()}"  # nothing answers: "ppp" stays unknown
    data = small_report(tiny_campaign, uri, parent="ppp", known={"aaa111": "4"})
    text = write_html(data, [], tmp_path / "report.html").read_text()
    assert (f'<td><a href="{uri}/#/experiments/4/runs/aaa111{UI_QUERY}" '
            f'title="open in the MLflow UI">aaa111</a></td>') in text
    assert "MLflow run: ppp." in text and "runs/ppp" not in text
    assert f"<td>{NA}</td></tr>" in text  # the random run was not logged to MLflow


def test_a_local_store_is_not_created_and_its_links_say_the_ui_must_run(tiny_campaign,
                                                                         tmp_path,
                                                                         monkeypatch):
    monkeypatch.delenv("BODISC_MLFLOW_UI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    text = write_html(small_report(tiny_campaign, uri), [], tmp_path / "a.html").read_text()
    assert "<a href" not in text and "<td>aaa111</td>" in text
    assert not (tmp_path / "mlruns").exists()
    data = small_report(tiny_campaign, uri, known={"aaa111": "4"})
    text = write_html(data, [], tmp_path / "b.html").read_text()
    assert (f'<a href="{DEFAULT_UI_ADDRESS}/#/experiments/4/runs/aaa111{UI_QUERY}" '
            f'title="the MLflow UI must be running at {DEFAULT_UI_ADDRESS}: '
            f'mlflow ui --backend-store-uri {uri}') in text


@pytest.mark.parametrize(("value", "decimals", "text"), [
    (3.45678, 3, "3.457"), (3.45678, 2, "3.46"), (7, 0, "7"), (7.6, 0, "8"),
    (-0.0001, 3, "0.000"), (-1.5, 1, "-1.5"), (None, 3, NA), (float("nan"), 2, NA),
    (np.float64("nan"), 2, NA), (np.int64(4), 0, "4"), ("CCO", None, "CCO"), ("", None, NA),
    (None, None, NA), (float("nan"), None, NA)])
def test_format_cell(value, decimals, text):
    assert format_cell(value, decimals) == text


def test_tables_align_text_left_and_numbers_right_with_fixed_decimals(tiny_campaign,
                                                                       tmp_path):
    text = write_html(small_report(tiny_campaign), [], tmp_path / "report.html").read_text()
    assert re.search(r"th\.num, td\.num \{\{? ?text-align: right", text)
    assert "<th>run</th>" in text and '<th class="num">calls</th>' in text
    # runs table, logei-s1: 3 calls, 1 failed, best 3.457, no extrapolation: n/a
    assert ('<td>logei-s1</td><td class="num">3</td><td class="num">1</td>'
            '<td class="num">3.457</td><td>FN=NC=C</td>') in text
    assert '<td class="num">0</td><td class="num">n/a</td><td class="num">n/a</td>' in text
    # one seed per strategy: no standard deviation
    assert ('<td>logei</td><td class="num">1</td><td class="num">3.457</td>'
            '<td class="num">n/a</td>') in text
    assert '<td class="num">0.000</td>' in text and "-0.000" not in text
    assert not re.search(r">\s*(nan|None)\s*<", text)
    assert not re.search(r"<td[^>]*></td>", text), "an empty cell"


def test_best_molecules_carry_their_structural_flags(tiny_campaign, tmp_path):
    data = small_report(tiny_campaign)
    rows = best_molecules(data)
    assert [(r["smiles"], r["flags"]) for r in rows] == [
        ("FN=NC=C", ["N-F", "N=N-F"]), ("CCO", []),
        ("CCN=O", ["N=O", "[#6]-[#7]=[#8]"])]  # the campaign's forbidden SMARTS too
    assert legend_lines(rows[0], "D") == ["3.457 D  logei-s1", "flags: N-F, N=N-F"]
    assert legend_lines(rows[1], "") == ["1.000  logei-s1 +1"]
    text = write_html(data, [], tmp_path / "report.html").read_text()
    assert "<th>structural flags</th>" in text
    assert '<td>FN=NC=C</td><td class="num">3.457</td><td>N-F, N=N-F</td>' in text
    assert "<td>N=O, [#6]-[#7]=[#8]</td>" in text
    assert '<td>CCO</td><td class="num">1.000</td><td>none</td>' in text

    png = plot_best_molecules(data, tmp_path / "best_molecules.png")
    (w, h), band = GRID_CELL, GRID_LEGEND
    with Image.open(png) as img:
        arr = np.asarray(img.convert("RGB")).astype(int)
    assert arr.shape[:2] == (h + band, 4 * w)

    def flag_pixels(col: int) -> int:
        legend = arr[h:, col * w:(col + 1) * w]
        near = np.abs(legend - np.array(FLAG_COLOR)).sum(axis=2) < 60
        return int(near.sum())

    assert flag_pixels(0) > 30 and flag_pixels(2) > 30  # the red flags line
    assert flag_pixels(1) == 0  # ethanol raises none


# -- the Pareto front of a campaign with several objectives -------------------------------
PARETO_SMILES = ["CCO", "CC#N", "CC(C)=O", "CN", "CCN", "OCCO", "CC=O", "NCCO", "COC",
                 "CCCO", "N#CC#N", "CC(N)=O"]
THREE = ('unit = "eV"\n\n[[objectives]]\nproperty = "homo"\ndirection = "minimize"\n'
         'unit = "eV"\n')


def pareto_store(folder: Path, text: str, rows: list[dict[str, float] | None]):
    """A store of the campaign ``text``: one labelled molecule per row of properties.

    ``None`` makes a failed call. Returns the config and the (open) store.
    """
    from bodisc.loop.features import Featuriser
    from bodisc.store import CampaignStore, NewJob
    from tests.conftest import write_campaign

    config = load_campaign(write_campaign(folder, text))
    store = CampaignStore(config.path("store"))
    store.set_meta("config", config.as_dict())
    keys = [f"KEY{i:02d}" for i in range(len(rows))]
    store.add_molecules([(k, PARETO_SMILES[i % len(PARETO_SMILES)], 3, "seed", ())
                         for i, k in enumerate(keys)], 0)
    features = Featuriser(config)  # made-up descriptors: a report computes none
    for i, k in enumerate(keys):
        store.put_descriptors(k, features.descriptor_set,
                              [float(i + j) for j in range(len(features.tier_names))],
                              None, 0.1, 0)
    store.start_iteration(0, [NewJob(k) for k in keys], config.oracle.name, len(keys), None)
    for job, props in zip(store.jobs(), rows, strict=True):
        if props is None:
            store.finish_job(job.id, None, "oracle failed", 0.1, {})
        else:
            store.finish_job(job.id, props["dipole"], None, 0.1, {}, props)
    return config, store


def pareto_rows(n: int = 10, seed: int = 0, k: int = 2) -> list[dict[str, float] | None]:
    rng = np.random.default_rng(seed)
    rows: list[dict[str, float] | None] = []
    for _ in range(n):
        row = {"dipole": float(rng.uniform(0, 4)), "gap": float(rng.uniform(2, 8))}
        if k > 2:
            row["homo"] = float(rng.uniform(-9, -5))
        rows.append(row)
    rows.append(None)  # a failed call is no point
    return rows


def load_pareto_run(folder: Path, text: str, rows: list[dict[str, float] | None]) -> RunData:
    from bodisc.tracking.pareto_figure import objective_labels

    config, store = pareto_store(folder, text, rows)
    try:
        values, feasible, smiles = objective_labels(store, config)
    finally:
        store.close()
    return RunData("mo-s1", "qlognehvi", 1, config, [],
                   objectives=tuple(o.property for o in config.objectives),
                   objective_values=values, feasible=feasible, labelled_smiles=smiles)


def test_pareto_points_are_the_front_pareto_mask_finds(tmp_path):
    from bodisc.pareto import pareto_mask
    from bodisc.tracking.pareto_figure import pareto_points
    from tests.test_config import TWO

    text = TWO + '\n[[constraints]]\nproperty = "homo"\nmax = -6.0\n'
    rows = pareto_rows(14, seed=1)
    for i, row in enumerate(rows):
        if row is not None:
            row["homo"] = -7.0 if i % 3 else -5.0  # every third row infeasible
    run = load_pareto_run(tmp_path, text, rows)
    assert run.objective_values.shape == (14, 2)  # the failed call is no label
    assert list(run.feasible) == [i % 3 != 0 for i in range(14)]
    pts = pareto_points(run)
    ok = np.flatnonzero(run.feasible)
    expected = ok[pareto_mask(run.objective_values[ok])]  # both maximised
    np.testing.assert_array_equal(pts.front, expected)
    assert len(pts.front) >= 2
    np.testing.assert_array_equal(pts.infeasible, np.flatnonzero(~run.feasible))
    np.testing.assert_array_equal(np.sort(np.concatenate([pts.front, pts.dominated])), ok)
    # a minimised objective turns the front over
    flipped = RunData(run.label, run.strategy, 1,
                      run.config.model_copy(update={"objectives": (
                          run.config.objectives[0],
                          run.config.objectives[1].model_copy(update={"direction": "minimize"})
                      )}), [], objectives=run.objectives, objective_values=run.objective_values,
                      feasible=run.feasible, labelled_smiles=run.labelled_smiles)
    expected = ok[pareto_mask(run.objective_values[ok] * np.array([1.0, -1.0]))]
    np.testing.assert_array_equal(pareto_points(flipped).front, expected)


def test_front_staircase_runs_along_the_edge_of_the_dominated_region():
    from bodisc.tracking.pareto_figure import front_staircase

    pts = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [1.5, 1.5]])  # the last dominated
    step = front_staircase(pts, np.array([1.0, 1.0]))
    np.testing.assert_array_equal(step, [[3, 1], [2, 1], [2, 2], [1, 2], [1, 3]])
    # minimise y: (2, 2) is beaten by (2, 1.5); the region dominated lies up and left
    pts = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [2.0, 1.5]])
    step = front_staircase(pts, np.array([1.0, -1.0]))
    np.testing.assert_array_equal(step, [[3, 3], [2, 3], [2, 1.5], [1, 1.5], [1, 1]])


def test_pareto_figure_of_two_objectives(tmp_path):
    from bodisc.report import plot_pareto
    from bodisc.tracking.pareto_figure import pareto_panels
    from tests.test_config import TWO

    run = load_pareto_run(tmp_path, TWO, pareto_rows(12))
    assert pareto_panels(run) == [(0, 1)]
    (path,) = plot_pareto(ReportData("mo", [run]), tmp_path)
    assert path.name == "pareto_mo-s1.png"
    width, height = check_png(path)
    assert 600 < width < 1400 and 500 < height < 1200
    with Image.open(path) as img:
        assert img.info["Description"] == "dipole vs gap"
        arr = np.asarray(img.convert("RGB")).astype(int)
    # the front's colour and the molecules' grey-on-white drawings are there
    assert (np.abs(arr - np.array([0xC0, 0x39, 0x2B])).sum(axis=2) < 40).sum() > 200


def test_pareto_figure_of_three_objectives_has_a_panel_per_pair(tmp_path):
    from bodisc.report import plot_pareto
    from bodisc.tracking.pareto_figure import pareto_panels, pareto_points
    from tests.test_config import TWO

    text = TWO.replace('unit = "eV"\n', THREE, 1)
    run = load_pareto_run(tmp_path, text, pareto_rows(12, seed=2, k=3))
    assert run.objectives == ("dipole", "gap", "homo")
    assert pareto_panels(run) == [(0, 1), (0, 2), (1, 2)]
    assert len(pareto_points(run).front) >= 2
    (path,) = plot_pareto(ReportData("mo3", [run]), tmp_path)
    width, height = check_png(path)
    assert width > 1.8 * height  # three panels side by side
    with Image.open(path) as img:
        assert img.info["Description"] == "dipole vs gap; dipole vs homo; gap vs homo"


def test_one_objective_has_no_pareto_figure(tiny_campaign, tmp_path):
    from bodisc.report import plot_pareto
    from bodisc.tracking.pareto_figure import pareto_panels, pareto_points

    data = small_report(tiny_campaign)
    assert plot_pareto(data, tmp_path) == []
    assert not list(tmp_path.glob("pareto*"))
    assert pareto_panels(data.runs[0]) == [] and len(pareto_points(data.runs[0]).front) == 0


def test_load_run_and_export_of_a_two_objective_campaign(tmp_path):
    from bodisc.loop import records
    from bodisc.loop.features import Featuriser
    from bodisc.report import load_run
    from tests.test_config import TWO

    class Tracker:
        ok = True

        def __init__(self) -> None:
            self.artifacts: list[str] = []
            self.images: list[tuple[str, str, int]] = []

        def log_artifact(self, path: Path, artifact_path: str | None = None) -> bool:
            self.artifacts.append(Path(path).name)
            return True

        def log_image(self, path: Path, key: str, step: int) -> bool:
            self.images.append((Path(path).name, key, step))
            return True

        def log_metrics(self, metrics: dict, step: int) -> bool:
            return True

        def set_tags(self, tags: dict) -> None:
            pass

    config, store = pareto_store(tmp_path, TWO, pareto_rows(8))
    try:
        tracker = Tracker()
        _, csv = records.export(store, config, tracker, Featuriser(config), 1.0)
    finally:
        store.close()
    check_png(csv.with_name("pareto.png"))
    assert csv.with_name("pareto.png").parent == csv.with_name("best_molecules.png").parent
    assert "pareto.png" in tracker.artifacts and "best_molecules.png" in tracker.artifacts
    assert ("pareto.png", "pareto/front", 9) in tracker.images
    run = load_run(config.path("store"))
    assert run.objectives == ("dipole", "gap") and run.several_objectives
    assert run.objective_values.shape == (8, 2) and run.feasible.all()
    assert len(run.labelled_smiles) == 8
