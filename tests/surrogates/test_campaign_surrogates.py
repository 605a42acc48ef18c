"""Every surrogate kind drives every model-based acquisition, in a real campaign."""

import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from bodisc.surrogates import SURROGATES, build_surrogate, uses_categories, with_categories

SMILES = ["CCO", "CCN", "CC#N", "CC(C)=O", "CN", "CCCO", "OCCO", "NCCN", "CC(N)=O", "C=CC=O",
          "CCOC", "CCC#N", "COC=O", "NC=O", "CC(=O)O", "c1ccncc1", "Oc1ccccc1", "CCCCN"]


@pytest.mark.parametrize("kind", [k for k in SURROGATES if uses_categories(k)])
def test_categorised_surrogates_give_means_stds_and_covariances(kind):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(len(SMILES), 4))
    y = X[:, 0] * 2.0 + 0.1 * rng.normal(size=len(SMILES))
    Xa = with_categories(X, SMILES)
    model = build_surrogate(kind, device="cpu").fit(Xa, y)
    mean, std = model.predict(Xa)
    assert mean.shape == std.shape == (len(SMILES),)
    assert np.all(std > 0) and np.corrcoef(mean, y)[0, 1] > 0.8
    cols = model.covariance_columns(Xa, np.array([2, 5]))
    np.testing.assert_allclose(cols[[2, 5], [0, 1]], std[[2, 5]] ** 2, rtol=1e-6)
    post = model.shortlist_posterior(Xa)  # the batch selection's fast path: the same
    np.testing.assert_allclose(post.mean, mean)
    np.testing.assert_allclose(post.var, std**2)
    for j, i in enumerate((2, 5)):
        np.testing.assert_allclose(post.column(i), cols[:, j], rtol=1e-6,
                                   atol=1e-9 * float(std.max()) ** 2)
    draws = model.joint_samples(Xa, 3, np.random.default_rng(1))
    assert draws.shape == (3, len(SMILES)) and np.isfinite(draws).all()


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "acquisition"),
                         [("xgp", "logei"), ("ilr_ridge", "thompson"), ("sparse", "ucb")])
def test_campaign_runs_with_each_surrogate(tiny_campaign, tmp_path, kind, acquisition):
    proc = subprocess.run(
        [sys.executable, "-m", "bodisc.cli", "campaign", str(tiny_campaign), "--quiet",
         "--set", f"surrogate.kind={kind!r}".replace("'", '"'),
         "--set", f'acquisition.name="{acquisition}"', "--set", "budget.oracle_calls=13"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    with sqlite3.connect(tmp_path / "runs" / "tiny" / "store.sqlite") as db:
        preds = db.execute("SELECT COUNT(*) FROM jobs WHERE pred_mean IS NOT NULL "
                           "AND pred_std > 0").fetchone()[0]
        total = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    assert total == 13
    assert preds >= 6  # iterations 2 and 3 chose with the model (iteration 1 has 4 labels)


@pytest.mark.slow
def test_each_fit_is_stored_and_warm_starts_the_next(tiny_campaign, tmp_path):
    """Hyperparameters of every fit land in the store; restarts run as one batch."""
    import json

    proc = subprocess.run(
        [sys.executable, "-m", "bodisc.cli", "campaign", str(tiny_campaign), "--quiet",
         "--set", "surrogate.restarts=3", "--set", "budget.oracle_calls=16"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    store = next(tmp_path.rglob("*.sqlite"))
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT key, value FROM meta WHERE key LIKE 'surrogate/%' "
                          "ORDER BY key").fetchall()
    assert len(rows) >= 2
    states = [json.loads(v) for _, v in rows]
    assert all(s["kind"] == "gp" for s in states)
    names = set(states[0]["state"])
    assert "covar_module.raw_lengthscale" in names
    assert states[0]["state"] != states[1]["state"]
