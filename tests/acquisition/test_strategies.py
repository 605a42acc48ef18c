import numpy as np
import pytest

from bodisc.acquisition import ACQUISITIONS, AcquisitionContext, register, select
from bodisc.surrogates.gp import GPSurrogate, expected_improvement_log


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(3)
    X = rng.uniform(-2, 2, size=(40, 2))
    y = -(X**2).sum(1)
    gp = GPSurrogate("matern52", "cpu").fit(X, y)
    Xc = rng.uniform(-3, 3, size=(400, 2))
    return gp, X, y, Xc


@pytest.mark.parametrize("name", sorted(ACQUISITIONS))
def test_every_strategy_returns_q_distinct_valid_indices(problem, name):
    gp, X, y, Xc = problem
    # X_train and y_train: what the strategies that learn from labels (intervention) read
    ctx = AcquisitionContext(Xc, 12, float(y.max()), np.random.default_rng(0), gp, 2.0,
                             ranking=Xc[:, 0], X_train=X, y_train=y, names=("a", "b"))
    sel = select(name, ctx)
    assert len(sel.index) == 12
    assert len(set(sel.index.tolist())) == 12
    assert sel.index.min() >= 0 and sel.index.max() < len(Xc)


@pytest.mark.parametrize("name", sorted(ACQUISITIONS))
def test_strategies_are_deterministic_under_a_seed(problem, name):
    gp, X, y, Xc = problem
    a = select(name, AcquisitionContext(Xc, 5, float(y.max()), np.random.default_rng(7), gp,
                                        ranking=Xc[:, 1], X_train=X, y_train=y))
    b = select(name, AcquisitionContext(Xc, 5, float(y.max()), np.random.default_rng(7), gp,
                                        ranking=Xc[:, 1], X_train=X, y_train=y))
    np.testing.assert_array_equal(a.index, b.index)


def test_first_logei_pick_is_the_argmax_of_logei(problem):
    gp, _, y, Xc = problem
    sel = select("logei", AcquisitionContext(Xc, 3, float(y.max()), None, gp))
    mean, std = gp.predict(Xc)
    assert sel.index[0] == int(np.argmax(expected_improvement_log(mean, std, float(y.max()))))


def test_believer_spreads_a_batch_out(problem):
    gp, _, y, Xc = problem
    ucb = select("ucb", AcquisitionContext(Xc, 8, float(y.max()), None, gp, beta=9.0))
    mean, std = gp.predict(Xc)
    top8 = np.argsort(-(mean + 3.0 * std))[:8]
    # without the believer the batch would be the 8 best UCB values, clumped together
    spread = np.mean([np.linalg.norm(Xc[i] - Xc[j]) for i in ucb.index for j in ucb.index])
    spread_top = np.mean([np.linalg.norm(Xc[i] - Xc[j]) for i in top8 for j in top8])
    assert spread > spread_top


def test_greedy_takes_the_best_means(problem):
    gp, _, y, Xc = problem
    sel = select("greedy", AcquisitionContext(Xc, 4, float(y.max()), None, gp))
    mean, _ = gp.predict(Xc)
    assert set(sel.index.tolist()) == set(np.argsort(-mean)[:4].tolist())


def test_rank_takes_the_best_descriptor_values_and_skips_missing():
    ranking = np.array([0.5, np.nan, 3.0, 2.0, -1.0])
    sel = select("rank", AcquisitionContext(np.zeros((5, 1)), 3, 0.0, None, ranking=ranking))
    assert sel.index.tolist() == [2, 3, 0]


def test_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register("logei")(lambda ctx: None)


@pytest.mark.parametrize("name", ["logei", "ucb"])
@pytest.mark.parametrize("shortlist", [2, 16, 4096])
def test_short_list_batch_equals_conditioning_on_every_candidate(problem, monkeypatch, name,
                                                                 shortlist):
    """The short-list believer (growing from 2, 16, or all) picks what the full one does."""
    import bodisc.acquisition as acq

    gp, _, y, Xc = problem
    ctx = AcquisitionContext(Xc, 15, float(y.max()), None, gp, beta=4.0)
    monkeypatch.setattr(acq, "SHORTLIST", shortlist)
    fast = select(name, ctx)
    mean, std = gp.predict(Xc)
    score = (expected_improvement_log if name == "logei"
             else (lambda mu, sd, best: mu + 2.0 * sd))
    index, scores = _believer_over_everything(gp, Xc, 15, float(y.max()), score)
    np.testing.assert_array_equal(fast.index, index)
    np.testing.assert_allclose(fast.score, scores, rtol=1e-9, atol=1e-12)


def _believer_over_everything(gp, Xc, q, best, score):
    """Reference: kriging believer with the full covariance of every candidate."""
    mean, std = gp.predict(Xc)
    cov = gp.covariance_columns(Xc, np.arange(len(Xc)))
    var, noise = std**2, gp.noise_variance()
    chosen, scores = [], []
    for _ in range(q):
        s = score(mean, np.sqrt(np.clip(var, 1e-30, None)), best)
        s[chosen] = -np.inf
        i = int(np.argmax(s))
        chosen.append(i)
        scores.append(s[i])
        u = cov[:, i] / np.sqrt(cov[i, i] + noise)
        cov = cov - np.outer(u, u)
        var = var - u**2
        best = max(best, mean[i])
    return np.array(chosen), np.array(scores)


def test_thompson_on_a_large_set_draws_over_the_plausible_candidates(problem, monkeypatch):
    import bodisc.acquisition as acq

    gp, _, y, Xc = problem
    monkeypatch.setattr(acq, "THOMPSON_MAX", 50)
    sel = select("thompson", AcquisitionContext(Xc, 6, float(y.max()),
                                                np.random.default_rng(1), gp))
    mean, std = gp.predict(Xc)
    plausible = set(np.argsort(-(mean + 4.0 * std), kind="stable")[:50].tolist())
    assert len(set(sel.index.tolist())) == 6
    assert set(sel.index.tolist()) <= plausible


@pytest.mark.parametrize("name", ["logei", "ucb"])
def test_bounded_first_scores_give_the_same_batch(problem, monkeypatch, name):
    """Upper bounds on the std for the first scoring change nothing in the batch."""
    import bodisc.acquisition as acq

    gp, _, y, Xc = problem
    ctx = AcquisitionContext(Xc, 10, float(y.max()), None, gp, beta=4.0)
    exact = select(name, ctx)
    monkeypatch.setattr(acq, "BOUND_MIN", 10)
    monkeypatch.setattr(acq, "SHORTLIST", 8)
    bounded = select(name, ctx)
    np.testing.assert_array_equal(bounded.index, exact.index)
    mean, std = gp.predict(Xc)
    mean_b, std_ub = gp.predict_bound(Xc, rows=5)
    np.testing.assert_allclose(mean_b, mean, rtol=1e-10, atol=1e-10)
    assert np.all(std_ub >= std - 1e-9)


def test_staged_campaign_stages_follow_the_iteration_and_the_calls_spent():
    from bodisc.acquisition import staged

    stages = [staged("ucb", it, 4 + 10 * (it - 1), 100, warmup_batches=2, greedy_until=0.5)
              for it in range(1, 11)]
    assert stages == ["rank", "rank"] + ["greedy"] * 3 + ["ucb"] * 5  # 44 < 50 <= 54 calls
    assert staged("logei", 1, 4, 100) == "logei"  # no stages: the campaign's strategy


@pytest.mark.parametrize("name", ["logei", "ucb"])
def test_pending_molecules_are_conditioned_on_as_the_first_picks_of_a_batch(problem, name):
    """A batch asked while 3 molecules are pending is the rest of the batch that picked
    those 3 first: the kriging believer conditions on pending and earlier picks alike."""
    gp, _, y, Xc = problem
    whole = select(name, AcquisitionContext(Xc, 8, float(y.max()), None, gp, beta=9.0))
    pending = whole.index[:3]
    rest = np.setdiff1d(np.arange(len(Xc)), pending)
    later = select(name, AcquisitionContext(Xc[rest], 5, float(y.max()), None, gp, beta=9.0,
                                            pending=Xc[pending]))
    np.testing.assert_array_equal(rest[later.index], whole.index[3:])
    np.testing.assert_allclose(later.score, whole.score[3:], rtol=1e-9)
    if name != "ucb":
        return
    # exploring (a large beta), the most uncertain candidate comes first, unless a pending
    # twin of it has taken its uncertainty
    first = select(name, AcquisitionContext(Xc, 1, float(y.max()), None, gp, beta=400.0))
    twin = select(name, AcquisitionContext(Xc, 1, float(y.max()), None, gp, beta=400.0,
                                           pending=Xc[first.index] + 1e-6))
    assert twin.index[0] != first.index[0] and twin.score[0] < first.score[0]


def test_thompson_draws_are_conditioned_on_pending_molecules(problem):
    gp, _, y, Xc = problem
    _, std = gp.predict(Xc)
    j = int(np.argmax(std))  # the least certain candidate, pending as a twin of itself
    from bodisc.acquisition import _conditioned_samples

    draws = _conditioned_samples(gp, Xc[[j]], Xc[:50] if j >= 50 else Xc[:50], 400,
                                 np.random.default_rng(0))
    free = gp.joint_samples(Xc[:50], 400, np.random.default_rng(0))
    assert draws.shape == free.shape == (400, 50)
    near = int(np.argmin(np.linalg.norm(Xc[:50] - Xc[j], axis=1)))
    assert draws[:, near].std() < free[:, near].std()
    np.testing.assert_allclose(draws.mean(0), free.mean(0), atol=4 * std.max() / 20)
    sel = select("thompson", AcquisitionContext(Xc, 6, float(y.max()),
                                                np.random.default_rng(1), gp, pending=Xc[[j]]))
    assert len(set(sel.index.tolist())) == 6
