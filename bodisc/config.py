"""Campaign files: TOML in, validated and frozen configuration objects out.

A campaign file is read with :mod:`tomllib` and validated into :class:`CampaignConfig`
(pydantic v2, ``extra="forbid"``, frozen). Any problem is raised as one
:class:`~bodisc.errors.ConfigError` naming the file, the field, the bad value and what is
allowed, before anything is computed or written.

Relative paths in ``[paths]`` are resolved against the working directory the command is
run from (the same rule MLflow uses for ``mlruns/``), so the documented commands, run
from the project root, keep everything in the project's ``runs/`` and ``mlruns/``.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bodisc.acquisition import DEFAULT_BETA
from bodisc.errors import ConfigError
from bodisc.surrogates.gp import MEANS
from bodisc.surrogates.registry import (
    DEFAULT_DEVICE,
    DEFAULT_KERNEL,
    DEFAULT_PRECISION,
    SURROGATES,
    Device,
    Kernel,
    Precision,
)

ChargeRule = Literal["neutral", "net_neutral", "any"]
Direction = Literal["maximize", "minimize"]

#: Elements a user may allow. The xTB-based descriptors and oracle cover far more, but the
#: SELFIES alphabet and the ILR categories are built for organic chemistry.
SUPPORTED_ELEMENTS: tuple[str, ...] = ("C", "N", "O", "F", "S", "Cl", "Br", "I", "P", "B", "Si")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObjectiveConfig(_Frozen):
    """What the oracle measures and which way is better.

    ``reference``: with several objectives, the worst value of this property still
    worth having, in its units: the hypervolume's reference point and the bound every
    molecule on the reported front must beat. Without it, the worst label so far minus
    10 % of the labels' range (botorch's ``infer_reference_point`` rule), re-inferred as
    labels arrive.
    """

    property: str = Field(
        min_length=1,
        description="a property the oracle returns (its name, e.g. dipole)")
    direction: Direction = Field(default="maximize", description="maximize or minimize")
    unit: str = Field(default="", description="unit shown in tables and plots")
    reference: float | None = Field(
        default=None,
        description="the hypervolume's reference value for this objective (several "
                    "objectives); none: from the start labels")


class ConstraintConfig(_Frozen):
    """A property window every wanted molecule must meet (``[[constraints]]``).

    A property the oracle returns is modelled by a GP of its own and enters the
    acquisition as a probability of feasibility; ``sa_score`` (computed by bodisc from
    the structure, exactly) takes ``max`` only and removes candidates above it before
    anything is computed for them, as ``[generator] sa_max`` does.
    """

    property: str = Field(min_length=1, description="a property the oracle returns, or sa_score")
    min: float | None = Field(default=None, description="lowest allowed value")
    max: float | None = Field(default=None, description="highest allowed value")
    unit: str = Field(default="", description="unit shown in tables and plots")

    @model_validator(mode="after")
    def _window(self) -> ConstraintConfig:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) must be at most max ({self.max:g})")
        return self


class GeneratorConfig(_Frozen):
    """SELFIES mutation/crossover settings and the constraints every candidate must meet."""

    candidates_per_iteration: int = Field(
        default=150, ge=1, le=1_000_000,
        description="new candidates the generator makes per iteration")
    n_best_parents: int = Field(
        default=5, ge=1,
        description="parents taken from the best labelled molecules")
    n_diverse_parents: int = Field(
        default=5, ge=0,
        description="parents taken for diversity among the rest")
    max_operations: int = Field(
        default=2, ge=1, le=20, description="SELFIES edits applied to one child (1..n)"
    )
    crossover_fraction: float = Field(
        default=0.2, ge=0.0, le=1.0,
        description="share of candidates made by crossover of two parents")
    replace_weight: float = Field(
        default=1.0, ge=0.0,
        description="relative weight of SELFIES token replacements")
    insert_weight: float = Field(
        default=1.0, ge=0.0,
        description="relative weight of SELFIES token insertions")
    delete_weight: float = Field(
        default=1.0, ge=0.0,
        description="relative weight of SELFIES token deletions")
    allowed_elements: tuple[str, ...] = Field(
        default=("C", "N", "O", "F"),
        description="elements a candidate may contain (H implied)")
    max_heavy_atoms: int = Field(
        default=12, ge=1, le=200,
        description="largest candidate, heavy atoms")
    min_heavy_atoms: int = Field(default=1, ge=1, description="smallest candidate, heavy atoms")
    charge_rule: ChargeRule = Field(
        default="neutral",
        description="neutral: no charged atoms; net_neutral: zwitterions allowed; any")
    forbidden_substructures: tuple[str, ...] = Field(
        default=(), description="SMARTS patterns no candidate may contain (structural alerts)"
    )
    max_attempts_per_candidate: int = Field(
        default=30, ge=1,
        description="tries per wanted candidate before the generator gives up on it")
    sa_max: float | None = Field(
        default=None, ge=1.0, le=10.0,
        description="remove candidates whose synthetic-accessibility score (Ertl and "
                    "Schuffenhauer; 1 easy .. 10 hard) is above this; seeds are not filtered")
    filter_catalogs: tuple[str, ...] = Field(
        default=(), description="RDKit FilterCatalog sets (PAINS, PAINS_A, BRENK, NIH, ZINC, "
                                "CHEMBL, CHEMBL_*, ...): remove candidates matching any "
                                "entry; seeds are not filtered")
    scaffold: str | None = Field(
        default=None, description="SMARTS every candidate must contain; seeds (the user's "
                                  "own choice) are not filtered")

    @field_validator("filter_catalogs")
    @classmethod
    def _known_catalogues(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            return value
        from bodisc.chem.filters import check_catalogues

        return check_catalogues(value)

    @field_validator("scaffold")
    @classmethod
    def _valid_scaffold(cls, value: str | None) -> str | None:
        if value is not None:
            cls._valid_smarts((value,))
        return value

    @field_validator("forbidden_substructures")
    @classmethod
    def _valid_smarts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from bodisc.chem.molecule import compile_smarts
        from bodisc.errors import InvalidMoleculeError

        for smarts in value:
            try:
                compile_smarts(smarts)
            except InvalidMoleculeError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("allowed_elements")
    @classmethod
    def _known_elements(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [e for e in value if e not in SUPPORTED_ELEMENTS]
        if unknown:
            raise ValueError(
                f"unknown element(s) {unknown}; allowed: {', '.join(SUPPORTED_ELEMENTS)}"
            )
        if "C" not in value:
            raise ValueError("must include 'C'")
        return tuple(dict.fromkeys(value))


class DescriptorConfig(_Frozen):
    """Which QMex descriptors feed the surrogate (names checked against the registry)."""

    names: tuple[str, ...] = Field(
        default=(),
        description="QMex descriptor names; empty: the whole fast tier")
    method: Literal["GFN2-xTB"] = Field(
        default="GFN2-xTB",
        description="the quantum-chemistry method of the descriptors")
    conformer_seed: int = Field(
        default=61453, ge=0,
        description="seed of the RDKit conformer embedding")


def _registered_kind(value: str | None) -> str | None:
    """A surrogate kind named in :data:`~bodisc.surrogates.registry.SURROGATES`."""
    if value is not None and value not in SURROGATES:
        raise ValueError(f"unknown surrogate kind; choose one of: {', '.join(SURROGATES)}")
    return value


class SurrogateConfig(_Frozen):
    """The surrogate model, where it runs, and how it is refitted.

    ``kind`` is checked against the registry (:data:`bodisc.surrogates.SURROGATES`);
    :func:`bodisc.surrogates.surrogate_options` maps this section to the kind's options.
    """

    kind: str = Field(default="gp", description="a registered surrogate kind "
                                                "(bodisc.surrogates.SURROGATES)")
    kernel: Kernel = Field(
        default=DEFAULT_KERNEL,
        description="GP kernel: matern52, matern32 or rbf")
    mean: Literal[MEANS] = Field(  # type: ignore[valid-type]  # gp.MEANS, one list
        default="constant",
        description="gp: prior mean; linear follows the descriptors' linear trend beyond "
                    "the labels (extrapolates along a cheap proxy such as the xTB dipole); "
                    "proxy is linear in the label's own cheap analogue (`proxy`), with the "
                    "sign of that relation fixed: two parameters, well determined from the "
                    "first few labels")
    proxy: str = Field(default="mu", description="mean = 'proxy': the label's cheap analogue, "
                                                  "a descriptor ('mu') or a signed sum of "
                                                  "descriptors ('lumo - homo', '2*a + b'), "
                                                  "which the label rises with")
    device: Device = Field(
        default=DEFAULT_DEVICE,
        description="auto (CUDA when present), cpu or cuda")
    precision: Precision = Field(
        default=DEFAULT_PRECISION, description="auto: float64; float32 only with CUDA")
    warm_start: bool = Field(
        default=True, description="start each fit from the previous iteration's hyperparameters")
    refit_growth: float = Field(
        default=1.0, ge=1.0,
        description="re-optimise hyperparameters once the labels have grown by this factor "
                    "since the last optimisation (1: every iteration); otherwise only "
                    "condition on the new labels")
    restarts: int = Field(
        default=1, ge=1, le=64,
        description="hyperparameter fits from this many starting points, run as one batch")
    subset: int = Field(default=1000, ge=10,
                        description="sparse: labels used to fit the hyperparameters")
    inducing: int = Field(default=1024, ge=10, description="sparse: inducing points")

    _kind = field_validator("kind")(_registered_kind)


class AcquisitionConfig(_Frozen):
    """Acquisition strategy and batch size (the name is checked against the registry).

    With ``warmup_batches`` and ``greedy_until`` a campaign runs in stages
    (:func:`bodisc.acquisition.staged`): ``rank`` by ``rank_by`` for the first batches,
    ``greedy`` until that share of the budget is spent, then ``name``.
    """

    name: str = Field(
        default="logei",
        description="acquisition function (a registered name; bodisc's registry lists them)")
    batch_size: int = Field(default=10, ge=1, description="molecules proposed per iteration")
    beta: float = Field(default=DEFAULT_BETA, gt=0.0, description="UCB exploration weight")
    rank_by: str = Field(default="mu", description="descriptor, or signed sum of descriptors "
                         "('lumo - homo'), that 'rank' and the warm-up batches order by")
    warmup_batches: int = Field(
        default=0, ge=0, description="batches after the seeds ranked by rank_by, before "
        "the model chooses (its labels are all far from the extreme the ranking reaches)")
    greedy_until: float = Field(
        default=0.0, ge=0.0, le=1.0, description="share of the oracle budget up to which "
        "model batches are greedy (largest posterior means); `name` chooses after it")
    feasibility: float = Field(
        default=0.5, gt=0.0, lt=1.0, description="with [[constraints]]: ucb, greedy and "
        "parego take a candidate at least this likely to satisfy every constraint before "
        "any less likely one; raise it to spend fewer calls on infeasible molecules, at "
        "the price of fewer near the bounds")
    pareto_depth: int = Field(
        default=1, ge=1, le=64, description="qlognehvi: the non-dominated layers of the "
        "labels sought; 1 extends the Pareto front, d > 1 measures the hypervolume "
        "improvement against the labels without their first d - 1 layers, so a molecule "
        "that would join any of the first d layers counts (a broad set of good "
        "compromises rather than the front alone)")
    intervention_k: int = Field(
        default=3, ge=1, description="intervention: descriptors intervened on, those with "
        "the largest total causal effect on the target")
    intervention_step: float = Field(
        default=1.0, gt=0.0, description="intervention: the target aimed at is the best "
        "label plus this many standard deviations of the labels")
    intervention_descriptors: int = Field(
        default=8, ge=2, le=40, description="intervention: descriptors in the causal graph, "
        "those most correlated (Spearman) with the labels")

    intervention_bootstrap: int = Field(
        default=0, ge=0, le=200, description="intervention: bootstrap resamples of the "
        "causal graph, giving each edge the share of resamples that find it (0: none)")

    @field_validator("pareto_depth")
    @classmethod
    def _depth_for_qlognehvi(cls, value: int, info: ValidationInfo) -> int:
        if value > 1 and info.data.get("name") != "qlognehvi":
            raise ValueError(f"only qlognehvi seeks layers beyond the front, not "
                             f"{info.data.get('name')!r}; use 1, or name = \"qlognehvi\"")
        return value

    def options(self) -> dict[str, Any]:
        """Settings of the strategies that take them (``intervention``, ``qlognehvi``)."""
        if self.name == "qlognehvi":
            return {"pareto_depth": self.pareto_depth}
        if self.name != "intervention":
            return {}
        return {"k": self.intervention_k, "step": self.intervention_step,
                "max_descriptors": self.intervention_descriptors,
                "bootstrap": self.intervention_bootstrap}


class OracleConfig(_Frozen):
    """Oracle name and its own options (validated by the oracle's option model)."""

    name: str = Field(
        default="xtb_dipole",
        description="registered oracle name, package.module:Class or path/to/file.py:Class")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="the oracle's own options, validated by the oracle")


class BudgetConfig(_Frozen):
    """How much the campaign may spend."""

    oracle_calls: int = Field(
        ge=1,
        description="oracle calls bodisc pays for (imported and withdrawn labels do not count)")
    wall_time_s: float | None = Field(
        default=None, gt=0,
        description="stop proposing after this many seconds of campaign time")


class ExecutionConfig(_Frozen):
    """Where oracle and descriptor work runs, and how the oracle's workers are fed.

    ``kind = "local"``: a pool of worker processes on this machine. ``kind = "dask"``: a
    Dask cluster, the one at ``scheduler`` (``tcp://host:port``) or, without it, a
    ``LocalCluster`` of ``workers`` processes started with the campaign. ``mode``:
    synchronous batches, or asynchronous proposals (at most ``workers`` oracle jobs in
    flight, one proposal per returned job).
    """

    kind: Literal["local", "dask"] = Field(
        default="local",
        description="local: worker processes on this machine; dask: a Dask cluster")
    mode: Literal["batch", "async"] = Field(
        default="batch",
        description="batch: the next batch is chosen once every job of the last has "
                    "returned; async: a free worker gets the next molecule at once, chosen "
                    "conditioned on every pending job")
    scheduler: str | None = Field(
        default=None, description="Dask scheduler address (kind = dask); none: a LocalCluster"
    )
    workers: int = Field(
        default=2, ge=1, le=512,
        description="oracle worker processes (at most this many oracle jobs at once)")
    oracle_timeout_s: float = Field(
        default=300.0, gt=0,
        description="time limit of one oracle call, s; a call past it is a recorded failure")
    descriptor_timeout_s: float = Field(
        default=120.0, gt=0,
        description="time limit of one molecule's descriptors, s")
    worker_memory_gb: float | None = Field(
        default=8.0, gt=0.5, description="address-space limit of each worker; none: no limit"
    )

    @field_validator("scheduler")
    @classmethod
    def _scheduler_address(cls, value: str | None) -> str | None:
        import re

        if value is not None and not re.fullmatch(r"(tcp|tls|ucx|ws|wss)://\S+", value):
            raise ValueError("must be a Dask scheduler address such as tcp://host:8786")
        return value


class PathsConfig(_Frozen):
    """Where results go. ``{name}`` is replaced by the campaign name."""

    store: str = Field(
        default="runs/{name}/store.sqlite",
        description="the campaign store (SQLite); {name}: the campaign name")
    mlruns: str = Field(default="mlruns", description="the MLflow tracking folder")
    export_csv: str = Field(
        default="runs/{name}/results.csv",
        description="the CSV export of every oracle call")


class StrategyConfig(_Frozen):
    """One strategy of a comparison: an acquisition, optionally another surrogate or batch."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9_-]+$", min_length=1, max_length=40,
        description="the strategy's name (its MLflow run and table row)")
    acquisition: str = Field(min_length=1, description="the strategy's acquisition function")
    surrogate: str | None = Field(default=None, description="a registered surrogate kind")
    batch_size: int | None = Field(
        default=None, ge=1,
        description="batch size of this strategy (none: the campaign's)")
    beta: float | None = Field(default=None, gt=0.0, description="UCB exploration weight")
    warmup_batches: int | None = Field(default=None, ge=0,
                                       description="acquisition.warmup_batches of this strategy")
    greedy_until: float | None = Field(default=None, ge=0.0, le=1.0,
                                       description="acquisition.greedy_until of this strategy")

    _surrogate = field_validator("surrogate")(_registered_kind)


class CompareConfig(_Frozen):
    """A comparison: every strategy runs once per seed, as its own campaign."""

    seeds: tuple[int, ...] = Field(min_length=1, description="one run per strategy and seed")
    strategies: tuple[StrategyConfig, ...] = Field(
        min_length=1,
        description="the strategies a `bodisc compare` runs, each as its own campaign")
    parallel: int = Field(default=1, ge=1, le=64, description="runs at once")

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [s for s in value if not 0 <= s <= 2**63 - 1]
        if bad:
            raise ValueError(f"seed {bad[0]} out of range; seeds are integers 0 to 2**63-1")
        if len(set(value)) != len(value):
            raise ValueError("seeds must be distinct")
        return value


class PoolConfig(_Frozen):
    """Candidates drawn from a fixed pool of known molecules instead of the generator.

    With a ``[pool]``, iteration 0 labels ``n_seeds`` pool molecules drawn at random
    (``seed_molecules`` stays empty), every later candidate is an unlabelled pool molecule,
    and descriptors come from xTB on the pool's own geometries.
    """

    source: str = Field(
        default="qm9", min_length=1,
        description='"qm9", or a library file (.smi, .csv, .parquet; a relative path is '
                    "taken from the campaign file's folder)",
    )
    subset: int | None = Field(
        default=None, ge=1, le=130_831,
        description="a random subset of this many molecules (seeded by random_seed); "
                    "none: the whole pool (source = qm9 only)",
    )
    n_seeds: int = Field(default=8, ge=1, description="pool molecules labelled first")
    candidates_per_iteration: int | None = Field(
        default=None, ge=1,
        description="unlabelled pool molecules scored per iteration, drawn at random; "
                    "none: all of them",
    )

    @field_validator("source")
    @classmethod
    def _library_file(cls, value: str, info: Any) -> str:
        """``qm9`` or a library file; a relative path is made absolute when it can be.

        Decision: a relative library path belongs to the campaign file, as the file's
        other inputs would, not to the working directory the command runs from. The
        campaign file's folder reaches this validator as ``base_dir`` in the validation
        context (``CampaignConfig.model_validate(data, context={"base_dir": folder})``);
        without it (a config built in Python) the path is kept as written and
        :meth:`library_path` resolves it against the working directory. Stored configs
        therefore hold an absolute path, and a resumed campaign finds the same file.
        """
        if value == "qm9":
            return value
        suffixes = (".smi", ".csv", ".parquet")  # bodisc.chem.library.LIBRARY_SUFFIXES
        if Path(value).suffix.lower() not in suffixes:
            raise ValueError(f'must be "qm9" or a library file ending in '
                             f'{", ".join(suffixes)}')
        base = (getattr(info, "context", None) or {}).get("base_dir")
        path = Path(value).expanduser()
        if base is not None and not path.is_absolute():
            path = Path(base) / path
        return str(path.resolve()) if base is not None or path.is_absolute() else value

    @field_validator("subset")
    @classmethod
    def _subset_of_qm9(cls, value: int | None, info: Any) -> int | None:
        if value is not None and info.data.get("source", "qm9") != "qm9":
            raise ValueError("applies to source = qm9 only; choose the rows of a library "
                             "in its file")
        return value

    @property
    def is_library(self) -> bool:
        """Whether the pool is a library file rather than QM9."""
        return self.source != "qm9"

    def library_path(self) -> Path:
        """The library file, absolute (a still-relative path: from the working directory)."""
        return Path(self.source).expanduser().resolve()


class DesignConfig(_Frozen):
    """How a pool campaign chooses the molecules it labels first (iteration 0).

    ``random``: ``[pool] n_seeds`` molecules drawn at random. ``causal``: the active causal
    sampling of Fox and Ghosh (2024, :mod:`bodisc.causal.design`): starting from one
    random molecule, each round draws ``batch_per_cluster`` molecules from each of
    ``clusters`` clusters of the pool (a Gaussian mixture on ``cluster_on``) and keeps
    the draw whose DirectLiNGAM graph is closest to the whole pool's, until ``n_seeds``
    are chosen. The graph's target (a sink) is the campaign's cheap analogue
    (``acquisition.rank_by``) unless ``sink = "none"``. Needs the ``causal`` extra.
    """

    kind: Literal["random", "causal"] = Field(
        default="random", description="random: n_seeds pool molecules at random; causal: "
        "the subset whose causal graph matches the pool's (Fox and Ghosh)")
    batch_per_cluster: int = Field(default=20, ge=1, description="causal: molecules drawn "
                                   "from each cluster per round")
    clusters: int = Field(default=3, ge=1, le=20, description="causal: Gaussian-mixture "
                          "clusters of the pool")
    cluster_on: tuple[str, ...] = Field(
        default=(), description="causal: descriptors the clusters are found on; empty: "
        "the default of bodisc.causal.design")
    sink: Literal["rank_by", "none"] = Field(
        default="rank_by", description="causal: the graph's target, the cheap analogue "
        "acquisition.rank_by, or none (a graph of the descriptors alone)")
    descriptors: int = Field(default=9, ge=2, le=40, description="causal: descriptors in "
                             "the graph, those most correlated with the sink (all "
                             "spread out with sink = none: the first ones)")
    reference_rows: int = Field(default=20_000, ge=100, description="causal: pool "
                                "molecules (a seeded sample) the reference graph is "
                                "learnt on")


class FidelityConfig(_Frozen):
    """A cheap oracle beside the campaign's own (the target), and the rule choosing one.

    The rule (MF-GP-UCB, :mod:`bodisc.acquisition.multifidelity`): a molecule picked by
    the acquisition on the target posterior goes to the cheap oracle when it has no cheap
    label yet and ``sqrt(beta) * sigma_cheap(x) >= bias * sqrt(cheap_cost / target_cost)``,
    otherwise to the target oracle.
    """

    cheap_oracle: str = Field(min_length=1, description="registered name or module:Class")
    cheap_options: dict[str, Any] = Field(
        default_factory=dict,
        description="the cheap oracle's own options")
    bias: float | None = Field(
        default=None, ge=0.0,
        description="bound on |target - cheap| in objective units; none: the largest "
                    "difference over molecules labelled by both")
    beta: float = Field(default=2.0, gt=0.0, description="confidence width of the rule")
    cheap_cost: float | None = Field(default=None, gt=0.0,
                                     description="none: the cheap oracle's declared cost")
    target_cost: float | None = Field(default=None, gt=0.0,
                                      description="none: the target oracle's declared cost")
    seed_cheap: bool = Field(default=True,
                             description="label the seed molecules with the cheap oracle too")
    adapt_threshold: bool = Field(
        default=True, description="double the threshold after every ceil(target_cost / "
                                  "cheap_cost) cheap calls in a row (MF-GP-UCB's heuristic)")
    max_cost: float | None = Field(default=None, gt=0.0,
                                   description="stop once the calls of both oracles cost this")


class DataConfig(_Frozen):
    """Labels that exist before the campaign: imported before its first iteration.

    Each file (CSV or Parquet) has a ``smiles`` column and a column named as the
    objective's property, with the checks and provenance of ``bodisc ingest``
    (:mod:`bodisc.loop.ingest`). Imported labels do not count against ``[budget]
    oracle_calls``, which counts the calls bodisc pays for. With labels to start from,
    ``seed_molecules`` may be left out and a pool draws no random seeds.
    """

    labelled: tuple[str, ...] = Field(
        default=(), description="CSV or Parquet files of labels, relative to the campaign "
                                "file; imported before the first iteration")

    @field_validator("labelled")
    @classmethod
    def _existing_files(cls, value: tuple[str, ...], info: Any) -> tuple[str, ...]:
        """Each file made absolute from the campaign file's folder, where it must exist.

        Without ``base_dir`` in the validation context (a configuration read back from a
        store, or built in Python) the names are kept as they are.
        """
        base = (getattr(info, "context", None) or {}).get("base_dir")
        if base is None:
            return value
        out = []
        for name in value:
            path = Path(name).expanduser()
            path = (path if path.is_absolute() else Path(base) / path).resolve()
            if not path.is_file():
                raise ValueError(f"no such file: {name} ({path})")
            out.append(str(path))
        return tuple(out)


class CampaignConfig(_Frozen):
    """A whole campaign file."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+$", min_length=1, max_length=80,
        description="the campaign's name (its store, MLflow experiment and run)")
    random_seed: int = Field(
        ge=0, le=2**63 - 1,
        description="seed of every random choice: the same file and seed give the same molecules")
    seed_molecules: tuple[str, ...] = Field(default=(), description="required without [pool]")
    objective: ObjectiveConfig
    objectives: tuple[ObjectiveConfig, ...] = Field(
        default=(), description="[[objectives]]: several; the first is also `objective`")
    constraints: tuple[ConstraintConfig, ...] = Field(
        default=(), description="[[constraints]]: property windows (min and/or max)")
    objectives_form: Literal["table", "list"] = Field(
        default="table", exclude=True,
        description="set by the reader: [objective] (table) or [[objectives]] (list)")
    generator: GeneratorConfig = GeneratorConfig()
    descriptors: DescriptorConfig = DescriptorConfig()
    surrogate: SurrogateConfig = SurrogateConfig()
    acquisition: AcquisitionConfig = AcquisitionConfig()
    oracle: OracleConfig = OracleConfig()
    budget: BudgetConfig
    execution: ExecutionConfig = ExecutionConfig()
    paths: PathsConfig = PathsConfig()
    compare: CompareConfig | None = None
    pool: PoolConfig | None = None
    fidelity: FidelityConfig | None = None
    data: DataConfig = DataConfig()
    design: DesignConfig = DesignConfig()

    @model_validator(mode="before")
    @classmethod
    def _one_form_of_objective(cls, data: Any) -> Any:
        """``[objective]`` or ``[[objectives]]``; either way both fields are filled.

        A file with one ``[objective]`` keeps working unchanged; with ``[[objectives]]``
        the first is the campaign's ``objective`` (its labels are the jobs' values, the
        parents' ranking, the single-objective metrics).
        """
        if not isinstance(data, dict):
            return data
        single, several = data.get("objective"), data.get("objectives")
        if "objectives_form" in data:
            raise ValueError("objectives_form is set by bodisc, not by a campaign file")
        if single is not None and several:
            if isinstance(several, (list, tuple)) and several[0] == single:
                return data  # a stored config (as_dict writes both)
            raise ValueError("give [objective] or [[objectives]], not both")
        if several and isinstance(several, (list, tuple)):
            return {**data, "objective": several[0], "objectives_form": "list"}
        if single is not None and not several:
            return {**data, "objectives": [single]}
        return data

    @property
    def multi_objective(self) -> bool:
        """Two or more objectives."""
        return len(self.objectives) > 1

    @property
    def modelled_constraints(self) -> tuple[ConstraintConfig, ...]:
        """The constraints on properties the oracle returns (each gets a GP)."""
        return tuple(c for c in self.constraints if c.property not in COMPUTED_PROPERTIES)

    @property
    def sa_max(self) -> float | None:
        """The tightest SA-score bound of ``[generator] sa_max`` and the constraints."""
        bounds = [c.max for c in self.constraints
                  if c.property == "sa_score" and c.max is not None]
        if self.generator.sa_max is not None:
            bounds.append(self.generator.sa_max)
        return min(bounds) if bounds else None

    @property
    def draws_pool_seeds(self) -> bool:
        """Whether iteration 0 labels ``[pool] n_seeds`` pool molecules.

        A pool campaign does, unless it starts from labelled data (``[data]``) with a
        random design: then its labels are the start and the model chooses iteration 0.
        A causal design always chooses its start (with labels, learnt on them).
        """
        return self.pool is not None and (not self.data.labelled
                                           or self.design.kind == "causal")

    def path(self, which: Literal["store", "mlruns", "export_csv"]) -> Path:
        """Absolute path of one of the ``[paths]`` entries, ``{name}`` filled in."""
        raw = getattr(self.paths, which).replace("{name}", self.name)
        return Path(raw).expanduser().resolve()

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-able dictionary of every setting (defaults filled in)."""
        skip = {k for k in ("compare", "pool", "fidelity") if getattr(self, k) is None}
        return self.model_dump(mode="json", exclude=skip or None)

    def fingerprint(self, fields: tuple[str, ...]) -> str:
        """Stable hash of some top-level sections, used to refuse unsafe resumes."""
        data = {k: v for k, v in self.as_dict().items() if k in fields}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


#: Properties bodisc computes from the structure itself (not an oracle), usable in
#: ``[[constraints]]`` as exact candidate filters.
COMPUTED_PROPERTIES: tuple[str, ...] = ("sa_score",)

#: Sections (or dotted fields) whose change makes a stored campaign meaningless (labels or
#: features differ).
UNSAFE_TO_CHANGE: tuple[str, ...] = ("objective", "objectives", "constraints", "oracle",
                                      "descriptors", "seed_molecules",
                                      "pool", "fidelity.cheap_oracle", "fidelity.cheap_options")


def dotted_get(data: dict[str, Any], dotted: str) -> Any:
    """``data["a"]["b"]`` for ``"a.b"``; ``None`` where a level is missing."""
    node: Any = data
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def load_campaign(path: str | Path, overrides: dict[str, Any] | None = None) -> CampaignConfig:
    """Read, validate and freeze a campaign file.

    Args:
        path: The TOML file.
        overrides: Dotted keys to replace after reading, e.g. ``{"acquisition.name": "ucb"}``.

    Returns:
        The validated configuration, with seeds, acquisition, descriptor and oracle names
        checked against the chemistry rules and the registries.

    Raises:
        ConfigError: On the first problem found, as one line.
    """
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(file, "(file)", file, f"cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(file, "(syntax)", None, f"not valid TOML: {exc}") from None
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    if "objective" in data and "objectives" in data:
        raise ConfigError(file, "objectives", None,
                          "give [objective] (one) or [[objectives]] (several), not both")
    try:  # input files named in the campaign file are relative to its folder
        config = CampaignConfig.model_validate(
            data, context={"base_dir": Path(path).resolve().parent})
    except ValidationError as exc:
        raise _first_error(file, exc) from None
    _check_semantics(file, config)
    return config


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def _first_error(file: str, exc: ValidationError) -> ConfigError:
    err = exc.errors()[0]
    loc = _dotted(err["loc"])
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        model = _model_at(CampaignConfig, err["loc"][:-1])
        allowed = ", ".join(model.model_fields) if model else "see docs/reference/campaign-file.md"
        return ConfigError(file, loc, value, f"unknown field; allowed fields here: {allowed}")
    if kind == "missing":
        return ConfigError(file, loc, None, "required field is missing")
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return ConfigError(file, loc, value, msg.replace("Input should be", "must be"))


def _dotted(loc: Sequence[Any]) -> str:
    """A pydantic location as a campaign file's field: ``constraints[0].min``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    import typing

    for part in loc:
        if isinstance(part, int):  # an item of a list of models
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        # unwrap X | None and tuple[X, ...] to the model inside
        while not isinstance(ann, type) and typing.get_args(ann):
            ann = next((a for a in typing.get_args(ann) if a is not type(None)), None)
        if isinstance(ann, type) and not issubclass(ann, BaseModel) and typing.get_args(ann):
            ann = typing.get_args(ann)[0]
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def _check_semantics(file: str, config: CampaignConfig) -> None:
    """Checks that need the registries or the chemistry code."""
    from bodisc.acquisition import ACQUISITIONS
    from bodisc.descriptors import available_descriptors, default_descriptors
    from bodisc.oracle import resolve_oracle

    if config.acquisition.name not in ACQUISITIONS:
        raise ConfigError(
            file, "acquisition.name", config.acquisition.name,
            f"unknown acquisition; choose one of: {', '.join(sorted(ACQUISITIONS))}",
        )
    names = config.descriptors.names or default_descriptors()
    known = available_descriptors()
    for i, name in enumerate(names):
        if name not in known:
            raise ConfigError(
                file, f"descriptors.names[{i}]", name,
                f"unknown descriptor; choose from: {', '.join(known)}",
            )
    if config.surrogate.precision == "float32" and config.surrogate.device != "cuda":
        raise ConfigError(
            file, "surrogate.precision", "float32",
            "float32 needs surrogate.device = 'cuda'; on the CPU the surrogate runs in float64",
        )
    if config.surrogate.mean == "proxy":
        _check_terms(file, "surrogate.proxy", config.surrogate.proxy, names)
    if config.acquisition.name == "rank" or config.acquisition.warmup_batches > 0:
        _check_terms(file, "acquisition.rank_by", config.acquisition.rank_by, names)
    try:
        oracle_cls = resolve_oracle(config.oracle.name)
    except Exception as exc:  # noqa: BLE001 - any resolution problem is a config problem
        raise ConfigError(file, "oracle.name", config.oracle.name, str(exc)) from None
    try:
        oracle_options = oracle_cls.Options.model_validate(config.oracle.options)
    except ValidationError as exc:
        err = _first_error(file, exc)
        raise ConfigError(file, f"oracle.options.{err.field}", err.value, err.allowed) from None
    returned, _ = oracle_cls.returns(oracle_options)
    if returned and returned != config.objective.property and len(config.objectives) == 1:
        field = "objectives[0].property" if _listed(config) else "objective.property"
        given = sorted(oracle_cls.provides(oracle_options))
        if config.objective.property not in given:
            raise ConfigError(
                file, field, config.objective.property,
                f"oracle {config.oracle.name!r} returns {', '.join(map(repr, given))}",
            )
    _check_objectives(file, config, oracle_cls, oracle_options)
    _check_pool(file, config)
    _check_causal(file, config, names)
    gen = config.generator
    if gen.replace_weight + gen.insert_weight + gen.delete_weight <= 0:
        raise ConfigError(
            file, "generator.replace_weight", gen.replace_weight,
            "replace_weight, insert_weight and delete_weight cannot all be 0",
        )
    if gen.min_heavy_atoms > gen.max_heavy_atoms:
        raise ConfigError(
            file, "generator.min_heavy_atoms", gen.min_heavy_atoms,
            f"must be at most generator.max_heavy_atoms ({gen.max_heavy_atoms})",
        )
    if config.execution.scheduler is not None and config.execution.kind != "dask":
        raise ConfigError(
            file, "execution.scheduler", config.execution.scheduler,
            'a scheduler address needs execution.kind = "dask"',
        )
    if config.budget.oracle_calls < config.acquisition.batch_size:
        raise ConfigError(
            file, "budget.oracle_calls", config.budget.oracle_calls,
            f"must be at least one batch (acquisition.batch_size = "
            f"{config.acquisition.batch_size})",
        )
    n_seeds = (config.pool.n_seeds if config.pool and config.draws_pool_seeds
               else len(config.seed_molecules))
    if config.budget.oracle_calls < n_seeds:
        raise ConfigError(
            file, "budget.oracle_calls", config.budget.oracle_calls,
            f"must cover the {n_seeds} seed molecules",
        )
    _check_compare(file, config, sorted(ACQUISITIONS))
    _check_fidelity(file, config, oracle_cls)
    _check_seeds(file, config)


def _listed(config: CampaignConfig) -> bool:
    """The objectives came as ``[[objectives]]`` (the before-validator fills both forms)."""
    return config.objectives_form == "list"


def _check_objectives(file: str, config: CampaignConfig, oracle_cls: Any,
                      options: BaseModel) -> None:
    """``[[objectives]]`` and ``[[constraints]]``: properties the oracle gives, once each."""
    from bodisc.acquisition import ACQUISITIONS

    provides = oracle_cls.provides(options)
    any_property = not provides  # an oracle that labels whatever it is asked (external)
    listed = len(config.objectives) > 1
    seen: dict[str, int] = {}
    for i, obj in enumerate(config.objectives if listed else ()):
        if obj.property in seen:
            raise ConfigError(file, f"objectives[{i}].property", obj.property,
                              f"is already objectives[{seen[obj.property]}]; each property "
                              f"can be one objective")
        seen[obj.property] = i
        if not any_property and obj.property not in provides:
            raise ConfigError(file, f"objectives[{i}].property", obj.property,
                              f"oracle {config.oracle.name!r} returns "
                              f"{', '.join(map(repr, provides))}")
    for i, con in enumerate(config.constraints):
        if con.property in COMPUTED_PROPERTIES:
            if con.min is not None:
                raise ConfigError(file, f"constraints[{i}].min", con.min,
                                  f"{con.property} takes max only (a filter on candidates)")
            continue
        if not any_property and con.property not in provides:
            allowed = ", ".join(map(repr, [*provides, *COMPUTED_PROPERTIES]))
            raise ConfigError(file, f"constraints[{i}].property", con.property,
                              f"oracle {config.oracle.name!r} returns {allowed}")
    name = config.acquisition.name
    several = sorted(k for k, spec in ACQUISITIONS.items() if spec.objectives == "several")
    if config.multi_objective and ACQUISITIONS[name].objectives != "several" \
            and name != "random":
        raise ConfigError(file, "acquisition.name", name,
                          f"{len(config.objectives)} objectives need a multi-objective "
                          f"acquisition: {', '.join(several)} (or random)")
    if not config.multi_objective and ACQUISITIONS[name].objectives == "several":
        raise ConfigError(file, "acquisition.name", name,
                          f"{name} needs two or more [[objectives]]; this campaign has one")
    constrained = ("logei", "ucb", "thompson", "greedy", "random", *several)
    if config.modelled_constraints and name not in constrained:
        raise ConfigError(file, "acquisition.name", name,
                          f"[[constraints]] on modelled properties work with "
                          f"{', '.join(sorted(constrained))}")
    if (config.multi_objective or config.modelled_constraints):
        for section in ("fidelity",):
            if getattr(config, section) is not None:
                raise ConfigError(file, section, None,
                                  "a [fidelity] campaign has one objective and no "
                                  "modelled constraints")
        if config.surrogate.kind != "gp":
            raise ConfigError(file, "surrogate.kind", config.surrogate.kind,
                              "several objectives or modelled constraints need kind = 'gp' "
                              "(one GP per property)")
        for stage in ("warmup_batches", "greedy_until"):
            if getattr(config.acquisition, stage):
                raise ConfigError(file, f"acquisition.{stage}",
                                  getattr(config.acquisition, stage),
                                  "a campaign with several objectives or constraints runs "
                                  "one acquisition throughout; leave it at 0")


def _check_fidelity(file: str, config: CampaignConfig, target_cls: Any) -> None:
    """The ``[fidelity]`` table: a cheap oracle of the same property, cheaper, a GP."""
    from bodisc.acquisition import ACQUISITIONS
    from bodisc.oracle import resolve_oracle

    fid = config.fidelity
    if fid is None:
        return
    try:
        cheap_cls = resolve_oracle(fid.cheap_oracle)
    except Exception as exc:  # noqa: BLE001 - any resolution problem is a config problem
        raise ConfigError(file, "fidelity.cheap_oracle", fid.cheap_oracle, str(exc)) from None
    try:
        options = cheap_cls.Options.model_validate(fid.cheap_options)
    except ValidationError as exc:
        err = _first_error(file, exc)
        raise ConfigError(file, f"fidelity.cheap_options.{err.field}", err.value,
                          err.allowed) from None
    returned, _ = cheap_cls.returns(options)
    if returned != config.objective.property:
        raise ConfigError(file, "fidelity.cheap_oracle", fid.cheap_oracle,
                          f"returns {returned!r}; the cheap oracle must return the objective's "
                          f"property {config.objective.property!r}")
    if (fid.cheap_oracle == config.oracle.name
            and options.model_dump() == target_cls.Options.model_validate(
                config.oracle.options).model_dump()):
        raise ConfigError(file, "fidelity.cheap_oracle", fid.cheap_oracle,
                          "is the campaign's own oracle with the same options; name a "
                          "cheaper one (e.g. xtb_dipole beside pyscf_dipole)")
    cheap = fid.cheap_cost if fid.cheap_cost is not None else cheap_cls.cost
    target = fid.target_cost if fid.target_cost is not None else target_cls.cost
    if not 0 < cheap < target:
        raise ConfigError(file, "fidelity.cheap_cost", cheap,
                          f"must be above 0 and below the target oracle's cost ({target:g}); "
                          f"set fidelity.cheap_cost and fidelity.target_cost")
    with_fidelity = [k for k, spec in SURROGATES.items() if spec.multi_fidelity]
    if config.surrogate.kind not in with_fidelity:
        raise ConfigError(file, "surrogate.kind", config.surrogate.kind,
                          f"a [fidelity] campaign needs kind = "
                          f"{' or '.join(repr(k) for k in with_fidelity)} (the fidelity is an "
                          f"input of the GP)")
    name = config.acquisition.name
    with_model = sorted(k for k, spec in ACQUISITIONS.items() if spec.needs_model)
    if not ACQUISITIONS[name].needs_model:
        raise ConfigError(file, "acquisition.name", name,
                          f"a [fidelity] campaign needs a model-based acquisition; choose one "
                          f"of: {', '.join(with_model)}")
    for stage in ("warmup_batches", "greedy_until"):
        if getattr(config.acquisition, stage):
            raise ConfigError(file, f"acquisition.{stage}", getattr(config.acquisition, stage),
                              "a [fidelity] campaign runs one acquisition throughout; "
                              "leave it at 0")


def _check_pool(file: str, config: CampaignConfig) -> None:
    """Seeds come from ``seed_molecules`` or, with a ``[pool]``, from the pool; not both."""
    pool = config.pool
    if pool is None:
        if not config.seed_molecules and not config.data.labelled:
            raise ConfigError(file, "seed_molecules", None,
                              "required field is missing (or add a [pool] to draw seeds from, "
                              "or [data] labelled files to start from)")
        return
    if config.seed_molecules:
        raise ConfigError(file, "seed_molecules", config.seed_molecules[0],
                          "with a [pool] the seeds are drawn from it; remove seed_molecules "
                          "and set pool.n_seeds")
    if pool.subset is not None and pool.n_seeds > pool.subset:
        raise ConfigError(file, "pool.n_seeds", pool.n_seeds,
                          f"must be at most pool.subset ({pool.subset})")


def _check_compare(file: str, config: CampaignConfig, acquisitions: list[str]) -> None:
    """The ``[compare]`` table: known acquisitions, distinct names, batches within budget."""
    if config.compare is None:
        return
    seen: set[str] = set()
    for i, strategy in enumerate(config.compare.strategies):
        where = f"compare.strategies[{i}]"
        if strategy.name in seen:
            raise ConfigError(file, f"{where}.name", strategy.name,
                              "strategy names must be distinct")
        seen.add(strategy.name)
        if strategy.acquisition not in acquisitions:
            raise ConfigError(file, f"{where}.acquisition", strategy.acquisition,
                              f"unknown acquisition; choose one of: {', '.join(acquisitions)}")
        batch = strategy.batch_size or config.acquisition.batch_size
        if batch > config.budget.oracle_calls:
            raise ConfigError(file, f"{where}.batch_size", batch,
                              f"must be at most budget.oracle_calls "
                              f"({config.budget.oracle_calls})")


def _check_seeds(file: str, config: CampaignConfig) -> None:
    from bodisc.chem.molecule import check_constraints, parse_smiles, to_record
    from bodisc.errors import InvalidMoleculeError

    seen: dict[str, int] = {}
    for i, smiles in enumerate(config.seed_molecules):
        field = f"seed_molecules[{i}]"
        try:
            mol = parse_smiles(smiles)
        except InvalidMoleculeError as exc:
            raise ConfigError(file, field, smiles, f"not a valid molecule ({exc})") from None
        problem = check_constraints(mol, config.generator)
        if problem is not None:
            raise ConfigError(file, field, smiles, f"breaks the generator constraints: {problem}")
        key = to_record(mol).inchikey
        if key in seen:
            raise ConfigError(
                file, field, smiles, f"same molecule as seed_molecules[{seen[key]}]; remove one"
            )
        seen[key] = i


def _check_terms(file: str, field: str, text: str, names: Sequence[str]) -> None:
    """A descriptor or signed sum of descriptors (:func:`parse_proxy`) of the campaign's."""
    try:
        terms = parse_proxy(text)
    except ValueError as error:
        raise ConfigError(file, field, text, str(error)) from None
    for name, _ in terms:
        if name not in names:
            raise ConfigError(file, field, text, f"{name!r} must be one of the campaign's "
                                                 f"descriptors: {', '.join(names)}")


def _check_causal(file: str, config: CampaignConfig, names: Sequence[str]) -> None:
    """A causal design needs a pool and the extra; interventions need the extra."""
    design = config.design
    if design.kind == "causal":
        if config.pool is None:
            raise ConfigError(file, "design.kind", "causal",
                              "a causal design chooses from a [pool]; add one, or use "
                              "kind = 'random'")
        for i, name in enumerate(design.cluster_on):
            if name not in names:
                raise ConfigError(file, f"design.cluster_on[{i}]", name,
                                  f"not a descriptor of the campaign; choose from: "
                                  f"{', '.join(names)}")
        if design.sink == "rank_by":
            _check_terms(file, "acquisition.rank_by", config.acquisition.rank_by, names)
    if design.kind == "causal" or config.acquisition.name == "intervention":
        from bodisc.causal.graph import require_lingam

        require_lingam()  # OptionalDependencyError: one line with the install command


def parse_proxy(text: str) -> tuple[tuple[str, float], ...]:
    """The terms of a ``[surrogate] proxy``: a descriptor or a signed sum of descriptors.

    ``"mu"`` -> ``(("mu", 1.0),)``; ``"lumo - homo"`` -> ``(("lumo", 1.0), ("homo", -1.0))``;
    a term may carry a factor, ``"0.5*alpha"``. Binary ``+`` and ``-`` need spaces around
    them, because descriptor names may contain other symbols (``alpha/Vm``, ``min(mbo)``).

    Raises:
        ValueError: For an empty term or a factor that is not a number (the message says
            what is allowed).
    """
    import re

    allowed = "a descriptor name or a signed sum such as 'lumo - homo' or '2*a + b'"
    parts = re.split(r"\s+([+-])\s+", text.strip())
    signs = [1.0] + [1.0 if op == "+" else -1.0 for op in parts[1::2]]
    terms: dict[str, float] = {}
    for sign, term in zip(signs, parts[0::2], strict=True):
        term = term.strip()
        if term.startswith("-"):
            sign, term = -sign, term[1:].strip()
        factor = 1.0
        if "*" in term:
            number, _, term = term.partition("*")
            try:
                factor = float(number)
            except ValueError:
                raise ValueError(f"factor {number.strip()!r} is not a number; "
                                 f"write {allowed}") from None
            term = term.strip()
        if not term:
            raise ValueError(f"an empty term; write {allowed}")
        terms[term] = terms.get(term, 0.0) + sign * factor
    if not any(terms.values()):
        raise ValueError(f"the terms cancel; write {allowed}")
    return tuple(terms.items())
