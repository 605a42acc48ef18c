"""Per-call metrics (PMO top-10 AUC) and extrapolation diagnostics, against hand values."""

import numpy as np
import pytest

from bodisc.metrics import (
    descriptor_distance,
    extrapolation_summary,
    max_tanimoto,
    per_call_metrics,
    top_k_auc,
)

# a=1, b=3, b again (duplicate), c failed, d=2; top-2, budget 5. By hand (trapezoids from 0):
#   call 1: top {1}    mean 1    area 0.5
#   call 2: top {3,1}  mean 2    area 0.5 + 1.5 = 2.0
#   call 3: duplicate: mean 2    area 4.0   (counting b twice would give mean 3)
#   call 4: failed:    mean 2    area 6.0
#   call 5: top {3,2}  mean 2.5  area 6.0 + 2.25 = 8.25  -> AUC 8.25 / 5 = 1.65
CALLS = [("a", 1.0), ("b", 3.0), ("b", 3.0), ("c", None), ("d", 2.0)]


def test_top_k_auc_counts_duplicates_once_and_failures_as_calls():
    curve = per_call_metrics(CALLS, budget=5, k=2)
    assert [m.call for m in curve] == [1, 2, 3, 4, 5]
    assert [m.top10_mean for m in curve] == [1.0, 2.0, 2.0, 2.0, 2.5]
    assert [m.best_so_far for m in curve] == [1.0, 3.0, 3.0, 3.0, 3.0]
    assert [m.top10_auc for m in curve] == pytest.approx([0.1, 0.4, 0.8, 1.2, 1.65])
    assert top_k_auc(CALLS, budget=5, k=2) == pytest.approx(1.65)


def test_top_k_auc_carries_the_last_value_to_the_budget():
    # stopped after 5 of 8 calls: 8.25 + 3 * 2.5 = 15.75 over 8
    assert top_k_auc(CALLS, budget=8, k=2) == pytest.approx(15.75 / 8)
    assert top_k_auc(CALLS, budget=8, k=2, finish=False) == pytest.approx(8.25 / 8)


def test_minimize_mirrors_maximize():
    neg = [(k, None if v is None else -v) for k, v in CALLS]
    assert top_k_auc(neg, budget=5, k=2, maximize=False) == pytest.approx(-1.65)
    assert per_call_metrics(neg, 5, maximize=False, k=2)[-1].best_so_far == -3.0


def test_calls_before_the_first_value_count_as_zero():
    curve = per_call_metrics([("x", None), ("y", 4.0)], budget=2, k=10)
    assert curve[0].best_so_far is None and curve[0].top10_mean is None
    assert curve[0].as_dict() == {"top10_auc": 0.0}
    assert curve[1].top10_auc == pytest.approx(2.0 / 2)  # (4 + 0) / 2 over budget 2


def pmo_top_auc(buffer: dict, top_n: int, finish: bool, freq_log: int, max_calls: int):
    """``top_auc`` of the PMO benchmark code (mol_opt, Gao et al. 2022), verbatim logic."""
    total, prev, called = 0.0, 0.0, 0
    ordered = sorted(buffer.items(), key=lambda kv: kv[1][1])
    for idx in range(freq_log, min(len(buffer), max_calls), freq_log):
        temp = sorted(ordered[:idx], key=lambda kv: kv[1][0], reverse=True)[:top_n]
        now = np.mean([item[1][0] for item in temp])
        total += freq_log * (now + prev) / 2
        prev, called = now, idx
    temp = sorted(ordered, key=lambda kv: kv[1][0], reverse=True)[:top_n]
    now = np.mean([item[1][0] for item in temp])
    total += (len(buffer) - called) * (now + prev) / 2
    if finish and len(buffer) < max_calls:
        total += (max_calls - len(buffer)) * now
    return total / max_calls


@pytest.mark.parametrize("n,budget", [(37, 37), (25, 40), (12, 12)])
def test_matches_the_pmo_reference_code(n, budget):
    rng = np.random.default_rng(n)
    values = rng.uniform(0, 1, n)
    calls = [(f"m{i}", float(v)) for i, v in enumerate(values)]
    buffer = {k: [v, i + 1] for i, (k, v) in enumerate(calls)}
    assert top_k_auc(calls, budget) == pytest.approx(pmo_top_auc(buffer, 10, True, 1, budget))


def test_extrapolation_summary_by_hand():
    # errors 0.5, -2, 3 with std 1, 1, 2: |z| = 0.5, 2, 1.5 -> in 68 %: 1 of 3, in 95 %: 2 of 3
    out = extrapolation_summary([1.5, 0.0, 5.0], [1.0, 2.0, 2.0], [1.0, 1.0, 2.0],
                                labels=[0.0, 2.0])
    assert out["count"] == 3
    assert out["in68"] == pytest.approx(1 / 3)
    assert out["in95"] == pytest.approx(2 / 3)
    rmse = np.sqrt((0.25 + 4 + 9) / 3)
    assert out["rmse"] == pytest.approx(rmse)
    assert out["rmse_over_std"] == pytest.approx(rmse / 1.0)  # std of [0, 2] is 1
    assert extrapolation_summary([], [], [], [1.0]) == {"count": 0.0}


def test_descriptor_distance_is_in_training_standard_deviations():
    X = np.array([[0.0, 10.0], [2.0, 10.0]])  # column 1 constant: std taken as 1
    # z-scored training points (-1, 0) and (1, 0); x = (4, 10) -> (3, 0): nearest at 2
    assert descriptor_distance(X, np.array([4.0, 10.0])) == pytest.approx(2.0)
    # x = (1, 13) -> (0, 3): distance sqrt(1 + 9) to either training point
    assert descriptor_distance(X, np.array([1.0, 13.0])) == pytest.approx(np.sqrt(10.0))
    assert np.isnan(descriptor_distance(np.zeros((0, 2)), np.array([1.0, 1.0])))


def test_max_tanimoto():
    assert max_tanimoto(["CCO", "c1ccccc1"], "OCC") == pytest.approx(1.0)
    sim = max_tanimoto(["CCO"], "CCCO")
    assert 0.0 < sim < 1.0
    assert max_tanimoto(["CCO"], "c1ccccc1") < sim
