"""Pareto fronts, layers, hypervolume, reference points, constraints and Chebyshev weights."""

import numpy as np
import pytest

from bodisc.pareto import (
    chebyshev,
    chebyshev_weights,
    feasible_mask,
    hypervolume,
    hypervolume_trace,
    nondominated_layers,
    pareto_mask,
    reference_point,
    top_share_by_layers,
)


def brute_mask(Y: np.ndarray) -> np.ndarray:
    """O(n^2) front: a finite row no other finite row dominates."""
    finite = ~np.isnan(Y).any(axis=1)
    out = np.zeros(len(Y), dtype=bool)
    for i in np.flatnonzero(finite):
        others = Y[finite]
        dom = (others >= Y[i]).all(axis=1) & (others > Y[i]).any(axis=1)
        out[i] = not dom.any()
    return out


def brute_layers(Y: np.ndarray) -> np.ndarray:
    layers = np.full(len(Y), -1)
    left = np.flatnonzero(~np.isnan(Y).any(axis=1))
    layer = 0
    while left.size:
        on = brute_mask(Y[left])
        layers[left[on]] = layer
        left = left[~on]
        layer += 1
    return layers


def tied_data(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Small integer values (many ties), duplicated rows and a few NaN rows."""
    Y = rng.integers(0, 6, size=(n, k)).astype(float)
    Y[rng.choice(n, 5, replace=False)] = Y[:5]  # exact duplicates
    Y[rng.choice(n, 3, replace=False), rng.integers(0, k)] = np.nan
    return Y


def mc_hypervolume(Y: np.ndarray, ref: np.ndarray, rng: np.random.Generator,
                   samples: int = 200_000) -> float:
    upper = Y.max(axis=0)
    U = rng.uniform(ref, upper, size=(samples, len(ref)))
    covered = np.zeros(samples, dtype=bool)
    for y in Y:
        covered |= (y >= U).all(axis=1)
    return float(covered.mean() * np.prod(upper - ref))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pareto_mask_matches_brute_force_with_ties_duplicates_and_nan(k, seed):
    rng = np.random.default_rng(seed)
    Y = tied_data(rng, 200, k)
    got = pareto_mask(Y)
    assert got.dtype == bool and got.shape == (200,)
    np.testing.assert_array_equal(got, brute_mask(Y))
    assert not got[np.isnan(Y).any(axis=1)].any()


def test_pareto_mask_continuous_3d_spans_several_blocks():
    # a front of hundreds of rows and more rows than one comparison block holds
    rng = np.random.default_rng(7)
    Y = rng.normal(size=(5000, 3))
    Y[:50] = Y[50:100]
    np.testing.assert_array_equal(pareto_mask(Y), brute_mask(Y))


def test_pareto_mask_duplicates_all_count_and_dominated_copies_do_not():
    Y = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [1.0, 1.0], [1.0, 1.0], [np.nan, 9.0]])
    np.testing.assert_array_equal(pareto_mask(Y), [True, True, True, False, False, False])
    # a NaN row does not dominate: (0, 0) stays on the front next to (nan, 9)
    np.testing.assert_array_equal(pareto_mask(np.array([[0.0, 0.0], [np.nan, 9.0]])),
                                  [True, False])


def test_pareto_mask_rejects_wrong_shape():
    with pytest.raises(ValueError):
        pareto_mask(np.zeros(4))
    with pytest.raises(ValueError):
        pareto_mask(np.zeros((4, 0)))
    assert pareto_mask(np.zeros((0, 2))).shape == (0,)


@pytest.mark.parametrize("k", [2, 3])
def test_layers_match_brute_force_peeling(k):
    rng = np.random.default_rng(10 + k)
    Y = tied_data(rng, 150, k)
    want = brute_layers(Y)
    got = nondominated_layers(Y)
    np.testing.assert_array_equal(got, want)
    assert (got[np.isnan(Y).any(axis=1)] == -1).all()
    capped = nondominated_layers(Y, max_layers=3)
    np.testing.assert_array_equal(capped, np.where(want < 3, want, -1))
    assert (nondominated_layers(Y, max_layers=0) == -1).all()
    np.testing.assert_array_equal(nondominated_layers(Y)[pareto_mask(Y)], 0)


def test_top_share_takes_whole_layers_until_the_share_is_crossed():
    rng = np.random.default_rng(3)
    Y = tied_data(rng, 400, 2)
    layers = brute_layers(Y)
    for share in (0.01, 0.05, 0.2, 0.5):
        got = top_share_by_layers(Y, share)
        assert (np.diff(got) > 0).all()
        top = layers[got].max()
        # whole layers 0..top, nothing else
        np.testing.assert_array_equal(got, np.flatnonzero((layers >= 0) & (layers <= top)))
        assert len(got) >= share * len(Y)
        # one layer fewer would not reach the share
        assert np.sum((layers >= 0) & (layers < top)) < share * len(Y)
    # more than the finite rows: all of them, no NaN row
    np.testing.assert_array_equal(top_share_by_layers(Y, 1.0), np.flatnonzero(layers >= 0))
    with pytest.raises(ValueError):
        top_share_by_layers(Y, 0.0)


def test_hypervolume_2d_by_hand():
    Y = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    assert hypervolume(Y, np.array([0.0, 0.0])) == pytest.approx(6.0)
    # a dominated row, a duplicate, a NaN row and a row not beyond ref add nothing
    more = np.vstack([Y, [[1.0, 1.0], [2.0, 2.0], [np.nan, 5.0], [5.0, -1.0]]])
    assert hypervolume(more, [0.0, 0.0]) == pytest.approx(6.0)
    # ref (1, 1): rows on its boundary do not strictly dominate it; only (2, 2) counts
    assert hypervolume(Y, [1.0, 1.0]) == pytest.approx(1.0)
    assert hypervolume(Y, [3.0, 0.0]) == 0.0
    assert hypervolume(np.array([[2.0, 5.0]]), [-1.0, 1.0]) == pytest.approx(12.0)
    assert hypervolume(np.array([[2.0], [4.0]]), [1.0]) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        hypervolume(Y, [0.0, 0.0, 0.0])


def test_hypervolume_3d_by_hand_botorch_and_monte_carlo():
    torch = pytest.importorskip("torch")
    from botorch.utils.multi_objective.box_decompositions.dominated import (
        DominatedPartitioning,
    )

    # two boxes [0,2]x[0,1]x[0,1] and [0,1]x[0,2]x[0,1] overlap in the unit cube: 2 + 2 - 1
    assert hypervolume(np.array([[2.0, 1.0, 1.0], [1.0, 2.0, 1.0]]), [0, 0, 0]) == (
        pytest.approx(3.0))
    rng = np.random.default_rng(5)
    Y = rng.uniform(0.0, 1.0, size=(40, 3))
    Y[3, 1] = np.nan
    ref = np.array([0.1, 0.0, -0.2])
    got = hypervolume(Y, ref)
    ok = ~np.isnan(Y).any(axis=1) & (ref < Y).all(axis=1)
    want = DominatedPartitioning(ref_point=torch.tensor(ref, dtype=torch.float64),
                                 Y=torch.tensor(Y[ok], dtype=torch.float64))
    assert got == pytest.approx(float(want.compute_hypervolume()), rel=1e-10)
    assert got == pytest.approx(mc_hypervolume(Y[ok], ref, rng), rel=0.02)
    assert hypervolume(Y, [2.0, 0.0, 0.0]) == 0.0


def test_hypervolume_2d_matches_monte_carlo():
    rng = np.random.default_rng(6)
    Y = rng.normal(size=(30, 2))
    ref = np.array([-1.0, -1.5])
    ok = (ref < Y).all(axis=1)
    assert hypervolume(Y, ref) == pytest.approx(mc_hypervolume(Y[ok], ref, rng), rel=0.02)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_hypervolume_trace_equals_hypervolume_of_every_prefix(k):
    if k == 3:
        pytest.importorskip("botorch")
    rng = np.random.default_rng(20 + k)
    n = 120 if k < 3 else 40
    Y = rng.integers(0, 8, size=(n, k)).astype(float) + rng.uniform(0, 0.5, size=(n, k))
    Y[10:14] = np.round(Y[10:14])  # ties with rows to come
    Y[[5, 17, 30]] = np.nan  # failed calls
    Y[8] = Y[2]  # a repeated row
    ref = np.full(k, 1.0)
    trace = hypervolume_trace(Y, ref)
    want = np.array([hypervolume(Y[:i + 1], ref) for i in range(n)])
    np.testing.assert_allclose(trace, want, rtol=1e-12, atol=1e-12)
    assert (np.diff(trace) >= 0).all()
    assert trace[5] == trace[4]
    assert trace[-1] > 0


def test_hypervolume_trace_2d_continuous_against_prefixes():
    rng = np.random.default_rng(4)
    Y = rng.normal(size=(500, 2))
    Y[rng.choice(500, 20, replace=False)] = np.nan
    ref = np.array([-2.0, -2.0])
    trace = hypervolume_trace(Y, ref)
    want = np.array([hypervolume(Y[:i + 1], ref) for i in range(0, 500, 7)])
    np.testing.assert_allclose(trace[::7], want, rtol=1e-10)
    assert hypervolume_trace(np.zeros((0, 2)), ref).shape == (0,)


def test_reference_point_given_and_inferred():
    Y = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, np.nan], [np.inf, 5.0, 4.0]])
    ref = reference_point(Y, given=[0.0, None, None], margin=0.1)
    # objective 0 given; objective 1 has range 0: 5 - 0.1 * max(1, 5); objective 2: 2 - 0.2
    np.testing.assert_allclose(ref, [0.0, 4.5, 1.8])
    np.testing.assert_allclose(reference_point(np.array([[0.2], [0.3]]), margin=0.0), [0.2])
    np.testing.assert_allclose(reference_point(np.array([[0.0], [0.0]])), [-0.1])
    np.testing.assert_allclose(reference_point(np.array([[-3.0, 1.0], [1.0, 2.0]])),
                               [-3.4, 0.9])
    with pytest.raises(ValueError):
        reference_point(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError):
        reference_point(Y, given=[None])
    # a given value needs no finite data
    np.testing.assert_allclose(reference_point(np.array([[np.nan, 1.0]]), given=[-1.0, 0.0]),
                               [-1.0, 0.0])


def test_feasible_mask_bounds_none_and_nan():
    C = np.array([[0.0, 10.0], [1.0, 20.0], [2.0, 30.0], [np.nan, 20.0], [1.5, np.inf]])
    np.testing.assert_array_equal(feasible_mask(C, [1.0, None], [None, 20.0]),
                                  [False, True, False, False, False])
    np.testing.assert_array_equal(feasible_mask(C, [None, None], [None, None]),
                                  [True, True, True, False, False])
    assert feasible_mask(np.zeros((3, 0)), [], []).tolist() == [True, True, True]
    with pytest.raises(ValueError):
        feasible_mask(C, [None], [None, None])


def test_chebyshev_by_hand():
    Y = np.array([[0.2, 0.8], [0.6, 0.6], [1.0, 0.0]])
    W = np.array([[0.5, 0.5], [0.9, 0.1]])
    # w = (.5, .5): products (.1,.4) (.3,.3) (.5,0): min + .05 sum
    # w = (.9, .1): products (.18,.08) (.54,.06) (.9,0)
    want = np.array([[0.1 + 0.025, 0.3 + 0.03, 0.0 + 0.025],
                     [0.08 + 0.013, 0.06 + 0.03, 0.0 + 0.045]])
    np.testing.assert_allclose(chebyshev(Y, W), want)
    np.testing.assert_allclose(chebyshev(Y, W[0]), want[0])
    np.testing.assert_allclose(chebyshev(Y, W[0], rho=0.0), [0.1, 0.3, 0.0])
    with pytest.raises(ValueError):
        chebyshev(Y, np.ones(3))


def test_chebyshev_weights_on_simplex_and_reproducible():
    W = chebyshev_weights(3, 50, np.random.default_rng(11))
    assert W.shape == (50, 3)
    assert (W >= 0).all()
    np.testing.assert_allclose(W.sum(axis=1), 1.0)
    np.testing.assert_array_equal(W, chebyshev_weights(3, 50, np.random.default_rng(11)))
    assert not np.array_equal(W, chebyshev_weights(3, 50, np.random.default_rng(12)))
    assert chebyshev_weights(1, 2, np.random.default_rng(0)).tolist() == [[1.0], [1.0]]
