"""ILR design matrix (the 10 % rule), fits, and the README reference figure of one row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bodisc.surrogates.ilr import ILR, ILRDesign

QMEX_DGS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "qmex_dGs"


def test_ten_percent_rule_drops_both_sides_of_rare_categories() -> None:
    n = 100
    C = np.zeros((n, 4))
    C[:10, 0] = 1  # 10 % ones: dropped (10 % or less)
    C[:11, 1] = 1  # 11 %: kept
    C[:, 2] = 1  # always on: its zero side is empty, dropped
    C[:95, 3] = 1  # 5 % zeros: dropped
    design = ILRDesign().fit(np.zeros((n, 2)), C)
    # indicators are [c1..c4, 1-c1..1-c4]
    assert design.keep.tolist() == [False, True, False, False, False, True, False, False]
    assert design.n_indicators == 2


def test_pool_rows_decide_the_rule() -> None:
    C = np.zeros((20, 1))
    C[:2] = 1  # 10 % of the training rows
    pool = np.zeros((40, 1))
    pool[:20] = 1  # half of the pool
    assert ILRDesign().fit(np.zeros((20, 1)), C).n_indicators == 0
    assert ILRDesign().fit(np.zeros((20, 1)), C, C_pool=pool).n_indicators == 2


def test_design_matrix_layout_and_names() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    C = (rng.random((30, 2)) < 0.5).astype(float)
    design = ILRDesign().fit(X, C)
    D = design.transform(X, C)
    k = design.n_indicators
    assert k == 4 and D.shape == (30, 3 + 4 * k)
    ind = np.hstack([C, 1 - C])
    np.testing.assert_allclose(D[:, :3], X)
    np.testing.assert_allclose(D[:, 3 : 3 + k], X[:, [0]] * ind)
    np.testing.assert_allclose(D[:, -k:], ind)
    names = design.feature_names(["a", "b", "c"], ["p", "q"])
    assert names[:4] == ["a", "b", "c", "a*p1"] and names[-1] == "1*q0"
    assert len(names) == D.shape[1]


def test_nan_descriptors_are_imputed_with_the_training_mean() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    C = (rng.random((40, 2)) < 0.5).astype(float)
    y = X @ np.array([1.0, -2.0, 0.5]) + C[:, 0]
    Xn = X.copy()
    Xn[3, 1] = np.nan
    for kind in ("pls", "ridge"):
        model = ILR(kind=kind).fit(Xn, y, C)
        mean, std = model.predict(np.array([[np.nan, np.nan, np.nan]]), C[:1])
        assert std is None and np.isfinite(mean).all()


def test_ridge_recovers_a_linear_law_and_extrapolates() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 4))
    C = (rng.random((60, 3)) < 0.5).astype(float)
    y = 2 * X[:, 0] - X[:, 1] + 0.01 * rng.normal(size=60)
    model = ILR(kind="ridge").fit(X, y, C)
    Xt = np.array([[4.0, -3.0, 0.0, 0.0]])
    assert abs(model.predict(Xt, C[:1])[0][0] - 11.0) < 1.0
    assert model.alpha_ is not None


def test_lr_without_categories() -> None:
    X = np.random.default_rng(3).normal(size=(30, 10))
    y = X[:, 0] * 3 - X[:, 1] + 0.1 * X[:, 2]
    model = ILR(kind="pls", use_categories=False).fit(X, y)
    np.testing.assert_allclose(model.predict(X, None)[0], y, atol=0.05)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="kind"):
        ILR(kind="lasso")
    with pytest.raises(ValueError, match="NaN"):
        ILR().fit(np.zeros((5, 2)), np.array([1, 2, np.nan, 3, 4]), np.zeros((5, 1)))
    with pytest.raises(ValueError, match="rows"):
        ILR().fit(np.zeros((5, 2)), np.zeros(4), np.zeros((5, 1)))


@pytest.mark.skipif(not QMEX_DGS.is_dir(), reason="shared/data/qmex_dGs not present")
@pytest.mark.parametrize(("row", "reference"), [(68, 0.54), (72, 0.53)])
def test_pls_ilr_reproduces_the_readme(row: int, reference: float) -> None:
    qmex = pd.read_csv(QMEX_DGS / "bench_dGs_with_qmex_predict.csv")
    cats = pd.read_csv(QMEX_DGS / "bench_dGs_with_category.csv")
    split = pd.read_csv(QMEX_DGS / "idx_bench_dGs.csv").iloc[row]
    train, test = json.loads(split["idx_inter"]), json.loads(split["idx_extra"])
    X = qmex.loc[:, "mw":].to_numpy()
    C = cats.loc[:, "polar":].to_numpy(dtype=float)
    y = qmex["dGs"].to_numpy()
    model = ILR(kind="pls").fit(X[train], y[train], C[train], C_pool=C)
    assert model.design.transform(X[:1], C[:1]).shape == (1, 850)
    mean, _ = model.predict(X[test], C[test])
    rmse_over_sigma = np.sqrt(np.mean((mean - y[test]) ** 2)) / np.std(y)
    assert abs(np.std(y) - 3.30) < 0.005
    assert abs(rmse_over_sigma - reference) < 0.03
