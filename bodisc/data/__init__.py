"""Reference data sets: QM9 (table, geometries, benchmark targets, cached descriptors).

The package data folder ``descriptors/`` ships QM9's fast-tier descriptors
(:func:`shipped_descriptors`).

Importing this package loads numpy only; pandas, RDKit and tblite load when a function
that needs them is called.
"""

from __future__ import annotations

from bodisc.data.qm9 import (
    QM9_COLUMNS,
    QM9_SIZE,
    QM9_TARGETS,
    QM9Progress,
    QM9Target,
    default_cache_dir,
    load_qm9,
    qm9_descriptors,
    qm9_geometry,
    qm9_sample_indices,
    shipped_descriptors,
)

__all__ = [
    "QM9_COLUMNS",
    "QM9_SIZE",
    "QM9_TARGETS",
    "QM9Progress",
    "QM9Target",
    "default_cache_dir",
    "load_qm9",
    "qm9_descriptors",
    "qm9_geometry",
    "qm9_sample_indices",
    "shipped_descriptors",
]
