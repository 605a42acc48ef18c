"""The surrogate registry: each kind's factory, capability flags and config options.

:data:`SURROGATES` is the one list of surrogate kinds. Config validation
(``[surrogate] kind``, ``[[compare.strategies]] surrogate``), the CLI's help, the
benchmarks and ``docs/surrogates.md`` read it, and the campaign asks a kind's
:class:`SurrogateSpec` what it can do instead of testing the model's attributes.

A new kind is one registration::

    @register_surrogate("my_gp", description="...", warm_start=True)
    def build_my_gp(kernel, device, precision, **options):
        return MyGP(kernel, device, precision, **options)

This module imports no numerical library; factories import their model when called, so
the CLI can list the kinds without loading torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

#: Kernels of the GP kinds (``[surrogate] kernel``).
Kernel = Literal["matern52", "matern32", "rbf"]
#: Where a surrogate runs (``[surrogate] device``); ``auto``: CUDA when present.
Device = Literal["auto", "cpu", "cuda"]
#: Floating-point precision of the GP kinds (``[surrogate] precision``); ``auto``: float64.
Precision = Literal["auto", "float64", "float32"]

KERNELS: tuple[str, ...] = get_args(Kernel)
DEVICES: tuple[str, ...] = get_args(Device)
PRECISIONS: tuple[str, ...] = get_args(Precision)

#: Defaults of ``[surrogate] kernel``, ``device`` and ``precision`` and of
#: :func:`bodisc.surrogates.build_surrogate`.
DEFAULT_KERNEL: Kernel = "matern52"
DEFAULT_DEVICE: Device = "auto"
DEFAULT_PRECISION: Precision = "auto"

#: ILR structure categories appended to the descriptors of a kind that uses categories.
N_CATEGORIES = 44

#: ``factory(kernel, device, precision, **options) -> unfitted model``.
Factory = Callable[..., Any]
#: ``(surrogate section, seed, descriptor names or None, label sign) -> factory options``.
OptionsRule = Callable[[Any, int, "Sequence[str] | None", float], dict[str, Any]]


def _no_options(section: Any, seed: int, descriptor_names: Sequence[str] | None,
                sign: float) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class SurrogateSpec:
    """A registered surrogate kind and what it can do.

    Attributes:
        factory: ``factory(kernel, device, precision, **options)`` builds an unfitted model
            with ``fit(X, y)`` and ``predict(X) -> (mean, std)`` (each ``(m,)``),
            ``covariance_columns``, ``shortlist_posterior``, ``joint_samples`` and
            ``noise_variance``.
        description: One line for the docs and the CLI.
        warm_start: The model takes ``fit(X, y, init=state, optimise=bool)`` and has
            ``hyper_state()``: the campaign's warm starts and ``refit_growth`` apply.
        uses_categories: The model's inputs are the descriptors with the 44 ILR category
            flags appended (:func:`bodisc.surrogates.with_categories`).
        multistart: ``[surrogate] restarts > 1`` fits it from several starting points as
            one batch (:func:`bodisc.surrogates.batched.multistart_state`).
        multi_fidelity: A ``[fidelity]`` campaign may use it (the fidelity is one more
            input column).
        config_options: The rule :meth:`options` applies.
    """

    factory: Factory
    description: str
    warm_start: bool = False
    uses_categories: bool = False
    multistart: bool = False
    multi_fidelity: bool = False
    config_options: OptionsRule = field(default=_no_options, repr=False)

    def options(self, section: Any, seed: int, descriptor_names: Sequence[str] | None = None,
                sign: float = 1.0) -> dict[str, Any]:
        """The factory options a campaign's ``[surrogate]`` section asks for.

        Args:
            section: The ``[surrogate]`` section (:class:`bodisc.config.SurrogateConfig`).
            seed: The campaign's ``random_seed``.
            descriptor_names: The campaign's descriptors, in column order; needed by
                ``gp`` with ``mean = "proxy"`` (the proxy's columns).
            sign: ``+1`` when the labels are maximised as they are, ``-1`` when negated
                (the proxy mean's sign is given in the labels' own direction).

        Returns:
            Keyword options for :attr:`factory` (kernel, device and precision aside).

        Raises:
            ValueError: When the section needs ``descriptor_names`` and none are given.
        """
        return dict(self.config_options(section, seed, descriptor_names, sign))

    def build(self, kernel: str = DEFAULT_KERNEL, device: str = DEFAULT_DEVICE,
              precision: str = DEFAULT_PRECISION, **options: Any) -> Any:
        """A new, unfitted model of this kind (see :attr:`factory`)."""
        return self.factory(kernel, device, precision, **options)


#: The one list of surrogate kinds, in registration order (built-in kinds first).
SURROGATES: dict[str, SurrogateSpec] = {}


def register_surrogate(name: str, *, description: str, warm_start: bool = False,
                       uses_categories: bool = False, multistart: bool = False,
                       multi_fidelity: bool = False,
                       options: OptionsRule | None = None) -> Callable[[Factory], Factory]:
    """Register a surrogate factory under ``name`` (a decorator); a duplicate is refused.

    Args:
        name: The kind, as ``[surrogate] kind`` names it.
        description: One line for the docs and the CLI.
        warm_start: See :class:`SurrogateSpec`.
        uses_categories: See :class:`SurrogateSpec`.
        multistart: See :class:`SurrogateSpec`.
        multi_fidelity: See :class:`SurrogateSpec`.
        options: ``(section, seed, descriptor_names, sign) -> options``, how a campaign's
            ``[surrogate]`` section maps to factory options; none: no options.

    Returns:
        A decorator that registers the factory and returns it unchanged.

    Raises:
        ValueError: For a name already registered or not a plain identifier.
    """
    if not name.isidentifier():
        raise ValueError(f"surrogate kind {name!r}: use letters, digits and underscores")
    if name in SURROGATES:
        raise ValueError(
            f"surrogate kind {name!r} is already registered; register yours under a new "
            f"name, e.g. @register_surrogate('my_{name}', description=...) on a factory "
            f"(kernel, device, precision, **options) -> model, then set "
            f"[surrogate] kind = 'my_{name}'")

    def wrap(factory: Factory) -> Factory:
        if name in SURROGATES:  # registered between the call and the decoration
            raise ValueError(f"surrogate kind {name!r} is already registered")
        SURROGATES[name] = SurrogateSpec(
            factory, description, warm_start=warm_start, uses_categories=uses_categories,
            multistart=multistart, multi_fidelity=multi_fidelity,
            config_options=options or _no_options)
        return factory

    return wrap


def spec_of(kind: str) -> SurrogateSpec:
    """The spec of a registered kind.

    Raises:
        ValueError: For an unknown kind, naming the registered ones.
    """
    try:
        return SURROGATES[kind]
    except KeyError:
        raise ValueError(f"unknown surrogate kind {kind!r}; choose one of: "
                         f"{', '.join(SURROGATES)}") from None


def markdown_table() -> str:
    """The registered kinds as a Markdown table (``docs/surrogates.md`` is this table)."""
    yes = {True: "yes", False: ""}
    rows = ["| kind | what | warm start | categories | restarts | [fidelity] |",
            "| --- | --- | --- | --- | --- | --- |"]
    rows += [f"| `{name}` | {spec.description} | {yes[spec.warm_start]} | "
             f"{yes[spec.uses_categories]} | {yes[spec.multistart]} | "
             f"{yes[spec.multi_fidelity]} |" for name, spec in SURROGATES.items()]
    return "\n".join(rows) + "\n"


# -- the built-in kinds ----------------------------------------------------------------
def _gp_options(section: Any, seed: int, descriptor_names: Sequence[str] | None,
                sign: float) -> dict[str, Any]:
    options: dict[str, Any] = {"mean": section.mean}
    if section.mean == "proxy":
        from bodisc.config import parse_proxy

        if descriptor_names is None:
            raise ValueError("[surrogate] mean = 'proxy' needs the campaign's descriptor "
                             "names (descriptor_names) to find the proxy's columns")
        names = list(descriptor_names)
        columns: dict[int, float] = {}
        for name, factor in parse_proxy(section.proxy):
            column = names.index(name)
            columns[column] = columns.get(column, 0.0) + factor
        options.update(proxy_column=columns, proxy_sign=float(sign))
    return options


def _sparse_options(section: Any, seed: int, descriptor_names: Sequence[str] | None,
                    sign: float) -> dict[str, Any]:
    return {"subset": section.subset, "inducing": section.inducing, "seed": seed}


@register_surrogate(
    "gp", description="exact GP (botorch), ARD kernel on z-scored descriptors; prior mean "
                      "constant, linear or a cheap proxy (`mean`, `proxy`)",
    warm_start=True, multistart=True, multi_fidelity=True, options=_gp_options)
def build_gp(kernel: str, device: str, precision: str, **options: Any) -> Any:
    """:class:`~bodisc.surrogates.gp.GPSurrogate`; options ``mean``, ``proxy_*``."""
    from bodisc.surrogates.gp import GPSurrogate

    return GPSurrogate(kernel, device, precision, **options)


@register_surrogate(
    "xgp", description="extrapolation-aware GP: the GP gated point by point with a "
                       "calibrated linear QMex/ILR base",
    warm_start=True, uses_categories=True)
def build_xgp(kernel: str, device: str, precision: str, *,
              n_categories: int = N_CATEGORIES, **options: Any) -> Any:
    """:class:`~bodisc.surrogates.extrapolating.ExtrapolatingGP` on descriptors + categories.

    ``precision`` is not used (the GP component runs in float64); ``options`` go to
    ``ExtrapolatingGP`` (e.g. ``seed``, of the base's fold assignment).
    """
    from bodisc.surrogates.categorised import CategorisedGP
    from bodisc.surrogates.extrapolating import ExtrapolatingGP

    return CategorisedGP(ExtrapolatingGP(kernel=kernel, device=device, **options),
                         n_categories)


@register_surrogate(
    "ilr", description="PLS-ILR as published (8 components); std: out-of-fold RMSE, the "
                       "same for every candidate", uses_categories=True)
def build_ilr(kernel: str, device: str, precision: str, *,
              n_categories: int = N_CATEGORIES) -> Any:
    """PLS-ILR with a constant std (kernel, device and precision are not used)."""
    from bodisc.surrogates.categorised import Categorised, PointModel

    return Categorised(PointModel("pls"), n_categories)


@register_surrogate(
    "ilr_ridge", description="ridge ILR (penalty by generalised CV); std: out-of-fold RMSE",
    uses_categories=True)
def build_ilr_ridge(kernel: str, device: str, precision: str, *,
                    n_categories: int = N_CATEGORIES) -> Any:
    """Ridge ILR with a constant std (kernel, device and precision are not used)."""
    from bodisc.surrogates.categorised import Categorised, PointModel

    return Categorised(PointModel("ridge"), n_categories)


@register_surrogate(
    "sparse", description="for campaigns past about 5,000 labels: hyperparameters on a "
                          "seeded subset (`subset`), inducing-point posterior on all labels "
                          "(`inducing`)",
    warm_start=True, options=_sparse_options)
def build_sparse(kernel: str, device: str, precision: str, **options: Any) -> Any:
    """:class:`~bodisc.surrogates.sparse.SparseGP`; options ``subset``, ``inducing``, ``seed``."""
    from bodisc.surrogates.sparse import SparseGP

    return SparseGP(kernel, device, precision, **options)
