"""A sparse GP for campaigns past about 5,000 labels (``[surrogate] kind = "sparse"``).

An exact GP costs O(n^3) per fit step and O(n^2) per scored candidate; at 50,000 labels
that is hours on a workstation. This model keeps the exact GP's kernel and likelihood and
makes two approximations, each chosen by measurement (``bodisc bench surrogate``;
figures: ``docs/benchmarks/surrogate_speed.md``):

1. Hyperparameters are fitted by the exact GP (:class:`~bodisc.surrogates.gp.GPSurrogate`,
   warm-startable) on a seeded random subset of ``subset`` labels. Lengthscales and noise
   of a smooth property settle long before the data run out; the subset fit costs the same
   at 5,000 and at 500,000 labels.
2. The posterior uses *all* labels through ``inducing`` inducing points with the
   variational free energy posterior of Titsias (2009), the predictive distribution of
   gpytorch's SGPR. The inducing points are k-means centres of the training molecules
   in the kernel's lengthscale-scaled space (scikit-learn's seeded ``MiniBatchKMeans``),
   where each covers the molecules nearest to it; with as many inducing points as labels
   they are the labels themselves. k-means centres predict better than a random subset
   of the labels (``inducing_init="random"``) at little extra cost.

   ``A = Lu^-1 Kuf / s``, ``B = I + A A^T = LB LB^T``, ``c = LB^-1 A (y - m) / s``;
   for candidates ``W = Lu^-1 Kus``, ``T = LB^-1 W``:
   ``mean = m + T^T c``, ``var = k** - |W|^2 + |T|^2``

   (``Kuu = Lu Lu^T``, ``s^2`` the noise variance). Building it is O(n M^2); scoring a
   candidate is O(M^2), independent of n.

The interface is the one acquisition strategies use (``predict``, ``covariance_columns``,
``joint_samples``, ``noise_variance``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from bodisc.surrogates.gp import (
    CHUNK,
    GPSurrogate,
    StationaryKernel,
    _outputs,
    sample_joint,
)

if TYPE_CHECKING:
    import torch

#: Ways to place the inducing points (:class:`SparseGP`'s ``inducing_init``).
INDUCING_INITS: tuple[str, ...] = ("kmeans", "random")


class SparseGP:
    """Subset-of-data hyperparameters and an inducing-point posterior on all labels.

    Args:
        kernel: ``matern52``, ``matern32`` or ``rbf``.
        device: ``auto``, ``cpu`` or ``cuda``.
        dtype: ``auto``, ``float64`` or ``float32`` (CUDA only).
        subset: Labels used to fit the hyperparameters.
        inducing: Number of inducing points.
        seed: Seed of the subset and inducing-point draws.
        inducing_init: ``kmeans`` (k-means centres, the default) or ``random`` (a random
            subset of the labelled molecules).
    """

    def __init__(self, kernel: str = "matern52", device: str = "auto", dtype: str = "auto",
                 subset: int = 1000, inducing: int = 1024, seed: int = 0,
                 inducing_init: str = "kmeans") -> None:
        if inducing_init not in INDUCING_INITS:
            raise ValueError(f"unknown inducing_init {inducing_init!r}; choose one of: "
                             f"{', '.join(INDUCING_INITS)}")
        self.exact = GPSurrogate(kernel, device, dtype)
        self.subset, self.inducing, self.seed = subset, inducing, seed
        self.inducing_init = inducing_init

    @property
    def fit_evaluations(self) -> int:
        """Marginal-likelihood evaluations of the last hyperparameter fit."""
        return self.exact.fit_evaluations

    def hyper_state(self) -> dict[str, list[float]]:
        """Hyperparameters for a warm start (those of the subset GP)."""
        return self.exact.hyper_state()

    def fit(self, X: np.ndarray, y: np.ndarray,
            init: dict[str, list[float]] | None = None, optimise: bool = True) -> SparseGP:
        """Fit hyperparameters on a subset, then condition on all labels.

        Args:
            X: Descriptors, shape ``(n, d)`` (NaN allowed).
            y: Labels, shape ``(n,)``.
            init: Warm-start hyperparameters (``hyper_state`` of an earlier fit).
            optimise: With ``init``, ``False`` takes its hyperparameters as they are
                (the refit schedule's conditioning between re-optimisations).

        Returns:
            ``self``.
        """
        import torch

        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        n = X.shape[0]
        rng = np.random.default_rng(self.seed)
        sub = np.sort(rng.choice(n, size=min(self.subset, n), replace=False))
        self.exact.fit(X[sub], y[sub], init=init, optimise=optimise)
        gp = self.exact
        # the subset's scaling: the lengthscales were fitted on it
        assert gp.scaler is not None
        self.scaler = gp.scaler
        self._kernel: StationaryKernel = gp._kernel
        dev, dt = gp.device, gp.dtype
        tens = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dt, device=dev)  # noqa: E731
        Xs = self._kernel.scale_inputs(tens(self.scaler.transform(X)))
        self._y_mean = float(np.mean(y))
        self._y_std = float(np.std(y, ddof=1)) if n > 1 else 1.0  # as botorch's Standardize
        self._y_std = self._y_std or 1.0
        ys = tens((y - self._y_mean) / self._y_std)
        self._mean_const = gp._mean_const
        noise = gp.model.likelihood.noise.detach().reshape(())
        self._noise = noise
        self._Zu = self._inducing_points(Xs, min(self.inducing, n), rng)
        m = self._Zu.shape[0]
        with torch.no_grad():
            Kuu = self._kernel(self._Zu, self._Zu)
            Kuu.diagonal().add_(1e-6 * float(self._kernel.outputscale))
            self._Lu = torch.linalg.cholesky(Kuu)
            s = noise.sqrt()
            AAt = torch.zeros((m, m), dtype=dt, device=dev)
            Ar = torch.zeros(m, dtype=dt, device=dev)
            resid = ys - self._mean_const
            for start in range(0, n, CHUNK):
                A = torch.linalg.solve_triangular(
                    self._Lu, self._kernel(self._Zu, Xs[start : start + CHUNK]), upper=False
                ) / s  # (m, c)
                AAt.addmm_(A, A.T)
                Ar.add_(A @ resid[start : start + CHUNK])
            AAt.diagonal().add_(1.0)
            self._LB = torch.linalg.cholesky(AAt)
            self._c = torch.linalg.solve_triangular(
                self._LB, (Ar / s).unsqueeze(-1), upper=False).squeeze(-1)
        return self

    def _inducing_points(self, Xs: torch.Tensor, m: int,
                         rng: np.random.Generator) -> torch.Tensor:
        """Inducing inputs ``(k, d)`` for the scaled training inputs ``Xs`` ``(n, d)``.

        With ``m >= n`` they are the rows themselves (``k = n``); k-means asked for more
        centres than ``Xs`` has distinct rows gives those rows (``k < m``); else ``k = m``.
        """
        import torch

        n = Xs.shape[0]
        if m >= n:
            return Xs
        if self.inducing_init == "random":
            ind = np.sort(rng.choice(n, size=m, replace=False))
            return Xs[torch.as_tensor(ind, device=Xs.device)]
        from sklearn.cluster import MiniBatchKMeans

        rows = Xs.cpu().numpy()
        distinct = np.unique(rows, axis=0)
        if len(distinct) <= m:  # no more distinct molecules than inducing points
            return torch.as_tensor(distinct, dtype=Xs.dtype, device=Xs.device)
        km = MiniBatchKMeans(n_clusters=m, n_init=1, batch_size=max(4096, 2 * m),
                             random_state=int(rng.integers(2**31)))
        km.fit(rows)
        return torch.as_tensor(km.cluster_centers_, dtype=Xs.dtype, device=Xs.device)

    def _parts(self, Z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``W`` and ``T`` of scaled candidates ``(c, d)``: each ``(M, c)``."""
        import torch

        W = torch.linalg.solve_triangular(self._Lu, self._kernel(self._Zu, Z), upper=False)
        T = torch.linalg.solve_triangular(self._LB, W, upper=False)
        return W, T

    def _scaled(self, X: np.ndarray) -> torch.Tensor:
        import torch

        gp = self.exact
        Z = torch.as_tensor(self.scaler.transform(np.asarray(X, dtype=float)),
                            dtype=gp.dtype, device=gp.device)
        return self._kernel.scale_inputs(Z)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the latent function.

        Args:
            X: Candidate descriptors, shape ``(m, d)``.

        Returns:
            ``(mean, std)``, each of shape ``(m,)``, in label units.
        """
        import torch

        Z = self._scaled(X)
        mean, std = _outputs(Z)
        with torch.no_grad():
            for start in range(0, Z.shape[0], CHUNK):
                W, T = self._parts(Z[start : start + CHUNK])
                mean[start : start + CHUNK] = self._mean_const + T.T @ self._c
                var = self._kernel.outputscale - W.square().sum(0) + T.square().sum(0)
                std[start : start + CHUNK] = var.clamp_min_(1e-30).sqrt_()
        mean.mul_(self._y_std).add_(self._y_mean)
        std.mul_(self._y_std)
        return mean.cpu().numpy(), std.cpu().numpy()

    def covariance_columns(self, X: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Posterior covariance between all candidates ``(m, d)`` and ``idx``: ``(m, k)``."""
        import torch

        Z = self._scaled(X)
        Zs = Z[torch.as_tensor(np.asarray(idx), device=Z.device)]
        with torch.no_grad():
            Ws, Ts = self._parts(Zs)
            cols = []
            for start in range(0, Z.shape[0], CHUNK):
                Zc = Z[start : start + CHUNK]
                W, T = self._parts(Zc)
                cols.append(self._kernel(Zc, Zs) - W.T @ Ws + T.T @ Ts)
        return (torch.cat(cols) * self._y_std**2).cpu().numpy()

    def joint_samples(self, X: np.ndarray, n_samples: int,
                      rng: np.random.Generator) -> np.ndarray:
        """Joint posterior draws over candidates ``(m, d)``: ``(n_samples, m)``."""
        mean, _ = self.predict(X)
        cov = self.covariance_columns(X, np.arange(X.shape[0]))
        return sample_joint(mean, cov, n_samples, rng)

    def noise_variance(self) -> float:
        """Observation noise variance in label units squared."""
        return float(self._noise) * self._y_std**2

    def hyperparameters(self) -> dict[str, Any]:
        """The subset GP's hyperparameters, for logging."""
        return self.exact.hyperparameters()
