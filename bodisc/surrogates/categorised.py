"""Adapters that give point models and category-using models the acquisition interface.

The ILR kinds (``ilr``, ``ilr_ridge``) and ``xgp`` take the ILR structure categories as
extra columns appended to the descriptors (:func:`bodisc.surrogates.with_categories`), so
acquisition code passes one array around; these classes split them off again.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bodisc.surrogates.registry import N_CATEGORIES


class PointModel:
    """ILR with a constant predictive std from its out-of-fold residuals."""

    def __init__(self, kind: str, n_folds: int = 5) -> None:
        self.kind, self.n_folds = kind, n_folds
        self.model: Any = None
        self.rmse = 1.0

    def fit(self, X: np.ndarray, y: np.ndarray, C: np.ndarray) -> PointModel:
        """Fit ILR on all rows; the std is the RMSE of seeded out-of-fold predictions."""
        from bodisc.surrogates.ilr import ILR

        n = X.shape[0]
        oof = np.empty(n)
        folds = min(self.n_folds, n)
        order = np.random.default_rng(0).permutation(n)
        for k in range(folds):
            val = order[k::folds]
            fit = np.setdiff1d(order, val)
            oof[val] = ILR(self.kind).fit(X[fit], y[fit], C[fit]).predict(X[val], C[val])[0]
        self.rmse = float(np.sqrt(np.mean((oof - y) ** 2))) or 1e-6
        self.model = ILR(self.kind).fit(X, y, C)
        return self

    def predict(self, X: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Means ``(m,)`` and the constant std ``(m,)``."""
        mean = self.model.predict(X, C)[0]
        return mean, np.full_like(mean, self.rmse)


class Categorised:
    """Adapts a ``fit(X, y, C)`` / ``predict(X, C)`` model to the acquisition interface.

    Inputs are descriptors with ``n_categories`` category flags appended
    (:func:`bodisc.surrogates.with_categories`: the 44 ILR categories). Covariances
    between candidates take the correlation of the model's GP component
    (none for ILR) and the model's own standard deviations.
    """

    def __init__(self, model: Any, n_categories: int = N_CATEGORIES) -> None:
        self.model = model
        self.n_categories = int(n_categories)

    def _split(self, Xa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = self.n_categories
        return Xa[:, :-k], Xa[:, -k:]

    def fit(self, Xa: np.ndarray, y: np.ndarray) -> Categorised:
        """Fit on descriptors with categories ``(n, d + k)`` and labels ``(n,)``."""
        X, C = self._split(Xa)
        self.model.fit(X, np.asarray(y, dtype=float), C)
        return self

    def predict(self, Xa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictive means and standard deviations, each ``(m,)``."""
        X, C = self._split(Xa)
        return self.model.predict(X, C)

    def noise_variance(self) -> float:
        """The GP component's noise variance, or a tiny one for a point model."""
        gp = getattr(self.model, "gp", None)
        return gp.noise_variance() if gp is not None else 1e-6 * self.model.rmse**2

    def covariance_columns(self, Xa: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Posterior covariances of all candidates with ``idx``, shape ``(m, len(idx))``."""
        _, std = self.predict(Xa)
        gp = getattr(self.model, "gp", None)
        if gp is None:
            rho = (np.arange(Xa.shape[0])[:, None] == np.asarray(idx)[None, :]).astype(float)
        else:
            X, _ = self._split(Xa)
            cols = gp.covariance_columns(X, idx)
            _, sd_gp = gp.predict(X)
            sd_gp = np.clip(sd_gp, 1e-12, None)
            rho = np.clip(cols / (sd_gp[:, None] * sd_gp[idx][None, :]), -1.0, 1.0)
        return rho * std[:, None] * std[idx][None, :]

    def shortlist_posterior(self, Xa: np.ndarray) -> Any:
        """The posterior over a short list for batch selection, as ``covariance_columns``.

        The model's prediction and its GP component's posterior over the list are
        computed once (the GP's own fast path); a column then costs ``O(k n)`` instead
        of a prediction over the list and a solve per pick.

        Args:
            Xa: Candidates with their categories, shape ``(k, d + n_categories)``.

        Returns:
            A :class:`~bodisc.surrogates.gp.ShortlistPosterior`.
        """
        from bodisc.surrogates.gp import ShortlistPosterior

        mean, std = self.predict(Xa)
        gp = getattr(self.model, "gp", None)
        if gp is None:
            def column(i: int) -> np.ndarray:
                col = np.zeros_like(std)
                col[i] = std[i] ** 2
                return col
        else:
            post = gp.shortlist_posterior(self._split(Xa)[0])
            sd_gp = np.clip(np.sqrt(np.clip(post.var, 0.0, None)), 1e-12, None)

            def column(i: int) -> np.ndarray:
                rho = np.clip(post.column(i) / (sd_gp * sd_gp[i]), -1.0, 1.0)
                return rho * std * std[i]
        return ShortlistPosterior(mean, std**2, column)

    def joint_samples(self, Xa: np.ndarray, n_samples: int,
                      rng: np.random.Generator) -> np.ndarray:
        """``n_samples`` joint draws over the candidates, shape ``(n_samples, m)``."""
        from bodisc.surrogates.gp import sample_joint

        mean, _ = self.predict(Xa)
        cov = self.covariance_columns(Xa, np.arange(Xa.shape[0]))
        return sample_joint(mean, cov, n_samples, rng)


class CategorisedGP(Categorised):
    """A :class:`Categorised` model with a GP component (``xgp``).

    It takes the GP surrogates' ``fit(..., init=, optimise=)`` and ``hyper_state()``, so
    the campaign's warm starts and ``refit_growth`` schedule and the replay's refit
    schedule treat its GP component as they treat ``gp``.
    """

    def fit(self, Xa: np.ndarray, y: np.ndarray, init: dict[str, list[float]] | None = None,
            optimise: bool = True) -> CategorisedGP:
        """Fit, the GP component from ``init`` (re-optimised unless ``optimise`` is false)."""
        X, C = self._split(Xa)
        self.model.fit(X, np.asarray(y, dtype=float), C, init=init, optimise=optimise)
        return self

    def hyper_state(self) -> dict[str, list[float]]:
        """The GP component's hyperparameters, for the next fit's ``init``."""
        return self.model.hyper_state()
