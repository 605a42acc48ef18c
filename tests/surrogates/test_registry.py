"""The surrogate registry: one list of kinds whose flags say what each model does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bodisc.config import SurrogateConfig
from bodisc.surrogates import (
    N_CATEGORIES,
    SURROGATES,
    build_surrogate,
    register_surrogate,
    surrogate_options,
    uses_categories,
)
from bodisc.surrogates.registry import markdown_table

N, M, D = 30, 7, 4


def tiny_problem(categories: bool) -> tuple[np.ndarray, np.ndarray]:
    """``N + M`` rows of ``D`` random descriptors (and 44 random 0/1 flags), a linear label."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N + M, D))
    y = X[:, 0] - 0.5 * X[:, 1] + 0.1 * rng.normal(size=N + M)
    if categories:
        X = np.hstack([X, (rng.random((N + M, N_CATEGORIES)) < 0.3).astype(float)])
    return X, y


@pytest.fixture
def scratch_kind():
    """A name free for a test registration, removed afterwards."""
    name = "scratch_test_kind"
    yield name
    SURROGATES.pop(name, None)


def test_the_built_in_kinds_and_their_flags():
    flags = {k: (s.warm_start, s.uses_categories, s.multistart, s.multi_fidelity)
             for k, s in SURROGATES.items()}
    assert {k: flags[k] for k in ("gp", "xgp", "ilr", "ilr_ridge", "sparse")} == {
        "gp": (True, False, True, True),
        "xgp": (True, True, False, False),
        "ilr": (False, True, False, False),
        "ilr_ridge": (False, True, False, False),
        "sparse": (True, False, False, False),
    }
    assert all(s.description and "\n" not in s.description for s in SURROGATES.values())


def test_a_duplicate_kind_is_refused_saying_how_to_register(scratch_kind):
    with pytest.raises(ValueError, match="already registered.*register_surrogate"):
        register_surrogate("gp", description="another gp")(lambda *a, **k: None)
    register_surrogate(scratch_kind, description="a test kind")(lambda *a, **k: "model")
    assert build_surrogate(scratch_kind) == "model"
    assert not uses_categories(scratch_kind)
    with pytest.raises(ValueError, match="already registered"):
        register_surrogate(scratch_kind, description="again")(lambda *a, **k: None)
    assert SURROGATES[scratch_kind].description == "a test kind"


def test_an_unknown_kind_names_the_registered_ones():
    with pytest.raises(ValueError, match="choose one of: " + ", ".join(SURROGATES)):
        build_surrogate("no_such_kind")
    with pytest.raises(ValueError, match="unknown surrogate kind 'no_such_kind'"):
        uses_categories("no_such_kind")


@pytest.mark.parametrize("kind", list(SURROGATES))
def test_every_kind_builds_fits_and_predicts(kind):
    spec = SURROGATES[kind]
    X, y = tiny_problem(spec.uses_categories)
    model = build_surrogate(kind, device="cpu").fit(X[:N], y[:N])
    mean, std = model.predict(X[N:])
    assert mean.shape == std.shape == (M,)
    assert np.isfinite(mean).all() and (std > 0).all()
    cols = model.covariance_columns(X[N:], np.array([0, 3]))
    assert cols.shape == (M, 2)
    assert model.joint_samples(X[N:], 2, np.random.default_rng(1)).shape == (2, M)
    assert np.isfinite(model.noise_variance())


@pytest.mark.parametrize("kind", [k for k, s in SURROGATES.items() if s.uses_categories])
def test_a_kind_using_categories_needs_the_44_extra_columns(kind):
    X, y = tiny_problem(categories=False)
    with pytest.raises(ValueError):
        build_surrogate(kind, device="cpu").fit(X[:N], y[:N])


@pytest.mark.parametrize("kind", list(SURROGATES))
def test_warm_start_means_hyper_state_and_init(kind):
    spec = SURROGATES[kind]
    X, y = tiny_problem(spec.uses_categories)
    model = build_surrogate(kind, device="cpu").fit(X[:N], y[:N])
    assert hasattr(model, "hyper_state") == spec.warm_start
    if not spec.warm_start:
        return
    state = model.hyper_state()
    warm = build_surrogate(kind, device="cpu").fit(X[: N + 3], y[: N + 3], init=state)
    assert warm.predict(X[N:])[0].shape == (M,)
    again = build_surrogate(kind, device="cpu").fit(X[: N + 3], y[: N + 3], init=state,
                                                    optimise=False)
    assert again.hyper_state() == state


def test_options_from_a_surrogate_section():
    section = SurrogateConfig()
    assert surrogate_options(section, seed=5) == {"mean": "constant"}
    sparse = SurrogateConfig(kind="sparse", subset=200, inducing=64)
    assert surrogate_options(sparse, seed=5) == {"subset": 200, "inducing": 64, "seed": 5}
    assert surrogate_options(SurrogateConfig(kind="xgp"), seed=5) == {}
    proxy = SurrogateConfig(mean="proxy", proxy="lumo - 2*homo")
    with pytest.raises(ValueError, match="descriptor names"):
        surrogate_options(proxy, seed=5)
    assert surrogate_options(proxy, 5, ["mu", "homo", "lumo"], sign=-1.0) == {
        "mean": "proxy", "proxy_column": {2: 1.0, 1: -2.0}, "proxy_sign": -1.0}


@pytest.mark.parametrize("kind", list(SURROGATES))
def test_every_kind_builds_from_its_section_options(kind):
    section = SurrogateConfig(kind=kind, subset=20, inducing=16)
    options = surrogate_options(section, seed=3, descriptor_names=["a", "b", "c", "d"])
    X, y = tiny_problem(SURROGATES[kind].uses_categories)
    model = build_surrogate(kind, section.kernel, "cpu", section.precision, **options)
    assert model.fit(X[:N], y[:N]).predict(X[N:])[0].shape == (M,)


def test_n_categories_is_the_category_table():
    from bodisc.descriptors.categories import CATEGORY_NAMES

    assert len(CATEGORY_NAMES) == N_CATEGORIES


def test_the_docs_page_is_the_registry_table():
    page = Path(__file__).parents[2] / "docs" / "surrogates.md"
    assert markdown_table() in page.read_text(), (
        "docs/surrogates.md is out of date: paste markdown_table() under its 'Kinds' heading")
