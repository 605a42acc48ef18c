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
    xgp, train = fitted["xgp"], fitted["train"]
    parts = xgp.components(fitted["X"][train], fitted["C"][train])
    lo, hi = xgp._y_range
    # away from the edges of the label range the GP keeps its data; near them the base
    margin = 1.5 * xgp._lin_rmse
    deep = (parts["mu_lin"] > lo + margin) & (parts["mu_lin"] < hi - margin)
    assert deep.sum() >= 10
    assert np.all(parts["w"][deep] > 0.5)
    mean, _ = xgp.predict(fitted["X"][train][deep], fitted["C"][train][deep])
    gp_mean, _ = fitted["gp"].predict(fitted["X"][train][deep])
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


def test_linear_base_is_the_trimmed_average_of_its_members(fitted) -> None:
    from bodisc.surrogates.extrapolating import LinearBase

    X, C, y, train = fitted["X"], fitted["C"], fitted["y"], fitted["train"]
    base = LinearBase().fit(X[train], y[train], C[train])
    assert len(base.members) == 5
    assert sum(m.use_categories for m in base.members) == 3
    P = base.member_predictions(X[:7], C[:7])
    assert P.shape == (7, 5)
    expected = (P.sum(axis=1) - P.max(axis=1) - P.min(axis=1)) / 3.0
    np.testing.assert_allclose(base.predict(X[:7], C[:7])[0], expected)
    plain = LinearBase().fit(X[train], y[train])
    assert len(plain.members) == 3 and not any(m.use_categories for m in plain.members)
    np.testing.assert_allclose(plain.predict(X[:7])[0],
                               np.median(plain.member_predictions(X[:7]), axis=1))


def test_one_wild_member_does_not_carry_the_base(fitted) -> None:
    from bodisc.surrogates.extrapolating import LinearBase

    X, C, y, train = fitted["X"], fitted["C"], fitted["y"], fitted["train"]
    base = LinearBase().fit(X[train], y[train], C[train])
    before = base.predict(X[:20], C[:20])[0]
    wild = base.members[3]
    shift = 1e3 * np.std(y)
    wild.predict = lambda Xq, Cq=None: (np.full(len(Xq), shift), None)  # a member gone wild
    after = base.predict(X[:20], C[:20])[0]
    assert np.max(np.abs(after - before)) < 0.5 * np.std(y)


def test_range_factor_hands_over_outside_the_label_range(fitted) -> None:
    xgp, X, C = fitted["xgp"], fitted["X"], fitted["C"]
    parts = xgp.components(X, C)  # training band and both tails
    lo, hi = xgp._y_range
    mu, r = parts["mu_lin"], parts["r"]
    # r = P(N(mu_lin, (0.5 s_lin)^2) inside [lo, hi]) ** 32: 1 deep inside, 0 beyond the range
    deep = (mu > lo + 2 * xgp._lin_rmse) & (mu < hi - 2 * xgp._lin_rmse)
    assert deep.any() and np.all(r[deep] > 0.9)
    beyond = (mu < lo) | (mu > hi)
    assert beyond.any() and np.all(r[beyond] < 1e-6) and np.all(parts["w"][beyond] < 1e-6)
    dist = np.minimum(mu - lo, hi - mu)  # distance inside the range (negative: outside)
    order = np.argsort(dist)
    assert np.all(np.diff(r[order]) >= -1e-12)  # monotone in the distance to the nearer edge
    assert np.all((parts["w"] >= 0) & (parts["w"] <= 1))
    off = ExtrapolatingGP(device="cpu", range_scale=None)
    off.gp, off.lin, off.stretch = xgp.gp, xgp.lin, xgp.stretch
    off._p_mean, off._y_mean, off._y_range = xgp._p_mean, xgp._y_mean, xgp._y_range
    off._lin_rmse = xgp._lin_rmse
    assert np.all(off.components(X, C)["r"] == 1.0)


def test_warm_start_and_conditioning_reuse_the_gp_hyperparameters(fitted) -> None:
    """``init``/``optimise=False`` condition the GP component on new labels with an earlier
    fit's hyperparameters (the campaign's ``refit_growth`` and the replay's refit
    schedule); the linear base is fitted anew on every call."""
    X, C, y, train = fitted["X"], fitted["C"], fitted["y"], fitted["train"]
    first = fitted["xgp"]
    state = first.hyper_state()
    assert "covar_module.raw_lengthscale" in state
    more = np.concatenate([train, fitted["test"][:20]])
    cond = ExtrapolatingGP(device="cpu").fit(X[more], y[more], C[more], init=state,
                                             optimise=False)
    assert cond.hyper_state() == state
    assert cond.gp.fit_evaluations == 0
    fresh = ExtrapolatingGP(device="cpu").fit(X[more], y[more], C[more])
    assert fresh.hyper_state() != state
    np.testing.assert_allclose(cond.lin.predict(X[:9], C[:9])[0],
                               fresh.lin.predict(X[:9], C[:9])[0])
    # the new labels are in the conditioned model: it predicts them better than the first
    new = fitted["test"][:20]
    err_cond = np.abs(cond.predict(X[new], C[new])[0] - y[new]).mean()
    err_first = np.abs(first.predict(X[new], C[new])[0] - y[new]).mean()
    assert err_cond < 0.5 * err_first


def test_the_campaign_surrogate_passes_the_schedule_through() -> None:
    """``build_surrogate("xgp")`` takes ``init``/``optimise`` and gives ``hyper_state``
    (what the campaign and the replay test for); ILR, with no GP, does not."""
    from bodisc.surrogates import N_CATEGORIES, build_surrogate

    X, C, y = linear_trend(n=80, seed=6)
    k = N_CATEGORIES
    Xa = np.hstack([X, np.zeros((len(X), k - C.shape[1])), C])
    assert Xa.shape[1] == X.shape[1] + k
    model = build_surrogate("xgp", device="cpu").fit(Xa[:50], y[:50])
    state = model.hyper_state()
    again = build_surrogate("xgp", device="cpu").fit(Xa[:60], y[:60], init=state,
                                                     optimise=False)
    assert again.hyper_state() == state
    mean, std = again.predict(Xa[60:])
    assert mean.shape == std.shape == (20,) and np.all(std > 0)
    assert not hasattr(build_surrogate("ilr"), "hyper_state")
