"""Multi-fidelity campaigns: the MF-GP-UCB rule, its config, and a real two-oracle campaign
(GFN2-xTB as the cheap oracle, PySCF DFT as the target) killed and resumed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bodisc.acquisition.multifidelity import (
    CHEAP,
    TARGET,
    adapted_threshold,
    cheap_first,
    estimate_bias,
    select_with_fidelity,
    threshold,
    with_fidelity,
)
from bodisc.config import load_campaign
from bodisc.errors import ConfigError
from tests.conftest import write_campaign

PLUGINS = Path(__file__).parents[1] / "plugins"

MF_TINY = """
name = "tiny_mf"
random_seed = 7
seed_molecules = ["CO", "CC#N", "CC=O"]

[objective]
property = "dipole"
direction = "maximize"
unit = "D"

[generator]
candidates_per_iteration = 8
allowed_elements = ["C", "N", "O"]
max_heavy_atoms = 4
min_heavy_atoms = 2

[descriptors]
names = ["mu", "homo", "lumo", "mw"]

[acquisition]
name = "logei"
batch_size = 3

[oracle]
name = "{target}"

[oracle.options]
basis = "sto-3g"
device = "cpu"
conv_tol = 1e-7
{target_ledger}

[oracle.options.geometry]
n_conformers = 1

[fidelity]
cheap_oracle = "{cheap}"
target_cost = 5.0
max_cost = 80.0

[fidelity.cheap_options]
n_conformers = 1
{cheap_ledger}

[budget]
oracle_calls = 6

[execution]
workers = 2

[paths]
store = "{root}/runs/{name}/store.sqlite"
export_csv = "{root}/runs/{name}/results.csv"
mlruns = "{root}/mlruns"
"""


def mf_campaign(folder: Path, ledgers: bool = False) -> Path:
    """The tiny multi-fidelity campaign; with ``ledgers``, oracles that log every call."""
    text = MF_TINY
    if ledgers:
        text = (text.replace("{target}", f"{PLUGINS}/ledger_oracle.py:LedgerPyscfDipole")
                .replace("{cheap}", f"{PLUGINS}/ledger_oracle.py:LedgerXtbDipole")
                .replace("{target_ledger}", f'ledger = "{folder}/dft.txt"')
                .replace("{cheap_ledger}", f'ledger = "{folder}/xtb.txt"'))
    text = (text.replace("{target}", "pyscf_dipole").replace("{cheap}", "xtb_dipole")
            .replace("{target_ledger}", "").replace("{cheap_ledger}", ""))
    return write_campaign(folder, text)


# -- the rule ---------------------------------------------------------------------------
def test_threshold_scales_the_bias_by_the_root_cost_ratio():
    assert threshold(0.8, 1.0, 50.0) == pytest.approx(0.8 / np.sqrt(50.0))
    assert threshold(0.0, 1.0, 50.0) == 0.0
    assert estimate_bias([(3.0, 3.5), (1.0, 0.2), (2.0, 2.0)]) == pytest.approx(0.8)
    assert estimate_bias([]) == 0.0


def test_threshold_doubles_after_each_run_of_a_target_calls_worth_of_cheap_calls():
    c, t = CHEAP, TARGET
    # cost ratio 3: a run of 3 cheap calls doubles gamma; a target call restarts the count
    assert adapted_threshold(0.1, [], 1.0, 3.0) == (0.1, 0)
    assert adapted_threshold(0.1, [c, c, t, c, c], 1.0, 3.0) == (0.1, 0)
    assert adapted_threshold(0.1, [c, c, c, t, c, c], 1.0, 3.0) == (pytest.approx(0.2), 1)
    assert adapted_threshold(0.1, [c] * 7, 1.0, 3.0) == (pytest.approx(0.4), 2)
    assert adapted_threshold(0.1, [c] * 7, 1.0, 2.5)[1] == 2  # ceil(2.5) = 3 per run


def test_cheap_first_only_without_a_cheap_label_and_above_the_threshold():
    std = np.array([0.5, 0.05, 0.5, 0.05])
    has = np.array([False, False, True, True])
    # sqrt(2) * 0.5 = 0.71 >= 0.2; sqrt(2) * 0.05 = 0.07 < 0.2
    assert cheap_first(std, has, beta=2.0, gamma=0.2).tolist() == [True, False, False, False]
    assert cheap_first(std, has, beta=2.0, gamma=0.0).tolist() == [True, True, False, False]


def test_with_fidelity_appends_the_fidelity_column():
    X = np.arange(6.0).reshape(3, 2)
    assert with_fidelity(X, TARGET)[:, -1].tolist() == [1.0, 1.0, 1.0]
    out = with_fidelity(X, [CHEAP, TARGET, CHEAP])
    assert out.shape == (3, 3) and out[:, -1].tolist() == [0.0, 1.0, 0.0]
    assert np.array_equal(out[:, :2], X)


def test_picks_follow_the_rule_on_a_fitted_gp():
    """A GP fitted on both fidelities: each pick's oracle is what the rule says, the cheap
    posterior is tight where a cheap label exists, and both oracles get picks."""
    from bodisc.surrogates.gp import GPSurrogate

    rng = np.random.default_rng(3)
    X_cheap = rng.uniform(-2, 2, size=(30, 2))
    X_target = X_cheap[:8]

    def truth(X):
        return np.sin(X[:, 0]) + 0.5 * X[:, 1]

    X = np.vstack([with_fidelity(X_cheap, CHEAP), with_fidelity(X_target, TARGET)])
    y = np.concatenate([truth(X_cheap) + 0.2, truth(X_target)])
    gp = GPSurrogate("matern52", "cpu").fit(X, y)
    # candidates: 10 with a cheap label (no target label) and 10 new ones further out
    X_c = np.vstack([X_cheap[8:18], rng.uniform(-4, 4, size=(10, 2))])
    has_cheap = np.array([True] * 10 + [False] * 10)
    _, c_std = gp.predict(with_fidelity(X_c, CHEAP))
    assert c_std[:10].max() < np.median(c_std[10:])  # cheap labels pin the cheap posterior
    gamma = float(np.median(np.sqrt(2.0) * c_std[10:]))  # half the new ones below it
    picks = select_with_fidelity("greedy", gp, X_c, has_cheap, 20, float(y[30:].max()),
                                 np.random.default_rng(0), 2.0, 2.0, gamma)
    assert sorted(p.index for p in picks) == list(range(20))
    for p in picks:
        expected = (not has_cheap[p.index]) and np.sqrt(2.0) * c_std[p.index] >= gamma
        assert p.fidelity == (CHEAP if expected else TARGET)
    fidelities = Counter(p.fidelity for p in picks)
    assert fidelities[CHEAP] >= 1 and fidelities[TARGET] >= 10


# -- the [fidelity] table ---------------------------------------------------------------
@pytest.mark.parametrize(("override", "field", "says"), [
    ({"fidelity.bogus": 1}, "fidelity.bogus", "allowed fields here: cheap_oracle"),
    ({"fidelity.cheap_oracle": "no_such_oracle"}, "fidelity.cheap_oracle", "registered"),
    ({"fidelity.cheap_options": {"n_conformers": 0}}, "fidelity.cheap_options.n_conformers",
     "greater than or equal to 1"),
    ({"fidelity.bias": -1.0}, "fidelity.bias", "greater than or equal to 0"),
    ({"fidelity.cheap_cost": 9.0}, "fidelity.cheap_cost", "below the target oracle's cost"),
    ({"fidelity.cheap_oracle": "pyscf_dipole",
      "fidelity.cheap_options": {"basis": "sto-3g", "device": "cpu", "conv_tol": 1e-7,
                                 "geometry": {"n_conformers": 1}}},
     "fidelity.cheap_oracle", "campaign's own oracle"),
    ({"surrogate.kind": "xgp"}, "surrogate.kind", "needs kind = 'gp'"),
    ({"acquisition.name": "random"}, "acquisition.name", "model-based acquisition"),
    ({"acquisition.warmup_batches": 2}, "acquisition.warmup_batches",
     "one acquisition throughout"),
])
def test_a_bad_fidelity_field_is_one_line_naming_it(tmp_path, override, field, says):
    path = mf_campaign(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_campaign(path, override)
    err = info.value
    assert err.field == field and says in str(err)
    assert str(err).startswith(f"{path}: {field} = ") and "\n" not in str(err)


def test_the_shipped_campaign_is_valid():
    cfg = load_campaign(Path(__file__).parents[2] / "campaigns" / "dipole_mf.toml")
    dft = load_campaign(Path(__file__).parents[2] / "campaigns" / "dipole_dft.toml")
    assert cfg.fidelity is not None and cfg.fidelity.cheap_oracle == "xtb_dipole"
    # the same seed, generator and DFT settings as the DFT-only campaign
    assert (cfg.random_seed, cfg.generator, cfg.oracle) == (dft.random_seed, dft.generator,
                                                             dft.oracle)


# -- a real campaign, killed and resumed ------------------------------------------------
def launch(path: Path, failpoints: str = "") -> subprocess.Popen:
    env = dict(os.environ, BODISC_FAILPOINTS=failpoints)
    return subprocess.Popen([sys.executable, "-m", "bodisc.cli", "campaign", str(path),
                             "--quiet"], cwd=path.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def jobs(store: Path) -> list[tuple]:
    with sqlite3.connect(store) as db:
        return db.execute(
            "SELECT j.fidelity, m.smiles, j.iteration, j.status, j.value, j.pred_std "
            "FROM jobs j JOIN molecules m USING (inchikey) ORDER BY j.iteration, j.rank"
        ).fetchall()


@pytest.mark.slow
def test_multifidelity_campaign_labels_per_oracle_and_resumes_without_recomputing(tmp_path):
    path = mf_campaign(tmp_path, ledgers=True)
    store = tmp_path / "runs/tiny_mf/store.sqlite"
    # iteration 0 commits 3 cheap and 3 DFT seed labels; die at the 2nd commit of iteration 1
    killed = launch(path, "oracle.commit=8")
    rc = killed.wait(timeout=300)
    with contextlib.suppress(ProcessLookupError):  # its workers go too, as on a power cut
        os.killpg(killed.pid, signal.SIGKILL)
    assert rc == -9
    before = {(f, s): v for f, s, _, status, v, _ in jobs(store) if status != "pending"}
    assert len(before) == 8 and any(row[3] == "pending" for row in jobs(store))

    resumed = launch(path)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    rows = jobs(store)
    after = {(f, s): v for f, s, _, status, v, _ in rows}
    assert all(after[key] == value for key, value in before.items())  # nothing recomputed
    assert all(status != "pending" for _, _, _, status, _, _ in rows)
    # a label per (molecule, oracle); the DFT budget spent exactly, cheap calls beside it
    assert len(after) == len(rows)
    calls = Counter(f for f, *_ in rows)
    assert calls[TARGET] == 6 and calls[CHEAP] >= 4
    # every real oracle call ran once, except calls in flight (not committed) at the kill
    for fidelity, ledger in ((CHEAP, "xtb.txt"), (TARGET, "dft.txt")):
        ran = Counter((tmp_path / ledger).read_text().split())
        assert sum(ran.values()) >= calls[fidelity]
        for smiles, n in ran.items():
            assert n == 1 or (fidelity, smiles) not in before, (fidelity, smiles)
    # the rule: a cheap call only for a molecule whose cheap value the GP was unsure of;
    # some molecules were screened cheaply first and sent to DFT in a later iteration
    with sqlite3.connect(store) as db:
        gammas = {it: json.loads(m).get("fidelity_gamma")
                  for it, m in db.execute("SELECT iteration, metrics FROM iterations")}
    for fidelity, _, it, _, _, std in rows:
        if fidelity == CHEAP and it > 0:
            assert np.sqrt(2.0) * std >= gammas[it]
    first_cheap = {s: it for f, s, it, *_ in rows if f == CHEAP}
    screened = [s for f, s, it, *_ in rows if f == TARGET and it > first_cheap.get(s, it)]
    assert screened, rows
    # MLflow has the per-fidelity calls and the cost
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny_mf").experiment_id])
    assert run.data.metrics["iteration/calls_target"] == 6
    assert run.data.metrics["iteration/calls_cheap"] == calls[CHEAP]
    assert run.data.metrics["iteration/cost"] == pytest.approx(calls[CHEAP] * 1.0 + 6 * 5.0)
    assert run.data.metrics["call/best_so_far"] == pytest.approx(
        max(v for f, _, _, st, v, _ in rows if f == TARGET and st == "done"))
    assert "6 target" in out and "cheap" in out


@pytest.mark.slow
def test_an_async_multifidelity_campaign_shares_the_workers_between_oracles(tmp_path):
    """``mode = "async"`` with ``[fidelity]``: cheap and DFT jobs are proposed one per free
    worker and the DFT budget is spent exactly."""
    path = mf_campaign(tmp_path)
    path.write_text(path.read_text().replace("workers = 2", 'workers = 2\nmode = "async"'))
    proc = launch(path)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    rows = jobs(tmp_path / "runs/tiny_mf/store.sqlite")
    assert all(status != "pending" for _, _, _, status, _, _ in rows)
    calls = Counter(f for f, *_ in rows)
    assert calls[TARGET] == 6 and calls[CHEAP] >= 3
    later = Counter(it for _, _, it, *_ in rows if it > 0)
    assert later and max(later.values()) <= 2  # one proposal per free worker
    assert {f for f, _, it, *_ in rows if it > 0} <= {CHEAP, TARGET}
