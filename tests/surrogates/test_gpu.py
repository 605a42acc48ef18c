"""The surrogate on a CUDA device: the same numbers as on the CPU.

These tests need a GPU; on a machine without one (CI) pytest reports them as skipped
with that reason. They ran on an NVIDIA H100 (docs/benchmarks/surrogate_summary.md, "On a GPU").
"""

import numpy as np
import pytest
import torch

from bodisc.surrogates.gp import GPSurrogate

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 6))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2 - 0.3 * X[:, 2] + 0.05 * rng.normal(size=300)
    return X, y, rng.normal(size=(5000, 6))


@pytest.fixture(scope="module")
def on_cpu(data):
    X, y, _ = data
    return GPSurrogate("matern52", "cpu").fit(X, y)


def test_auto_puts_the_model_on_the_gpu(data):
    X, y, _ = data
    gp = GPSurrogate("matern52", "auto").fit(X[:50], y[:50])
    assert gp.device.type == "cuda"
    assert all(p.is_cuda for p in gp.model.parameters())


def test_cuda_float64_predicts_what_the_cpu_predicts(data, on_cpu):
    X, y, Xc = data
    gp = GPSurrogate("matern52", "cuda").fit(X, y, init=on_cpu.hyper_state(), optimise=False)
    mean, std = gp.predict(Xc)
    ref_mean, ref_std = on_cpu.predict(Xc)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(std, ref_std, rtol=1e-8, atol=1e-10)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    np.testing.assert_allclose(gp.joint_samples(Xc[:200], 16, rng_a),
                               on_cpu.joint_samples(Xc[:200], 16, rng_b), rtol=1e-6, atol=1e-8)


def test_cuda_fit_reaches_the_cpu_fit(data, on_cpu):
    X, y, Xc = data
    gp = GPSurrogate("matern52", "cuda").fit(X, y)
    mean, _ = gp.predict(Xc)
    ref, _ = on_cpu.predict(Xc)
    assert np.max(np.abs(mean - ref)) < 0.02 * np.std(y)


def test_float32_on_cuda_ranks_as_float64(data, on_cpu):
    X, y, Xc = data
    gp = GPSurrogate("matern52", "cuda", "float32").fit(X, y, init=on_cpu.hyper_state(),
                                                        optimise=False)
    assert gp.model.train_inputs[0].dtype == torch.float32
    mean, std = gp.predict(Xc)
    ref_mean, ref_std = on_cpu.predict(Xc)
    assert np.all(np.isfinite(mean)) and np.all(std > 0)
    assert np.max(np.abs(mean - ref_mean)) < 1e-3 * np.std(y)
    top = set(np.argsort(-(mean + 2 * std))[:50])
    ref_top = set(np.argsort(-(ref_mean + 2 * ref_std))[:50])
    assert len(top & ref_top) >= 48
