"""k independent exact GPs fitted and evaluated as one batched gpytorch model.

Uses: the members of a comparison (strategies or seeds at the same step), and a
multi-start hyperparameter fit (:func:`multistart_state`: the same data k times from k
seeded starting points, keep the member with the best marginal likelihood).

The model is botorch's ``SingleTaskGP`` with batch shape ``(k,)`` (:func:`make_model`),
so prediction and the saved hyperparameters are those of k single models. The fit does
not go through gpytorch's batched forward and autograd, which is slower than k single
fits (figures: ``docs/benchmarks/surrogate_speed.md``). :class:`BatchedObjective`
evaluates the same objective, the negative marginal log likelihood plus the log priors
of ``make_model``, divided by n, for any subset of the members at once:

    K = k(X / l) + s I  (k, n, n)     L = chol(K)     a = K^-1 (y - c)
    f = (0.5 (y - c)^T a + sum log diag L + n/2 log 2 pi - log p(l) - log p(s)) / n

with analytic gradients, ``W = K^-1 - a a^T``:

    df/ds = tr(W) / 2n    df/dc = -sum(a) / n
    df/dl_j = sum_ab W_ab D_ab (z_aj - z_bj)^2 / (2 n l_j),   z = X / l

where ``D = -k'(r) / r`` (Matern-5/2: ``5/3 (1 + sqrt5 r) exp(-sqrt5 r)``, Matern-3/2:
``3 exp(-sqrt3 r)``, RBF: ``k``). The priors are the model's own prior modules (their
``log_prob`` and its autograd gradient), the Cholesky is linear_operator's
``psd_safe_cholesky`` as in gpytorch, and the raw parameters, their order and their
bounds are botorch's (``get_parameters_and_bounds``): the objective equals the one
``fit_gpytorch_mll_scipy`` minimises for each member alone to rounding (about 1e-13).

It is driven by botorch's ``fmin_l_bfgs_b_batched``: k independent L-BFGS-B states
(scipy's own ``setulb``), one objective call per round for the members that ask for a
value, so each member follows the path a fit of its own takes, and a member that has
converged drops out of the later calls. ``bodisc bench surrogate --parts batched``
checks the hyperparameters against k botorch fits in a loop. The paths agree only to
rounding: where the likelihood is flat (QM9 descriptors at a few hundred labels) the
point where L-BFGS-B stops depends on it, and the loop run on the same rows in another
order differs from itself as much as the batched fit does (the bench reports both);
on a well-posed problem the members reach the single fits' optimum
(``tests/surrogates/test_batched.py``).

A model this objective does not cover (other kernels, constraints with a transform,
other priors) falls back to ``fit_gpytorch_mll_scipy`` on the batched model.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from bodisc.errors import BodiscError
from bodisc.surrogates.gp import (
    EXACT_MAX,
    MAX_FIT_ITERATIONS,
    Scaler,
    fit_threads,
    make_model,
    resolve_device,
    resolve_dtype,
)

if TYPE_CHECKING:
    import torch

#: Raw parameters of ``make_model``'s GP, in the order botorch's fit flattens them.
NOISE, CONSTANT, LENGTHSCALE = ("likelihood.noise_covar.raw_noise",
                                "model.mean_module.raw_constant",
                                "model.covar_module.raw_lengthscale")

#: L-BFGS-B options :meth:`BatchedGP.fit` accepts (scipy's names, as ``fit_gpytorch_mll_scipy``).
OPTIONS = ("maxiter", "ftol", "gtol", "maxcor", "maxls")


class BatchedGP:
    """k independent GPs on data of the same shape, as one batched model.

    Args:
        kernel: ``matern52``, ``matern32`` or ``rbf``.
        device: ``auto``, ``cpu`` or ``cuda``.
        dtype: ``auto`` (float64), ``float64`` or ``float32`` (CUDA only).

    Attributes:
        fit_evaluations: L-BFGS-B iterations of the slowest member.
        fit_iterations: L-BFGS-B iterations per member, shape ``(k,)``.
        fit_converged: Whether each member met the tolerances (rather than ``maxiter``),
            shape ``(k,)``.
    """

    def __init__(self, kernel: str = "matern52", device: str = "auto",
                 dtype: str = "auto") -> None:
        self.kernel_name = kernel
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model: Any = None
        self.scalers: list[Scaler] = []
        self.fit_evaluations = 0
        self.fit_iterations = np.zeros(0, dtype=int)
        self.fit_converged = np.zeros(0, dtype=bool)

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        import torch

        return torch.as_tensor(np.ascontiguousarray(a), dtype=self.dtype, device=self.device)

    def fit(self, X: np.ndarray, y: np.ndarray,
            starts: list[dict[str, list[float]]] | None = None,
            options: dict[str, Any] | None = None) -> BatchedGP:
        """Fit all k members at once, each by its own L-BFGS-B.

        Args:
            X: Descriptors, shape ``(k, n, d)``; each member is z-scored on its own.
            y: Labels, shape ``(k, n)``.
            starts: Optional starting hyperparameters per member (``GPSurrogate.
                hyper_state`` form), length k.
            options: L-BFGS-B options, scipy's names (:data:`OPTIONS`; default: at most
                ``MAX_FIT_ITERATIONS`` iterations and scipy's tolerances, as a single fit).

        Returns:
            ``self``.

        Raises:
            BodiscError: For an option not in :data:`OPTIONS`.
        """
        import gpytorch
        import torch
        from gpytorch.mlls import ExactMarginalLogLikelihood

        options = dict(options or {"maxiter": MAX_FIT_ITERATIONS})
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise BodiscError(f"BatchedGP.fit options: unknown {unknown}; "
                              f"allowed: {', '.join(OPTIONS)}")
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
                fit_threads(train_x.shape[-2]):
            if BatchedObjective.supports(mll):
                self.fit_iterations, self.fit_converged = _fit_batched(mll, options)
            else:
                self.fit_iterations, self.fit_converged = _fit_botorch(mll, options)
        self.fit_evaluations = int(self.fit_iterations.max(initial=0))
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


class BatchedObjective:
    """Negative marginal log likelihood per label of chosen members, with gradients.

    The objective of ``fit_gpytorch_mll_scipy`` on each member of a batched
    ``make_model`` GP, in the layout of botorch's flattened raw parameters (noise,
    constant mean, d lengthscales); see the module docstring for the formulas.

    Args:
        mll: ``ExactMarginalLogLikelihood`` of a batched model in train mode, for which
            :meth:`supports` holds.
    """

    def __init__(self, mll: Any) -> None:
        import torch
        from botorch.optim.utils import get_parameters_and_bounds
        from botorch.optim.utils.numpy_utils import get_per_element_bounds

        model = mll.model
        params, bounds = get_parameters_and_bounds(mll)
        self.params = {name: params[name] for name in (NOISE, CONSTANT, LENGTHSCALE)}
        self.k = int(model._aug_batch_shape.numel())
        self.bounds = get_per_element_bounds(self.params, bounds, model._aug_batch_shape)
        x = model.train_inputs[0]
        self.X = x - x.mean(-2, keepdim=True)  # (k, n, d), as gpytorch centres
        self.Y = model.train_targets  # standardised labels, (k, n)
        kernel = model.covar_module
        self.nu = None if not hasattr(kernel, "nu") else float(kernel.nu)
        self.ls_prior = kernel.lengthscale_prior
        self.noise_prior = model.likelihood.noise_covar.noise_prior
        self.evaluations = 0
        self._torch = torch

    @staticmethod
    def supports(mll: Any) -> bool:
        """Whether ``mll`` is a batched ``make_model`` GP this objective reproduces."""
        from botorch.optim.utils import get_parameters_and_bounds
        from gpytorch.kernels import MaternKernel, RBFKernel
        from gpytorch.likelihoods import GaussianLikelihood
        from gpytorch.means import ConstantMean

        model = mll.model
        kernel = getattr(model, "covar_module", None)
        likelihood = getattr(model, "likelihood", None)
        params, _ = get_parameters_and_bounds(mll)
        priors = {name for name, *_ in model.named_priors()}
        return (
            getattr(model, "_aug_batch_shape", None) is not None
            and len(model._aug_batch_shape) == 1
            and (isinstance(kernel, RBFKernel)
                 or (isinstance(kernel, MaternKernel) and kernel.nu in (1.5, 2.5)))
            and kernel.active_dims is None
            and not kernel.raw_lengthscale_constraint.enforced
            and type(likelihood) is GaussianLikelihood
            and not likelihood.noise_covar.raw_noise_constraint.enforced
            and type(model.mean_module) is ConstantMean
            and set(params) == {NOISE, CONSTANT, LENGTHSCALE}
            and all(p.requires_grad for p in params.values())
            and priors == {"likelihood.noise_covar.noise_prior", "covar_module.lengthscale_prior"}
            and not list(model.added_loss_terms())
        )

    @property
    def state(self) -> np.ndarray:
        """Current raw parameters, shape ``(k, 2 + d)``."""
        return np.hstack([p.detach().reshape(self.k, -1).cpu().numpy().astype(np.float64)
                          for p in self.params.values()])

    @state.setter
    def state(self, x: np.ndarray) -> None:
        torch = self._torch
        with torch.no_grad():
            i = 0
            for p in self.params.values():
                size = p.numel() // self.k
                p.copy_(torch.as_tensor(x[:, i : i + size], dtype=p.dtype,
                                        device=p.device).reshape(p.shape))
                i += size

    def __call__(self, x: np.ndarray, batch_indices: list[int] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Objective and gradient of members ``batch_indices`` at raw parameters ``x``.

        Args:
            x: Raw parameters, shape ``(b, 2 + d)`` (noise, constant, lengthscales).
            batch_indices: The members, length b (default: all k).

        Returns:
            ``(f, g)`` of shapes ``(b,)`` and ``(b, 2 + d)``.
        """
        torch = self._torch
        from linear_operator.utils.cholesky import psd_safe_cholesky

        self.evaluations += 1
        idx = list(range(self.k)) if batch_indices is None else list(batch_indices)
        X, Y = self.X[idx], self.Y[idx]
        b, n, _ = X.shape
        theta = torch.as_tensor(x, dtype=X.dtype, device=X.device)
        noise, const, ls = theta[:, 0], theta[:, 1], theta[:, 2:]
        with torch.no_grad():
            Z = X / ls.unsqueeze(-2)
            sq = Z.square().sum(-1)
            d2 = torch.baddbmm(sq.unsqueeze(-1) + sq.unsqueeze(-2), Z, Z.transpose(-1, -2),
                               alpha=-2.0).clamp_min_(1e-30)
            K, D = _kernel_and_slope(d2, self.nu)
            K.diagonal(dim1=-2, dim2=-1).add_(noise.unsqueeze(-1))
            L = psd_safe_cholesky(K)
            del K
            resid = (Y - const.unsqueeze(-1)).unsqueeze(-1)
            alpha = torch.cholesky_solve(resid, L)
            f = (0.5 * (resid * alpha).sum((-1, -2))
                 + L.diagonal(dim1=-2, dim2=-1).log().sum(-1) + 0.5 * n * math.log(2 * math.pi))
            W = torch.cholesky_inverse(L)
            del L
            W.sub_(alpha * alpha.transpose(-1, -2))
            g_noise = 0.5 * W.diagonal(dim1=-2, dim2=-1).sum(-1)
            g_const = -alpha.squeeze(-1).sum(-1)
            M = W.mul_(D)
            del D
            g_ls = ((Z.square() * M.sum(-1).unsqueeze(-1)).sum(-2)
                    - (Z * torch.bmm(M, Z)).sum(-2)) / ls
        # the model's own prior modules (and their dtype), so the objective is the same
        ls_leaf = ls.detach().reshape(b, 1, -1).requires_grad_(True)
        noise_leaf = noise.detach().reshape(b, 1).requires_grad_(True)
        with torch.enable_grad():
            log_prior = (self.ls_prior.log_prob(ls_leaf).reshape(b, -1).sum(-1)
                         + self.noise_prior.log_prob(noise_leaf).reshape(b, -1).sum(-1))
            d_ls, d_noise = torch.autograd.grad(log_prior.sum(), [ls_leaf, noise_leaf])
        f = (f - log_prior.detach()) / n
        g = torch.cat([(g_noise - d_noise.reshape(b)).unsqueeze(-1), g_const.unsqueeze(-1),
                       g_ls - d_ls.reshape(b, -1)], dim=-1) / n
        return f.cpu().numpy(), g.cpu().numpy()


def _kernel_and_slope(d2: torch.Tensor, nu: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel ``k(r)`` and ``D = -k'(r) / r`` from squared scaled distances ``d2`` ``(b, n, n)``.

    ``d2`` is overwritten.
    """
    import torch

    if nu is None:  # RBF: k = exp(-r^2 / 2), D = k
        K = d2.mul_(-0.5).exp_()
        return K, K.clone()
    r = d2.sqrt_()
    e = torch.mul(r, -math.sqrt(2.0 * nu)).exp_()
    if nu == 1.5:  # k = (1 + sqrt3 r) e, D = 3 e
        K = torch.addcmul(e, r, e, value=math.sqrt(3.0))
        return K, e.mul_(3.0)
    # nu = 2.5: k = (1 + sqrt5 r + 5/3 r^2) e, D = 5/3 (1 + sqrt5 r) e
    D = torch.mul(r, math.sqrt(5.0)).add_(1.0).mul_(e)
    K = torch.addcmul(D, r.square_(), e, value=5.0 / 3.0)
    return K, D.mul_(5.0 / 3.0)


def _lbfgsb_options(options: dict[str, Any]) -> dict[str, Any]:
    """Map scipy's L-BFGS-B option names to ``fmin_l_bfgs_b_batched`` keywords."""
    out: dict[str, Any] = {"maxiter": int(options.get("maxiter", 15000))}
    if "ftol" in options:
        out["ftol"], out["factr"] = float(options["ftol"]), None
    if "gtol" in options:
        out["pgtol"] = float(options["gtol"])
    for key in ("maxcor", "maxls"):
        if key in options:
            out[key] = int(options[key])
    return out


def _fit_batched(mll: Any, options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per-member L-BFGS-B on :class:`BatchedObjective`; leaves the optimum in the model.

    Returns:
        Iterations per member ``(k,)`` and whether each converged ``(k,)``.
    """
    from botorch.optim.batched_lbfgs_b import fmin_l_bfgs_b_batched

    objective = BatchedObjective(mll)
    xs, _, results = fmin_l_bfgs_b_batched(objective, objective.state, bounds=objective.bounds,
                                           pass_batch_indices=True, **_lbfgsb_options(options))
    objective.state = xs
    return (np.array([int(r["nit"]) for r in results]),
            np.array([bool(r["success"]) for r in results]))


def _fit_botorch(mll: Any, options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Fit with botorch's batched path, for models :class:`BatchedObjective` does not cover."""
    from botorch.optim.fit import fit_gpytorch_mll_scipy

    k = int(mll.model._aug_batch_shape.numel())
    options = dict(options)
    if "ftol" in options:  # botorch passes ftol beside its default factr, which it refuses
        options["factr"] = float(options.pop("ftol")) / np.finfo(float).eps
    result = fit_gpytorch_mll_scipy(mll, options=options)
    converged = str(result.status.name) == "SUCCESS"
    return np.full(k, int(getattr(result, "step", 0) or 0)), np.full(k, converged)


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
