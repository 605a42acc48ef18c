"""An exact GP with the Tanimoto kernel on Morgan count fingerprints, for large pools.

The fingerprint baseline of the sample-efficiency benchmarks: the GP of the PMO and
GAUCHE benchmarks (Gao et al. 2022; Griffiths et al. 2023), with GAUCHE's kernel

    k(a, b) = s * <a, b> / (|a|^2 + |b|^2 - <a, b>)

on count vectors ``a``, ``b`` (``s`` the output scale; the same formula as the gpytorch
kernel of ``bodisc.bench.extrapolation``), a constant mean and Gaussian noise,
hyperparameters by maximum marginal likelihood. It offers what the acquisition
strategies use (``predict``, ``predict_bound``, ``covariance_columns``,
``joint_samples``, ``noise_variance``), so bodisc's batch selection runs on it unchanged.

Inputs are sparse rows (:func:`count_fingerprints`; a QM9 molecule sets about 20 of
2048 bits), so the kernel of a block of candidates against the labels is one
sparse-times-dense product, over the bits the labelled molecules use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Candidates per block when scoring (rows of the dense ``(block, n)`` kernel).
BLOCK = 4096

#: Smallest noise variance (standardised labels).
MIN_NOISE = 1e-4


def count_fingerprints(smiles: Sequence[str], radius: int = 2, n_bits: int = 2048) -> Any:
    """Folded Morgan count fingerprints as a sparse matrix (the Tanimoto GP's input).

    Args:
        smiles: Molecules, SMILES.
        radius: Morgan radius (2: ECFP4-like).
        n_bits: Folded length.

    Returns:
        ``scipy.sparse.csr_matrix`` of shape ``(len(smiles), n_bits)``, float64 counts.

    Raises:
        ValueError: For a SMILES RDKit cannot read (the message names it).
    """
    import scipy.sparse as sp
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    indptr, indices, data = [0], [], []
    for s in smiles:
        mol = Chem.MolFromSmiles(s)
        if mol is None:
            raise ValueError(f"fingerprint: RDKit cannot read SMILES {s!r}")
        for bit, count in sorted(gen.GetCountFingerprint(mol).GetNonzeroElements().items()):
            indices.append(bit)
            data.append(float(count))
        indptr.append(len(indices))
    return sp.csr_matrix((np.array(data), np.array(indices, dtype=np.int64), np.array(indptr)),
                         shape=(len(smiles), n_bits))


def morgan_bits(smiles: Sequence[str], radius: int = 2, n_bits: int = 2048) -> Any:
    """Folded binary Morgan fingerprints (the MolPAL random-forest input).

    Returns:
        ``scipy.sparse.csr_matrix`` of shape ``(len(smiles), n_bits)``, float32 0/1.
    """
    import scipy.sparse as sp
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    indptr, indices = [0], []
    for s in smiles:
        mol = Chem.MolFromSmiles(s)
        if mol is None:
            raise ValueError(f"fingerprint: RDKit cannot read SMILES {s!r}")
        indices.extend(int(i) for i in gen.GetFingerprint(mol).GetOnBits())
        indptr.append(len(indices))
    return sp.csr_matrix((np.ones(len(indices), dtype=np.float32),
                          np.array(indices, dtype=np.int64), np.array(indptr)),
                         shape=(len(smiles), n_bits))


class TanimotoGP:
    """Exact GP, Tanimoto kernel, on :func:`count_fingerprints` rows (CPU, float64).

    Args:
        max_iter: L-BFGS iterations of the hyperparameter fit.
    """

    def __init__(self, max_iter: int = 50) -> None:
        self.max_iter = max_iter
        self.state: tuple[float, float, float] | None = None  # log s, log noise, mean

    # -- kernel -----------------------------------------------------------------------

    def _inter(self, A: Any) -> np.ndarray:
        """``<a, b>`` of candidate rows ``A`` ``(c, F)`` with the training rows: ``(c, n)``."""
        A = A.tocsr()
        sub = A[:, self._cols]
        return np.asarray(sub @ self._train_dense)

    def _tanimoto(self, A: Any) -> np.ndarray:
        inter = self._inter(A)
        size_a = np.asarray(A.multiply(A).sum(axis=1)).reshape(-1, 1)
        union = size_a + self._train_size[None, :] - inter
        return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)

    # -- fit --------------------------------------------------------------------------

    def fit(self, X: Any, y: np.ndarray) -> TanimotoGP:
        """Fit the hyperparameters (warm-started from the last fit) and factorise.

        Args:
            X: Fingerprint rows, shape ``(n, F)`` (sparse).
            y: Labels, shape ``(n,)`` (maximisation form).
        """
        import torch

        X = X.tocsr()
        y = np.asarray(y, dtype=float)
        self._cols = np.unique(X.indices)
        self._train_dense = X[:, self._cols].T.toarray()  # (F_used, n)
        self._train_size = np.asarray(X.multiply(X).sum(axis=1)).ravel()
        order = np.argsort(-y, kind="stable")  # best first: predict_bound's leading block
        T = self._tanimoto(X)
        self._y_mean = float(y.mean())
        self._y_std = float(y.std()) or 1.0
        z = (y - self._y_mean) / self._y_std
        Tt = torch.as_tensor(T[np.ix_(order, order)])
        zt = torch.as_tensor(z[order])
        log_s, log_n, c = self.state or (0.0, math.log(0.1), 0.0)
        params = torch.tensor([log_s, log_n, c], dtype=torch.float64, requires_grad=True)
        eye = torch.eye(len(y), dtype=torch.float64)

        def nll() -> torch.Tensor:
            noise = params[1].exp() + MIN_NOISE
            L = torch.linalg.cholesky(params[0].exp() * Tt + noise * eye)
            r = (zt - params[2]).unsqueeze(-1)
            a = torch.cholesky_solve(r, L)
            return 0.5 * (r * a).sum() + L.diagonal().log().sum()

        opt = torch.optim.LBFGS([params], max_iter=self.max_iter, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = nll()
            loss.backward()
            return loss

        try:
            opt.step(closure)
        except RuntimeError:  # a step into a non-positive-definite region: keep the start
            with torch.no_grad():
                params.copy_(torch.tensor([log_s, log_n, c], dtype=torch.float64))
        with torch.no_grad():
            self.state = tuple(float(v) for v in params)  # type: ignore[assignment]
            s, noise, mean = math.exp(self.state[0]), math.exp(self.state[1]) + MIN_NOISE, \
                self.state[2]
            self._s, self._noise, self._mean = s, noise, mean
            K = s * Tt + noise * eye
            self._L = torch.linalg.cholesky(K)
            self._alpha = torch.cholesky_solve((zt - mean).unsqueeze(-1), self._L).squeeze(-1)
        self._order = order
        self._train_dense = self._train_dense[:, order]
        self._train_size = self._train_size[order]
        return self

    # -- prediction -------------------------------------------------------------------

    def _block(self, A: Any, exact: bool, rows: int = 128) -> tuple[np.ndarray, np.ndarray]:
        import torch

        Ks = torch.as_tensor(self._s * self._tanimoto(A))  # (c, n)
        mean = self._mean + Ks @ self._alpha
        if exact:
            V = torch.linalg.solve_triangular(self._L, Ks.T, upper=False)
            var = self._s - V.square().sum(0)
        else:
            r = min(rows, self._L.shape[0])
            V = torch.linalg.solve_triangular(self._L[:r, :r], Ks[:, :r].T, upper=False)
            nearest = self._s - Ks.max(dim=1).values.square() / (self._s + self._noise)
            var = torch.minimum(self._s - V.square().sum(0), nearest)
        std = var.clamp_min(1e-30).sqrt()
        return (mean.numpy() * self._y_std + self._y_mean, std.numpy() * self._y_std)

    def _scan(self, X: Any, exact: bool) -> tuple[np.ndarray, np.ndarray]:
        import torch

        X = X.tocsr()
        means, stds = [], []
        with torch.no_grad():
            for start in range(0, X.shape[0], BLOCK):
                m, s = self._block(X[start : start + BLOCK], exact)
                means.append(m)
                stds.append(s)
        if not means:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(means), np.concatenate(stds)

    def predict(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation, each ``(m,)``, label units."""
        return self._scan(X, exact=True)

    def predict_bound(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Exact mean and an upper bound on the standard deviation (see ``GPSurrogate``)."""
        return self._scan(X, exact=False)

    def covariance_columns(self, X: Any, idx: np.ndarray) -> np.ndarray:
        """Posterior covariance of all candidates ``(m,)`` with some ``(k,)``: ``(m, k)``."""
        import torch

        X = X.tocsr()
        sub = X[np.asarray(idx)]
        with torch.no_grad():
            Ks = torch.as_tensor(self._s * self._tanimoto(sub))
            Vs = torch.linalg.solve_triangular(self._L, Ks.T, upper=False)  # (n, k)
            cols = []
            for start in range(0, X.shape[0], BLOCK):
                Xc = X[start : start + BLOCK]
                Kc = torch.as_tensor(self._s * self._tanimoto(Xc))
                Vc = torch.linalg.solve_triangular(self._L, Kc.T, upper=False)
                prior = torch.as_tensor(self._s * _pair_tanimoto(Xc, sub))
                cols.append(prior - Vc.T @ Vs)
        return torch.cat(cols).numpy() * self._y_std**2

    def joint_samples(self, X: Any, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """Joint posterior draws over a candidate set, shape ``(n_samples, m)``."""
        from bodisc.surrogates.gp import sample_joint

        mean, _ = self.predict(X)
        cov = self.covariance_columns(X, np.arange(X.shape[0]))
        return sample_joint(mean, cov, n_samples, rng)

    def noise_variance(self) -> float:
        """Noise variance in label units squared."""
        return self._noise * self._y_std**2


def _pair_tanimoto(A: Any, B: Any) -> np.ndarray:
    """Tanimoto similarity of every row of ``A`` with every row of ``B``: ``(a, b)``."""
    inter = np.asarray((A @ B.T).todense())
    union = (np.asarray(A.multiply(A).sum(axis=1)).reshape(-1, 1)
             + np.asarray(B.multiply(B).sum(axis=1)).reshape(1, -1))
    union = union - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
