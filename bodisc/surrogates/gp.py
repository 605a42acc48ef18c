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

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

#: Cap on L-BFGS-B iterations of a hyperparameter fit.
MAX_FIT_ITERATIONS = 300

#: Below this many labels, linear algebra runs on one thread: the matrices are small and
#: threads only contend (figures: ``docs/benchmarks/surrogate_speed.md``).
SMALL_N = 1500

#: Candidates per chunk when predicting; keeps the (chunk x n) cross-covariance small
#: (1,024 x 1,000 labels x 8 bytes = 8 MB, a few such buffers at a time), so element-wise
#: passes stay in cache (figures: ``docs/benchmarks/surrogate_speed.md``).
CHUNK = 1024

#: Fits and predictions use exact Cholesky linear algebra up to this many labels.
#: gpytorch's default switches to conjugate gradients and stochastic Lanczos above 800
#: labels, which draws from torch's global RNG (so a campaign would not be reproducible)
#: and is not faster at these sizes. Past this size use ``surrogate.kind = "sparse"``.
EXACT_MAX = 20000

#: Prior means a :class:`GPSurrogate` offers (``[surrogate] mean``).
MEANS: tuple[str, ...] = ("constant", "linear", "proxy")


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


@contextmanager
def fit_threads(n: int) -> Iterator[None]:
    """One thread for torch and for scipy's BLAS while fitting on fewer than ``SMALL_N`` labels.

    L-BFGS-B's own step (scipy's ``setulb``) calls scipy's bundled OpenBLAS on tiny
    matrices, where threads only contend and can cost more than the objective
    (figures: ``docs/benchmarks/surrogate_speed.md``). Every exact-GP fit
    (``GPSurrogate.fit``, ``BatchedGP.fit``) runs under it, and
    ``bodisc bench surrogate`` runs its loop of single fits under the same limits.

    Args:
        n: Labels per model.
    """
    from threadpoolctl import threadpool_limits

    if n >= SMALL_N:
        yield
        return
    with torch_threads(1), threadpool_limits(1, user_api="blas"):
        yield


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
        mean: Prior mean: ``constant`` (botorch's default) or ``linear`` (an affine
            function of the descriptors, fitted with the other hyperparameters: far from
            the labels the prediction follows the linear trend instead of falling back
            to a constant, which is what lets a GP extrapolate along a cheap proxy such
            as the xTB dipole; see the QMex/ILR basis in DESIGN.md), or ``proxy``
            (``c + s * a(x)`` with ``s`` of the sign ``proxy_sign``, ``a`` the labels' own
            cheap analogue: two parameters, so well determined from a handful of labels
            where the linear mean's ``d + 1`` are not).
        proxy_column: For ``proxy``: the column of the analogue in ``X``, or a mapping
            column -> coefficient for an analogue that is a combination of columns in
            their own units (the xTB HOMO-LUMO gap: ``{lumo: 1.0, homo: -1.0}``).
        proxy_sign: For ``proxy``: ``+1`` if the labels rise with the analogue, ``-1``
            if they fall (a minimised target in maximisation form).

    Attributes:
        fit_evaluations: L-BFGS-B iterations of the last fit (botorch's ``step``; 0 for
            conditioning only). Each iteration takes one or more likelihood evaluations
            (its line search; figures: ``docs/benchmarks/refit.md``).
    """

    def __init__(self, kernel: str = "matern52", device: str = "auto",
                 dtype: str = "auto", mean: str = "constant",
                 proxy_column: int | Mapping[int, float] = 0, proxy_sign: float = 1.0) -> None:
        if mean not in MEANS:
            raise ValueError(f"unknown GP mean {mean!r}; choose one of: {', '.join(MEANS)}")
        self.mean_name = mean
        terms = ({int(proxy_column): 1.0} if isinstance(proxy_column, (int, np.integer))
                 else {int(c): float(w) for c, w in proxy_column.items()})
        if not terms or not any(terms.values()):
            raise ValueError(f"proxy mean: no analogue column with a non-zero coefficient "
                             f"in {proxy_column!r}")
        self.proxy_terms = terms
        self.proxy_sign = 1.0 if proxy_sign >= 0 else -1.0
        self.kernel_name = kernel
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model: Any = None
        self.scaler: Scaler | None = None
        self.fit_evaluations = 0

    # -- fitting ----------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray,
            init: dict[str, list[float]] | None = None,
            optimise: bool = True) -> GPSurrogate:
        """Fit hyperparameters by maximising the marginal likelihood.

        Args:
            X: Descriptors, shape ``(n, d)`` (NaN allowed).
            y: Labels, shape ``(n,)``; larger is better is not assumed here.
            init: Hyperparameters to start from (a warm start), as returned by
                :meth:`hyper_state` after an earlier fit; ``None`` (or a state of another
                shape) starts from gpytorch's defaults.
            optimise: With ``init``, ``False`` takes its hyperparameters as they are
                (conditioning only, e.g. on the best member of a batched multi-start fit).

        Returns:
            ``self``.
        """
        import gpytorch
        from gpytorch.mlls import ExactMarginalLogLikelihood

        self.scaler = Scaler.fit(X)
        train_z = self.scaler.transform(X)
        train_x = self._tensor(train_z)
        train_y = self._tensor(np.asarray(y, dtype=float).reshape(-1, 1))
        model = make_model(train_x, train_y, self.kernel_name, mean=self.mean_name,
                           proxy=(self._proxy_direction(train_z), self.proxy_sign))
        model = model.to(device=self.device, dtype=self.dtype)
        warm = init is not None and load_hyper_state(model, init)
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        with fit_threads(train_x.shape[0]), gpytorch.settings.max_cholesky_size(EXACT_MAX):
            if optimise or not warm:
                self._fit_mll(mll)
            else:
                self.fit_evaluations = 0
        model.eval()
        self.model = model
        self._cache(train_x)
        return self

    def _proxy_direction(self, train_z: np.ndarray) -> np.ndarray:
        """The analogue as a direction in the scaled descriptors ``train_z`` ``(n, d)``.

        A combination ``sum_c w_c * x_c`` of columns in their own units is, in the
        z-scored columns, ``sum_c w_c * std_c * z_c`` (plus a constant the mean's bias
        takes); divided by its standard deviation on the training descriptors, so the
        slope is in label standard deviations per analogue standard deviation, as with a
        single column. Shape ``(d,)``.
        """
        assert self.scaler is not None
        d = train_z.shape[1]
        w = np.zeros(d)
        for column, coefficient in self.proxy_terms.items():
            if not 0 <= column < d:
                raise ValueError(f"proxy mean: column {column} is not among the {d} descriptors")
            w[column] += coefficient * self.scaler.std[column]
        if len(self.proxy_terms) == 1:
            return w / np.abs(w).sum()  # one z-scored column: standard deviation 1 already
        return w / max(float(np.std(train_z @ w)), 1e-12)

    def _fit_mll(self, mll: Any) -> None:
        import torch
        from botorch.fit import fit_gpytorch_mll
        from botorch.optim.fit import fit_gpytorch_mll_scipy

        model = mll.model
        mll.train()
        try:  # one L-BFGS-B run, capped: botorch's retry loop costs several times more
            result = fit_gpytorch_mll_scipy(mll, options={"maxiter": MAX_FIT_ITERATIONS})
            self.fit_evaluations = int(getattr(result, "step", 0) or 0)
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
        """Factorise once for scoring.

        The training points are put in order of decreasing label first (the posterior
        does not depend on the order), so that the leading block of the Cholesky factor
        belongs to the best molecules: :meth:`predict_bound` conditions on that block.
        """
        import torch

        model = self.model
        with torch.no_grad():
            y_std = model.train_targets  # standardised targets, shape (n,)
            order = torch.argsort(-y_std, stable=True)
            train_x = train_x[order]
            noise = model.likelihood.noise.reshape(())
            self._noise_std = noise
            self._kernel = StationaryKernel.from_gpytorch(model.covar_module)
            self._train_s = self._kernel.scale_inputs(train_x)
            K = self._kernel(self._train_s, self._train_s)
            K.diagonal().add_(noise)
            self._L = torch.linalg.cholesky(K)
            self._mean_w, self._mean_const = _mean_parts(model.mean_module,
                                                          train_x.shape[-1])
            resid = (y_std[order] - self._prior_mean(train_x)).unsqueeze(-1)
            self._alpha = torch.cholesky_solve(resid, self._L).squeeze(-1)
            tf = model.outcome_transform
            self._y_mean = tf.means.reshape(())
            self._y_std = tf.stdvs.reshape(())
        self._train_x = train_x

    # -- prediction -------------------------------------------------------------------

    def _prior_mean(self, Z: torch.Tensor) -> torch.Tensor:
        """Prior mean (standardised scale) of features ``Z`` ``(c, d)``: ``(c,)`` (or scalar)."""
        if self._mean_w is None:
            return self._mean_const
        return Z @ self._mean_w + self._mean_const

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
        # outputs allocated up front: small per-chunk results kept in a list, interleaved
        # with the chunks' large temporaries, fragment the heap (figures:
        # docs/benchmarks/surrogate_speed.md)
        mean, std = _outputs(Z)
        with torch.no_grad():
            for start in range(0, Z.shape[0], CHUNK):
                mu, var = self._predict_chunk(Z[start : start + CHUNK])
                mean[start : start + CHUNK] = mu
                std[start : start + CHUNK] = var.clamp_min_(1e-30).sqrt_()
        mean.mul_(self._y_std).add_(self._y_mean)
        std.mul_(self._y_std)
        return mean.cpu().numpy(), std.cpu().numpy()

    def _predict_chunk(self, Z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised-scale mean ``(c,)`` and variance ``(c,)`` of a chunk ``(c, d)``."""
        import torch

        kern = self._kernel
        Ks = kern(kern.scale_inputs(Z), self._train_s)  # (c, n)
        mu = self._prior_mean(Z) + Ks @ self._alpha
        V = torch.linalg.solve_triangular(self._L, Ks.T, upper=False)  # (n, c)
        del Ks
        return mu, kern.outputscale - V.square_().sum(0)

    def shortlist_posterior(self, X: np.ndarray) -> ShortlistPosterior:
        """Exact posterior of a short list, with covariance columns on demand.

        One cross-covariance and one triangular solve for the list; a covariance column
        then costs ``O(k (n + d))``, with no ``(k, k)`` matrix formed.

        Args:
            X: Candidate descriptors, shape ``(k, d)``; ``k`` up to a few thousand.
        """
        import torch

        kern = self._kernel
        F = self._features(X)
        Z = kern.scale_inputs(F)
        with torch.no_grad():
            Ks = kern(Z, self._train_s)  # (k, n)
            mean = self._prior_mean(F) + Ks @ self._alpha
            V = torch.linalg.solve_triangular(self._L, Ks.T, upper=False)  # (n, k)
            del Ks
            var = kern.outputscale - V.square().sum(0)
        y_mean, y_var = float(self._y_mean), float(self._y_std) ** 2

        def column(i: int) -> np.ndarray:
            with torch.no_grad():
                col = kern(Z, Z[i : i + 1])[:, 0] - V.T @ V[:, i]
            return col.cpu().numpy() * y_var

        return ShortlistPosterior((mean * float(self._y_std) + y_mean).cpu().numpy(),
                                  var.clamp_min(1e-30).cpu().numpy() * y_var, column)

    def predict_bound(self, X: np.ndarray, rows: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """Exact posterior mean and an upper bound on the standard deviation, cheaply.

        Conditioning on fewer observations never lowers the posterior variance, so the
        variance given (a) the ``rows`` best-labelled molecules alone and (b) the single
        most correlated training molecule alone are both upper bounds; the smaller is
        returned. Cost per candidate: one kernel row and ``rows^2 / 2`` operations,
        against ``n^2 / 2`` for the exact variance.

        Args:
            X: Candidate descriptors, shape ``(m, d)``.
            rows: Size of the leading block used for bound (a).

        Returns:
            ``(mean, std_upper)``, each of shape ``(m,)``, in label units.
        """
        import torch

        kern = self._kernel
        F = self._features(X)
        Z = kern.scale_inputs(F)
        r = min(rows, self._L.shape[0])
        Lr = self._L[:r, :r]
        s = float(kern.outputscale) if not isinstance(kern.outputscale, float) \
            else kern.outputscale
        noise = self._noise_std
        mean, std = _outputs(Z)
        with torch.no_grad():
            for start in range(0, Z.shape[0], CHUNK):
                Ks = kern(Z[start : start + CHUNK], self._train_s)  # (c, n)
                mean[start : start + CHUNK] = (self._prior_mean(F[start : start + CHUNK])
                                               + Ks @ self._alpha)
                nearest = s - Ks.max(dim=1).values.square() / (s + noise)
                V = torch.linalg.solve_triangular(Lr, Ks[:, :r].T, upper=False)
                block = s - V.square_().sum(0)
                std[start : start + CHUNK] = torch.minimum(nearest, block).clamp_min_(1e-30).sqrt_()
        mean.mul_(self._y_std).add_(self._y_mean)
        std.mul_(self._y_std)
        return mean.cpu().numpy(), std.cpu().numpy()

    def covariance_columns(self, X: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Posterior covariance between all candidates and some of them.

        Args:
            X: Candidate descriptors, shape ``(m, d)``.
            idx: Indices of the chosen candidates, shape ``(k,)``.

        Returns:
            Covariance in label units squared, shape ``(m, k)``.
        """
        import torch

        kern = self._kernel
        Z = kern.scale_inputs(self._features(X))
        Zs = Z[torch.as_tensor(idx, device=Z.device)]
        with torch.no_grad():
            Vs = torch.linalg.solve_triangular(
                self._L, kern(Zs, self._train_s).T, upper=False
            )  # (n, k)
            cols = []
            for start in range(0, Z.shape[0], CHUNK):
                Zc = Z[start : start + CHUNK]
                Vc = torch.linalg.solve_triangular(
                    self._L, kern(Zc, self._train_s).T, upper=False
                )  # (n, c)
                cols.append(kern(Zc, Zs) - Vc.T @ Vs)
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

    def hyper_state(self) -> dict[str, list[float]]:
        """The fitted hyperparameters (raw, unconstrained values), for a later warm start.

        Plain floats, so the state survives a JSON round trip exactly (a resumed campaign
        starts its next fit from the very same values as an uninterrupted one).
        """
        return {name: [float(v) for v in p.detach().cpu().reshape(-1).tolist()]
                for name, p in self.model.named_parameters()}

    def hyperparameters(self) -> dict[str, float]:
        """A few fitted hyperparameters for logging."""
        m = self.model
        ls = m.covar_module.lengthscale.detach().cpu().numpy().ravel()
        return {
            "noise": float(m.likelihood.noise.detach().cpu().reshape(())),
            "lengthscale_median": float(np.median(ls)),
            "lengthscale_min": float(np.min(ls)),
        }


@dataclass
class ShortlistPosterior:
    """The posterior over a short list of candidates, for batch selection.

    Attributes:
        mean: Posterior means, shape ``(k,)``, label units.
        var: Posterior variances, shape ``(k,)``, label units squared.
        column: ``column(i)`` is the covariance of every listed candidate with candidate
            ``i``, shape ``(k,)``.
    """

    mean: np.ndarray
    var: np.ndarray
    column: Callable[[int], np.ndarray]

    @classmethod
    def of(cls, surrogate: Any, X: np.ndarray) -> ShortlistPosterior:
        """From any surrogate: its own fast path, else ``predict`` + ``covariance_columns``."""
        fast = getattr(surrogate, "shortlist_posterior", None)
        if fast is not None:
            return fast(X)
        mean, std = surrogate.predict(X)
        return cls(mean, std**2,
                   lambda i: surrogate.covariance_columns(X, np.array([i]))[:, 0])


def make_model(train_x: torch.Tensor, train_y: torch.Tensor, kernel: str = "matern52",
               batch_shape: torch.Size | None = None, mean: str = "constant",
               proxy: tuple[Any, float] | None = None) -> Any:
    """The botorch model every exact GP here uses.

    ``SingleTaskGP`` with an ARD Matern-5/2 (or Matern-3/2, RBF) kernel and botorch's
    dimension-scaled lengthscale prior, a Gaussian likelihood and a ``Standardize``
    outcome transform.

    Args:
        train_x: Scaled descriptors, shape ``(*batch, n, d)``.
        train_y: Labels, shape ``(*batch, n, 1)``.
        kernel: ``matern52``, ``matern32`` or ``rbf``.
        batch_shape: ``(k,)`` for k independent models fitted as one.
        mean: ``constant``, ``linear`` (gpytorch ``LinearMean`` on the scaled
            descriptors, bias included) or ``proxy`` (:class:`ProxyMean`).
        proxy: For ``proxy``: ``(direction (d,), sign)`` of the analogue in the scaled
            descriptors (:func:`ProxyMean`).
    """
    import torch
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
    from botorch.settings import validate_input_scaling

    shape = batch_shape or torch.Size([])
    covar = get_covar_module_with_dim_scaled_prior(
        ard_num_dims=train_x.shape[-1], batch_shape=shape, use_rbf_kernel=kernel == "rbf"
    )
    if kernel == "matern32":
        covar.nu = 1.5
    with validate_input_scaling(False):  # z-scored on purpose, not in the unit cube
        mean_module = None
        if mean == "linear":
            from gpytorch.means import LinearMean

            mean_module = LinearMean(train_x.shape[-1], batch_shape=shape)
            with torch.no_grad():  # gpytorch draws the start from torch's global RNG
                mean_module.weights.zero_()
                mean_module.bias.zero_()
        elif mean == "proxy":
            if proxy is None:
                raise ValueError("mean = 'proxy' needs the analogue's direction")
            direction = torch.as_tensor(np.asarray(proxy[0], dtype=float),
                                        dtype=train_x.dtype, device=train_x.device)
            mean_module = ProxyMean(direction, proxy[1], batch_shape=shape)
        return SingleTaskGP(train_x, train_y, covar_module=covar, mean_module=mean_module,
                            outcome_transform=Standardize(m=1, batch_shape=shape))


@lru_cache(maxsize=1)
def _proxy_mean_class() -> type:
    """The gpytorch module of :func:`ProxyMean` (defined on first use: gpytorch loads late)."""
    import torch
    from gpytorch.means import Mean

    class _ProxyMean(Mean):  # type: ignore[misc]
        def __init__(self, direction: torch.Tensor, sign: float,
                     batch_shape: torch.Size) -> None:
            super().__init__()
            self.register_buffer("direction", direction.reshape(-1).clone())
            self.sign = float(sign)
            self.register_parameter("raw_slope",
                                    torch.nn.Parameter(torch.zeros(*batch_shape, 1)))
            self.register_parameter("bias", torch.nn.Parameter(torch.zeros(*batch_shape, 1)))

        @property
        def slope(self) -> torch.Tensor:
            return self.sign * torch.nn.functional.softplus(self.raw_slope)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bias + self.slope * (x @ self.direction.to(x))

    return _ProxyMean


def ProxyMean(direction: Any, sign: float = 1.0, batch_shape: Any = None) -> Any:  # noqa: N802
    """Prior mean ``c + sign * softplus(raw_slope) * (x @ direction)``: linear in the analogue.

    The slope's sign is fixed (the labels rise, or fall, with their analogue), so a few
    labels cannot turn the proxy upside down; both parameters start without a random draw
    (``c = 0``, slope ``softplus(0) = 0.69`` standard deviations per standard deviation).

    Args:
        direction: The analogue in the scaled descriptors ``(..., n, d)``: a tensor of
            shape ``(d,)`` (one column: a unit vector).
        sign: ``+1``: the labels rise with the analogue; ``-1``: they fall.
        batch_shape: Batch shape of the parameters (default: none).

    Returns:
        The gpytorch mean module: ``forward(x (..., n, d)) -> (..., n)``.
    """
    import torch

    return _proxy_mean_class()(direction, sign, batch_shape or torch.Size([]))


def _mean_parts(mean_module: Any, d: int) -> tuple[torch.Tensor | None, torch.Tensor]:
    """``(weights (d,) or None, constant ())`` of a constant, linear or proxy mean."""
    from gpytorch.means import LinearMean

    if isinstance(mean_module, _proxy_mean_class()):
        bias = mean_module.bias.detach().reshape(())
        w = mean_module.direction.to(bias) * mean_module.slope.detach().reshape(())
        return w, bias
    if isinstance(mean_module, LinearMean):
        return mean_module.weights.detach().reshape(-1), mean_module.bias.detach().reshape(())
    return None, mean_module.constant.detach().reshape(())


def _outputs(Z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two empty vectors for the mean and standard deviation of candidates ``Z`` ``(m, d)``."""
    import torch

    return (torch.empty(Z.shape[0], dtype=Z.dtype, device=Z.device),
            torch.empty(Z.shape[0], dtype=Z.dtype, device=Z.device))


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` -> float64; float32 only on CUDA (a CPU surrogate always runs in float64).

    Raises:
        BodiscError: For float32 on the CPU or an unknown name.
    """
    import torch

    from bodisc.errors import BodiscError

    if name in ("auto", "float64"):
        return torch.float64
    if name == "float32":
        if device.type != "cuda":
            raise BodiscError("surrogate.precision = 'float32' needs a CUDA device; "
                              "the CPU surrogate runs in float64")
        return torch.float32
    raise BodiscError(f"surrogate.precision = {name!r}; allowed: auto, float64, float32")


def load_hyper_state(model: Any, state: dict[str, list[float]]) -> bool:
    """Copy hyperparameters saved by :meth:`GPSurrogate.hyper_state` into ``model``.

    Nothing is copied unless every parameter is present with the same size (a state of
    another descriptor set, say), so a mismatched state means a cold start.

    Returns:
        Whether the state was loaded.
    """
    import torch

    params = dict(model.named_parameters())
    if set(params) != set(state) or any(p.numel() != len(state[k]) for k, p in params.items()):
        return False
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(torch.as_tensor(state[name], dtype=p.dtype, device=p.device).reshape(p.shape))
    return True


class StationaryKernel:
    """Matern / RBF kernel evaluation for scoring, equal to gpytorch's to rounding.

    gpytorch builds a lazy tensor per call and goes through several temporaries; the
    candidate sets here are large, so the cross-covariance is formed with one matrix
    product for the squared distances and in-place element-wise operations.

    Attributes:
        lengthscale: ARD lengthscales, shape ``(d,)``.
        nu: Matern smoothness (0.5, 1.5, 2.5) or ``None`` for RBF.
        outputscale: Prior variance ``k(x, x)``.
    """

    def __init__(self, lengthscale: torch.Tensor, nu: float | None,
                 outputscale: torch.Tensor | float = 1.0) -> None:
        self.lengthscale = lengthscale.detach().reshape(-1)
        self.nu = nu
        self.outputscale = outputscale

    @classmethod
    def from_gpytorch(cls, covar: Any) -> StationaryKernel:
        """From a gpytorch ``MaternKernel`` / ``RBFKernel``, optionally in a ``ScaleKernel``."""
        from gpytorch.kernels import MaternKernel, RBFKernel, ScaleKernel

        scale: Any = 1.0
        if isinstance(covar, ScaleKernel):
            scale = covar.outputscale.detach().reshape(())
            covar = covar.base_kernel
        if isinstance(covar, MaternKernel):
            return cls(covar.lengthscale, float(covar.nu), scale)
        if isinstance(covar, RBFKernel):
            return cls(covar.lengthscale, None, scale)
        raise TypeError(f"no fast path for kernel {type(covar).__name__}")

    def scale_inputs(self, Z: torch.Tensor) -> torch.Tensor:
        """Inputs in the kernel's own units, shape ``(m, d)``.

        Divided by the lengthscales, and for Matern also multiplied by ``sqrt(2 nu)``, so
        that the distance of two scaled inputs is the ``t`` of ``k = p(t) exp(-t)``.
        """
        import math

        factor = 1.0 if self.nu is None else math.sqrt(2.0 * self.nu)
        return Z * (factor / self.lengthscale)

    def __call__(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """Covariance of scaled inputs ``A`` ``(a, d)`` and ``B`` ``(b, d)``: ``(a, b)``."""
        import torch

        # |a|^2 + |b|^2 - 2 a.b, then in place: 7 passes over the (a, b) values in all
        d2 = torch.addmm(B.square().sum(-1).unsqueeze(0), A, B.T, alpha=-2.0)
        d2.add_(A.square().sum(-1, keepdim=True)).clamp_min_(0.0)
        if self.nu is None:  # RBF: exp(-d^2 / 2)
            k = d2.mul_(-0.5).exp_()
        else:
            t = d2.sqrt_()
            e = torch.neg(t).exp_()
            if self.nu == 0.5:
                k = e
            elif self.nu == 1.5:  # (1 + t) exp(-t)
                k = torch.addcmul(e, t, e)
            else:  # 2.5: (1 + t + t^2 / 3) exp(-t)
                k = torch.addcmul(e, torch.addcmul(t, t, t, value=1.0 / 3.0), e)
        if not (isinstance(self.outputscale, float) and self.outputscale == 1.0):
            k = k.mul_(self.outputscale)
        return k


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
