"""The one refit schedule: warm starts, refit_growth, refit_every, restarts; its state."""

import numpy as np
import pytest

from bodisc.loop.refit import FitState, SurrogateSettings, fit_surrogate


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 3))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2 + 0.05 * rng.normal(size=120)
    return X, y


def test_refit_growth_conditions_between_optimisations(data):
    X, y = data
    settings = SurrogateSettings("gp", device="cpu", refit_growth=1.5)
    _, first = fit_surrogate(settings, X[:40], y[:40])
    assert first.optimised_at == 40
    model, second = fit_surrogate(settings, X[:55], y[:55], first)  # 55 < 1.5 * 40
    assert second.optimised_at == 40 and second.state == first.state
    assert model.fit_evaluations == 0
    _, third = fit_surrogate(settings, X[:61], y[:61], second)  # 61 >= 60: re-optimised
    assert third.optimised_at == 61 and third.state != first.state


def test_refit_every_conditions_until_that_many_labels_came(data):
    """The asynchronous schedule: re-optimised once a batch's worth of labels came."""
    X, y = data
    settings = SurrogateSettings("gp", device="cpu", refit_every=8)
    _, first = fit_surrogate(settings, X[:40], y[:40])
    for n in (41, 44, 47):  # one label at a time: conditioned only
        model, state = fit_surrogate(settings, X[:n], y[:n], first)
        assert state.optimised_at == 40 and state.state == first.state
        assert model.fit_evaluations == 0
    _, later = fit_surrogate(settings, X[:48], y[:48], first)  # 48 = 40 + 8
    assert later.optimised_at == 48 and later.state != first.state


def test_warm_start_starts_from_the_previous_state_and_cold_does_not(data):
    X, y = data
    cold = SurrogateSettings("gp", device="cpu", warm_start=False)
    _, a = fit_surrogate(cold, X[:60], y[:60])
    _, b = fit_surrogate(cold, X[:60], y[:60], FitState("gp", {"bogus": [1.0]}, 1))
    assert a.state == b.state  # without warm starts the previous state is not used
    warm = SurrogateSettings("gp", device="cpu", warm_start=True)
    _, first = fit_surrogate(warm, X[:60], y[:60])
    model, again = fit_surrogate(warm, X[:60], y[:60], first)  # from the optimum: few steps
    fresh, _ = fit_surrogate(warm, X[:60], y[:60])
    assert model.fit_evaluations < fresh.fit_evaluations
    mean_w, _ = model.predict(X[60:])
    mean_c, _ = fresh.predict(X[60:])
    np.testing.assert_allclose(mean_w, mean_c, atol=0.05 * y.std())


def test_a_state_of_another_kind_is_ignored_and_point_models_keep_none(data):
    X, y = data
    settings = SurrogateSettings("gp", device="cpu", refit_growth=10.0)
    other = FitState("sparse", {"x": [0.0]}, 1000)
    _, state = fit_surrogate(settings, X[:40], y[:40], other)
    assert state.kind == "gp" and state.optimised_at == 40
    Xc = np.hstack([X, np.random.default_rng(0).integers(0, 2, size=(120, 44))])
    model, none = fit_surrogate(SurrogateSettings("ilr"), Xc[:40], y[:40], state)
    assert none is None and model.predict(Xc[40:])[0].shape == (80,)


def test_restarts_are_seeded(data):
    X, y = data
    settings = SurrogateSettings("gp", device="cpu", restarts=3)
    _, a = fit_surrogate(settings, X[:50], y[:50], restart_seed=(1, 2, 1))
    _, b = fit_surrogate(settings, X[:50], y[:50], restart_seed=(1, 2, 1))
    assert a.state == b.state


def test_fit_state_round_trips_through_json():
    import json

    state = FitState("gp", {"raw_noise": [0.1], "lengthscale": [1.0, 2.0]}, 17)
    assert FitState.from_dict(json.loads(json.dumps(state.as_dict()))) == state
    old = {"kind": "gp", "state": {"a": [1.0]}}  # stores written before optimised_at
    assert FitState.from_dict(old).optimised_at == 0
