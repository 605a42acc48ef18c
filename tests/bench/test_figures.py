"""Benchmark page figures: drawn from the committed result files, shown on their pages."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bodisc.bench.figures import PAGE_FIGURES, draw, draw_dipole_campaign, draw_surrogate_speed
from bodisc.errors import BodiscError
from bodisc.plotting import pyplot

ROOT = Path(__file__).resolve().parents[2]


def _copy_sources(tmp_path: Path) -> None:
    for spec in PAGE_FIGURES.values():
        for source in spec.sources:
            (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / source, tmp_path / source)


def test_every_figure_is_committed_and_shown_on_its_page():
    for name, spec in PAGE_FIGURES.items():
        assert (ROOT / spec.out).is_file(), f"{spec.out}: run bodisc bench figures"
        page = (ROOT / "docs" / "benchmarks" / spec.page).read_text()
        assert f"(../{spec.out.removeprefix('docs/')})" in page, f"{spec.page} lacks {name}"
        assert f"bodisc bench figures --only {name}" in page
        assert all(source in page for source in spec.sources), spec.page


def test_the_command_draws_every_figure_from_the_result_files_alone(tmp_path):
    _copy_sources(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "bodisc.cli", "bench", "figures"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for spec in PAGE_FIGURES.values():
        png = (tmp_path / spec.out).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5_000, spec.out
        assert f"wrote {spec.out}" in proc.stdout


def test_an_unknown_name_or_a_missing_file_is_one_line_and_draws_nothing(tmp_path):
    with pytest.raises(BodiscError, match="unknown figure 'nope'; known: descriptors"):
        draw(["oracle", "nope"], root=tmp_path)
    (tmp_path / "docs/results").mkdir(parents=True)
    shutil.copy(ROOT / "docs/results/oracle.json", tmp_path / "docs/results/oracle.json")
    with pytest.raises(BodiscError, match="docs/results/library.json: result file missing"):
        draw(["oracle", "library"], root=tmp_path)
    assert not (tmp_path / "docs/results/oracle.png").exists()
    proc = subprocess.run([sys.executable, "-m", "bodisc.cli", "bench", "figures", "--only",
                           "nope"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_the_campaign_figure_follows_the_calls_in_order():
    rows = list(csv.DictReader((ROOT / "docs/results/dipole_campaign/results.csv").open()))
    fig = draw_dipole_campaign([rows], pyplot())
    best = fig.axes[0].lines[0].get_ydata()
    values = [float(r["value"]) for r in rows if r["status"] == "done" and r["value"]]
    assert len(best) == len(values) and best[-1] == pytest.approx(max(values))
    assert np.all(np.diff(best) >= 0)
    pyplot().close(fig)


def test_speed_ups_are_drawn_as_ratios_above_or_below_one():
    bench = {"device": "cpu", "scoring_speedup": 10.0, "warm_refit_ratio": 0.25,
             "batched_fit_speedup": 0.8}
    nehvi = {"nehvi_cached_posterior_speedup": 9.0, "nehvi_speedup": 30.0}
    fig = draw_surrogate_speed([bench, nehvi], pyplot())
    widths = [patch.get_width() for patch in fig.axes[0].patches]
    assert widths == pytest.approx([10.0, 4.0, 0.8, 9.0, 30.0])  # warm: 1 / ratio
    pyplot().close(fig)
