"""Matplotlib for figure files: the Agg backend, and saving a figure where it belongs.

Every figure bodisc draws (reports, benchmark pages, MLflow artifacts) goes to a file, on
machines without a display, so the backend is Agg; matplotlib is imported only when a
figure is drawn, keeping it off the import path of a campaign.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the Agg backend selected."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path, *, dpi: int = 120,
         metadata: dict[str, str] | None = None) -> Path:
    """Write ``fig`` to ``path`` (its folder made if needed), close it, return ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, metadata=metadata)
    pyplot().close(fig)
    return path
