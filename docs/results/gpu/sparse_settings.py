"""Sparse GP settings on all of QM9 (dipole): held-out RMSE for subset and inducing sizes.

Run on a GPU machine from the repository root, with ``OUT`` naming a folder:
``python docs/results/gpu/sparse_settings.py grid`` or ``... seeds``. Both use
``bench_sparse``'s split 0 (3,000 held-out molecules, split seed 4) and its first 10,000
training labels.

* ``grid`` (``sparse_grid.json``): one sparse GP (seed 0) per subset and inducing size,
  with the subset fit's hyperparameters, and the exact GP on 2,000 and on all 10,000
  labels; ``(rmse, seconds[, hyperparameters])`` per entry.
* ``seeds`` (``sparse_settings.json``): sparse GP seeds 0 to 2 per setting, and the exact
  GP on 2,000 labels of two other training draws (seeds 1 and 2); ``(rmse, seconds)``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import numpy as np

from bodisc.bench.surrogate import qm9_table
from bodisc.surrogates.gp import GPSurrogate
from bodisc.surrogates.sparse import SparseGP

X, y, _ = qm9_table()
order = np.random.default_rng(4).permutation(len(y))
test, pool = order[:3000], order[3000:]
train = pool[:10000]


def rmse(model: Any) -> float:
    """Held-out RMSE in D."""
    return float(np.sqrt(np.mean((model.predict(X[test])[0] - y[test]) ** 2)))


def timed(make: Any) -> tuple[Any, float]:
    """A fitted model and its fit time in seconds."""
    t0 = time.perf_counter()
    model = make()
    return model, time.perf_counter() - t0


def grid() -> dict[str, Any]:
    """One seed per setting; the exact GP on 2,000 and 10,000 labels."""
    ex, s = timed(lambda: GPSurrogate(device="cuda").fit(X[train[:2000]], y[train[:2000]]))
    out: dict[str, Any] = {"exact2000": (rmse(ex), s)}
    for sub in (1000, 2000, 4000):
        for ind in (1024, 2048, 4096, 10000):
            sp, s = timed(lambda sub=sub, ind=ind: SparseGP(
                device="cuda", subset=sub, inducing=ind).fit(X[train], y[train]))
            out[f"sub{sub}_ind{ind}"] = (rmse(sp), s, sp.exact.hyperparameters())
    ex, s = timed(lambda: GPSurrogate(device="cuda").fit(X[train], y[train]))
    out["exact10000"] = (rmse(ex), s, ex.hyperparameters())
    return out


def seeds() -> dict[str, Any]:
    """Sparse GP seeds 0 to 2 per setting; the exact GP on two other training draws."""
    out: dict[str, Any] = {}
    settings = ((1000, 1024), (1000, 2048), (2000, 1024), (2000, 2048), (2000, 4096),
                (3000, 3072))
    for sub, ind in settings:
        for seed in (0, 1, 2):
            sp, s = timed(lambda sub=sub, ind=ind, seed=seed: SparseGP(
                device="cuda", subset=sub, inducing=ind, seed=seed).fit(X[train], y[train]))
            out[f"sub{sub}_ind{ind}_s{seed}"] = (rmse(sp), s)
    for k in (1, 2):
        draw = np.random.default_rng(k).permutation(pool)[:2000]
        out[f"exact2000_draw{k}"] = rmse(GPSurrogate(device="cuda").fit(X[draw], y[draw]))
    return out


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "seeds"
    result = {"grid": grid, "seeds": seeds}[which]()
    name = "sparse_grid.json" if which == "grid" else "sparse_settings.json"
    with open(os.path.join(os.environ["OUT"], name), "w") as stream:
        json.dump(result, stream, indent=1, default=str)
