import numpy as np
import torch
from botorch.optim.fit import fit_gpytorch_mll_scipy
from gpytorch.mlls import ExactMarginalLogLikelihood

from bodisc.surrogates.batched import BatchedGP, multistart_state
from bodisc.surrogates.gp import GPSurrogate, Scaler, make_model


def _problems(k=3, n=40):
    rng = np.random.default_rng(8)
    X = rng.uniform(-2, 2, size=(k, n, 2))
    y = np.sin(2 * X[..., 0]) + 0.5 * X[..., 1] ** 2 + 0.05 * rng.standard_normal((k, n))
    return X, y


def test_batched_members_match_separate_fits():
    X, y = _problems()
    options = {"maxiter": 500}
    batched = BatchedGP("matern52", "cpu").fit(X, y, options=options)
    for i in range(X.shape[0]):
        tx = torch.as_tensor(Scaler.fit(X[i]).transform(X[i]))
        model = make_model(tx, torch.as_tensor(y[i]).reshape(-1, 1))
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        mll.train()
        fit_gpytorch_mll_scipy(mll, options=options)
        ls = model.covar_module.lengthscale.detach().numpy().ravel()
        np.testing.assert_allclose(batched.lengthscales()[i], ls, rtol=1e-3)
        np.testing.assert_allclose(batched.noise()[i], model.likelihood.noise.item(), rtol=1e-3)
    mean, std = batched.predict(X[0][:5])
    assert mean.shape == std.shape == (X.shape[0], 5)


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
