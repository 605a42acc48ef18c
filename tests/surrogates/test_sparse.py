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


def test_kmeans_inducing_points_cover_the_data_better_than_a_random_subset():
    rng = np.random.default_rng(11)
    X = rng.uniform(-2, 2, size=(1500, 2))

    def f(Z):
        return np.sin(3 * Z[:, 0]) * np.cos(3 * Z[:, 1])

    y = f(X) + 0.05 * rng.standard_normal(1500)
    Xc = rng.uniform(-2, 2, size=(500, 2))

    def rmse(init, seed):
        gp = SparseGP("matern52", "cpu", subset=300, inducing=60, seed=seed,
                      inducing_init=init).fit(X, y)
        return np.sqrt(np.mean((gp.predict(Xc)[0] - f(Xc)) ** 2))

    for seed in range(3):  # 0.08-0.09 against 0.14-0.20
        assert rmse("kmeans", seed) < 0.75 * rmse("random", seed)


def test_inducing_points_never_outnumber_distinct_molecules():
    rng = np.random.default_rng(2)
    X = np.repeat(rng.uniform(-1, 1, size=(20, 2)), 5, axis=0)  # 100 rows, 20 distinct
    y = X.sum(1) + 0.01 * rng.standard_normal(100)
    gp = SparseGP("matern52", "cpu", subset=50, inducing=40).fit(X, y)
    assert gp._Zu.shape[0] == 20
    assert np.all(np.isfinite(gp.predict(X)[0]))


def test_an_unknown_inducing_init_is_refused():
    with pytest.raises(ValueError, match="kmeans, random"):
        SparseGP(inducing_init="grid")
