"""Extrapolation benchmark: how surrogates do outside their training range or structures.

The protocol of the QMex/ILR paper (Shimakawa, Kumada, Sato 2024): a split names training
rows and test rows; a model is fitted on the training rows and scored by the RMSE on the
test rows divided by ``sigma``, the standard deviation of the label over the whole table
(population std; 3.299 kcal/mol for the 631 hydration free energies of
``shared/data/qmex_dGs``, which its README rounds to 3.30).

Split kinds: ``property`` (train on a central band of ``y``, test on both tails),
``cluster`` (train on some clusters of molecules, test on the rest), ``similarity`` and
``interpolation`` as the split file names them. Splits come from a file in the format of
``idx_bench_dGs.csv`` (:func:`load_split_csv`) or are generated for any table
(:func:`property_range_splits`, :func:`cluster_splits`).

Models (:data:`MODELS`; every one has ``fit(X, y, C)`` and ``predict(X, C) -> (mean, std or
None)``):

=============== ==============================================================================
``lr``          PLS (8 components) on the descriptors alone: the paper's "LR"
``ilr``         PLS-ILR as published: the indicator rule on all rows of the table
``ilr_train``   PLS-ILR with the indicator rule on the training rows only
``ilr_ridge``   ridge ILR, penalty by generalised CV, indicator rule on the training rows
``gp``          the project's exact GP, Matern-5/2 ARD on z-scored descriptors
``xgp``         :class:`bodisc.surrogates.extrapolating.ExtrapolatingGP`
``rf``          random forest (500 trees) on descriptors; std across trees
``tanimoto_gp`` GP with a Tanimoto kernel on Morgan count fingerprints (radius 2, 2048)
=============== ==============================================================================

``gp``, ``xgp`` and every other kind of the surrogate registry
(:data:`bodisc.surrogates.SURROGATES`, e.g. ``sparse``) are built as a campaign builds
them; ``ilr`` and ``ilr_ridge`` here are the paper's protocol, not the registry's kinds of
those names (which add an out-of-fold standard deviation).

Bad input raises :class:`BenchInputError` (a ``ValueError`` and a
:class:`~bodisc.errors.BodiscError`) whose message names what is wrong.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from bodisc.errors import BodiscError
from bodisc.plotting import pyplot, save
from bodisc.surrogates import SURROGATES

if TYPE_CHECKING:
    import pandas as pd
    import torch

__all__ = [
    "MODELS",
    "BenchInputError",
    "Split",
    "TanimotoGP",
    "bench_extrapolation",
    "cluster_splits",
    "load_split_csv",
    "morgan_counts",
    "plot_results",
    "property_range_splits",
    "results_markdown",
    "run_extrapolation_bench",
    "write_results",
]

#: Training sizes of the generated splits (and of the paper's main grid).
DEFAULT_N_IN: tuple[int, ...] = (50, 100, 200, 500)


class BenchInputError(BodiscError, ValueError):
    """The benchmark's input (table, columns, splits, model names) is not usable."""

    exit_code = 2


class Split(NamedTuple):
    """One train/test split.

    Attributes:
        name: Split kind (``property``, ``cluster``, ``similarity``, ...).
        n_in: Number of training rows.
        train: Row positions of the training rows, shape ``(n_in,)``.
        test: Row positions of the test rows, shape ``(n_test,)``.
        row: Row of the split file it came from, or the generated split's number.
    """

    name: str
    n_in: int
    train: np.ndarray
    test: np.ndarray
    row: int | None = None


# --------------------------------------------------------------------------------------
# splits
# --------------------------------------------------------------------------------------
def load_split_csv(path: str | Path, rows: Iterable[int] | None = None) -> list[Split]:
    """Read a split file in the format of the QMex benchmark (``idx_bench_dGs.csv``).

    Columns used: ``extra`` (split kind), ``idx_inter`` and ``idx_extra`` (JSON lists of
    0-based row positions into the data table: training and test rows). ``n_in`` is the
    length of ``idx_inter``.

    Args:
        path: The CSV file.
        rows: Rows of the file to keep (0-based, as pandas numbers them); ``None``: all.

    Returns:
        One :class:`Split` per row, ``row`` set to the file's row number.

    Raises:
        BenchInputError: Missing file or columns, a row out of range, an index list that
            is not a list of non-negative integers.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise BenchInputError(f"split file {path} does not exist")
    frame = pd.read_csv(path)
    missing = [c for c in ("extra", "idx_inter", "idx_extra") if c not in frame.columns]
    if missing:
        raise BenchInputError(
            f"split file {path} lacks the column(s) {', '.join(missing)}; it needs extra, "
            "idx_inter and idx_extra (JSON lists of row indices)"
        )
    wanted = list(range(len(frame))) if rows is None else [int(r) for r in rows]
    bad = [r for r in wanted if not 0 <= r < len(frame)]
    if bad:
        raise BenchInputError(
            f"split file {path} has rows 0..{len(frame) - 1}; asked for row(s) {bad}"
        )
    splits = []
    for r in wanted:
        rec = frame.iloc[r]
        train = _index_list(rec["idx_inter"], path, r, "idx_inter")
        test = _index_list(rec["idx_extra"], path, r, "idx_extra")
        splits.append(Split(str(rec["extra"]), len(train), train, test, r))
    return splits


def _index_list(text: object, path: Path, row: int, column: str) -> np.ndarray:
    try:
        values = json.loads(str(text))
        arr = np.asarray(values, dtype=np.int64)
        ok = isinstance(values, list) and arr.ndim == 1 and np.all(arr >= 0)
        ok = ok and all(float(v) == int(v) for v in values)
    except (ValueError, TypeError):
        ok, arr = False, np.empty(0, dtype=np.int64)
    if not ok:
        raise BenchInputError(
            f"split file {path}, row {row}, column {column}: not a JSON list of "
            f"non-negative integers: {str(text)[:60]!r}"
        )
    return arr


def property_range_splits(y: np.ndarray, n_in: Sequence[int] = DEFAULT_N_IN,
                          band_factor: float = 1.25, min_tail: float = 0.1,
                          seed: int = 0) -> list[Split]:
    """Property-range splits: train inside a central band of ``y``, test on both tails.

    For each training size ``N``, the band is the ``ceil(band_factor * N)`` rows nearest
    the median in rank, but never more than ``1 - min_tail`` of the rows (both tails
    together keep at least ``min_tail`` of them); every row outside the band is a test
    row, and ``N`` training rows are drawn from the band without replacement.

    Args:
        y: Labels of the whole table, shape ``(n,)``.
        n_in: Training sizes.
        band_factor: Band size over training size.
        min_tail: Smallest fraction of rows in the two tails together.
        seed: Seed of the draws (one generator for all sizes, in order).

    Returns:
        One ``property`` split per size.

    Raises:
        BenchInputError: A training size larger than the band can hold.
    """
    y = np.asarray(y, dtype=float).ravel()
    n = y.size
    order = np.argsort(y, kind="stable")
    max_band = int(math.floor((1.0 - min_tail) * n))
    rng = np.random.default_rng(seed)
    splits = []
    for k, size in enumerate(int(s) for s in n_in):
        if size < 2 or size > max_band:
            raise BenchInputError(
                f"property-range split with N_in = {size}: the central band of {n} rows can "
                f"hold at most {max_band} training rows (min_tail = {min_tail}) and at least 2"
            )
        band_size = min(max_band, int(math.ceil(band_factor * size)))
        start = (n - band_size) // 2
        band = order[start : start + band_size]
        test = np.sort(np.concatenate([order[:start], order[start + band_size :]]))
        train = np.sort(rng.choice(band, size=size, replace=False))
        splits.append(Split("property", size, train, test, k))
    return splits


def cluster_splits(X: np.ndarray, n_in: Sequence[int] = DEFAULT_N_IN,
                   n_clusters: int | None = None, seed: int = 0) -> list[Split]:
    """Structure splits: train on whole clusters, test on all the others.

    Rows are clustered by k-means (scikit-learn, ``random_state = seed``) on z-scored
    features (NaN: column mean); ``n_clusters`` defaults to ``clip(n // 15, 5, 50)``.
    For each size, clusters are taken in a seeded random order until the training set
    holds at least ``N`` rows (so the realised ``n_in`` may exceed ``N`` by less than one
    cluster); every other row is a test row.

    Args:
        X: Features of the whole table (descriptors or fingerprints), shape ``(n, d)``.
        n_in: Training sizes.
        n_clusters: Number of clusters.
        seed: Seed of the clustering and of the cluster order.

    Returns:
        One ``cluster`` split per size.

    Raises:
        BenchInputError: A size that leaves no cluster for testing.
    """
    from sklearn.cluster import KMeans

    X = np.asarray(X, dtype=float)
    n = X.shape[0]
    k = int(n_clusters) if n_clusters else int(np.clip(n // 15, 5, 50))
    if not 2 <= k <= n:
        raise BenchInputError(f"cluster split: {k} clusters for {n} rows is not possible")
    with np.errstate(all="ignore"):
        mean, std = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
    Z = np.where(np.isfinite(X), (X - mean) / std, 0.0)
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(Z)
    rng = np.random.default_rng(seed)
    splits = []
    for j, size in enumerate(int(s) for s in n_in):
        order = rng.permutation(k)
        chosen: list[int] = []
        count = 0
        for c in order:
            if count >= size:
                break
            chosen.append(int(c))
            count += int((labels == c).sum())
        train = np.flatnonzero(np.isin(labels, chosen))
        test = np.flatnonzero(~np.isin(labels, chosen))
        if size < 2 or train.size < size or test.size == 0:
            raise BenchInputError(
                f"cluster split with N_in = {size}: the {n} rows in {k} clusters leave no "
                "cluster to test on; use a smaller N_in"
            )
        splits.append(Split("cluster", int(train.size), train, test, j))
    return splits


# --------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------
def morgan_counts(smiles: Sequence[str], radius: int = 2, n_bits: int = 2048) -> np.ndarray:
    """Morgan count fingerprints.

    Args:
        smiles: ``n`` SMILES strings.
        radius: Morgan radius.
        n_bits: Folded length.

    Returns:
        Counts, shape ``(n, n_bits)``, float64.

    Raises:
        BenchInputError: A SMILES RDKit cannot parse (named with its row).
    """
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdFingerprintGenerator

    RDLogger.DisableLog("rdApp.*")
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    out = np.zeros((len(smiles), n_bits))
    for i, s in enumerate(smiles):
        mol = Chem.MolFromSmiles(str(s))
        if mol is None:
            raise BenchInputError(f"row {i}: RDKit cannot parse the SMILES {s!r}")
        out[i] = gen.GetCountFingerprintAsNumPy(mol)
    return out


def _tanimoto_kernel_class() -> type:
    """The gpytorch Tanimoto kernel class (built lazily: gpytorch is a heavy import)."""
    from gpytorch.kernels import Kernel

    class TanimotoKernel(Kernel):
        """Tanimoto similarity ``<x, x'> / (|x|^2 + |x'|^2 - <x, x'>)``.

        On bit vectors this is the Jaccard index; on counts the usual real-valued
        extension. It has no hyperparameters (wrap it in a ``ScaleKernel``).
        """

        has_lengthscale = False

        def forward(self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False,
                    last_dim_is_batch: bool = False, **params: Any) -> torch.Tensor:
            if diag:
                dot = (x1 * x2).sum(-1)
                n1, n2 = (x1 * x1).sum(-1), (x2 * x2).sum(-1)
            else:
                dot = x1 @ x2.transpose(-2, -1)
                n1 = (x1 * x1).sum(-1, keepdim=True)
                n2 = (x2 * x2).sum(-1, keepdim=True).transpose(-2, -1)
            denom = n1 + n2 - dot
            return (dot / denom.clamp_min(1e-12)).where(denom > 0, dot.new_ones(()))

    return TanimotoKernel


class TanimotoGP:
    """Exact GP with a scaled Tanimoto kernel on fingerprints (botorch ``SingleTaskGP``).

    Outcome standardised, constant mean, Gaussian likelihood; hyperparameters by
    L-BFGS-B on the marginal likelihood (at most 300 iterations), float64 on CPU.
    ``fit``/``predict`` take fingerprints as ``X``; ``C`` is ignored.
    """

    def __init__(self) -> None:
        self.model: Any = None

    def fit(self, X: np.ndarray, y: np.ndarray, C: np.ndarray | None = None) -> TanimotoGP:
        """Fit on fingerprints ``X`` ``(n, b)`` and labels ``y`` ``(n,)``."""
        import torch
        from botorch.models import SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from botorch.optim.fit import fit_gpytorch_mll_scipy
        from botorch.settings import validate_input_scaling
        from gpytorch.kernels import ScaleKernel
        from gpytorch.mlls import ExactMarginalLogLikelihood

        from bodisc.surrogates.gp import MAX_FIT_ITERATIONS, torch_threads

        tx = torch.as_tensor(np.asarray(X, dtype=float), dtype=torch.float64)
        ty = torch.as_tensor(np.asarray(y, dtype=float).reshape(-1, 1), dtype=torch.float64)
        with validate_input_scaling(False):
            model = SingleTaskGP(tx, ty, covar_module=ScaleKernel(_tanimoto_kernel_class()()),
                                 outcome_transform=Standardize(m=1))
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        with torch_threads(1):
            mll.train()
            fit_gpytorch_mll_scipy(mll, options={"maxiter": MAX_FIT_ITERATIONS})
        mll.eval()
        self.model = model
        return self

    def predict(self, X: np.ndarray, C: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and latent standard deviation, each ``(m,)``."""
        import torch

        from bodisc.surrogates.gp import torch_threads

        tx = torch.as_tensor(np.asarray(X, dtype=float), dtype=torch.float64)
        with torch.no_grad(), torch_threads(1):
            post = self.model.posterior(tx)
            mean = post.mean.squeeze(-1).numpy()
            std = post.variance.clamp_min(1e-30).sqrt().squeeze(-1).numpy()
        return mean, std


class _RandomForest:
    """Random forest on descriptors (NaN: training mean); std across the trees."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray, C: np.ndarray | None = None) -> _RandomForest:
        from sklearn.ensemble import RandomForestRegressor

        from bodisc.surrogates.gp import Scaler

        self.scaler = Scaler.fit(np.asarray(X, dtype=float))
        self.model = RandomForestRegressor(n_estimators=500, random_state=self.seed, n_jobs=1)
        self.model.fit(self.scaler.transform(np.asarray(X, dtype=float)), y)
        return self

    def predict(self, X: np.ndarray, C: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        Z = self.scaler.transform(np.asarray(X, dtype=float))
        per_tree = np.stack([t.predict(Z) for t in self.model.estimators_])
        return per_tree.mean(axis=0), per_tree.std(axis=0)


class _Surrogate:
    """A registered surrogate kind, built as a campaign builds it, as a benchmark model.

    A kind that uses categories gets them appended to the descriptors.
    """

    def __init__(self, kind: str, **options: Any) -> None:
        self.spec, self.options = SURROGATES[kind], options
        self.model: Any = None

    def _inputs(self, X: np.ndarray, C: np.ndarray | None) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if not self.spec.uses_categories:
            return X
        assert C is not None, "a kind that uses categories needs them"
        return np.hstack([X, np.asarray(C, dtype=float)])

    def fit(self, X: np.ndarray, y: np.ndarray, C: np.ndarray | None = None) -> _Surrogate:
        from bodisc.surrogates import N_CATEGORIES

        options = dict(self.options)
        if self.spec.uses_categories and C is not None and C.shape[1] != N_CATEGORIES:
            options["n_categories"] = C.shape[1]  # a table with some of the categories
        self.model = self.spec.build(**options).fit(self._inputs(X, C), y)
        return self

    def predict(self, X: np.ndarray, C: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.model.predict(self._inputs(X, C))


def _ilr(kind: str, use_categories: bool = True) -> Callable[[int], Any]:
    def build(seed: int) -> Any:
        from bodisc.surrogates.ilr import ILR

        return ILR(kind=kind, use_categories=use_categories)

    return build


def _registered(kind: str, seeded: bool = False) -> ModelSpec:
    """The benchmark model of a registered surrogate kind (``seeded``: it takes ``seed``)."""
    spec = SURROGATES[kind]

    def build(seed: int) -> Any:
        return _Surrogate(kind, **({"seed": seed} if seeded else {}))

    return ModelSpec(build, categories=spec.uses_categories,
                     description=f"surrogate kind {kind!r}: {spec.description}")


@dataclass(frozen=True)
class ModelSpec:
    """A benchmark model.

    Attributes:
        build: ``seed -> model`` with ``fit(X, y, C)`` and ``predict(X, C)``.
        features: ``descriptors`` or ``fingerprints`` (Morgan counts of the SMILES).
        categories: Whether the model uses the structure categories.
        whole_table_rule: Whether the ILR indicator rule is computed on all rows.
        description: One line for tables and ``--help``.
    """

    build: Callable[[int], Any]
    features: str = "descriptors"
    categories: bool = False
    whole_table_rule: bool = False
    description: str = ""


#: The benchmark's models, by name (the one list the CLI's choices come from): its own
#: (the paper's LR and ILR variants, which ``ilr`` and ``ilr_ridge`` of the surrogate
#: registry are not: those add an out-of-fold std and cannot see the whole table, and the
#: baselines) and every registered surrogate kind, built as a campaign builds it.
MODELS: dict[str, ModelSpec] = {
    "lr": ModelSpec(_ilr("pls", use_categories=False),
                    description="PLS (8) on descriptors (the paper's LR)"),
    "ilr": ModelSpec(_ilr("pls"), categories=True, whole_table_rule=True,
                     description="PLS-ILR as published (indicator rule on the whole table)"),
    "ilr_train": ModelSpec(_ilr("pls"), categories=True,
                           description="PLS-ILR, indicator rule on training rows"),
    "ilr_ridge": ModelSpec(_ilr("ridge"), categories=True,
                           description="ridge ILR, GCV penalty, rule on training rows"),
    "gp": _registered("gp"),
    "xgp": _registered("xgp", seeded=True),
    "rf": ModelSpec(lambda seed: _RandomForest(seed), description="random forest, 500 trees"),
    "tanimoto_gp": ModelSpec(lambda seed: TanimotoGP(), features="fingerprints",
                             description="Tanimoto GP on Morgan counts (r 2, 2048)"),
}
MODELS.update({kind: _registered(kind) for kind in SURROGATES if kind not in MODELS})

#: Models run when none are named.
DEFAULT_MODELS: tuple[str, ...] = ("lr", "ilr", "ilr_ridge", "gp", "xgp", "rf", "tanimoto_gp")


# --------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------
def _check_models(models: Sequence[str]) -> list[str]:
    names = list(models)
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        raise BenchInputError(
            f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}"
        )
    if not names:
        raise BenchInputError(f"no model named; choose from {', '.join(MODELS)}")
    return names


def _check_splits(splits: Sequence[Split | tuple], n_rows: int) -> list[Split]:
    out = []
    for k, s in enumerate(splits):
        if not isinstance(s, Split):
            if len(s) not in (4, 5):
                raise BenchInputError(
                    f"split {k} must be (name, n_in, train_idx, test_idx[, row]); "
                    f"it has {len(s)} items"
                )
            s = Split(*s)
        label = f"split row {s.row}" if s.row is not None else f"split {k} ({s.name})"
        train = np.asarray(s.train, dtype=np.int64).ravel()
        test = np.asarray(s.test, dtype=np.int64).ravel()
        for part, idx in (("training", train), ("test", test)):
            if idx.size and (idx.max() >= n_rows or idx.min() < 0):
                bad = int(idx.max()) if idx.max() >= n_rows else int(idx.min())
                raise BenchInputError(
                    f"{label} names {part} index {bad} but the table has {n_rows} rows"
                )
        if train.size < 2 or test.size == 0:
            raise BenchInputError(
                f"{label} has {train.size} training and {test.size} test rows; "
                "it needs at least 2 and 1"
            )
        out.append(Split(str(s.name), int(train.size), train, test, s.row))
    return out


def run_extrapolation_bench(
    table: pd.DataFrame,
    target: str,
    descriptor_cols: Sequence[str],
    splits: Sequence[Split | tuple],
    *,
    category_cols: Sequence[str] | None = None,
    smiles_col: str = "smiles",
    models: Sequence[str] = DEFAULT_MODELS,
    sigma: float | None = None,
    seed: int = 0,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Fit every model on every split and score it on the split's test rows.

    Args:
        table: One row per molecule: the label, descriptors, and categories or SMILES.
        target: Label column (finite everywhere).
        descriptor_cols: Descriptor columns (NaN allowed: models impute).
        splits: :class:`Split` s or ``(name, n_in, train_idx, test_idx[, row])`` tuples with
            0-based row positions into ``table``.
        category_cols: The 44 category columns (or any 0/1 columns); ``None``: computed
            from ``smiles_col`` with :func:`bodisc.descriptors.categories.category_matrix`.
        smiles_col: SMILES column (categories when not given; fingerprints).
        models: Names from :data:`MODELS`.
        sigma: Divisor of the RMSE; ``None``: population std of ``target`` over the table.
        seed: Seed handed to the models that draw random numbers.
        progress: Called with each record as it is made.

    Returns:
        One record per (split, model): ``split``, ``row``, ``n_in``, ``n_test``, ``model``,
        ``rmse``, ``rmse_over_sigma``, ``seconds``.

    Raises:
        BenchInputError: Missing columns (named), NaN labels, split indices beyond the
            table, unknown models, a SMILES column needed but absent.
    """
    names = _check_models(models)
    columns = set(table.columns)
    if target not in columns:
        raise BenchInputError(f"label column {target!r} is not in the table")
    missing = [c for c in descriptor_cols if c not in columns]
    if missing:
        raise BenchInputError(f"descriptor column(s) missing from the table: {', '.join(missing)}")
    if not descriptor_cols:
        raise BenchInputError("no descriptor columns named")
    y = np.asarray(table[target], dtype=float)
    nan_rows = np.flatnonzero(~np.isfinite(y))
    if nan_rows.size:
        shown = ", ".join(str(i) for i in nan_rows[:10])
        raise BenchInputError(
            f"label column {target!r} has {nan_rows.size} NaN or infinite value(s), rows {shown}"
        )
    X = table[list(descriptor_cols)].to_numpy(dtype=float)
    checked = _check_splits(splits, len(table))
    specs = {n: MODELS[n] for n in names}
    need_smiles = any(s.features == "fingerprints" for s in specs.values()) or (
        category_cols is None and any(s.categories for s in specs.values())
    )
    if need_smiles and smiles_col not in columns:
        raise BenchInputError(
            f"SMILES column {smiles_col!r} is not in the table; the models "
            f"{', '.join(names)} need it for categories or fingerprints"
        )
    C = None
    if any(s.categories for s in specs.values()):
        if category_cols is not None:
            missing = [c for c in category_cols if c not in columns]
            if missing:
                raise BenchInputError(
                    f"category column(s) missing from the table: {', '.join(missing)}"
                )
            C = table[list(category_cols)].to_numpy(dtype=float)
        else:
            from bodisc.descriptors.categories import category_matrix

            C = category_matrix(table[smiles_col].astype(str).tolist()).astype(float)
    FP = None
    if any(s.features == "fingerprints" for s in specs.values()):
        FP = morgan_counts(table[smiles_col].astype(str).tolist())
    sigma = float(np.std(y)) if sigma is None else float(sigma)
    if not sigma > 0:
        raise BenchInputError(f"sigma must be positive, got {sigma}")

    records = []
    for split in checked:
        tr, te = split.train, split.test
        for name, spec in specs.items():
            feats = FP if spec.features == "fingerprints" else X
            start = time.perf_counter()
            model = spec.build(seed)
            c_tr = None if not spec.categories else C[tr]
            c_te = None if not spec.categories else C[te]
            if spec.whole_table_rule:
                model.fit(feats[tr], y[tr], c_tr, C_pool=C)
            else:
                model.fit(feats[tr], y[tr], c_tr)
            mean, _ = model.predict(feats[te], c_te)
            seconds = time.perf_counter() - start
            rmse = float(np.sqrt(np.mean((np.asarray(mean).ravel() - y[te]) ** 2)))
            record = {"split": split.name, "row": split.row, "n_in": int(tr.size),
                      "n_test": int(te.size), "model": name, "rmse": rmse,
                      "rmse_over_sigma": rmse / sigma, "seconds": seconds}
            records.append(record)
            if progress is not None:
                progress(record)
    return records


# --------------------------------------------------------------------------------------
# reports
# --------------------------------------------------------------------------------------
def _pivot(records: Sequence[dict[str, Any]]) -> tuple[list[tuple], list[str], dict]:
    models: list[str] = []
    keys: list[tuple] = []
    cell: dict[tuple, float] = {}
    for r in records:
        key = (r["split"], r["n_in"], r.get("row"))
        if key not in keys:
            keys.append(key)
        if r["model"] not in models:
            models.append(r["model"])
        cell[(key, r["model"])] = r["rmse_over_sigma"]
    return keys, models, cell


def results_markdown(records: Sequence[dict[str, Any]]) -> str:
    """A markdown table: one row per split, one column per model, then averages per kind.

    Args:
        records: Output of :func:`run_extrapolation_bench`.

    Returns:
        The table as text (RMSE / sigma, two decimals).
    """
    keys, models, cell = _pivot(records)
    lines = ["| split | row | N_in | " + " | ".join(models) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in models) + " |"]
    for key in keys:
        vals = [cell.get((key, m)) for m in models]
        text = ["" if v is None else f"{v:.2f}" for v in vals]
        row = "" if key[2] is None else str(key[2])
        lines.append(f"| {key[0]} | {row} | {key[1]} | " + " | ".join(text) + " |")
    for kind in dict.fromkeys(k[0] for k in keys):
        vals = []
        for m in models:
            xs = [cell[(k, m)] for k in keys if k[0] == kind and (k, m) in cell]
            vals.append(f"**{np.mean(xs):.3f}**" if xs else "")
        lines.append(f"| {kind} mean |  |  | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def plot_results(records: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """RMSE / sigma against N_in, one line per model, one panel per split kind (PNG).

    Args:
        records: Output of :func:`run_extrapolation_bench`.
        path: PNG file to write.

    Returns:
        The path written.
    """
    plt = pyplot()
    import matplotlib.ticker

    kinds = list(dict.fromkeys(r["split"] for r in records))
    models = list(dict.fromkeys(r["model"] for r in records))
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.6), squeeze=False,
                             sharey=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for m in models:
            pts: dict[int, list[float]] = {}
            for r in records:
                if r["split"] == kind and r["model"] == m:
                    pts.setdefault(r["n_in"], []).append(r["rmse_over_sigma"])
            xs = sorted(pts)
            ax.plot(xs, [np.mean(pts[x]) for x in xs], marker="o", label=m)
        ax.set_xscale("log")
        ticks = sorted({r["n_in"] for r in records if r["split"] == kind})
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xticks(ticks, [str(t) for t in ticks], fontsize=8)
        ax.set_title(kind)
        ax.set_xlabel("N_in (training molecules)")
        ax.set_ylabel("RMSE / sigma (test)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    return save(fig, path, dpi=120)


def write_results(records: Sequence[dict[str, Any]], out_dir: str | Path,
                  stem: str = "extrapolation") -> dict[str, Path]:
    """Write the records as CSV, JSON, a markdown table and a PNG plot.

    Args:
        records: Output of :func:`run_extrapolation_bench`.
        out_dir: Folder (created).
        stem: File name stem.

    Returns:
        ``{"csv": ..., "json": ..., "md": ..., "png": ...}``.
    """
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / f"{stem}.csv", "json": out / f"{stem}.json",
             "md": out / f"{stem}.md", "png": out / f"{stem}.png"}
    pd.DataFrame(list(records)).to_csv(paths["csv"], index=False)
    paths["json"].write_text(json.dumps(list(records), indent=1) + "\n")
    paths["md"].write_text(results_markdown(records))
    plot_results(records, paths["png"])
    return paths


def _parse_columns(spec: str | Sequence[str], columns: Sequence[str], what: str) -> list[str]:
    """``a,b,c``, ``first:last`` (inclusive, table order) or a list of names."""
    cols = list(columns)
    if isinstance(spec, str):
        text = spec.strip()
        if ":" in text and "," not in text:
            first, last = (t.strip() for t in text.split(":", 1))
            missing = [c for c in (first, last) if c not in cols]
            if missing:
                raise BenchInputError(f"{what} range {text!r}: no column(s) {', '.join(missing)}")
            i, j = cols.index(first), cols.index(last)
            if j < i:
                raise BenchInputError(f"{what} range {text!r}: {last} comes before {first}")
            return cols[i : j + 1]
        names = [t.strip() for t in text.split(",") if t.strip()]
    else:
        names = list(spec)
    missing = [c for c in names if c not in cols]
    if missing:
        raise BenchInputError(f"{what} column(s) missing from the table: {', '.join(missing)}")
    return names


def bench_extrapolation(
    data_csv: str | Path,
    descriptors: str | Sequence[str],
    categories_csv: str | Path | None = None,
    splits_csv: str | Path | None = None,
    json_out: str | Path | None = None,
    out_dir: str | Path | None = None,
    models: Sequence[str] = DEFAULT_MODELS,
    rows: Iterable[int] | None = None,
    *,
    target: str | None = None,
    smiles_col: str = "smiles",
    n_in: Sequence[int] = DEFAULT_N_IN,
    seed: int = 0,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """The benchmark from files, as the CLI runs it.

    Args:
        data_csv: Table with SMILES, the label and the descriptors.
        descriptors: Descriptor columns: ``"a,b,c"``, ``"mw:dEbase"`` (a range in table
            order) or a list.
        categories_csv: CSV with the category columns (any of
            :data:`~bodisc.descriptors.categories.CATEGORY_NAMES` it has), same rows in the
            same order; ``None``: computed from the SMILES.
        splits_csv: Split file (:func:`load_split_csv`); ``None``: property-range and
            cluster splits generated for ``n_in`` (training sizes that do not fit the table
            are skipped).
        json_out: Where to write the records as JSON (``None``: not written).
        out_dir: Where to write CSV, markdown and PNG (``None``: not written).
        models: Model names (:data:`MODELS`).
        rows: Rows of the split file to run (``None``: all that have test rows).
        target: Label column; ``None``: the first numeric column that is not a descriptor.
        smiles_col: SMILES column.
        n_in: Training sizes of generated splits.
        seed: Seed of generated splits and of the models.
        progress: Called with each record as it is made.

    Returns:
        The records of :func:`run_extrapolation_bench`.

    Raises:
        BenchInputError: Any input problem, with the file and the column or row named.
    """
    import pandas as pd

    from bodisc.descriptors.categories import CATEGORY_NAMES

    data_csv = Path(data_csv)
    if not data_csv.is_file():
        raise BenchInputError(f"data file {data_csv} does not exist")
    table = pd.read_csv(data_csv)
    desc = _parse_columns(descriptors, table.columns, "descriptor")
    if target is None:
        numeric = [c for c in table.columns
                   if c not in desc and c != smiles_col and pd.api.types.is_numeric_dtype(table[c])]
        if not numeric:
            raise BenchInputError(f"{data_csv}: no numeric label column besides the descriptors")
        target = str(numeric[0])
    category_cols = None
    if categories_csv is not None:
        categories_csv = Path(categories_csv)
        if not categories_csv.is_file():
            raise BenchInputError(f"category file {categories_csv} does not exist")
        cats = pd.read_csv(categories_csv)
        category_cols = [c for c in CATEGORY_NAMES if c in cats.columns]
        if not category_cols:
            raise BenchInputError(
                f"category file {categories_csv} has none of the category columns "
                f"({CATEGORY_NAMES[0]} ... {CATEGORY_NAMES[-1]})"
            )
        if len(cats) != len(table):
            raise BenchInputError(
                f"category file {categories_csv} has {len(cats)} rows but {data_csv} has "
                f"{len(table)}; they must list the same molecules in the same order"
            )
        if smiles_col in cats.columns and smiles_col in table.columns:
            differ = np.flatnonzero(cats[smiles_col].astype(str).to_numpy()
                                    != table[smiles_col].astype(str).to_numpy())
            if differ.size:
                raise BenchInputError(
                    f"category file {categories_csv} row {differ[0]} is "
                    f"{cats[smiles_col].iloc[differ[0]]!r} but {data_csv} has "
                    f"{table[smiles_col].iloc[differ[0]]!r}"
                )
        table = table.drop(columns=[c for c in category_cols if c in table.columns])
        table = pd.concat([table, cats[category_cols].reset_index(drop=True)], axis=1)
    if splits_csv is not None:
        splits: list[Split] = load_split_csv(splits_csv, rows)
        if rows is None:  # all rows: skip those with nothing to test (e.g. "interpolation")
            splits = [s for s in splits if len(s.test) > 0]
    else:
        y = table[target].to_numpy(dtype=float)
        n = len(table)
        sizes_p = [s for s in n_in if 2 <= s <= int(0.9 * n)]
        sizes_c = [s for s in n_in if 2 <= s <= int(0.8 * n)]
        if not sizes_p:
            raise BenchInputError(
                f"none of the training sizes {list(n_in)} fits a table of {n} rows"
            )
        # with NaN labels, no property split: run_extrapolation_bench names the bad rows
        splits = property_range_splits(y, sizes_p, seed=seed) if np.all(np.isfinite(y)) else []
        X = table[desc].to_numpy(dtype=float)
        splits += cluster_splits(X, sizes_c, seed=seed)
    records = run_extrapolation_bench(
        table, target, desc, splits, category_cols=category_cols, smiles_col=smiles_col,
        models=models, seed=seed, progress=progress,
    )
    if json_out is not None:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(records, indent=1) + "\n")
    if out_dir is not None:
        write_results(records, out_dir)
    return records


def qm9_extrapolation(
    targets: Sequence[str] = ("dipole", "alpha", "gap"),
    n: int = 5000,
    models: Sequence[str] = DEFAULT_MODELS,
    n_in: Sequence[int] = DEFAULT_N_IN,
    seed: int = 0,
    workers: int = 2,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """The extrapolation benchmark on QM9 targets with the project's own descriptors.

    ``n`` QM9 molecules (the seeded sample of :func:`bodisc.data.qm9.qm9_sample_indices`),
    fast-tier QMex descriptors from GFN2-xTB on QM9's own geometries (computed once and
    cached on disk), ILR categories from the SMILES; property-range and cluster splits at
    each ``n_in``; labels are QM9's B3LYP values. Molecules whose descriptors failed are
    left out.

    Returns:
        Records as :func:`run_extrapolation_bench` makes them, with ``target`` added.
    """
    import pandas as pd

    from bodisc.data.qm9 import QM9_TARGETS, load_qm9, qm9_descriptors, qm9_sample_indices
    from bodisc.descriptors import TIERS

    unknown = [t for t in targets if t not in QM9_TARGETS]
    if unknown:
        raise BenchInputError(f"unknown QM9 target(s) {unknown}; choose from "
                              f"{', '.join(QM9_TARGETS)}")
    indices = qm9_sample_indices(n, seed)
    desc = qm9_descriptors(indices, "fast", workers=workers)
    labels = load_qm9().loc[indices]
    table = pd.concat([labels.reset_index(drop=True), desc.reset_index(drop=True)], axis=1)
    names = list(TIERS["fast"])
    table = table[np.isfinite(table[names].to_numpy(dtype=float)).any(axis=1)]
    table = table.reset_index(drop=True)
    records: list[dict[str, Any]] = []
    for name in targets:
        target = QM9_TARGETS[name]
        y = table[target.column].to_numpy(dtype=float)
        X = table[names].to_numpy(dtype=float)
        splits = (property_range_splits(y, n_in, seed=seed)
                  + cluster_splits(X, n_in, seed=seed))
        out = run_extrapolation_bench(table, target.column, names, splits,
                                      smiles_col="smiles", models=models, seed=seed,
                                      progress=progress)
        for rec in out:
            rec["target"] = name
        records.extend(out)
    return records
