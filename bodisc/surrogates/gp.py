"""Exact GP surrogate on standardised descriptors (botorch / gpytorch).

Fitting uses botorch's ``SingleTaskGP`` (Matern-5/2, Matern-3/2 or RBF kernel with ARD and
botorch's dimension-scaled lengthscale prior, Gaussian likelihood, ``Standardize`` outcome
transform) and ``fit_gpytorch_mll``. Descriptors are z-scored with the training set's mean
and standard deviation; a missing descriptor value (NaN, a descriptor whose own
calculation failed) is set to the training mean, i.e. 0 after scaling.

Prediction does not go through botorch's per-point posterior machinery. After a fit, the
Cholesky factor ``L`` of ``K + sigma^2 I`` and ``alpha = K^-1 (y - m)`` are cached, and the
posterior of a whole candidate set is a few large matrix products, in chunks:

    mean = m + K*^T alpha            var = k** - ||L^-1 K*||^2

(latent function, no observation noise, back in the units of the labels). Columns of the
posterior covariance among candidates, needed for batch selection, come from the same
factor. ``tests/surrogates/test_gp.py`` checks these against ``model.posterior``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

#: Cap on L-BFGS-B iterations of a hyperparameter fit (converged fits here take 50 to 400).
MAX_FIT_ITERATIONS = 300

#: Below this many labels, linear algebra runs on one thread: the matrices are small and
#: threads only contend (measured: 3 ms per L-BFGS step on one thread against 11 to 47 ms
#: on two for n = 58, d = 20 on a busy 2-core machine).
SMALL_N = 1500

#: Candidates per chunk when predicting; keeps the (chunk x n) cross-covariance small.
CHUNK = 4096


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    import torch

    from bodisc.errors import BodiscError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BodiscError("surrogate.device = 'cuda' but no CUDA device is available; use 'auto'")
    return torch.device(name)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` torch threads (``None``: leave as is)."""
    import torch

    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Scaler:
    """Column z-scoring fitted on the training descriptors.

    Attributes:
        mean: Column means, shape ``(d,)``.
        std: Column standard deviations (1 where a column is constant), shape ``(d,)``.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> Scaler:
        """Fit on ``X`` of shape ``(n, d)``, ignoring NaNs."""
        with np.errstate(all="ignore"):
            mean = np.nanmean(X, axis=0)
            std = np.nanstd(X, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        return cls(mean, std)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scale ``X`` ``(m, d)``; NaN becomes 0 (the training mean)."""
        Z = (X - self.mean) / self.std
        return np.where(np.isfinite(Z), Z, 0.0)


class GPSurrogate:
    """An exact GP on descriptors with a cached factorisation for fast scoring.

    Args:
        kernel: ``matern52``, ``matern32`` or ``rbf``.
        device: ``auto``, ``cpu`` or ``cuda``.
        dtype: Floating point type; float64 is the default (and used on CPU).
    """

    def __init__(self, kernel: str = "matern52", device: str = "auto",
                 dtype: str = "float64") -> None:
        import torch

        self.kernel_name = kernel
        self.device = resolve_device(device)
        self.dtype = getattr(torch, dtype)
        self.model: Any = None
        self.scaler: Scaler | None = None

    # -- fitting ----------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray) -> GPSurrogate:
        """Fit hyperparameters by maximising the marginal likelihood.

        Args:
            X: Descriptors, shape ``(n, d)`` (NaN allowed).
            y: Labels, shape ``(n,)``; larger is better is not assumed here.

        Returns:
            ``self``.
        """
        from botorch.models import SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from botorch.models.utils.gpytorch_modules import (
            get_covar_module_with_dim_scaled_prior,
        )
        from botorch.settings import validate_input_scaling
        from gpytorch.mlls import ExactMarginalLogLikelihood

        self.scaler = Scaler.fit(X)
        train_x = self._tensor(self.scaler.transform(X))
        train_y = self._tensor(np.asarray(y, dtype=float).reshape(-1, 1))
        d = train_x.shape[-1]
        covar = get_covar_module_with_dim_scaled_prior(
            ard_num_dims=d, use_rbf_kernel=self.kernel_name == "rbf"
        )
        if self.kernel_name == "matern32":
            covar.nu = 1.5
        with validate_input_scaling(False):  # z-scored on purpose, not in the unit cube
            model = SingleTaskGP(train_x, train_y, covar_module=covar,
                                 outcome_transform=Standardize(m=1))
        model = model.to(device=self.device, dtype=self.dtype)
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        with torch_threads(1 if train_x.shape[0] < SMALL_N else None):
            self._fit_mll(mll)
        model.eval()
        self.model = model
        self._cache(train_x)
        return self

    def _fit_mll(self, mll: Any) -> None:
        import torch
        from botorch.fit import fit_gpytorch_mll
        from botorch.optim.fit import fit_gpytorch_mll_scipy

        model = mll.model
        mll.train()
        try:  # one L-BFGS-B run, capped: botorch's retry loop costs several times more
            fit_gpytorch_mll_scipy(mll, options={"maxiter": MAX_FIT_ITERATIONS})
            ok = all(torch.isfinite(p).all() for p in model.parameters())
        except Exception:  # noqa: BLE001 - numerical trouble: fall back to botorch's retries
            ok = False
        if not ok:
            with torch.random.fork_rng():
                torch.manual_seed(0)  # fit_gpytorch_mll's retries draw from torch's RNG
                fit_gpytorch_mll(mll)
        mll.eval()

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        import torch

        return torch.as_tensor(np.ascontiguousarray(a), dtype=self.dtype, device=self.device)

    def _cache(self, train_x: torch.Tensor) -> None:
        import torch

        model = self.model
        with torch.no_grad():
            y_std = model.train_targets  # standardised targets, shape (n,)
            noise = model.likelihood.noise.reshape(())
            K = model.covar_module(train_x).to_dense()
            K = K + noise * torch.eye(K.shape[0], dtype=K.dtype, device=K.device)
            self._L = torch.linalg.cholesky(K)
            self._mean_const = model.mean_module.constant.reshape(())
            resid = (y_std - self._mean_const).unsqueeze(-1)
            self._alpha = torch.cholesky_solve(resid, self._L).squeeze(-1)
            tf = model.outcome_transform
            self._y_mean = tf.means.reshape(())
            self._y_std = tf.stdvs.reshape(())
        self._train_x = train_x

    # -- prediction -------------------------------------------------------------------
    def _features(self, X: np.ndarray) -> torch.Tensor:
        assert self.scaler is not None, "fit() first"
        return self._tensor(self.scaler.transform(X))

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the latent function.

        Args:
            X: Candidate descriptors, shape ``(m, d)``.

        Returns:
            ``(mean, std)``, each of shape ``(m,)``, in label units.
        """
        import torch

        Z = self._features(X)
        means, stds = [], []
        with torch.no_grad():
            for start in range(0, Z.shape[0], CHUNK):
                mu, var = self._predict_chunk(Z[start : start + CHUNK])
                means.append(mu)
                stds.append(var.clamp_min(1e-30).sqrt())
        mean = torch.cat(means) * self._y_std + self._y_mean
        std = torch.cat(stds) * self._y_std
        return mean.cpu().numpy(), std.cpu().numpy()

    def _predict_chunk(self, Z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised-scale mean ``(c,)`` and variance ``(c,)`` of a chunk ``(c, d)``."""
        import torch

        Ks = self.model.covar_module(Z, self._train_x).to_dense()  # (c, n)
        mu = self._mean_const + Ks @ self._alpha
        V = torch.linalg.solve_triangular(self._L, Ks.T, upper=False)  # (n, c)
        kss = self.model.covar_module(Z, diag=True)
        return mu, kss - (V * V).sum(0)

    def covariance_columns(self, X: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Posterior covariance between all candidates and some of them.

        Args:
            X: Candidate descriptors, shape ``(m, d)``.
            idx: Indices of the chosen candidates, shape ``(k,)``.

        Returns:
            Covariance in label units squared, shape ``(m, k)``.
        """
        import torch

        Z = self._features(X)
        Zs = Z[torch.as_tensor(idx, device=Z.device)]
        with torch.no_grad():
            Vs = torch.linalg.solve_triangular(
                self._L, self.model.covar_module(Zs, self._train_x).to_dense().T, upper=False
            )  # (n, k)
            cols = []
            for start in range(0, Z.shape[0], CHUNK):
                Zc = Z[start : start + CHUNK]
                Kcs = self.model.covar_module(Zc, Zs).to_dense()  # (c, k)
                Vc = torch.linalg.solve_triangular(
                    self._L, self.model.covar_module(Zc, self._train_x).to_dense().T,
                    upper=False,
                )
                cols.append(Kcs - Vc.T @ Vs)
        return (torch.cat(cols) * self._y_std**2).cpu().numpy()

    def joint_samples(self, X: np.ndarray, n_samples: int,
                      rng: np.random.Generator) -> np.ndarray:
        """Draws from the joint posterior over a candidate set (Thompson sampling).

        Args:
            X: Candidate descriptors, shape ``(m, d)``; ``m`` up to a few thousand.
            n_samples: Number of joint draws.
            rng: Source of the standard normal draws (seeded by the campaign).

        Returns:
            Samples in label units, shape ``(n_samples, m)``.
        """
        mean, _ = self.predict(X)
        cov = self.covariance_columns(X, np.arange(X.shape[0]))
        return sample_joint(mean, cov, n_samples, rng)

    def noise_variance(self) -> float:
        """Observation noise variance of the fitted likelihood, in label units squared."""
        noise = float(self.model.likelihood.noise.detach().cpu().reshape(()))
        return noise * float(self._y_std) ** 2

    def hyperparameters(self) -> dict[str, float]:
        """A few fitted hyperparameters for logging."""
        m = self.model
        ls = m.covar_module.lengthscale.detach().cpu().numpy().ravel()
        return {
            "noise": float(m.likelihood.noise.detach().cpu().reshape(())),
            "lengthscale_median": float(np.median(ls)),
            "lengthscale_min": float(np.min(ls)),
        }


def sample_joint(mean: np.ndarray, cov: np.ndarray, n_samples: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Draws from a multivariate normal, with jitter (or a clipped spectrum) as needed.

    Args:
        mean: Mean, shape ``(m,)``.
        cov: Covariance, shape ``(m, m)``.
        n_samples: Number of draws.
        rng: Source of the standard normal draws.

    Returns:
        Samples, shape ``(n_samples, m)``.
    """
    cov = 0.5 * (cov + cov.T)
    jitter = 1e-9 * max(float(np.mean(np.diag(cov))), 1e-12)
    eye = np.eye(cov.shape[0])
    for _ in range(6):
        try:
            chol = np.linalg.cholesky(cov + jitter * eye)
            break
        except np.linalg.LinAlgError:
            jitter *= 10.0
    else:  # fall back to an eigen-decomposition of the clipped spectrum
        w, v = np.linalg.eigh(cov)
        chol = v * np.sqrt(np.clip(w, 0.0, None))
    z = rng.standard_normal((n_samples, cov.shape[0]))
    return mean[None, :] + z @ chol.T


def expected_improvement_log(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """Log expected improvement over ``best`` for maximisation, numerically stable.

    Uses botorch's ``_log_ei_helper`` (the LogEI of Ament et al. 2023), so values match
    ``botorch.acquisition.LogExpectedImprovement``.

    Args:
        mean: Posterior means, shape ``(m,)``.
        std: Posterior standard deviations, shape ``(m,)``.
        best: Incumbent value.

    Returns:
        log EI, shape ``(m,)``.
    """
    import torch
    from botorch.acquisition.analytic import _log_ei_helper

    sigma = np.clip(std, 1e-12, None)
    u = torch.as_tensor((mean - best) / sigma, dtype=torch.float64)
    return (_log_ei_helper(u) + torch.log(torch.as_tensor(sigma))).numpy()
