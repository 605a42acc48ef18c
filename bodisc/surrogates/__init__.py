"""Surrogate models a campaign can use (``[surrogate] kind``), named in one registry.

:data:`SURROGATES` (:mod:`bodisc.surrogates.registry`) maps each kind to its factory and
capability flags; ``docs/surrogates.md`` is its table. The built-in kinds:

* ``gp``: the exact GP on standardised descriptors (:mod:`bodisc.surrogates.gp`).
* ``xgp``: the extrapolation-aware GP (:mod:`bodisc.surrogates.extrapolating`).
* ``ilr`` / ``ilr_ridge``: ILR as published (PLS, 8 components) or its ridge variant
  (:mod:`bodisc.surrogates.ilr`), point predictions with a constant standard deviation
  (:mod:`bodisc.surrogates.categorised`).
* ``sparse``: subset-of-data hyperparameters and an inducing-point posterior on all
  labels, for campaigns past about 5,000 labels (:mod:`bodisc.surrogates.sparse`).

Every kind offers what the acquisition strategies use: ``predict``,
``covariance_columns``, ``shortlist_posterior``, ``joint_samples`` and
``noise_variance``. Kinds that use the ILR structure categories receive them as extra
columns appended to the descriptors (:func:`with_categories`), so acquisition code passes
one array around.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bodisc.surrogates.registry import (
    DEFAULT_DEVICE,
    DEFAULT_KERNEL,
    DEFAULT_PRECISION,
    DEVICES,
    KERNELS,
    N_CATEGORIES,
    PRECISIONS,
    SURROGATES,
    Device,
    Kernel,
    Precision,
    SurrogateSpec,
    register_surrogate,
    spec_of,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DEFAULT_DEVICE",
    "DEFAULT_KERNEL",
    "DEFAULT_PRECISION",
    "DEVICES",
    "KERNELS",
    "N_CATEGORIES",
    "PRECISIONS",
    "SURROGATES",
    "Device",
    "Kernel",
    "Precision",
    "SurrogateSpec",
    "build_surrogate",
    "register_surrogate",
    "surrogate_options",
    "uses_categories",
    "with_categories",
]


def uses_categories(kind: str) -> bool:
    """Whether a kind needs the ILR structure categories of each molecule.

    Raises:
        ValueError: For an unknown kind.
    """
    return spec_of(kind).uses_categories


def with_categories(X: np.ndarray, smiles: list[str]) -> np.ndarray:
    """Descriptors ``(m, d)`` with the 44 category flags appended: ``(m, d + 44)``."""
    import numpy as np

    from bodisc.descriptors.categories import category_matrix

    return np.hstack([X, category_matrix(smiles).astype(float)])


def build_surrogate(kind: str, kernel: str = DEFAULT_KERNEL, device: str = DEFAULT_DEVICE,
                    precision: str = DEFAULT_PRECISION, **options: Any) -> Any:
    """A new, unfitted surrogate of a registered kind.

    Args:
        kind: A name in :data:`SURROGATES`.
        kernel: Kernel name (:data:`KERNELS`; GP kinds).
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: ``auto``, ``float64`` or ``float32`` (GP kinds).
        **options: The kind's factory options, e.g. for ``gp``: ``mean`` (``constant``,
            ``linear`` or ``proxy``, with ``proxy_column``, a column or a mapping column ->
            coefficient, and ``proxy_sign``); for ``sparse``: ``subset``, ``inducing``,
            ``seed``; for ``xgp``: ``seed``. :func:`surrogate_options` derives them from a
            campaign's ``[surrogate]`` section.

    Raises:
        ValueError: For an unknown kind, naming the registered ones.
        TypeError: For an option the kind does not take.
    """
    return spec_of(kind).build(kernel, device, precision, **options)


def surrogate_options(section: Any, seed: int, descriptor_names: Sequence[str] | None = None,
                      sign: float = 1.0) -> dict[str, Any]:
    """The factory options of a campaign's ``[surrogate]`` section.

    ``build_surrogate(s.kind, s.kernel, s.device, s.precision,
    **surrogate_options(s, seed, names, sign))`` is the campaign's model.

    Args:
        section: The ``[surrogate]`` section (:class:`bodisc.config.SurrogateConfig`).
        seed: The campaign's ``random_seed`` (``sparse``: the subset and inducing points).
        descriptor_names: The descriptor columns in order; needed by ``gp`` with
            ``mean = "proxy"``, whose options then carry ``proxy_column`` (column ->
            factor of :func:`bodisc.config.parse_proxy`) and ``proxy_sign``.
        sign: ``+1`` for labels used as they are, ``-1`` for negated ones (minimisation).

    Raises:
        ValueError: For an unknown kind, or ``mean = "proxy"`` without descriptor names.
    """
    return spec_of(section.kind).options(section, seed, descriptor_names, sign)
