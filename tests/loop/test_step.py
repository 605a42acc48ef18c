"""The pure step: arrays in, a batch out, for every kind of strategy."""

import numpy as np
import pytest

from bodisc.loop.refit import SurrogateSettings
from bodisc.loop.step import MIN_LABELS, choose_batch

GP = SurrogateSettings("gp", device="cpu")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    X = rng.uniform(-2, 2, size=(300, 2))
    y = -(X**2).sum(1)
    return X, y


def test_a_model_batch_is_q_distinct_candidates_with_predictions(data):
    X, y = data
    batch = choose_batch(X[:30], y[:30], X[30:], 7, np.random.default_rng(0), strategy="ucb",
                         surrogate=GP, beta=2.0)
    assert batch.strategy == "ucb" and len(set(batch.index.tolist())) == 7
    assert batch.mean.shape == batch.std.shape == batch.score.shape == (7,)
    assert batch.fit is not None and batch.fit.optimised_at == 30
    assert {"fit_s", "score_s", "fit_evaluations"} <= set(batch.timings)
    # the pure step is deterministic
    again = choose_batch(X[:30], y[:30], X[30:], 7, np.random.default_rng(0), strategy="ucb",
                         surrogate=GP, beta=2.0)
    np.testing.assert_array_equal(batch.index, again.index)


def test_too_few_labels_choose_at_random_and_rank_needs_no_model(data):
    X, y = data
    few = choose_batch(X[: MIN_LABELS - 1], y[: MIN_LABELS - 1], X[10:], 4,
                       np.random.default_rng(0), strategy="logei", surrogate=GP, beta=2.0)
    assert few.strategy == "random" and few.mean is None and few.fit is None
    ranking = X[10:, 0]
    ranked = choose_batch(X[:30], y[:30], X[10:], 4, np.random.default_rng(0),
                          strategy="rank", surrogate=GP, beta=2.0, ranking=ranking)
    np.testing.assert_array_equal(ranked.index, np.argsort(-ranking)[:4])


def test_pending_molecules_change_an_exploring_batch(data):
    X, y = data
    kw = {"strategy": "ucb", "surrogate": GP, "beta": 400.0}
    alone = choose_batch(X[:30], y[:30], X[30:], 3, np.random.default_rng(0), **kw)
    pending = X[30:][alone.index]
    rest = np.setdiff1d(np.arange(270), alone.index)
    later = choose_batch(X[:30], y[:30], X[30:][rest], 3, np.random.default_rng(0),
                         X_pending=pending, **kw)
    after = X[30:][rest][later.index]
    # conditioned on the pending three, the next three keep away from them
    gap = np.min(np.linalg.norm(after[:, None] - pending[None], axis=-1))
    blind = choose_batch(X[:30], y[:30], X[30:][rest], 3, np.random.default_rng(0), **kw)
    gap_blind = np.min(np.linalg.norm(X[30:][rest][blind.index][:, None] - pending[None],
                                      axis=-1))
    assert gap > gap_blind


def test_multi_batch_with_one_objective_and_no_constraint_is_the_plain_batch(data):
    from bodisc.loop.step import choose_multi_batch

    X, y = data
    kw = {"strategy": "ucb", "surrogate": GP, "beta": 2.0}
    plain = choose_batch(X[:30], y[:30], X[30:], 5, np.random.default_rng(0), **kw)
    multi = choose_multi_batch(X[:30], y[:30], X[30:], 5, np.random.default_rng(0), **kw)
    # the same fit (no previous state) and the same context: the same batch
    np.testing.assert_array_equal(plain.index, multi.index)
    np.testing.assert_allclose(plain.mean, multi.mean)
    assert multi.fit is None and multi.info == {"feasible_labels": 30}


def test_multi_batch_keeps_one_refit_schedule_per_model(data):
    """Each objective's and constraint's GP goes through the single-objective schedule:
    with the last step's states it is conditioned (not re-optimised) until the labels
    have grown by ``refit_growth``, exactly as choose_batch's one GP."""
    import dataclasses

    from bodisc.loop.step import choose_multi_batch

    X, y = data
    Y = np.column_stack([y, X[:, 0]])
    C = X[:, 1:2]
    grow = dataclasses.replace(GP, refit_growth=1.5)
    kw = {"strategy": "parego", "surrogate": grow, "beta": 2.0, "lower": (-1.0,),
          "upper": (None,)}
    first = choose_multi_batch(X[:40], Y[:40], X[100:], 4, np.random.default_rng(0),
                               C_train=C[:40], **kw)
    assert len(first.fits) == 3 and all(f.optimised_at == 40 for f in first.fits)
    # 50 labels < 40 * 1.5: conditioned on the stored hyperparameters
    second = choose_multi_batch(X[:50], Y[:50], X[100:], 4, np.random.default_rng(0),
                                C_train=C[:50],
                                previous=first.fits, **kw)
    assert [f.optimised_at for f in second.fits] == [40, 40, 40]
    assert [f.state for f in second.fits] == [f.state for f in first.fits]
    assert second.timings["fit_evaluations"] == 0
    # 60 labels reach the growth: every model re-optimised from its last state
    third = choose_multi_batch(X[:60], Y[:60], X[100:], 4, np.random.default_rng(0),
                               C_train=C[:60],
                               previous=second.fits, **kw)
    assert [f.optimised_at for f in third.fits] == [60, 60, 60]
    # a single-objective column's schedule matches choose_batch's
    plain = choose_batch(X[:50], y[:50], X[100:], 4, np.random.default_rng(0),
                         strategy="ucb", surrogate=grow, beta=2.0,
                         previous=first.fits[0])
    assert plain.fit.optimised_at == 40
    with pytest.raises(ValueError, match="2 previous refit states for 3 models"):
        choose_multi_batch(X[:50], Y[:50], X[100:], 4, np.random.default_rng(0),
                           C_train=C[:50],
                           previous=first.fits[:2], **kw)
