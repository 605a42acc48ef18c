"""Causal interventions: the plan on a known DAG, the candidates near it, the fallbacks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bodisc.causal import intervention as iv
from bodisc.causal.graph import CausalGraph
from bodisc.causal.intervention import (
    MIN_LABELS,
    choose_by_interventions,
    intervention_batch,
    plan_interventions,
)

NAMES = ["x0", "x1", "x2", "x3"]


def dag(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x0 -> x1 -> y, x2 -> y, x3 noise; uniform (non-Gaussian) noise.

    Total effects on y in natural units: x0 1.5, x1 1.0, x2 0.8, x3 0; in z units about
    0.75, 0.9, 0.37 and 0 (x1 first, x0, x2).
    """
    rng = np.random.default_rng(seed)
    e = rng.uniform(-1, 1, size=(n, 5))
    x0 = e[:, 0]
    x1 = 1.5 * x0 + e[:, 1]
    x2 = e[:, 2]
    x3 = e[:, 3]
    y = 1.0 * x1 + 0.8 * x2 + 0.5 * e[:, 4]
    return np.column_stack([x0, x1, x2, x3]), y


@pytest.fixture(scope="module")
def labelled() -> tuple[np.ndarray, np.ndarray]:
    return dag(400, 0)


@pytest.fixture(scope="module")
def plan(labelled: tuple[np.ndarray, np.ndarray]) -> iv.InterventionPlan:
    X, y = labelled
    return plan_interventions(X, y, NAMES, k=4, rng=np.random.default_rng(0))


def test_the_plan_intervenes_on_the_true_causes_largest_effect_first(plan, labelled):
    X, y = labelled
    assert [plan.names[j] for j in plan.chosen] == ["x1", "x0", "x2"]  # x3 has no effect
    assert plan.effects[3] == 0.0 and 3 not in plan.chosen.tolist()
    assert np.all(np.abs(plan.effects[plan.chosen]) > 0)
    assert abs(plan.effects[1]) > abs(plan.effects[0]) > abs(plan.effects[2]) > 0.2
    # the goal: incumbent plus one standard deviation of y; the anchor is the best molecule
    assert plan.goal == pytest.approx(y.max() + y.std())
    assert plan.anchors.tolist() == [int(np.argmax(y))]
    assert plan.points.shape == (3, 4) and plan.columns.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(plan.mean, X.mean(axis=0))
    np.testing.assert_allclose(plan.scale, X.std(axis=0))
    # no clipping needed here: each intervention reaches the goal in the graph
    np.testing.assert_allclose(plan.predicted, plan.goal, rtol=1e-9)


def test_an_intervention_moves_its_descendants_by_T_and_leaves_its_ancestors(plan):
    T = plan.graph.total_effects()[:4, :4]
    base = plan.origins[0]
    by_descriptor = {int(j): r for r, j in enumerate(plan.point_descriptor)}
    on_x0 = plan.points[by_descriptor[0]] - base
    delta = plan.shifts[by_descriptor[0]]
    assert on_x0[0] == pytest.approx(delta) and delta > 0  # x0 raised (positive effect)
    assert on_x0[1] == pytest.approx(delta * T[1, 0]) and on_x0[1] > 0.3 * delta  # x1 follows
    assert on_x0[2] == 0.0 and on_x0[3] == 0.0  # not descendants of x0
    on_x1 = plan.points[by_descriptor[1]] - base
    assert on_x1[1] == pytest.approx(plan.shifts[by_descriptor[1]]) and on_x1[1] > 0
    assert on_x1[0] == 0.0 and on_x1[2] == 0.0 and on_x1[3] == 0.0  # x0 an ancestor
    # in natural units, to the goal: delta = step / effect (z units)
    assert delta == pytest.approx(1.0 / plan.effects[0])


def test_the_shift_is_clipped_to_max_shift(labelled):
    X, y = labelled
    far = plan_interventions(X, y, NAMES, k=3, step=10.0, max_shift=2.0,
                             rng=np.random.default_rng(0))
    assert np.all(np.abs(far.shifts) == 2.0)
    assert np.all(far.predicted < far.goal)  # the clipped move falls short of the goal


def test_candidates_planted_near_the_intervened_points_are_chosen(plan):
    pool, _ = dag(3000, 7)
    planted = plan.natural() + 1e-3 * plan.scale  # one near each point
    X_cand = np.vstack([pool[:1000], planted[[2]], pool[1000:], planted[[0, 1]]])
    where = [1000, 3001, 3002]  # planted rows of points 2, 0, 1
    index, score = choose_by_interventions(plan, X_cand, 3)
    assert index.tolist() == [where[1], where[2], where[0]]  # point 0 first, round robin
    np.testing.assert_allclose(score, -1e-3 * np.sqrt(4), rtol=1e-6)
    index, score = choose_by_interventions(plan, X_cand, 12)
    assert len(set(index.tolist())) == 12 and set(where) <= set(index.tolist())
    assert np.all(score <= 0) and score[0] >= score[-1]


def test_exclusion_ties_and_short_pools(plan):
    pool, _ = dag(500, 3)
    index, _ = choose_by_interventions(plan, pool, 5)
    again, _ = choose_by_interventions(plan, pool, 5, exclude=index[:2])
    assert not set(index[:2].tolist()) & set(again.tolist())
    mask = np.zeros(len(pool), dtype=bool)
    mask[index] = True
    masked, _ = choose_by_interventions(plan, pool, 5, exclude=mask)
    assert not set(index.tolist()) & set(masked.tolist())
    # identical candidates: the lower index first; fewer left than q: all of them
    twins = np.vstack([pool[:3], pool[:3]])
    index, _ = choose_by_interventions(plan, twins, 10, exclude=[0])
    assert sorted(index.tolist()) == [1, 2, 3, 4, 5]
    first, _ = choose_by_interventions(plan, twins, 1)
    near = np.argmin(np.linalg.norm((twins - plan.natural()[0]) / plan.scale, axis=1))
    assert first.tolist() == [near % 3]
    # a candidate with a missing descriptor is never nearer than a finite one
    holes = pool[:4].copy()
    holes[0, 1] = np.nan
    index, score = choose_by_interventions(plan, holes, 4)
    assert index[-1] == 0 and score[-1] == -np.inf


def test_the_batch_is_deterministic_and_beats_a_random_batch(labelled):
    X, y = labelled
    X_cand, y_cand = dag(5000, 11)
    a = intervention_batch(X, y, X_cand, 20, NAMES, np.random.default_rng(3))
    b = intervention_batch(X, y, X_cand, 20, NAMES, np.random.default_rng(3))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert len(set(a[0].tolist())) == 20
    random = np.random.default_rng(0).choice(len(y_cand), size=20, replace=False)
    # the point of the method: the chosen molecules are far better than chance
    assert y_cand[a[0]].mean() > y_cand[random].mean() + 2 * y_cand.std()
    shown = json.loads(json.dumps(a[2].to_dict()))
    assert shown["chosen"] == ["x1", "x0", "x2"] and shown["graph"]["target"] == "target"
    assert "set x1 from" in shown["description"][0]


def test_descriptors_are_preselected_by_spearman_and_constant_columns_dropped(labelled):
    X, y = labelled
    rng = np.random.default_rng(1)
    noise = rng.uniform(-1, 1, size=(len(y), 6))
    wide = np.column_stack([noise[:, :3], X[:, 2], np.full(len(y), 2.0), X[:, 1], noise[:, 3:]])
    names = [f"n{i}" for i in range(3)] + ["x2", "const", "x1"] + ["n3", "n4", "n5"]
    plan = plan_interventions(wide, y, names, k=2, max_descriptors=2,
                              rng=np.random.default_rng(0))
    assert plan.columns.tolist() == [3, 5] and plan.names == ("x2", "x1")
    assert [plan.names[j] for j in plan.chosen] == ["x1", "x2"]
    # candidates are measured on the plan's columns of the full matrix
    index, _ = choose_by_interventions(plan, np.vstack([wide[:50], _full(plan, 9)]), 1)
    assert index.tolist() == [50]


def _full(plan: iv.InterventionPlan, d: int) -> np.ndarray:
    """Point 0 of ``plan`` as a full descriptor row (zeros elsewhere), shape ``(1, d)``."""
    row = np.zeros((1, d))
    row[0, plan.columns] = plan.natural()[0]
    return row


def test_without_any_effect_the_plan_falls_back_to_the_best_molecules(labelled, monkeypatch):
    X, y = labelled

    def empty(Xu, names, *, target, target_name, bootstrap, rng):
        d = Xu.shape[1] + 1
        return CausalGraph((*names, target_name), np.zeros((d, d)), tuple(range(d)), d - 1,
                           None, np.ones(d))

    monkeypatch.setattr(iv, "fit_graph", empty)
    plan = plan_interventions(X, y, NAMES, anchors=2)
    assert plan.fallback and len(plan.chosen) == 0
    best = np.argsort(-y)[:2]
    assert plan.anchors.tolist() == best.tolist()
    np.testing.assert_allclose(plan.natural(), X[best])
    index, score = choose_by_interventions(plan, X, 2)
    assert index.tolist() == best.tolist() and np.all(score == 0.0)
    assert "no descriptor has a causal effect" in plan.describe()[0]
    json.dumps(plan.to_dict())


def test_constant_labels_fall_back_and_too_few_labels_are_refused(labelled):
    X, y = labelled
    flat = plan_interventions(X[:40], np.full(40, 1.5), NAMES, rng=np.random.default_rng(0))
    assert flat.fallback and flat.goal == 1.5
    few = MIN_LABELS - 1
    with pytest.raises(ValueError, match="MIN_LABELS"):
        intervention_batch(X[:few], y[:few], X, 3, NAMES, np.random.default_rng(0))
    with pytest.raises(ValueError, match="no descriptor varies"):
        plan_interventions(np.ones((20, 4)), y[:20], NAMES)
    with pytest.raises(ValueError, match="finite labels"):
        plan_interventions(X[:20], np.r_[np.nan, y[:19]], NAMES)


def test_a_large_pool_is_chosen_from_in_vectorised_passes(plan, monkeypatch):
    monkeypatch.setattr(iv, "CHUNK", 1000)  # many chunks: the same answer as one
    pool, _ = dag(20000, 5)
    small, s_small = choose_by_interventions(plan, pool, 7)
    monkeypatch.setattr(iv, "CHUNK", 1 << 30)
    big, s_big = choose_by_interventions(plan, pool, 7)
    np.testing.assert_array_equal(small, big)
    np.testing.assert_allclose(s_small, s_big)
