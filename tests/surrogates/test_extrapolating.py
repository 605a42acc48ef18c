"""ExtrapolatingGP: beats the plain GP outside the training range; std; determinism."""

from __future__ import annotations

import numpy as np
import pytest

from bodisc.surrogates.extrapolating import ExtrapolatingGP
from bodisc.surrogates.gp import GPSurrogate


def linear_trend(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    C = (rng.random((n, 3)) < 0.5).astype(float)
    y = 2.0 * X[:, 0] - X[:, 1] + 0.8 * C[:, 0] * X[:, 2] + 0.3 * np.sin(3 * X[:, 3])
    return X, C, y + 0.05 * rng.normal(size=n)


def property_split(y: np.ndarray, n_train: int = 60) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(y)
    lo, hi = len(y) // 4, 3 * len(y) // 4
    band = order[lo:hi]
    train = np.random.default_rng(1).choice(band, n_train, replace=False)
    test = np.concatenate([order[:lo], order[hi:]])
    return train, test


@pytest.fixture(scope="module")
def fitted() -> dict:
    X, C, y = linear_trend()
    train, test = property_split(y)
    xgp = ExtrapolatingGP(device="cpu").fit(X[train], y[train], C[train])
    gp = GPSurrogate(device="cpu").fit(X[train], y[train])
    return {"xgp": xgp, "gp": gp, "X": X, "C": C, "y": y, "train": train, "test": test}


def test_beats_the_plain_gp_outside_the_training_range(fitted) -> None:
    xgp, gp = fitted["xgp"], fitted["gp"]
    test = fitted["test"]
    Xt, Ct, yt = fitted["X"][test], fitted["C"][test], fitted["y"][test]
    mean_x, std_x = xgp.predict(Xt, Ct)
    mean_g, _ = gp.predict(Xt)
    rmse_x = np.sqrt(np.mean((mean_x - yt) ** 2))
    rmse_g = np.sqrt(np.mean((mean_g - yt) ** 2))
    assert rmse_x < 0.6 * rmse_g
    assert std_x.shape == yt.shape and np.all(std_x > 0) and np.all(np.isfinite(std_x))


def test_is_the_gp_near_its_data(fitted) -> None:
    train = fitted["train"][:10]
    parts = fitted["xgp"].components(fitted["X"][train], fitted["C"][train])
    assert np.all(parts["w"] > 0.5)
    mean, _ = fitted["xgp"].predict(fitted["X"][train], fitted["C"][train])
    gp_mean, _ = fitted["gp"].predict(fitted["X"][train])
    np.testing.assert_allclose(mean, gp_mean, atol=0.2 * np.std(fitted["y"][train]))


def test_deterministic() -> None:
    X, C, y = linear_trend(n=80, seed=4)
    a = ExtrapolatingGP(device="cpu").fit(X[:50], y[:50], C[:50]).predict(X[50:], C[50:])
    b = ExtrapolatingGP(device="cpu").fit(X[:50], y[:50], C[:50]).predict(X[50:], C[50:])
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_without_categories_and_with_nan() -> None:
    X, _, y = linear_trend(n=40, seed=5)
    X[3, 2] = np.nan
    mean, std = ExtrapolatingGP(device="cpu").fit(X[:30], y[:30]).predict(X[30:])
    assert np.isfinite(mean).all() and np.isfinite(std).all()


def test_linear_base_is_the_average_of_its_members(fitted) -> None:
    from bodisc.surrogates.extrapolating import LinearBase

    X, C, y, train = fitted["X"], fitted["C"], fitted["y"], fitted["train"]
    base = LinearBase().fit(X[train], y[train], C[train])
    assert len(base.members) == 3
    members = [m.predict(X[:7], C[:7] if m.use_categories else None)[0] for m in base.members]
    np.testing.assert_allclose(base.predict(X[:7], C[:7])[0], np.mean(members, axis=0))
    assert len(LinearBase().fit(X[train], y[train]).members) == 2


def test_range_factor_hands_over_outside_the_label_range(fitted) -> None:
    xgp, test = fitted["xgp"], fitted["test"]
    parts = xgp.components(fitted["X"][test], fitted["C"][test])
    lo, hi = xgp._y_range
    inside = (parts["mu_lin"] >= lo) & (parts["mu_lin"] <= hi)
    assert np.all(parts["r"][inside] == 1.0)
    far = (parts["mu_lin"] < lo - 3 * xgp._lin_rmse) | (parts["mu_lin"] > hi + 3 * xgp._lin_rmse)
    assert far.any() and np.all(parts["w"][far] < 1e-3)
    assert np.all((parts["w"] >= 0) & (parts["w"] <= 1))
