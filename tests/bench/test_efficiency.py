"""The sample-efficiency benchmark, reduced: a 400-molecule QM9 pool whose descriptors are
computed here with xTB on QM9's geometries, 100 calls per run.

At this size only what must hold is asserted: every method runs and gives the documented
figures, runs are seeded, every method starts from the same molecules, ranking by the
xTB dipole beats random on the dipole (r = 0.98 on QM9), and bodisc's GP, which has the
xTB dipole among its descriptors, beats random too.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from bodisc.bench.efficiency import (
    METHODS,
    RECORD_KEYS,
    REPLAY_THREADS,
    format_table,
    load_pool,
    make_chooser,
    replay_run,
    replay_threads,
    run_benchmark,
    summarise,
)

pytestmark = pytest.mark.slow

CALLS, BATCH, START = 100, 20, 20
CHECKS = (40, 100)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("qm9-cache")


@pytest.fixture(scope="module")
def pool(cache_dir):
    from bodisc.data.qm9 import qm9_sample_indices

    return load_pool(qm9_sample_indices(400, seed=7), workers=2, cache_dir=cache_dir)


def test_pool_has_labels_analogues_and_finite_descriptors(pool):
    assert len(pool) >= 395  # an xTB failure may leave a molecule out, and the note says so
    assert np.all(np.isfinite(pool.X))
    r = np.corrcoef(pool.labels["dipole"], pool.analogues["dipole"])[0, 1]
    assert r > 0.9
    assert pool.labels["gap"].min() > 0


COMPARED = ["random", "cheap", "gp_ucb"]


@pytest.fixture(scope="module")
def records(pool):
    every = run_benchmark(pool, ["dipole"], list(METHODS), [0], calls=CALLS, batch=BATCH,
                          start=START, checkpoints=CHECKS)
    return every + run_benchmark(pool, ["dipole"], COMPARED, [1], calls=CALLS, batch=BATCH,
                                 start=START, checkpoints=CHECKS)


def test_every_method_gives_the_documented_figures(records):
    assert {(r["method"], r["seed"]) for r in records} == (
        {(m, 0) for m in METHODS} | {(m, 1) for m in COMPARED})
    for r in records:
        assert set(RECORD_KEYS) <= set(r)
        assert r["top1pct_recall_2000"] is None  # past the budget: null, not a number
        for c in CHECKS:
            assert 0.0 <= r[f"top1pct_recall_{c}"] <= 1.0
        assert r["top1pct_recall_40"] <= r["top1pct_recall_100"]
        assert r["best"] <= r["pool_best"] + 1e-12
        assert r["calls_to_max"] is None or 1 <= r["calls_to_max"] <= CALLS
        assert len(r["recall_curve"]) == len(r["curve_calls"]) and r["curve_calls"][-1] == CALLS


def _mean(records, method, key):
    return float(np.mean([r[key] for r in records if r["method"] == method]))


def test_the_cheap_proxy_and_the_gp_beat_random_on_the_dipole(records):
    assert _mean(records, "cheap", "auc_top10") > _mean(records, "random", "auc_top10")
    assert _mean(records, "gp_ucb", "auc_top10") > _mean(records, "random", "auc_top10")
    assert _mean(records, "gp_ucb", "top1pct_recall_100") > _mean(records, "random",
                                                                   "top1pct_recall_100")
    assert _mean(records, "cheap", "top1pct_recall_100") > _mean(records, "random",
                                                                  "top1pct_recall_100")


def test_runs_are_seeded_and_share_their_start(pool):
    a = replay_run(pool, "gap_min", "gp_ucb", 3, calls=60, batch=20, start=20, checkpoints=(60,))
    b = replay_run(pool, "gap_min", "gp_ucb", 3, calls=60, batch=20, start=20, checkpoints=(60,))
    assert a["recall_curve"] == b["recall_curve"] and a["auc_top10"] == b["auc_top10"]
    # every method labels the same random molecules first: equal figures after the start
    starts = {replay_run(pool, "gap_min", m, 3, calls=20, batch=20, start=20,
                         checkpoints=(20,))["auc_top10"] for m in ("random", "cheap", "rf")}
    assert len(starts) == 1


def test_the_ablation_drops_the_analogue_descriptors(pool):
    chooser = make_chooser("gp_ucb_no_analogue", pool, "gap_max")
    assert chooser.X.shape[1] == pool.X.shape[1] - 4  # homo, lumo and their twins Eiv, Eav
    names = list(pool.names)
    kept = [name for i, name in enumerate(names)
            if any(np.array_equal(col, pool.X[:, i]) for col in chooser.X.T)]
    assert not {"homo", "lumo", "Eiv", "Eav"} & set(kept) and "mu" in kept
    # the twins are an analogue of the gap by themselves: Eiv - Eav follows lumo - homo
    X = pool.X
    twin_gap = X[:, names.index("Eiv")] - X[:, names.index("Eav")]
    orbital_gap = X[:, names.index("lumo")] - X[:, names.index("homo")]
    assert np.corrcoef(twin_gap, orbital_gap)[0, 1] > 0.9
    chooser = make_chooser("gp_ucb_no_analogue", pool, "dipole")
    assert chooser.X.shape[1] == pool.X.shape[1] - 1  # mu


def test_the_extrapolating_gp_follows_the_refit_schedule(pool):
    """xgp_ucb's GP component is re-optimised as the GP methods' are: on the first fit
    and once the labels grew by REFIT_GROWTH, conditioned with the kept hyperparameters
    in between."""
    from bodisc.bench.efficiency import REFIT_GROWTH

    chooser = make_chooser("xgp_ucb", pool, "dipole")
    y = pool.labels["dipole"]
    order = np.random.default_rng(3).permutation(len(pool))
    states = []
    for n in (START, START + 4, int(START * REFIT_GROWTH) + 1):
        labelled, free = order[:n], order[n:]
        picked = chooser(labelled, y[labelled], free, BATCH, np.random.default_rng(0))
        assert len(set(picked.tolist())) == BATCH and not set(picked) & set(labelled)
        states.append((chooser.fit.optimised_at, chooser.fit.state))
    assert states[0][0] == states[1][0] == START and states[1][1] == states[0][1]
    assert states[2][0] == int(START * REFIT_GROWTH) + 1 and states[2][1] != states[1][1]


def test_the_proxy_mean_method_follows_the_targets_own_analogue(pool):
    """gp_proxy_greedy's prior mean is the target's xTB analogue with the target's sign: on
    the gap ``lumo - homo`` (two columns), falling for the gap minimum; its first batch
    after the start equals cheap ranking's on the dipole or differs in few molecules."""
    names = list(pool.names)
    lumo, homo = names.index("lumo"), names.index("homo")
    for target, sign in (("gap_max", 1.0), ("gap_min", -1.0)):
        chooser = make_chooser("gp_proxy_greedy", pool, target)
        assert chooser.acquisition == "greedy"
        assert chooser.settings.options["proxy_column"] == {lumo: 1.0, homo: -1.0}
        assert chooser.settings.options["proxy_sign"] == sign
    y = pool.labels["dipole"]
    start = np.random.default_rng(0).choice(len(pool), START, replace=False)
    free = np.setdiff1d(np.arange(len(pool)), start)
    rng = np.random.default_rng(0)
    picked = make_chooser("gp_proxy_greedy", pool, "dipole")(start, y[start], free, BATCH, rng)
    ranked = make_chooser("cheap", pool, "dipole")(start, y[start], free, BATCH, rng)
    assert len(set(picked.tolist()) & set(ranked.tolist())) >= BATCH // 2


def test_the_staged_method_ranks_by_the_analogue_then_exploits_then_explores(pool):
    """gp_proxy_staged: two batches in the analogue's order after the start, then the
    proxy-mean GP's greedy batches (the same as gp_proxy_greedy's from the same labels),
    UCB batches from half the budget on."""
    calls, start_n = 200, START
    y = -pool.labels["gap"]  # gap_min in maximisation form
    order = np.random.default_rng(3).permutation(len(pool))
    staged = make_chooser("gp_proxy_staged", pool, "gap_min", calls=calls, start=start_n,
                          batch=BATCH)
    cheap = make_chooser("cheap", pool, "gap_min")
    rng = np.random.default_rng(0)

    def step(chooser, n):
        labelled = order[:n]
        return chooser(labelled, y[labelled], np.sort(order[n:]), BATCH, rng)

    for n in (start_n, start_n + BATCH):  # the two warm-up batches
        assert np.array_equal(step(staged, n), step(cheap, n))
    n = start_n + 2 * BATCH
    greedy = step(make_chooser("gp_proxy_greedy", pool, "gap_min"), n)
    picked = step(staged, n)
    assert staged.acquisition == "greedy"
    assert np.array_equal(picked, greedy)
    assert not np.array_equal(picked, step(cheap, n))  # the model, not the ranking
    picked = step(staged, calls // 2)
    assert staged.acquisition == "ucb"
    assert len(set(picked.tolist())) == BATCH and not set(picked) & set(order[:calls // 2])


def test_unknown_names_list_the_known_ones(pool):
    with pytest.raises(KeyError, match="choose from: random, cheap"):
        run_benchmark(pool, ["dipole"], ["bogus"], [0])
    with pytest.raises(KeyError, match="dipole, gap_min, gap_max"):
        run_benchmark(pool, ["density"], ["random"], [0])


def test_records_resume_and_the_table_summarises(pool, tmp_path):
    path = tmp_path / "runs.jsonl"
    first = run_benchmark(pool, ["gap_max"], ["random", "cheap"], [0, 1], calls=40, batch=20,
                          start=20, checkpoints=(40,), records_path=path)
    assert len(path.read_text().splitlines()) == 4
    again = run_benchmark(pool, ["gap_max"], ["random", "cheap"], [0, 1], calls=40, batch=20,
                          start=20, checkpoints=(40,), records_path=path)
    assert len(path.read_text().splitlines()) == 4  # nothing run twice
    assert [r["auc_top10"] for r in again] == [r["auc_top10"] for r in first]
    rows = summarise(first, (40,))
    assert {r["method"] for r in rows} == {"random", "cheap"}
    cheap = next(r for r in rows if r["method"] == "cheap")
    assert cheap["top1pct_recall_40"] == np.mean([r["top1pct_recall_40"] for r in first
                                                  if r["method"] == "cheap"])
    assert "| gap_max | cheap | 2 | " in format_table(rows, (40,))
    # the largest shortfall against cheap ranking along the curve, after the shared start
    rand = next(r for r in rows if r["method"] == "random")
    diffs = np.mean([np.subtract(a["recall_curve"], b["recall_curve"])
                     for a, b in zip(first[:2], first[2:], strict=True)], axis=0)
    assert rand["vs_cheap_worst"] == pytest.approx(diffs[1:].min())
    assert rand["vs_cheap_worst_calls"] == first[0]["curve_calls"][1 + int(diffs[1:].argmin())]
    assert cheap["vs_cheap_worst"] is None
    # per seed: the most top-1 % molecules behind cheap ranking after any batch
    n_top = first[0]["top1pct_size"]
    behind = {a["seed"]: int(max(0, np.max(np.rint(np.multiply(b["recall_curve"], n_top))
                                           - np.rint(np.multiply(a["recall_curve"], n_top)))))
              for a, b in zip(first[:2], first[2:], strict=True)}
    assert rand["behind_cheap_per_seed"] == behind and max(behind.values()) > 0
    assert cheap["behind_cheap_per_seed"] is None
    assert f"| {' '.join(str(v) for v in behind.values())} |" in format_table(rows, (40,))
    # a report of what is there runs nothing and leaves out what is missing
    more = run_benchmark(pool, ["gap_max"], ["random", "cheap", "rf"], [0, 1, 2], calls=40,
                         batch=20, start=20, checkpoints=(40,), records_path=path,
                         run_missing=False)
    assert [(r["method"], r["seed"]) for r in more] == [(r["method"], r["seed"]) for r in first]
    assert len(path.read_text().splitlines()) == 4


def test_parallel_runs_give_the_same_records_in_the_same_order(pool, tmp_path):
    args = (pool, ["dipole"], ["random", "gp_ucb"], [0, 1])
    kw = {"calls": 40, "batch": 20, "start": 20, "checkpoints": (40,)}
    one = run_benchmark(*args, **kw)
    two = run_benchmark(*args, **kw, parallel=2, records_path=tmp_path / "p.jsonl")
    assert [(r["method"], r["seed"]) for r in two] == [(r["method"], r["seed"]) for r in one]
    for a, b in zip(one, two, strict=True):
        assert a["recall_curve"] == b["recall_curve"] and a["best"] == b["best"]
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 4


def test_replay_runs_on_fixed_threads_whatever_the_process_has():
    # a run's late molecules depend on the threads of its Cholesky factors, so a replay
    # fixes them instead of taking the process's (the default, or a --parallel share)
    import torch
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with replay_threads():
            assert torch.get_num_threads() == REPLAY_THREADS == 1
            blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
            assert blas and set(blas) == {REPLAY_THREADS}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_cli_writes_the_json_keys(cache_dir, tmp_path):
    out = tmp_path / "replay.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bodisc.cli", "bench", "qm9-replay", "--targets", "dipole",
         "--methods", "random,cheap", "--seeds", "0-1", "--calls", "40", "--batch", "20",
         "--start", "20", "--checkpoints", "40", "--sample", "400", "--sample-seed", "7",
         "--cache-dir", str(cache_dir), "--out", str(tmp_path / "out"), "--json", str(out)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert len(data["runs"]) == 4
    for r in data["runs"]:
        assert set(RECORD_KEYS) <= set(r)
    assert (tmp_path / "out" / "qm9_replay.md").exists()
    assert (tmp_path / "out" / "qm9_replay.png").read_bytes()[:4] == b"\x89PNG"
    report = subprocess.run(
        [sys.executable, "-m", "bodisc.cli", "bench", "qm9-replay", "--targets", "dipole",
         "--methods", "random,cheap,rf", "--seeds", "0-1", "--calls", "40", "--batch", "20",
         "--start", "20", "--checkpoints", "40", "--cache-dir", str(cache_dir), "--out",
         str(tmp_path / "out"), "--json", str(out), "--report-only"],
        capture_output=True, text=True, timeout=600)
    assert report.returncode == 0, report.stderr
    assert "not run (2): dipole/rf/0, dipole/rf/1" in report.stdout
    data = json.loads(out.read_text())
    assert len(data["runs"]) == 4 and data["not_run"] == ["dipole/rf/0", "dipole/rf/1"]
    assert len((tmp_path / "out" / "qm9_replay.jsonl").read_text().splitlines()) == 4
    bad = subprocess.run([sys.executable, "-m", "bodisc.cli", "bench", "qm9-replay",
                          "--methods", "random,bogus"], capture_output=True, text=True)
    assert bad.returncode != 0 and "bogus" in bad.stderr and "tanimoto_ucb" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="parent-death signals are Linux only")
def test_parallel_run_processes_die_with_a_killed_benchmark(tmp_path):
    """SIGKILL the benchmark's process: its run processes, mid-run, go too."""
    from tests.execution.test_local import worker_outlives_killed_owner

    pid_file = tmp_path / "worker.pid"
    code = (
        "import multiprocessing as mp, os\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from bodisc.bench.efficiency import _set_worker_pool\n"
        "from tests.execution.test_local import _write_pid_and_sleep\n"
        "if __name__ == '__main__':\n"
        "    with ProcessPoolExecutor(1, mp_context=mp.get_context('spawn'),\n"
        "            initializer=_set_worker_pool, initargs=(None, os.getpid())) as ex:\n"
        f"        ex.submit(_write_pid_and_sleep, {str(pid_file)!r}).result()\n"
    )
    assert worker_outlives_killed_owner(code, pid_file) is False
