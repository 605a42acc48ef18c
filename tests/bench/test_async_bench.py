"""``bodisc bench async``: the timed QM9 oracle and one campaign of each mode, small."""

from __future__ import annotations

import json

import pytest

from bodisc.bench import asynchronous as ab


@pytest.fixture
def times(tmp_path):
    path = tmp_path / "times.json"
    path.write_text(json.dumps({"dft": {"heavy_atoms": [2, 2, 5, 9],
                                        "seconds": [0.01, 0.02, 0.05, 0.09]}}))
    return path


def test_a_call_time_is_a_measured_one_of_the_nearest_size(times):
    ab._times.cache_clear()
    key = "LFQSCWFLJHTTHZ-UHFFFAOYSA-N"
    assert ab.call_time(str(times), "dft", key, 2) in (0.01, 0.02)
    assert ab.call_time(str(times), "dft", key, 4) == 0.05  # nearest measured size: 5
    assert ab.call_time(str(times), "dft", key, 12) == 0.09
    assert ab.call_time(str(times), "dft", key, 2) == ab.call_time(str(times), "dft", key, 2)


def test_the_any_size_source_draws_from_every_measured_dft_call(times):
    ab._times.cache_clear()
    keys = [f"{i:014d}-UHFFFAOYSA-N" for i in range(200)]
    drawn = {ab.call_time(str(times), "dft_any_size", k, 9) for k in keys}
    assert drawn == {0.01, 0.02, 0.05, 0.09}  # a 9-heavy-atom molecule gets any time
    assert {ab.call_time(str(times), "dft", k, 9) for k in keys} == {0.09}


def test_the_timed_oracle_sleeps_then_returns_the_qm9_label(times):
    from bodisc.builtin_oracles.qm9 import QM9Oracle
    from bodisc.oracle import run_one

    oracle = ab.TimedQM9Oracle({"times": str(times), "source": "dft", "scale": 2.0})
    res = run_one(oracle, "CC(C)(C)C")
    assert res.failure is None and res.seconds >= 0.1  # 2 x 0.05 s: 5 heavy atoms
    assert res.value == run_one(QM9Oracle({"property": "dipole"}), "CC(C)(C)C").value


@pytest.mark.slow
def test_one_campaign_of_each_mode_spends_the_budget_and_is_not_run_again(tmp_path, times):
    settings = {"times": times, "out": tmp_path / "runs", "budget": 14, "workers": 2,
                "batch": 4, "scale": 1.0, "pool": 300, "n_seeds": 4, "candidates": 100}
    records = ab.run_benchmark(["dft"], [0], **settings)
    for r in records:
        assert r["calls"] == 14 and r["stop_reason"] == "budget spent"
        assert 0.0 < r["utilisation"] <= 1.0 and r["wall_s"] > 0
        assert r["best"] is not None and r["auc_top10"] > 0
    by_mode = {r["mode"]: r for r in records}
    assert by_mode["batch"]["loop_utilisation"] is None  # the campaign records it in async
    assert 0.0 < by_mode["async"]["loop_utilisation"] <= 1.0
    rows = ab.summarise(records)
    assert [r["mode"] for r in rows] == ["batch", "async"] and "wall_ratio" in rows[1]
    assert "| dft | async | 1 |" in ab.format_table(rows)
    lines = (tmp_path / "runs" / "async.jsonl").read_text().splitlines()
    assert len(lines) == 2
    again = ab.run_benchmark(["dft"], [0], **settings)  # resumed: nothing runs again
    assert again == records
    assert (tmp_path / "runs" / "async.jsonl").read_text().splitlines() == lines
    # a run recorded before loop_utilisation existed gets it from its store
    old = [{k: v for k, v in json.loads(line).items() if k != "loop_utilisation"}
           for line in lines]
    (tmp_path / "runs" / "async.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    backfilled = {r["mode"]: r for r in ab.run_benchmark(["dft"], [0], **settings)}
    assert backfilled["async"]["loop_utilisation"] == by_mode["async"]["loop_utilisation"]


def test_figure_draws_both_panels_from_the_runs(tmp_path):
    import matplotlib.image as mpimg

    runs = [{"source": s, "mode": m, "seed": k, "wall_s": 100.0 + 10 * k + (m == "batch") * 50,
             "utilisation": 0.6 if m == "batch" else 0.9}
            for s in ("dft", "xtb") for m in ab.MODES for k in range(2)]
    path = ab.write_figure(runs, tmp_path / "async.png")
    image = mpimg.imread(path)
    assert image.shape[1] > 2 * image.shape[0] * 0.9  # two panels side by side
    with pytest.raises(KeyError):  # a run without its figures is not drawn as zero
        ab.write_figure([{"source": "dft", "mode": "batch", "seed": 0}], tmp_path / "x.png")
