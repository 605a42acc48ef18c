"""Surrogate models a campaign can use (``[surrogate] kind``).

* ``gp``: the exact GP on standardised descriptors (:mod:`bodisc.surrogates.gp`).
* ``xgp``: the extrapolation-aware GP (:mod:`bodisc.surrogates.extrapolating`): the GP
  gated with a calibrated linear QMex/ILR base where the GP is unsure or the prediction
  lies beyond the labels seen.
* ``sparse``: subset-of-data hyperparameters and an inducing-point posterior on all
  labels, for campaigns past about 5,000 labels (:mod:`bodisc.surrogates.sparse`).
* ``ilr`` / ``ilr_ridge``: ILR as published (PLS, 8 components) or its ridge variant
  (:mod:`bodisc.surrogates.ilr`); ILR gives point predictions, so its predictive standard
  deviation is the out-of-fold RMSE of the training set, the same for every candidate,
  and candidates are independent.

Every kind offers what the acquisition strategies use: ``predict``,
``covariance_columns``, ``joint_samples`` and ``noise_variance``. Models that use the ILR
structure categories receive them as extra columns appended to the descriptors
(``with_categories``), so acquisition code passes one array around.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The one list of surrogate kinds (config validation reads it).
SURROGATE_KINDS: tuple[str, ...] = ("gp", "xgp", "ilr", "ilr_ridge", "sparse")


def uses_categories(kind: str) -> bool:
    """Whether a kind needs the ILR structure categories of each molecule."""
    return kind not in ("gp", "sparse")


def with_categories(X: np.ndarray, smiles: list[str]) -> np.ndarray:
    """Descriptors ``(m, d)`` with the 44 category flags appended: ``(m, d + 44)``."""
    from bodisc.descriptors.categories import category_matrix

    return np.hstack([X, category_matrix(smiles).astype(float)])


def build_surrogate(kind: str, kernel: str = "matern52", device: str = "auto",
                    precision: str = "auto", **options: Any) -> Any:
    """A new, unfitted surrogate of the given kind.

    Args:
        kind: One of :data:`SURROGATE_KINDS`.
        kernel: Kernel name.
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: ``auto``, ``float64`` or ``float32`` (GP kinds).
        **options: For ``gp``: ``mean`` (``constant``, ``linear`` or ``proxy``, with
            ``proxy_column``, a column or a mapping column -> coefficient, and
            ``proxy_sign``); for ``sparse``:
            ``subset``, ``inducing``, ``seed``.
    """
    from bodisc.surrogates.gp import GPSurrogate

    if kind == "gp":
        return GPSurrogate(kernel, device, precision, mean=options.get("mean", "constant"),
                           proxy_column=options.get("proxy_column", 0),
                           proxy_sign=options.get("proxy_sign", 1.0))
    if kind == "sparse":
        from bodisc.surrogates.sparse import SparseGP

        return SparseGP(kernel, device, precision, **options)
    if kind == "xgp":
        return _CategorisedGP(_xgp(kernel, device))
    if kind in ("ilr", "ilr_ridge"):
        return _Categorised(_PointModel("pls" if kind == "ilr" else "ridge"))
    raise ValueError(f"unknown surrogate kind {kind!r}; choose one of {SURROGATE_KINDS}")


def _xgp(kernel: str, device: str) -> Any:
    from bodisc.surrogates.extrapolating import ExtrapolatingGP

    return ExtrapolatingGP(kernel=kernel, device=device)


class _PointModel:
    """ILR with a constant predictive std from its out-of-fold residuals."""

    def __init__(self, kind: str, n_folds: int = 5) -> None:
        self.kind, self.n_folds = kind, n_folds
        self.model: Any = None
        self.rmse = 1.0

    def fit(self, X: np.ndarray, y: np.ndarray, C: np.ndarray) -> _PointModel:
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
        mean = self.model.predict(X, C)[0]
        return mean, np.full_like(mean, self.rmse)


class _Categorised:
    """Adapts a ``fit(X, y, C)`` / ``predict(X, C)`` model to the acquisition interface.

    Inputs are descriptors with the category flags appended (:func:`with_categories`).
    Covariances between candidates take the correlation of the model's GP component
    (none for ILR) and the model's own standard deviations.
    """

    N_CATEGORIES = 44

    def __init__(self, model: Any) -> None:
        self.model = model

    def _split(self, Xa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = self.N_CATEGORIES
        return Xa[:, :-k], Xa[:, -k:]

    def fit(self, Xa: np.ndarray, y: np.ndarray) -> _Categorised:
        X, C = self._split(Xa)
        self.model.fit(X, np.asarray(y, dtype=float), C)
        return self

    def predict(self, Xa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X, C = self._split(Xa)
        return self.model.predict(X, C)

    def noise_variance(self) -> float:
        gp = getattr(self.model, "gp", None)
        return gp.noise_variance() if gp is not None else 1e-6 * self.model.rmse**2

    def covariance_columns(self, Xa: np.ndarray, idx: np.ndarray) -> np.ndarray:
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
            Xa: Candidates with their categories, shape ``(k, d + 44)``.

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
        from bodisc.surrogates.gp import sample_joint

        mean, _ = self.predict(Xa)
        cov = self.covariance_columns(Xa, np.arange(Xa.shape[0]))
        return sample_joint(mean, cov, n_samples, rng)


class _CategorisedGP(_Categorised):
    """A :class:`_Categorised` model with a GP component (``xgp``).

    It takes the GP surrogates' ``fit(..., init=, optimise=)`` and ``hyper_state()``, so
    the campaign's warm starts and ``refit_growth`` schedule and the replay's refit
    schedule treat its GP component as they treat ``gp``.
    """

    def fit(self, Xa: np.ndarray, y: np.ndarray, init: dict[str, list[float]] | None = None,
            optimise: bool = True) -> _CategorisedGP:
        X, C = self._split(Xa)
        self.model.fit(X, np.asarray(y, dtype=float), C, init=init, optimise=optimise)
        return self

    def hyper_state(self) -> dict[str, list[float]]:
        return self.model.hyper_state()
