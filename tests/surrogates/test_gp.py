import numpy as np
import pytest
import torch

from bodisc.surrogates.gp import GPSurrogate, Scaler, expected_improvement_log


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2 + 0.05 * rng.normal(size=60)
    gp = GPSurrogate("matern52", "cpu").fit(X, y)
    Xc = rng.normal(size=(300, 5))
    return gp, X, y, Xc


def test_cached_prediction_matches_botorch_posterior(fitted):
    gp, _, _, Xc = fitted
    mean, std = gp.predict(Xc)
    Z = torch.as_tensor(gp.scaler.transform(Xc))
    with torch.no_grad():
        post = gp.model.posterior(Z)
    np.testing.assert_allclose(mean, post.mean.squeeze(-1).numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(std, post.variance.squeeze(-1).sqrt().numpy(), rtol=1e-6)


def test_covariance_columns_match_joint_posterior(fitted):
    gp, _, _, Xc = fitted
    idx = np.array([3, 17, 250])
    cols = gp.covariance_columns(Xc[:40], idx[:2])
    Z = torch.as_tensor(gp.scaler.transform(Xc[:40]))
    with torch.no_grad():
        cov = gp.model.posterior(Z).covariance_matrix.numpy()
    np.testing.assert_allclose(cols, cov[:, idx[:2]], rtol=1e-5, atol=1e-10)


def test_fit_interpolates_training_data(fitted):
    gp, X, y, _ = fitted
    mean, std = gp.predict(X)
    assert np.corrcoef(mean, y)[0, 1] > 0.95
    assert std.max() < np.std(y)


def test_logei_matches_botorch(fitted):
    from botorch.acquisition import LogExpectedImprovement

    gp, _, y, Xc = fitted
    mean, std = gp.predict(Xc)
    best = float(y.max())
    ours = expected_improvement_log(mean, std, best)
    Z = torch.as_tensor(gp.scaler.transform(Xc))
    with torch.no_grad():
        ref = LogExpectedImprovement(gp.model, best_f=best)(Z.unsqueeze(-2)).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)


def test_joint_samples_are_seeded_and_centred(fitted):
    gp, _, _, Xc = fitted
    a = gp.joint_samples(Xc[:50], 400, np.random.default_rng(1))
    b = gp.joint_samples(Xc[:50], 400, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    mean, std = gp.predict(Xc[:50])
    assert np.abs(a.mean(0) - mean).max() < 4 * std.max() / np.sqrt(400) + 1e-6


def test_scaler_handles_constant_and_missing_columns():
    X = np.array([[1.0, 5.0, np.nan], [3.0, 5.0, 2.0], [5.0, 5.0, 4.0]])
    s = Scaler.fit(X)
    Z = s.transform(X)
    assert np.isfinite(Z).all()
    assert Z[0, 2] == 0.0  # missing -> training mean
    np.testing.assert_allclose(Z[:, 1], 0.0)


def test_warm_start_reaches_the_cold_fit_with_fewer_steps():
    import json

    rng = np.random.default_rng(11)
    X = rng.uniform(-2, 2, size=(80, 3))
    y = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.05 * rng.standard_normal(80)
    first = GPSurrogate("matern52", "cpu").fit(X[:70], y[:70])
    state = json.loads(json.dumps(first.hyper_state()))  # as stored by a campaign
    cold = GPSurrogate("matern52", "cpu").fit(X, y)
    warm = GPSurrogate("matern52", "cpu").fit(X, y, init=state)
    assert warm.fit_evaluations < cold.fit_evaluations
    Xc = rng.uniform(-2, 2, size=(50, 3))
    np.testing.assert_allclose(warm.predict(Xc)[0], cold.predict(Xc)[0], atol=0.02 * np.std(y))
    # taking a stored state as it is reproduces the fit exactly
    again = GPSurrogate("matern52", "cpu").fit(X, y, init=warm.hyper_state(), optimise=False)
    assert again.fit_evaluations == 0
    np.testing.assert_array_equal(again.predict(Xc)[0], warm.predict(Xc)[0])


def test_a_state_of_another_shape_means_a_cold_start():
    from bodisc.surrogates.gp import load_hyper_state

    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((20, 2)), rng.standard_normal(20)
    gp = GPSurrogate("matern52", "cpu").fit(X, y)
    other = GPSurrogate("matern52", "cpu").fit(rng.standard_normal((20, 3)), y)
    assert not load_hyper_state(gp.model, other.hyper_state())
    assert load_hyper_state(gp.model, gp.hyper_state())


def test_float32_on_the_cpu_is_refused():
    from bodisc.errors import BodiscError

    with pytest.raises(BodiscError, match="float32"):
        GPSurrogate("matern52", "cpu", "float32")


def test_linear_mean_extrapolates_along_the_trend_and_is_seed_free():
    import torch

    rng = np.random.default_rng(0)
    X = rng.uniform(0.0, 1.0, size=(40, 2))
    y = 3.0 * X[:, 0] + 0.05 * rng.standard_normal(40)
    far = np.array([[3.0, 0.5]])  # the trend says about 9; the labels end near 3
    torch.manual_seed(1)
    linear = GPSurrogate(device="cpu", mean="linear").fit(X, y)
    torch.manual_seed(2)  # gpytorch's LinearMean draws its start from this RNG
    again = GPSurrogate(device="cpu", mean="linear").fit(X, y)
    constant = GPSurrogate(device="cpu").fit(X, y)
    m_lin = linear.predict(far)[0][0]
    assert again.predict(far)[0][0] == m_lin
    assert abs(m_lin - 9.0) < 1.0
    assert constant.predict(far)[0][0] < m_lin - 2.0
    with pytest.raises(ValueError, match="constant, linear, proxy"):
        GPSurrogate(mean="quadratic")


def test_proxy_mean_ranks_by_the_analogue_from_a_few_labels():
    """Six labels, five descriptors: the proxy mean (two parameters) follows the analogue
    beyond the labels; the constant mean falls back to the labels' mean there."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 5))
    y = 2.0 * X[:, 2] + 0.3 * np.sin(3 * X[:, 0]) + 0.05 * rng.standard_normal(200)
    train, test = np.arange(6), np.arange(6, 200)
    proxy = GPSurrogate(device="cpu", mean="proxy", proxy_column=2).fit(X[train], y[train])
    again = GPSurrogate(device="cpu", mean="proxy", proxy_column=2).fit(X[train], y[train])
    constant = GPSurrogate(device="cpu").fit(X[train], y[train])
    m = proxy.predict(X[test])[0]
    np.testing.assert_array_equal(m, again.predict(X[test])[0])
    rho = spearmanr(m, y[test])[0]
    assert rho > 0.9
    assert rho > spearmanr(constant.predict(X[test])[0], y[test])[0] + 0.1
    # far out along the analogue the prediction keeps rising
    far = np.zeros((2, 5))
    far[:, 2] = [4.0, 8.0]
    m_far = proxy.predict(far)[0]
    assert m_far[1] > m_far[0] > y[train].max()


def test_proxy_mean_of_a_combination_follows_it_in_its_own_units():
    """An analogue that is a difference of two columns on different scales (an xTB gap,
    ``lumo - homo``): the proxy mean of the combination ranks by it from eight labels,
    a proxy mean of either column alone does not, and far out along the combination the
    prediction keeps rising."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(5)
    X = rng.standard_normal((300, 4)) * np.array([1.0, 3.0, 0.2, 1.0])
    gap = X[:, 1] - X[:, 2]  # column 2 is small but not negligible
    y = 1.5 * gap + 0.2 * np.sin(2 * X[:, 0]) + 0.05 * rng.standard_normal(300)
    train, test = np.arange(8), np.arange(8, 300)
    both = GPSurrogate(device="cpu", mean="proxy", proxy_column={1: 1.0, 2: -1.0})
    m = both.fit(X[train], y[train]).predict(X[test])[0]
    rho = spearmanr(m, y[test])[0]
    assert rho > 0.95
    direction = both.model.mean_module.direction.numpy()
    np.testing.assert_allclose(direction[[0, 3]], 0.0)
    assert direction[1] > 0 > direction[2]
    alone = GPSurrogate(device="cpu", mean="proxy", proxy_column=2).fit(X[train], y[train])
    assert rho > spearmanr(alone.predict(X[test])[0], y[test])[0] + 0.1
    far = np.zeros((2, 4))
    far[:, 1] = [10.0, 20.0]
    m_far = both.predict(far)[0]
    assert m_far[1] > m_far[0] > y[train].max()
    with pytest.raises(ValueError, match="no analogue column"):
        GPSurrogate(mean="proxy", proxy_column={1: 0.0})


def test_proxy_mean_slope_keeps_its_sign():
    """Labels that fall with the analogue: with sign +1 the slope stays >= 0 (the proxy
    cannot be turned upside down), with sign -1 it follows them."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((30, 3))
    y = -X[:, 0] + 0.05 * rng.standard_normal(30)
    up = GPSurrogate(device="cpu", mean="proxy", proxy_column=0, proxy_sign=1.0).fit(X, y)
    down = GPSurrogate(device="cpu", mean="proxy", proxy_column=0, proxy_sign=-1.0).fit(X, y)
    assert float(up.model.mean_module.slope.detach()) >= 0.0
    assert float(down.model.mean_module.slope.detach()) < -0.5
    far = np.array([[-5.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    m = down.predict(far)[0]
    assert m[0] > y.max() and m[1] < y.min()
