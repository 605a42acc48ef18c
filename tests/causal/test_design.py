"""The causal design (Fox and Ghosh 2024) and the subset curves of ``bodisc bench causal``."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("lingam")

from bodisc.causal.design import (  # noqa: E402
    causal_design,
    cluster_pool,
    linear_sink,
    pool_design,
    select_descriptors,
)
from bodisc.causal.graph import fit_graph  # noqa: E402

NAMES = ["x0", "x1", "x2", "x3"]


def _linear_dag(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x0 -> x1 -> x2, x0 and x2 -> x3, x1 and x3 -> y; uniform noise, three regimes of x0."""
    rng = np.random.default_rng(seed)
    regime = rng.integers(0, 3, n)
    x0 = rng.uniform(-1, 1, n) + 3.0 * regime
    x1 = 0.8 * x0 + rng.uniform(-1, 1, n)
    x2 = -0.6 * x1 + rng.uniform(-1, 1, n)
    x3 = 0.5 * x0 + 0.5 * x2 + rng.uniform(-1, 1, n)
    y = 0.7 * x1 + x3 + rng.uniform(-1, 1, n)
    return np.column_stack([x0, x1, x2, x3]), y


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = _linear_dag()
    clusters = cluster_pool(X[:, [0, 3]], 3, np.random.default_rng(0))
    return X, y, clusters


def _design(data, seed: int, method: str = "causal", size: int = 121):
    X, y, clusters = data
    return causal_design(X, NAMES, size=size, rng=np.random.default_rng(seed), sink=y,
                         sink_name="y", batch_per_cluster=20, clusters=clusters,
                         method=method)


def test_reference_recovers_the_known_dag(data) -> None:
    X, y, _ = data
    B = fit_graph(X, NAMES, target=y, target_name="y").B
    edges = {(i, j) for i in range(5) for j in range(5) if abs(B[i, j]) > 0.05}
    # effect <- cause: x1<-x0, x2<-x1, x3<-x0, x3<-x2, y<-x1, y<-x3
    assert {(1, 0), (2, 1), (3, 2), (4, 3)} <= edges
    assert not any(j == 4 for _, j in edges)  # the sink causes nothing


def test_causal_design_beats_random_at_the_end(data) -> None:
    causal = np.array([_design(data, s).curve for s in range(3)])
    random = np.array([_design(data, s, "random").curve for s in range(3)])
    assert causal[:, -1].mean() < random[:, -1].mean()
    assert causal[:, 1:].mean() < 0.7 * random[:, 1:].mean()


def test_causal_is_the_best_of_its_draws_so_never_worse_than_the_start(data) -> None:
    d = _design(data, 4)
    assert d.curve.shape == (7,)
    assert d.sizes.tolist() == [1, 21, 41, 61, 81, 101, 121]
    assert d.curve[0] == pytest.approx(np.linalg.norm(d.reference.B.sum(axis=1)))
    assert d.curve[1:].min() < d.curve[0]


def test_same_seed_same_design_other_seed_other_design(data) -> None:
    a, b, c = _design(data, 7), _design(data, 7), _design(data, 8)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.curve, b.curve)
    assert not np.array_equal(a.indices, c.indices)


@pytest.mark.parametrize("method", ["causal", "random"])
def test_exactly_size_distinct_molecules(data, method: str) -> None:
    d = _design(data, 1, method, size=75)  # 1 + 20 + 20 + 20 + 14: the last batch is short
    assert len(d.indices) == 75
    assert len(np.unique(d.indices)) == 75
    assert d.sizes.tolist() == [1, 21, 41, 61, 75]
    assert d.indices.min() >= 0 and d.indices.max() < len(data[0])
    # every batch comes from one cluster
    for k, c in enumerate(d.chosen_clusters):
        batch = d.indices[d.sizes[k]:d.sizes[k + 1]]
        assert set(data[2][batch].tolist()) == {int(c)}


def test_exhausted_clusters_drop_out_and_the_whole_pool_can_be_chosen() -> None:
    X, y = _linear_dag(60, seed=3)
    labels = np.r_[np.zeros(5, int), np.ones(55, int)]
    d = causal_design(X, NAMES, size=60, rng=np.random.default_rng(0), sink=y,
                      clusters=labels, batch_per_cluster=20)
    assert sorted(d.indices.tolist()) == list(range(60))


def test_graph_without_sink_and_own_clustering(data) -> None:
    X, _, _ = data
    d = causal_design(X, NAMES, size=41, rng=np.random.default_rng(0), n_clusters=2,
                      cluster_columns=["x0"], reference_rows=1000)
    assert d.reference.target is None and d.reference.B.shape == (4, 4)
    assert len(d.reference_rows) == 1000 and set(np.unique(d.clusters)) == {0, 1}


def test_bad_arguments_are_refused(data) -> None:
    X, y, _ = data
    with pytest.raises(ValueError, match="size"):
        causal_design(X, NAMES, size=len(X) + 1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="method"):
        causal_design(X, NAMES, size=10, rng=np.random.default_rng(0), method="greedy")


def test_pool_design_and_linear_sink(data) -> None:
    X, y, _ = data
    noise = np.random.default_rng(1).normal(size=(len(X), 2))
    Xw = np.column_stack([X, noise])
    assert select_descriptors(Xw, 4, y).tolist() == [0, 1, 2, 3]
    sink = linear_sink(Xw[:50], y[:50], Xw)
    assert np.corrcoef(sink, y)[0, 1] > 0.95
    picked = pool_design(Xw, NAMES + ["n0", "n1"], 45, np.random.default_rng(0), sink=sink,
                         descriptors=4, reference_rows=1500)
    assert len(set(picked.tolist())) == 45


def test_subset_curves_on_a_slice_of_qm9(tmp_path) -> None:
    from bodisc.bench.causal import (
        RECORD_KEYS,
        plot_curves,
        run_part_a,
        subset_curves,
        summarise_curves,
    )

    records = subset_curves("qmex", "causal", repeats=2, iterations=2, batch=15,
                            sample=500, seed=3)
    assert all(tuple(r) == RECORD_KEYS for r in records)
    assert [(r["repeat"], r["iteration"]) for r in records] == [
        (r, i) for r in range(2) for i in range(3)]
    assert all(np.isfinite(r["graph_distance"]) and r["graph_distance"] >= 0
               for r in records)
    again = subset_curves("qmex", "causal", repeats=2, iterations=2, batch=15,
                          sample=500, seed=3)
    assert again == records
    rows = summarise_curves(records)
    first = [r["graph_distance"] for r in records if r["iteration"] == 2]
    assert rows[2]["mean"] == pytest.approx(np.mean(first))
    assert rows[2]["std"] == pytest.approx(np.std(first)) and rows[2]["n"] == 2

    out = run_part_a(tmp_path / "a.json", repeats=1, iterations=1, batch=10,
                     figure=tmp_path / "a.png", sample=300, echo=lambda _: None)
    assert json.loads((tmp_path / "a.json").read_text()) == out
    assert {(r["representation"], r["design"]) for r in out} == {
        ("rdkit", "causal"), ("rdkit", "random"), ("qmex", "causal"), ("qmex", "random")}
    assert (tmp_path / "a.png").stat().st_size > 1000
    assert plot_curves(out, tmp_path / "b.png").exists()
