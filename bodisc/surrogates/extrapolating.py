"""A GP that hands over to a calibrated linear model where it cannot see: ``ExtrapolatingGP``.

A stationary GP (Matern on z-scored descriptors) is right near its data and reverts to
its mean away from it; it can never predict beyond the range of its labels. ILR
(:mod:`bodisc.surrogates.ilr`) extrapolates linearly, but is worse than the GP on new
structures when data are plentiful. This model ("xgp" in the benchmark) keeps both and
lets the GP's own uncertainty and the labels' range decide, point by point.

Components, all fitted on the training rows only:

1. ``gp``: the project's exact GP (:class:`bodisc.surrogates.gp.GPSurrogate`), giving
   ``mu_gp(x)`` and the latent ``sd_gp(x)``; ``sd0(x)`` is its prior standard deviation.
2. ``lin``: the linear base (:class:`LinearBase`): five linear fits that err
   differently (PLS-ILR with 4 and with 10 components and ridge ILR, indicator rule on
   the training rows; PLS (8) and ridge on the descriptors alone); at each point the
   highest and lowest of the five are dropped and the other three averaged. Averaging
   fits with different features and shrinkage reduces their variance; trimming keeps
   one member that extrapolates wildly out of it.
   Without categories: the median of PLS (8), PLS (4) and ridge on the descriptors.
3. Calibration of the base by reverse regression. A model trained on a band of ``y`` is
   attenuated: its predictions regress to the band's mean (selecting rows on ``y``
   biases the slope of ``y`` on ``x``, not that of the prediction on ``y``). Out-of-fold
   (5-fold, seeded) base predictions ``p`` are regressed on the labels, ``p = a + g y``,
   and predictions are mapped back: ``mu_lin = y_mean + (p - p_mean) / g``, with ``1/g``
   clipped to [0.5, 2]. ``s_lin`` is the out-of-fold RMSE of the calibrated base.
4. The gate ``w(x) = (1 - sd_gp(x)^2 / sd0(x)^2) ^ p * r(x)`` with ``p = 0.5``: the
   fraction of prior variance the data explain at ``x``, softened, times a range factor
   ``r = P_in ^ k`` (``k = 32``), where ``P_in`` is the probability that
   ``N(mu_lin, (0.5 s_lin)^2)`` lies inside the range of the training labels. The GP
   cannot leave its label range, so where the calibrated base puts the answer at or
   beyond an edge of that range the GP is not trusted, however sure it is; well inside
   the range (``r`` about 1) the GP keeps most of the weight wherever its data reach.

Prediction is the two-component mixture, moment matched::

    mean = w mu_gp + (1 - w) mu_lin
    var  = w sd_gp^2 + (1 - w) sd_lin^2 + w (1 - w) (mu_gp - mu_lin)^2

with ``sd_lin^2`` the out-of-fold mean squared error of the calibrated base less the GP's
noise variance. Where the GP is sure the result is the GP; where it is not, the
calibrated base with an uncertainty of its size, which grows the disagreement term.

On the QMex hydration free energies it is as good as the better of ILR and the plain
GP on each split kind (figures: ``docs/benchmarks/extrapolation.md``; what was tried
and rejected: ``docs/results/extrapolation_dGs.md``). Deterministic: the folds are
seeded and every fit is deterministic.
"""

from __future__ import annotations

import numpy as np

from bodisc.surrogates.ilr import ILR

__all__ = ["ExtrapolatingGP", "LinearBase"]


class LinearBase:
    """Trimmed average of five linear QMex/ILR fits that err differently.

    With categories: PLS-ILR with 4 and with 10 components, ridge ILR (penalty by
    generalised CV), PLS (8) on the descriptors alone (the paper's LR) and ridge on the
    descriptors. At each point the highest and the lowest of the five predictions are
    dropped and the other three averaged, so one member that extrapolates wildly (PLS on
    few rows can) cannot carry the base with it. Without categories (``C`` is ``None``
    at fit): the median of PLS (8), PLS (4) and ridge on the descriptors.
    ``fit(X, y, C)``, ``predict(X, C) -> (mean, None)`` as :class:`ILR`.

    Args:
        n_components: PLS components of the descriptor-only PLS member.
    """

    def __init__(self, n_components: int = 8) -> None:
        self.n_components = n_components
        self.members: list[ILR] = []
        self.use_categories = True

    def fit(self, X: np.ndarray, y: np.ndarray, C: np.ndarray | None = None) -> LinearBase:
        """Fit the members on the same rows; returns ``self``."""
        self.use_categories = C is not None
        k = self.n_components
        lr = ILR(kind="pls", n_components=k, use_categories=False).fit(X, y)
        if self.use_categories:
            self.members = [ILR(kind="pls", n_components=4).fit(X, y, C),
                            ILR(kind="pls", n_components=10).fit(X, y, C),
                            ILR(kind="ridge").fit(X, y, C),
                            lr,
                            ILR(kind="ridge", use_categories=False).fit(X, y)]
        else:
            self.members = [lr, ILR(kind="pls", n_components=4, use_categories=False).fit(X, y),
                            ILR(kind="ridge", use_categories=False).fit(X, y)]
        return self

    def member_predictions(self, X: np.ndarray, C: np.ndarray | None = None) -> np.ndarray:
        """Each member's predictions, shape ``(m, n_members)``."""
        assert self.members, "fit() first"
        return np.stack([m.predict(X, C if m.use_categories else None)[0]
                         for m in self.members], axis=1)

    def predict(self, X: np.ndarray, C: np.ndarray | None = None) -> tuple[np.ndarray, None]:
        """Mean of the members' predictions without the highest and lowest, ``(m,)``."""
        P = np.sort(self.member_predictions(X, C), axis=1)
        return P[:, 1:-1].mean(axis=1), None


class ExtrapolatingGP:
    """GP on descriptors gated with a reverse-regression-calibrated linear base.

    Args:
        kernel: Kernel of the GP component (``matern52``, ``matern32``, ``rbf``).
        n_components: PLS components of the linear base's first PLS member.
        gate_power: ``p`` of the gate ``w = (1 - sd_gp^2 / sd0^2) ^ p * r``.
        range_scale: Width of the range factor in units of the base's out-of-fold RMSE:
            ``r = P_in ^ range_power`` with ``P_in`` the probability that
            ``N(mu_lin, (range_scale s_lin)^2)`` lies inside the training label range;
            ``None`` or ``inf``: no range factor.
        range_power: Exponent ``k`` of the range factor.
        n_folds: Folds of the out-of-fold base predictions used for calibration.
        seed: Seed of the fold assignment.
        device: Device of the GP (``auto``, ``cpu``, ``cuda``).
    """

    #: Bounds of the calibration stretch ``1 / g``.
    STRETCH_BOUNDS = (0.5, 2.0)

    def __init__(self, kernel: str = "matern52", n_components: int = 8,
                 gate_power: float = 0.5, range_scale: float | None = 0.5,
                 range_power: float = 32.0, n_folds: int = 5, seed: int = 0,
                 device: str = "auto") -> None:
        self.kernel = kernel
        self.n_components = n_components
        self.gate_power = float(gate_power)
        self.range_scale = None if range_scale is None else float(range_scale)
        self.range_power = float(range_power)
        self.n_folds = int(n_folds)
        self.seed = int(seed)
        self.device = device
        self.gp: object = None
        self.lin: LinearBase | None = None
        self.stretch = 1.0
        self._p_mean = 0.0
        self._y_mean = 0.0
        self._y_range = (-np.inf, np.inf)
        self._lin_var = 0.0
        self._lin_rmse = 0.0

    def _new_lin(self) -> LinearBase:
        return LinearBase(n_components=self.n_components)

    def _oof(self, X: np.ndarray, y: np.ndarray, C: np.ndarray | None) -> np.ndarray:
        """Out-of-fold base predictions on the training rows, shape ``(n,)``."""
        n = X.shape[0]
        folds = min(self.n_folds, n)
        order = np.random.default_rng(self.seed).permutation(n)
        out = np.empty(n)
        for k in range(folds):
            val = order[k::folds]
            fit = np.setdiff1d(order, val)
            model = self._new_lin().fit(X[fit], y[fit], None if C is None else C[fit])
            out[val] = model.predict(X[val], None if C is None else C[val])[0]
        return out

    def fit(self, X: np.ndarray, y: np.ndarray, C: np.ndarray | None = None,
            init: dict[str, list[float]] | None = None,
            optimise: bool = True) -> ExtrapolatingGP:
        """Fit the GP, the linear base and the calibration.

        Args:
            X: Descriptors, shape ``(n, d)`` (NaN: training mean).
            y: Labels, shape ``(n,)``.
            C: Structure categories, shape ``(n, k)``; ``None``: linear base on the
                descriptors only.
            init: The GP component's starting hyperparameters (:meth:`hyper_state` of an
                earlier fit), as in :meth:`GPSurrogate.fit`; the linear base and the
                calibration are always fitted anew (they cost little).
            optimise: With ``init``, ``False`` only conditions the GP component on the
                labels with those hyperparameters.

        Returns:
            ``self``.
        """
        from bodisc.surrogates.gp import GPSurrogate

        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float).ravel()
        C = None if C is None else np.asarray(C, dtype=float)
        self.gp = GPSurrogate(kernel=self.kernel, device=self.device).fit(
            X, y, init=init, optimise=optimise)
        self.lin = self._new_lin().fit(X, y, C)
        self._y_mean = float(y.mean())
        self._y_range = (float(y.min()), float(y.max()))
        self.stretch, self._p_mean, self._lin_var = 1.0, self._y_mean, float(np.var(y))
        if X.shape[0] >= 6:
            p = self._oof(X, y, C)
            slope = np.polyfit(y, p, 1)[0] if np.ptp(y) > 0 else 1.0
            lo, hi = self.STRETCH_BOUNDS
            self.stretch = float(np.clip(1.0 / slope, lo, hi)) if slope > 0 else hi
            self._p_mean = float(p.mean())
            resid = y - self._calibrate(p)
            self._lin_var = float(np.mean(resid**2))
        self._lin_rmse = float(np.sqrt(self._lin_var))
        floor = 1e-6 * float(np.var(y)) + 1e-12
        self._lin_var = max(self._lin_var - self.gp.noise_variance(), floor)
        return self

    def hyper_state(self) -> dict[str, list[float]]:
        """The GP component's hyperparameters (``init`` of a later :meth:`fit`)."""
        assert self.gp is not None, "fit() first"
        return self.gp.hyper_state()

    def _calibrate(self, p: np.ndarray) -> np.ndarray:
        return self._y_mean + self.stretch * (p - self._p_mean)

    def components(self, X: np.ndarray, C: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The pieces of a prediction, each of shape ``(m,)``.

        Returns:
            ``mu_gp``, ``sd_gp``, ``sd0`` (GP prior sd), ``mu_lin`` (calibrated linear
            base), ``r`` (range factor) and ``w`` (weight of the GP).
        """
        import torch

        assert self.gp is not None and self.lin is not None, "fit() first"
        X = np.asarray(X, dtype=float)
        mu_gp, sd_gp = self.gp.predict(X)
        with torch.no_grad():
            Z = self.gp._features(X)
            prior_var = self.gp.model.covar_module(Z, diag=True).cpu().numpy()
        sd0 = np.sqrt(np.clip(prior_var, 1e-30, None)) * float(self.gp._y_std)
        C = None if C is None or not self.lin.use_categories else np.asarray(C, dtype=float)
        mu_lin = self._calibrate(self.lin.predict(X, C)[0])
        r = np.ones_like(mu_lin)
        if self.range_scale is not None and np.isfinite(self.range_scale):
            from scipy.special import ndtr

            lo, hi = self._y_range
            width = max(self.range_scale * self._lin_rmse, 1e-12)
            p_in = np.clip(ndtr((hi - mu_lin) / width) - ndtr((lo - mu_lin) / width), 0.0, 1.0)
            r = p_in**self.range_power
        w = np.clip(1.0 - (sd_gp / sd0) ** 2, 0.0, 1.0) ** self.gate_power * r
        return {"mu_gp": mu_gp, "sd_gp": sd_gp, "sd0": sd0, "mu_lin": mu_lin, "r": r, "w": w}

    def predict(self, X: np.ndarray, C: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and standard deviation of the latent function.

        Args:
            X: Descriptors, shape ``(m, d)``.
            C: Categories, shape ``(m, k)`` (when fitted with them).

        Returns:
            ``(mean, std)``, each of shape ``(m,)``, in label units.
        """
        p = self.components(X, C)
        w = p["w"]
        mean = w * p["mu_gp"] + (1.0 - w) * p["mu_lin"]
        var = (w * p["sd_gp"] ** 2 + (1.0 - w) * self._lin_var
               + w * (1.0 - w) * (p["mu_gp"] - p["mu_lin"]) ** 2)
        return mean, np.sqrt(var)
