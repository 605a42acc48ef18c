import numpy as np
import pytest

from bodisc.bench.replay import replay_metrics, run_replay


def test_replay_metrics_by_hand():
    pool = np.arange(200, dtype=float)  # top 1 %: the 2 largest, 198 and 199
    picked = np.array([5.0, 199.0, 3.0, 198.0])
    out = replay_metrics(picked, pool, budget=4, checkpoints=(2, 4, 8))
    assert out["top1pct_recall_2"] == 0.5
    assert out["top1pct_recall_4"] == 1.0
    assert out["top1pct_recall_8"] is None
    assert out["calls_to_max"] == 2
    assert out["best"] == 199.0
    # top-10 mean after each call: 5, 102, 69, 101.25 -> AUC = mean over the budget
    assert out["auc_top10"] == pytest.approx((5 + 102 + 69 + 101.25) / 4)


def test_a_small_replay_finds_the_top_and_is_seeded():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(400, 3))
    y = -((X - 1.0) ** 2).sum(1)  # best near (1, 1, 1)
    a = run_replay(X, y, calls=70, batch=10, start=20, seed=3, device="cpu")
    b = run_replay(X, y, calls=70, batch=10, start=20, seed=3, device="cpu")
    assert a["calls"] == 70 and a["iterations"] == 5
    assert a["best"] == b["best"] and a["auc_top10"] == b["auc_top10"]
    random_best = np.max(y[rng.choice(400, 70, replace=False)])
    assert a["best"] >= random_best
    assert a["top1pct_recall_500"] is None


def test_bench_surrogate_scoring_matches_botorch(tmp_path):
    from bodisc.bench.surrogate import bench_scoring

    out = bench_scoring(n=60, d=5, m=600, device="cpu", baseline_max=300)
    assert out["scoring_max_rel_diff"] < 1e-6
    assert out["candidates_per_s"] > 0 and out["baseline_candidates_per_s"] > 0
    assert out["scoring_sizes"] == {"n": 60, "d": 5, "m": 600, "baseline_m": 300}


def test_bench_nehvi_gives_botorchs_batch_faster_small():
    from bodisc.bench.surrogate import bench_nehvi

    out = bench_nehvi(n=80, candidates=700, q=6, device="cpu")
    assert out["nehvi_cached_same_batch"] and out["nehvi_cached_max_score_diff"] < 1e-6
    assert out["nehvi_s"] > 0 and out["nehvi_plain_s"] > 0
    assert out["nehvi_speedup"] == pytest.approx(out["nehvi_plain_s"] / out["nehvi_s"])
    assert out["nehvi_lazy_leading_picks_same"] == 6 == out["nehvi_lazy_molecules_shared"]
    assert out["nehvi_sizes"]["q"] == 6 and out["nehvi_sizes"]["candidates"] == 700


def test_bench_cli_refuses_an_unknown_part(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "bodisc.cli", "bench", "surrogate",
                           "--parts", "scoring,speed"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "unknown part 'speed'" in proc.stderr and "scoring" in proc.stderr


def test_bench_sparse_compares_mean_rmse_over_draws():
    from bodisc.bench.surrogate import bench_sparse, qm9_table

    out = bench_sparse(n_big=400, n_exact=150, n_train=300, n_test=100, device="cpu", draws=2)
    assert out["sparse_sizes"]["draws"] == 2
    assert len(out["sparse_rmse_draws"]) == len(out["exact_rmse_draws"]) == 2
    assert out["sparse_rmse_draws"][0] != out["sparse_rmse_draws"][1]  # other splits
    assert out["sparse_rmse"] == pytest.approx(np.mean(out["sparse_rmse_draws"]))
    assert out["sparse_rmse_ratio"] == pytest.approx(out["sparse_rmse"] / out["exact_rmse"])
    _, y, _ = qm9_table()
    assert max(out["sparse_rmse_draws"] + out["exact_rmse_draws"]) < np.std(y)
