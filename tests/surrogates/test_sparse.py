import numpy as np
import pytest

from bodisc.surrogates.gp import GPSurrogate
from bodisc.surrogates.sparse import SparseGP


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    X = rng.uniform(-2, 2, size=(120, 3))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2 + 0.05 * rng.standard_normal(120)
    Xc = rng.uniform(-2.5, 2.5, size=(200, 3))
    return X, y, Xc


def test_with_every_label_as_inducing_point_it_is_the_exact_gp(data):
    X, y, Xc = data
    exact = GPSurrogate("matern52", "cpu").fit(X, y)
    sparse = SparseGP("matern52", "cpu", subset=len(y), inducing=len(y)).fit(X, y)
    me, se = exact.predict(Xc)
    ms, ss = sparse.predict(Xc)
    np.testing.assert_allclose(ms, me, rtol=0, atol=1e-3 * np.std(y))
    np.testing.assert_allclose(ss, se, rtol=2e-2, atol=1e-3 * np.std(y))
    cols = sparse.covariance_columns(Xc, np.array([3, 7]))
    np.testing.assert_allclose(cols[[3, 7], [0, 1]], ss[[3, 7]] ** 2, rtol=1e-6)


def test_few_inducing_points_still_predict_and_are_seeded(data):
    X, y, Xc = data
    a = SparseGP("matern52", "cpu", subset=60, inducing=30, seed=1).fit(X, y)
    b = SparseGP("matern52", "cpu", subset=60, inducing=30, seed=1).fit(X, y)
    ma, sa = a.predict(Xc)
    mb, _ = b.predict(Xc)
    np.testing.assert_array_equal(ma, mb)
    truth = np.sin(Xc[:, 0]) + 0.5 * Xc[:, 1] ** 2
    inside = np.all(np.abs(Xc) <= 2.0, axis=1)
    rmse = np.sqrt(np.mean((ma[inside] - truth[inside]) ** 2))
    assert rmse < 0.3 * np.std(y)
    assert np.all(sa > 0)
