"""Per-oracle-call metrics and extrapolation diagnostics of a campaign run.

The metrics that sample-efficiency benchmarks compare, computed after every oracle call
(the step is the number of calls paid for, failed ones included):

* ``best_so_far``: the best label found so far;
* ``top10_mean``: the mean of the 10 best distinct labels so far (fewer while there are
  fewer than 10);
* ``top10_auc``: the area under the ``top10_mean`` curve against oracle calls, divided by
  the budget, as in the PMO benchmark (Gao et al., "Sample efficiency matters", NeurIPS
  2022, ``top_auc`` with ``freq_log = 1``): trapezoids between consecutive calls starting
  from 0 before the first call, and, for a run that stopped before its budget, the last
  value carried to the budget (``finish=True``).

Duplicates count once: a molecule seen before adds no new value to the top 10 (so one
molecule cannot fill it twice), while its call still counts as a call. A failed call is a
call without a value. ``best_so_far`` and ``top10_mean`` are ``None`` until a first value
arrives; the AUC counts that stretch as 0, as PMO's curve starts at 0.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CallMetrics:
    """The metrics after one oracle call.

    Attributes:
        call: Number of oracle calls so far (1-based; the MLflow step).
        best_so_far: Best value so far, or ``None`` before the first value.
        top10_mean: Mean of the ``k`` best distinct values so far, or ``None``.
        top10_auc: Area under the ``top10_mean`` curve up to this call, divided by the
            budget (``finish=False``: not extended to the budget).
    """

    call: int
    best_so_far: float | None
    top10_mean: float | None
    top10_auc: float

    def as_dict(self) -> dict[str, float]:
        """The metrics that have a value, under their MLflow keys."""
        out = {"best_so_far": self.best_so_far, "top10_mean": self.top10_mean,
               "top10_auc": self.top10_auc}
        return {k: float(v) for k, v in out.items() if v is not None}


def per_call_metrics(calls: Sequence[tuple[str, float | None]], budget: int,
                     maximize: bool = True, k: int = 10) -> list[CallMetrics]:
    """The metrics after every call of a run, in call order.

    Args:
        calls: One ``(molecule key, value or None)`` per oracle call paid for, in order;
            ``None`` is a failed call.
        budget: The oracle-call budget the AUC is normalised by (``>= 1``).
        maximize: Whether larger values are better.
        k: How many best values the mean and AUC take (10 in PMO).

    Returns:
        One :class:`CallMetrics` per call, ``len(calls)`` long.

    Raises:
        ValueError: If ``budget`` or ``k`` is below 1.
    """
    if budget < 1 or k < 1:
        raise ValueError(f"budget ({budget}) and k ({k}) must be at least 1")
    sign = 1.0 if maximize else -1.0
    seen: set[str] = set()
    top: list[float] = []  # min-heap of the k best values in maximisation form
    area, prev = 0.0, 0.0
    out: list[CallMetrics] = []
    for i, (key, value) in enumerate(calls, start=1):
        if value is not None and value == value and key not in seen:
            seen.add(key)
            v = sign * float(value)
            if len(top) < k:
                heapq.heappush(top, v)
            elif v > top[0]:
                heapq.heapreplace(top, v)
        elif value is not None:
            seen.add(key)
        mean = sign * float(np.mean(top)) if top else None
        best = sign * max(top) if top else None
        now = 0.0 if mean is None else mean
        area += (now + prev) / 2.0
        prev = now
        out.append(CallMetrics(i, best, mean, area / budget))
    return out


def top_k_auc(calls: Sequence[tuple[str, float | None]], budget: int, maximize: bool = True,
              k: int = 10, finish: bool = True) -> float:
    """PMO's top-k AUC of a whole run.

    Args:
        calls: One ``(molecule key, value or None)`` per oracle call, in order.
        budget: The oracle-call budget.
        maximize: Whether larger values are better.
        k: How many best values the mean takes.
        finish: Carry the last top-k mean to the budget when the run used fewer calls
            (a run that stopped early), as PMO does for a finished run.

    Returns:
        The area under the top-k mean against calls, divided by ``budget``; 0 for no calls.
    """
    if not calls:
        return 0.0
    curve = per_call_metrics(calls[:budget], budget, maximize, k)
    auc = curve[-1].top10_auc
    last = curve[-1].top10_mean
    if finish and len(curve) < budget and last is not None:
        auc += (budget - len(curve)) * last / budget
    return auc


def standardize(X_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations of a training matrix (NaN-aware).

    Args:
        X_train: Descriptors of the training set, shape ``(n, d)``.

    Returns:
        ``(mean, std)``, each of shape ``(d,)``; a constant or empty column gets std 1.
    """
    mean = np.nanmean(X_train, axis=0) if len(X_train) else np.zeros(X_train.shape[1])
    std = np.nanstd(X_train, axis=0) if len(X_train) else np.ones(X_train.shape[1])
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return mean, std


def descriptor_distance(X_train: np.ndarray, x: np.ndarray) -> float:
    """Euclidean distance from ``x`` to the nearest training point, in z-scored descriptors.

    The descriptors are z-scored with the training set's mean and standard deviation (as
    the GP sees them); a missing value (NaN) is put at the training mean.

    Args:
        X_train: Training descriptors, shape ``(n, d)``, ``n >= 1``.
        x: The molecule's descriptors, shape ``(d,)``.

    Returns:
        The distance (in training standard deviations); NaN for an empty training set.
    """
    if len(X_train) == 0:
        return float("nan")
    mean, std = standardize(X_train)
    Z = np.nan_to_num((X_train - mean) / std)
    z = np.nan_to_num((np.asarray(x, dtype=float) - mean) / std)
    return float(np.sqrt(((Z - z) ** 2).sum(axis=1)).min())


def tanimoto_to(reference: str, smiles: Sequence[str], radius: int = 2,
                n_bits: int = 2048) -> np.ndarray:
    """Tanimoto similarity (Morgan fingerprints) of each molecule to one reference.

    Args:
        reference: SMILES of the reference molecule.
        smiles: SMILES of the molecules, ``m`` of them.
        radius: Morgan radius.
        n_bits: Fingerprint length.

    Returns:
        Similarities in ``[0, 1]``, shape ``(m,)``.
    """
    from rdkit import Chem, DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    if not len(smiles):
        return np.zeros(0)
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    fps = [gen.GetFingerprint(Chem.MolFromSmiles(s)) for s in smiles]
    fp = gen.GetFingerprint(Chem.MolFromSmiles(reference))
    return np.asarray(DataStructs.BulkTanimotoSimilarity(fp, fps), dtype=float)


def max_tanimoto(train_smiles: Sequence[str], smiles: str, radius: int = 2,
                 n_bits: int = 2048) -> float:
    """Largest Tanimoto similarity (Morgan fingerprints) of a molecule to a training set.

    Args:
        train_smiles: SMILES of the training molecules.
        smiles: The molecule.
        radius: Morgan radius.
        n_bits: Fingerprint length.

    Returns:
        The maximum similarity in ``[0, 1]``; NaN for an empty training set.
    """
    if not train_smiles:
        return float("nan")
    return float(tanimoto_to(smiles, train_smiles, radius, n_bits).max())


def extrapolation_summary(observed: Sequence[float], pred_mean: Sequence[float],
                          pred_std: Sequence[float], labels: Sequence[float]
                          ) -> dict[str, float]:
    """Calibration and error of the predictions made beyond the training range.

    Args:
        observed: The labels of the extrapolation steps, shape ``(m,)``.
        pred_mean: The surrogate's predicted means for them, shape ``(m,)``.
        pred_std: The predicted standard deviations, shape ``(m,)``.
        labels: Every label of the run (for the standard deviation the RMSE is divided by).

    Returns:
        ``count``; for ``count > 0`` also ``in68`` and ``in95`` (share of observed values
        within 1 and 1.96 predicted standard deviations of the mean), ``rmse`` and
        ``rmse_over_std`` (RMSE divided by the standard deviation of ``labels``), and
        ``mean_abs_z``.
    """
    obs = np.asarray(observed, dtype=float)
    mean = np.asarray(pred_mean, dtype=float)
    std = np.maximum(np.asarray(pred_std, dtype=float), 1e-12)
    out: dict[str, float] = {"count": float(len(obs))}
    if len(obs) == 0:
        return out
    z = np.abs(obs - mean) / std
    rmse = float(np.sqrt(np.mean((obs - mean) ** 2)))
    sigma = float(np.std(np.asarray(labels, dtype=float))) if len(labels) > 1 else 0.0
    out.update({"in68": float(np.mean(z <= 1.0)), "in95": float(np.mean(z <= 1.959964)),
                "rmse": rmse, "mean_abs_z": float(np.mean(z))})
    if sigma > 0:
        out["rmse_over_std"] = rmse / sigma
    return out
