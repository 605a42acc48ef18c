"""The refit trace of ``bodisc bench surrogate --refit-trace`` (docs/benchmarks/refit.md)."""

import json

import numpy as np
import pytest

from bodisc.surrogates.gp import GPSurrogate


def _data(n: int = 90, d: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, d))
    y = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.05 * rng.standard_normal(n)
    return X, y


def test_tracing_records_every_evaluation_and_leaves_the_fit_alone():
    from bodisc.bench.surrogate import _neg_mll, traced_fits

    X, y = _data()
    plain = GPSurrogate("matern52", "cpu").fit(X, y)
    with traced_fits() as traces:
        traced = GPSurrogate("matern52", "cpu").fit(X, y)
    assert len(traces) == 1
    trace = traces[0]
    # L-BFGS-B evaluates at least once per iteration, plus the start
    assert len(trace) > traced.fit_evaluations == plain.fit_evaluations
    assert all(np.isfinite(t[0]) and t[1] >= 0 for t in trace)
    Xc = _data(40, seed=1)[0]
    np.testing.assert_array_equal(traced.predict(Xc)[0], plain.predict(Xc)[0])
    # the loss at the end point is the lowest traced (botorch's, per label)
    assert _neg_mll(traced) == pytest.approx(min(t[0] for t in trace), abs=1e-9)


def test_a_warm_refit_from_the_optimum_stops_soon_with_the_same_predictions():
    X, y = _data()
    cold = GPSurrogate("matern52", "cpu").fit(X, y)
    state = json.loads(json.dumps(cold.hyper_state()))  # as a campaign stores it
    # the cold fit stops on L-BFGS-B's relative-reduction test on a flat stretch; a
    # restart there improves the loss by ~1e-5 per label and moves nothing that matters
    warm = GPSurrogate("matern52", "cpu").fit(X, y, init=state)
    assert warm.fit_evaluations <= 20 and warm.fit_evaluations < cold.fit_evaluations
    again = GPSurrogate("matern52", "cpu").fit(X, y, init=warm.hyper_state())
    assert again.fit_evaluations <= 3
    Xc = _data(40, seed=1)[0]
    m0, s0 = cold.predict(Xc)
    for model in (warm, again):
        m1, s1 = model.predict(Xc)
        assert np.max(np.abs(m1 - m0)) < 2e-3 * np.std(y)
        np.testing.assert_allclose(s1, s0, rtol=1e-2)


def test_refit_split_reports_cold_warm_and_conditioning():
    from bodisc.bench.surrogate import bench_refit_split

    X, y = _data(200, seed=2)
    out = bench_refit_split(X, y, seed=0, n=80, add=5, n_test=50, device="cpu")
    fits = out["fits"]
    assert set(fits) == {"first", "cold", "warm", "condition_only", "cold_permuted"}
    assert fits["condition_only"]["evaluations"] == 0
    assert 0 < fits["warm"]["evaluations"] < fits["cold"]["evaluations"]
    assert fits["cold"]["evaluations"] == len(fits["cold"]["trace"])
    assert out["warm_cold_evaluations_ratio"] < 1
    for name in ("warm", "condition_only", "cold_permuted"):
        assert fits[name]["vs_cold"]["max_mean_diff_over_label_sd"] < 0.1
        assert np.isfinite(fits[name]["rmse"])
