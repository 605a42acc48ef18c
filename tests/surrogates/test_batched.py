import gpytorch
import numpy as np
import pytest
import torch
from botorch.optim.fit import fit_gpytorch_mll_scipy
from gpytorch.mlls import ExactMarginalLogLikelihood

from bodisc.errors import BodiscError
from bodisc.surrogates.batched import BatchedGP, BatchedObjective, fit_threads, multistart_state
from bodisc.surrogates.gp import EXACT_MAX, GPSurrogate, Scaler, make_model


def _problems(k=3, n=40):
    rng = np.random.default_rng(8)
    X = rng.uniform(-2, 2, size=(k, n, 2))
    y = np.sin(2 * X[..., 0]) + 0.5 * X[..., 1] ** 2 + 0.05 * rng.standard_normal((k, n))
    return X, y


def _known_gp(k=4, n=60, d=3):
    """k draws from a Matern-5/2 GP with lengthscales (0.7, 1.2, 2.0) and noise 0.01."""
    rng = np.random.default_rng(21)
    X = rng.uniform(-2, 2, size=(k, n, d))
    ls = np.array([0.7, 1.2, 2.0])
    y = np.empty((k, n))
    for i in range(k):
        r = np.sqrt(5 * (((X[i, :, None, :] - X[i, None, :, :]) / ls) ** 2).sum(-1))
        K = (1 + r + r**2 / 3) * np.exp(-r) + 0.01 * np.eye(n)
        y[i] = np.linalg.cholesky(K) @ rng.standard_normal(n)
    return X, y


def _single_fit(X, y, options):
    tx = torch.as_tensor(Scaler.fit(X).transform(X))
    model = make_model(tx, torch.as_tensor(y).reshape(-1, 1)).to(dtype=torch.float64)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    mll.train()
    with gpytorch.settings.max_cholesky_size(EXACT_MAX), fit_threads(len(y)):
        result = fit_gpytorch_mll_scipy(mll, options=options)
    with torch.no_grad():
        value = float(mll(model(*model.train_inputs), model.train_targets))
    return model, value, result


def test_batched_fit_reaches_the_single_fits_optimum_on_a_known_gp():
    X, y = _known_gp()
    options = {"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-7}
    batched = BatchedGP("matern52", "cpu").fit(X, y, options=options)
    assert batched.fit_converged.all()
    mll = batched.log_likelihood()
    for i in range(X.shape[0]):
        model, value, result = _single_fit(X[i], y[i], options)
        assert result.status.name == "SUCCESS"
        np.testing.assert_allclose(batched.lengthscales()[i],
                                   model.covar_module.lengthscale.detach().numpy().ravel(),
                                   rtol=1e-3)
        np.testing.assert_allclose(batched.noise()[i], model.likelihood.noise.item(), rtol=1e-3)
        assert abs(mll[i] - value) < 1e-8
    # the data's lengthscales are recovered to within what 60 labels allow
    scaled = np.array([0.7, 1.2, 2.0]) / X.reshape(-1, 3).std(0)
    assert np.all(np.abs(np.log(np.median(batched.lengthscales(), 0) / scaled)) < 0.7)


@pytest.mark.parametrize("kernel", ["matern52", "matern32", "rbf"])
def test_objective_equals_gpytorch_loss_and_gradient(kernel):
    g = torch.Generator().manual_seed(1)
    k, n, d = 4, 30, 3
    tx = torch.randn(k, n, d, dtype=torch.float64, generator=g)
    ty = torch.randn(k, n, 1, dtype=torch.float64, generator=g)
    model = make_model(tx, ty, kernel, torch.Size([k])).to(dtype=torch.float64)
    with torch.no_grad():
        model.covar_module.raw_lengthscale.uniform_(0.3, 3.0, generator=g)
        model.likelihood.noise_covar.raw_noise.uniform_(0.01, 0.5, generator=g)
        model.mean_module.raw_constant.uniform_(-0.5, 0.5, generator=g)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    mll.train()
    assert BatchedObjective.supports(mll)
    objective = BatchedObjective(mll)
    f, grad = objective(objective.state[[1, 3]], [1, 3])
    with gpytorch.settings.max_cholesky_size(EXACT_MAX):
        loss = -mll(model(*model.train_inputs), model.train_targets)
    loss.sum().backward()
    ref = np.hstack([p.grad.reshape(k, -1).numpy() for p in objective.params.values()])
    np.testing.assert_allclose(f, loss.detach().numpy()[[1, 3]], rtol=1e-12)
    np.testing.assert_allclose(grad, ref[[1, 3]], rtol=1e-9, atol=1e-12)


def test_batched_members_match_separate_fits():
    X, y = _problems()
    options = {"maxiter": 500}
    batched = BatchedGP("matern52", "cpu").fit(X, y, options=options)
    for i in range(X.shape[0]):
        model, _, _ = _single_fit(X[i], y[i], options)
        ls = model.covar_module.lengthscale.detach().numpy().ravel()
        np.testing.assert_allclose(batched.lengthscales()[i], ls, rtol=1e-3)
        np.testing.assert_allclose(batched.noise()[i], model.likelihood.noise.item(), rtol=1e-3)
    assert batched.fit_iterations.shape == (X.shape[0],)
    mean, std = batched.predict(X[0][:5])
    assert mean.shape == std.shape == (X.shape[0], 5)


def test_unknown_fit_option_is_named():
    X, y = _problems(2, 10)
    with pytest.raises(BodiscError, match="maxfun.*allowed: maxiter"):
        BatchedGP("matern52", "cpu").fit(X, y, options={"maxfun": 10})


def test_multistart_state_is_at_least_as_likely_as_a_single_start():
    X, y = _problems(1, 50)
    X, y = X[0], y[0]
    single = GPSurrogate("matern52", "cpu").fit(X, y)
    state = multistart_state(X, y, 4, np.random.default_rng(0), "matern52", "cpu")
    best = GPSurrogate("matern52", "cpu").fit(X, y, init=state, optimise=False)

    def mll(gp):
        model = gp.model
        model.train()
        value = ExactMarginalLogLikelihood(model.likelihood, model)(
            model(*model.train_inputs), model.train_targets).item()
        model.eval()
        return value

    assert mll(best) >= mll(single) - 1e-4
    again = multistart_state(X, y, 4, np.random.default_rng(0), "matern52", "cpu")
    assert again == state


def test_bench_batched_reports_speed_agreement_and_rounding_floor():
    from bodisc.bench.surrogate import bench_batched

    out = bench_batched(k=2, n=30, device="cpu", n_test=20)
    assert out["batched_fit_speedup"] > 0 and out["loop_fit_s"] > 0
    assert len(out["loop_iterations"]) == len(out["batched_iterations"]) == 2
    for key in ("max_rel_diff", "mll_max_abs_diff", "mean_max_diff_in_label_sd"):
        assert np.isfinite(out[f"batched_{key}"]) and np.isfinite(out[f"loop_rounding_{key}"])
    assert out["batched_sizes"] == {"k": 2, "n": 30, "d": 20, "n_test": 20}


def test_models_outside_the_objective_fall_back_to_botorch():
    from gpytorch.kernels import MaternKernel

    from bodisc.surrogates.batched import _fit_botorch

    X, y = _problems(2, 20)
    tx = torch.as_tensor(np.stack([Scaler.fit(x).transform(x) for x in X]))
    model = make_model(tx, torch.as_tensor(y).reshape(2, -1, 1), "matern52", torch.Size([2]))
    model.covar_module = MaternKernel(ard_num_dims=2, batch_shape=torch.Size([2]))  # softplus
    model = model.to(dtype=torch.float64)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    mll.train()
    assert not BatchedObjective.supports(mll)
    before = model.covar_module.raw_lengthscale.detach().clone()
    iterations, converged = _fit_botorch(mll, {"maxiter": 50, "ftol": 1e-9})
    assert iterations.shape == converged.shape == (2,) and iterations.max() > 0
    assert not torch.equal(before, model.covar_module.raw_lengthscale.detach())
