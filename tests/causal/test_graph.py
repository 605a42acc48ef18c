"""Causal graphs: DirectLiNGAM with a sink, total effects, the graph distance, drawing."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from bodisc.causal.draw import draw_graph, layers
from bodisc.causal.graph import INSTALL, fit_graph, graph_distance, require_lingam, row_sums
from bodisc.errors import OptionalDependencyError


def chain(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x0 -> x1 -> y, x0 -> y, x2 independent; uniform (non-Gaussian) noise."""
    rng = np.random.default_rng(seed)
    e = rng.uniform(-1, 1, size=(n, 4))
    x0 = e[:, 0]
    x1 = 2.0 * x0 + e[:, 1]
    x2 = e[:, 2]
    y = -1.5 * x1 + 0.5 * x0 + e[:, 3]
    return np.column_stack([x0, x1, x2]), y


def test_the_graph_finds_the_chain_with_the_target_a_sink():
    X, y = chain()
    g = fit_graph(X, ["x0", "x1", "x2"], target=y, target_name="y")
    assert g.names == ("x0", "x1", "x2", "y") and g.target == 3
    assert g.order.index(0) < g.order.index(1) < g.order.index(3)
    assert np.all(g.B[:, 3] == 0)  # nothing caused by the target
    assert abs(g.B[1, 0]) > 0.5 and abs(g.B[3, 1]) > 0.5  # x0 -> x1 -> y
    assert np.all(g.B[2] == 0) and g.B[3, 2] == 0  # x2 is on its own
    T = g.total_effects()
    np.testing.assert_allclose(np.diag(T), 1.0)
    effects = g.effects_on_target()
    assert effects[3] == 0.0 and effects[1] < 0  # more x1, less y
    # x0's total effect goes through x1 too: in z units, B[3,0] + B[3,1] * B[1,0]
    np.testing.assert_allclose(effects[0], g.B[3, 0] + g.B[3, 1] * g.B[1, 0], rtol=1e-9)
    shown = g.to_dict()
    assert shown["target"] == "y" and {"cause": "x1", "effect": "y"}.items() <= next(
        e for e in shown["edges"] if e["cause"] == "x1" and e["effect"] == "y").items()


def test_a_constant_column_stays_in_the_graph_without_edges_and_bootstrap_is_seeded():
    X, y = chain(600)
    X = np.column_stack([X, np.full(len(y), 3.0)])
    a = fit_graph(X, ["x0", "x1", "x2", "c"], target=y, bootstrap=4,
                  rng=np.random.default_rng(5))
    b = fit_graph(X, ["x0", "x1", "x2", "c"], target=y, bootstrap=4,
                  rng=np.random.default_rng(5))
    assert np.all(a.B[3] == 0) and np.all(a.B[:, 3] == 0)
    np.testing.assert_array_equal(a.B, b.B)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    assert a.probabilities[1, 0] == 1.0 and np.all((a.probabilities >= 0)
                                                   & (a.probabilities <= 1))
    with pytest.raises(ValueError, match="bootstrap needs rng"):
        fit_graph(X, ["x0", "x1", "x2", "c"], target=y, bootstrap=2)


def test_graph_distance_is_the_distance_of_the_sorted_row_sums():
    B1 = np.array([[0, 0, 0], [1.0, 0, 0], [0.5, 2.0, 0]])
    B2 = np.array([[0, 0, 0], [0, 0, 0], [1.5, 0, 0]])
    np.testing.assert_allclose(row_sums(B1), [2.5, 1.0, 0.0])
    assert graph_distance(B1, B2) == pytest.approx(np.linalg.norm([1.0, 1.0, 0.0]))
    assert graph_distance(B1, B1[[2, 0, 1]]) == 0.0  # a relabelling changes nothing
    # for a DAG the row sums are the Laplacian's eigenvalues
    lap = np.diag(B1.sum(axis=1)) - B1
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(lap).real)[::-1], row_sums(B1))


def test_missing_lingam_is_one_line_with_the_install_command(monkeypatch):
    real = builtins.__import__

    def no_lingam(name, *args, **kwargs):
        if name == "lingam":
            raise ImportError("No module named 'lingam'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_lingam)
    with pytest.raises(OptionalDependencyError) as info:
        require_lingam()
    assert INSTALL in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_the_drawing_layers_causes_before_effects(tmp_path):
    X, y = chain(800)
    shown = fit_graph(X, ["x0", "x1", "x2"], target=y, target_name="y").to_dict()
    depth = layers(shown)
    assert depth["x0"] < depth["x1"] < depth["y"]
    png = draw_graph(shown, tmp_path / "g.png", "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
