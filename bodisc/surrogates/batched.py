"""k independent exact GPs fitted and evaluated as one batched gpytorch model.

Uses: the members of a comparison (strategies or seeds at the same step), and a
multi-start hyperparameter fit (:func:`multistart_state`: the same data k times from k
seeded starting points, keep the member with the best marginal likelihood).

One batched model replaces k Python-level fits: one kernel matrix of shape ``(k, n, n)``
and one batched Cholesky per step, and botorch's batched L-BFGS-B
(``fmin_l_bfgs_b_batched``, chosen by ``fit_gpytorch_mll_scipy`` for batched models),
which runs k independent L-BFGS-B iterations side by side, so each member follows the
path a fit of its own would (``bodisc bench surrogate`` checks the hyperparameters
against k fits in a loop).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from bodisc.surrogates.gp import (
    EXACT_MAX,
    MAX_FIT_ITERATIONS,
    SMALL_N,
    Scaler,
    make_model,
    resolve_device,
    resolve_dtype,
    torch_threads,
)

if TYPE_CHECKING:
    import torch

class BatchedGP:
    """k independent GPs on data of the same shape, as one batched model.

    Args:
        kernel: ``matern52``, ``matern32`` or ``rbf``.
        device: ``auto``, ``cpu`` or ``cuda``.
        dtype: ``auto`` (float64), ``float64`` or ``float32`` (CUDA only).
    """

    def __init__(self, kernel: str = "matern52", device: str = "auto",
                 dtype: str = "auto") -> None:
        self.kernel_name = kernel
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model: Any = None
        self.scalers: list[Scaler] = []
        self.fit_evaluations = 0

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        import torch

        return torch.as_tensor(np.ascontiguousarray(a), dtype=self.dtype, device=self.device)

    def fit(self, X: np.ndarray, y: np.ndarray,
            starts: list[dict[str, list[float]]] | None = None,
            options: dict[str, Any] | None = None) -> BatchedGP:
        """Fit all k members at once.

        Args:
            X: Descriptors, shape ``(k, n, d)``; each member is z-scored on its own.
            y: Labels, shape ``(k, n)``.
            starts: Optional starting hyperparameters per member (``GPSurrogate.
                hyper_state`` form), length k.
            options: Options of botorch's batched L-BFGS-B (default: at most
                ``MAX_FIT_ITERATIONS`` iterations, as a single fit).

        Returns:
            ``self``.
        """
        import gpytorch
        import torch
        from botorch.optim.fit import fit_gpytorch_mll_scipy
        from gpytorch.mlls import ExactMarginalLogLikelihood

        X = np.asarray(X, dtype=float)
        k = X.shape[0]
        self.scalers = [Scaler.fit(X[i]) for i in range(k)]
        train_x = self._tensor(np.stack([s.transform(X[i]) for i, s in enumerate(self.scalers)]))
        train_y = self._tensor(np.asarray(y, dtype=float).reshape(k, -1, 1))
        model = make_model(train_x, train_y, self.kernel_name, torch.Size([k]))
        model = model.to(device=self.device, dtype=self.dtype)
        if starts is not None:
            _load_members(model, starts)
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        mll.train()
        with gpytorch.settings.max_cholesky_size(EXACT_MAX), \
                torch_threads(1 if train_x.shape[-2] < SMALL_N else None):
            result = fit_gpytorch_mll_scipy(mll, options=options or {"maxiter": MAX_FIT_ITERATIONS})
        self.fit_evaluations = int(getattr(result, "step", 0) or 0)
        mll.eval()
        model.eval()
        self.model = model
        return self

    def member_state(self, i: int) -> dict[str, list[float]]:
        """Hyperparameters of member ``i`` in ``GPSurrogate.hyper_state`` form."""
        return {name: [float(v) for v in p.detach()[i].cpu().reshape(-1).tolist()]
                for name, p in self.model.named_parameters()}

    def lengthscales(self) -> np.ndarray:
        """Fitted lengthscales, shape ``(k, d)``."""
        return self.model.covar_module.lengthscale.detach().cpu().numpy().reshape(
            len(self.scalers), -1)

    def noise(self) -> np.ndarray:
        """Fitted noise variances (standardised scale), shape ``(k,)``."""
        return self.model.likelihood.noise.detach().cpu().numpy().reshape(-1)

    def log_likelihood(self) -> np.ndarray:
        """Marginal log likelihood per label of each member at its optimum, shape ``(k,)``."""
        import gpytorch
        import torch
        from gpytorch.mlls import ExactMarginalLogLikelihood

        model = self.model
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        model.train()
        with torch.no_grad(), gpytorch.settings.max_cholesky_size(EXACT_MAX):
            out = model(*model.train_inputs)
            value = mll(out, model.train_targets)
        model.eval()
        return value.detach().cpu().numpy().reshape(-1)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of each member on its candidates.

        Args:
            X: Candidates, shape ``(k, m, d)`` (or ``(m, d)``, the same for all members).

        Returns:
            ``(mean, std)``, each of shape ``(k, m)``, in label units.
        """
        import gpytorch
        import torch

        X = np.asarray(X, dtype=float)
        k = len(self.scalers)
        if X.ndim == 2:
            X = np.broadcast_to(X, (k, *X.shape))
        Z = self._tensor(np.stack([s.transform(X[i]) for i, s in enumerate(self.scalers)]))
        with torch.no_grad(), gpytorch.settings.max_cholesky_size(EXACT_MAX):
            post = self.model.posterior(Z)
            mean = post.mean.squeeze(-1)
            std = post.variance.squeeze(-1).clamp_min(1e-30).sqrt()
        return mean.cpu().numpy(), std.cpu().numpy()


def _load_members(model: Any, starts: list[dict[str, list[float]]]) -> None:
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            for i, state in enumerate(starts):
                if name in state and len(state[name]) == p[i].numel():
                    p[i].copy_(torch.as_tensor(state[name], dtype=p.dtype).reshape(p[i].shape))


def multistart_state(X: np.ndarray, y: np.ndarray, restarts: int, rng: np.random.Generator,
                     kernel: str = "matern52", device: str = "auto",
                     init: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Hyperparameters of the best of ``restarts`` fits on the same data, fitted as one batch.

    Member 0 starts from ``init`` (or gpytorch's defaults); the others from log-lengthscales
    drawn around it with ``rng``.

    Args:
        X: Descriptors, shape ``(n, d)``.
        y: Labels, shape ``(n,)``.
        restarts: Number of starting points k.
        rng: Seeded generator of the starting points.
        kernel: Kernel name.
        device: Device name.
        init: Starting hyperparameters of member 0.

    Returns:
        The best member's hyperparameters, for ``GPSurrogate.fit(..., init=...,
        optimise=False)``.
    """
    batched = BatchedGP(kernel, device)
    Xk = np.broadcast_to(X, (restarts, *X.shape))
    yk = np.broadcast_to(np.asarray(y, dtype=float), (restarts, len(y)))
    probe = make_model(batched._tensor(Scaler.fit(X).transform(X)),
                       batched._tensor(np.asarray(y, dtype=float).reshape(-1, 1)), kernel)
    base = init or {n: [float(v) for v in p.detach().reshape(-1).tolist()]
                    for n, p in probe.named_parameters()}
    starts = [base]
    key = "covar_module.raw_lengthscale"
    for _ in range(restarts - 1):
        state = dict(base)
        raw = np.asarray(base[key])
        state[key] = (raw + rng.normal(0.0, 1.0, size=raw.shape)).tolist()
        starts.append(state)
    batched.fit(Xk, yk, starts=starts)
    return batched.member_state(int(np.argmax(batched.log_likelihood())))
