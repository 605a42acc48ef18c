"""The multi-objective replay, reduced: 400 QM9 molecules (shipped descriptors), 100 calls.

What must hold at this size: every method of each task runs and gives its figures, in
range; runs are seeded; the pool's reference sets follow their definitions; and the cheap
Chebyshev ranking over the xTB analogues beats random on the Pareto task.
"""

import numpy as np
import pytest

from bodisc.bench.efficiency import load_pool
from bodisc.bench.objectives import (
    GAP_MIN,
    METHODS,
    format_table,
    pool_figures,
    replay_run,
    run_benchmark,
    summarise,
    write_figure,
)
from bodisc.pareto import nondominated_layers, pareto_mask

CALLS, BATCH, START, CHECKS = 100, 25, 50, (75, 100)
SETTINGS = {"calls": CALLS, "batch": BATCH, "start": START, "checkpoints": CHECKS,
            "infeasible_after": START}


@pytest.fixture(scope="module")
def pool():
    from bodisc.data.qm9 import qm9_sample_indices

    return load_pool(qm9_sample_indices(400, seed=11))


def test_reference_sets_follow_their_definitions(pool):
    f = pool_figures(pool)
    Y = np.column_stack([pool.labels["dipole"], pool.labels["gap"]])
    assert set(f["front"].tolist()) == set(np.flatnonzero(pareto_mask(Y)).tolist())
    layers = nondominated_layers(Y)
    top = f["pareto_top"]
    assert len(top) >= 4  # at least 1 % of 400, in whole layers
    assert set(np.flatnonzero(layers <= layers[top].max()).tolist()) == set(top.tolist())
    feasible = pool.labels["gap"] >= GAP_MIN
    assert np.array_equal(f["feasible"], feasible)
    assert all(feasible[i] for i in f["feasible_top"])
    assert len(f["feasible_top"]) == max(1, round(0.01 * feasible.sum()))


@pytest.fixture(scope="module")
def records(pool):
    every = run_benchmark(pool, list(METHODS), [0], **SETTINGS)
    return every + run_benchmark(pool, list(METHODS), [1], ["random", "cheap"], **SETTINGS)


@pytest.mark.slow
def test_every_method_of_each_task_gives_its_figures(records):
    assert {(r["task"], r["method"]) for r in records if r["seed"] == 0} == {
        (t, m) for t, ms in METHODS.items() for m in ms}
    for r in records:
        if r["task"] == "dipole_gap_pareto":
            assert 0 <= r["pareto_recall_75"] <= r["pareto_recall_100"] <= 1
            assert 0 <= r["front_recall_75"] <= r["front_recall_100"] <= 1
            assert 0 <= r["hv_fraction_100"] <= 1
        else:
            assert 0 <= r["top1pct_recall_75"] <= r["top1pct_recall_100"] <= 1
            assert 0 <= r["infeasible_share"] <= 1
    table = format_table(summarise(records))
    assert "dipole_gap_pareto" in table and "qlognehvi" in table and "gp_ucb" in table


@pytest.mark.slow
def test_figure_has_one_panel_per_task(records, tmp_path):
    import matplotlib.image as mpimg

    rows = summarise(records)
    both = mpimg.imread(write_figure(rows, tmp_path / "both.png"))
    one = mpimg.imread(write_figure([r for r in rows if r["task"] == "dipole_constrained"],
                                    tmp_path / "one.png"))
    assert both.shape[0] == one.shape[0] > 300
    assert both.shape[1] > 1.8 * one.shape[1]


@pytest.mark.slow
def test_runs_are_seeded_and_cheap_beats_random_on_the_front(pool, records):
    by = {(r["task"], r["method"], r["seed"]): r for r in records}
    again = replay_run(pool, "dipole_gap_pareto", "parego", 0, **SETTINGS)
    first = by[("dipole_gap_pareto", "parego", 0)]
    assert again["hv_fraction_100"] == first["hv_fraction_100"]
    for seed in (0, 1):
        cheap = by[("dipole_gap_pareto", "cheap", seed)]["hv_fraction_100"]
        assert cheap > by[("dipole_gap_pareto", "random", seed)]["hv_fraction_100"]


def test_a_figure_only_some_runs_recorded_says_over_how_many_seeds():
    runs = [{"task": "dipole_gap_pareto", "method": "parego", "seed": s,
             "pareto_recall_500": 0.5 + s / 10, "front_recall_2000": 1.0}
            for s in range(3)]
    runs[2]["front_recall_500"] = 0.8  # recorded by the newest run only
    row = summarise(runs)[0]
    assert row["seeds"] == 3 and row["front_recall_500_n"] == 1
    assert "front_recall_2000_n" not in row and abs(row["pareto_recall_500"] - 0.6) < 1e-12
    table = format_table([row])
    assert "| 0.80 ± 0.00 (n = 1) |" in table and "front_recall_500_n" not in table


def test_finished_runs_are_not_run_again_and_report_only_runs_nothing(pool, tmp_path):
    path = tmp_path / "objectives.jsonl"
    first = run_benchmark(pool, ["dipole_constrained"], [0], ["random", "cheap"],
                          records_path=path, **SETTINGS)
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    again = run_benchmark(pool, ["dipole_constrained"], [0, 1], ["random", "cheap"],
                          records_path=path, run_missing=False, **SETTINGS)
    assert again == first and path.read_text().splitlines() == lines  # seed 1 not run
    more = run_benchmark(pool, ["dipole_constrained"], [0, 1], ["random", "cheap"],
                         records_path=path, **SETTINGS)
    assert more[:1] == first[:1] and len(more) == 4 and len(path.read_text().splitlines()) == 4
