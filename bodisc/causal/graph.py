"""The causal graph between descriptors and a target: DirectLiNGAM, its effects, its distance.

A :class:`CausalGraph` holds a LiNGAM adjacency matrix ``B`` (``B[i, j]`` is the direct
effect of variable ``j`` on variable ``i``; a DAG, so ``B`` is permutable to strictly
lower triangular), the variables' names and, where computed, bootstrap probabilities of
the edges. The target (when there is one) is a sink: nothing it causes is searched for,
as a molecule's label is the end of the chain, not a cause of its descriptors.

``lingam`` is an optional extra (``pip install "bodisc[causal]"``); :func:`require_lingam`
turns its absence into a one-line error with that command.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bodisc.errors import OptionalDependencyError

__all__ = ["CausalGraph", "fit_graph", "graph_distance", "require_lingam", "row_sums",
           "INSTALL"]

#: The command that installs what causal design and interventions need.
INSTALL = 'pip install "bodisc[causal]"'


def require_lingam() -> Any:
    """Import ``lingam``, or raise the one-line error that says how to install it.

    Raises:
        OptionalDependencyError: When the ``causal`` extra is not installed.
    """
    try:
        import lingam
    except ImportError as exc:
        raise OptionalDependencyError(
            f"causal design and interventions need the lingam package ({exc}); "
            f"install it with: {INSTALL}") from None
    return lingam


@dataclass(frozen=True)
class CausalGraph:
    """A learnt linear non-Gaussian acyclic model.

    Attributes:
        names: Variable names, length ``d`` (descriptors, then the target if any).
        B: Adjacency matrix, shape ``(d, d)``; ``B[i, j]`` is the direct effect of ``j``
            on ``i`` in the units the graph was fitted in.
        order: A causal order of the variables (indices, causes first), length ``d``.
        target: Index of the target (a sink), or ``None``.
        probabilities: Bootstrap probability of each edge ``j -> i``, shape ``(d, d)``,
            or ``None`` where no bootstrap was run.
        scale: Standard deviation of each variable in the data fitted, shape ``(d,)``
            (the graph is fitted on z-scores; multiply back for natural units).
    """

    names: tuple[str, ...]
    B: np.ndarray
    order: tuple[int, ...]
    target: int | None = None
    probabilities: np.ndarray | None = None
    scale: np.ndarray | None = field(default=None, repr=False)

    def total_effects(self) -> np.ndarray:
        """Total causal effects, ``T = (I - B)^-1``, shape ``(d, d)``.

        ``T[i, j]`` is how much variable ``i`` moves when variable ``j`` is set one unit
        higher by an intervention (direct and through every path); ``T[j, j] = 1``.
        """
        d = len(self.names)
        return np.linalg.inv(np.eye(d) - self.B)

    def effects_on_target(self) -> np.ndarray:
        """Total effect of each variable on the target, shape ``(d,)`` (0 for the target).

        Raises:
            ValueError: For a graph without a target.
        """
        if self.target is None:
            raise ValueError("this graph has no target")
        out = self.total_effects()[self.target].copy()
        out[self.target] = 0.0
        return out

    def edges(self, threshold: float = 0.0) -> list[tuple[str, str, float, float | None]]:
        """The edges ``(cause, effect, weight, bootstrap probability or None)``.

        Args:
            threshold: Leave out edges with ``|weight| <= threshold``.
        """
        out = []
        d = len(self.names)
        for i in range(d):
            for j in range(d):
                w = float(self.B[i, j])
                if abs(w) > threshold:
                    p = None if self.probabilities is None else float(self.probabilities[i, j])
                    out.append((self.names[j], self.names[i], w, p))
        return sorted(out, key=lambda e: -abs(e[2]))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (names, order, target, edges)."""
        return {"names": list(self.names), "order": [self.names[i] for i in self.order],
                "target": None if self.target is None else self.names[self.target],
                "edges": [{"cause": c, "effect": e, "weight": w, "probability": p}
                          for c, e, w, p in self.edges()]}


def fit_graph(X: np.ndarray, names: Sequence[str], *, target: np.ndarray | None = None,
              target_name: str = "target", bootstrap: int = 0,
              rng: np.random.Generator | None = None) -> CausalGraph:
    """Fit DirectLiNGAM on z-scored descriptors, with the target (if given) as a sink.

    Columns with no spread are kept in the graph with no edges (LiNGAM cannot order a
    constant). Adaptive-lasso pruning (lingam's default, BIC) removes weak edges.

    Args:
        X: Descriptors, shape ``(n, d)``.
        names: Their names, length ``d``.
        target: Target values, shape ``(n,)``, or ``None`` for a graph of descriptors only.
        target_name: The target's name in the graph.
        bootstrap: Bootstrap resamples for the edges' probabilities (0: none).
        rng: Generator of the bootstrap resamples (required when ``bootstrap > 0``).

    Returns:
        The :class:`CausalGraph` (on z-scores; ``scale`` holds the standard deviations).
    """
    lingam = require_lingam()
    data = np.asarray(X, dtype=float)
    labels = list(names)
    if target is not None:
        data = np.column_stack([data, np.asarray(target, dtype=float)])
        labels.append(target_name)
    n, d = data.shape
    if n < 3:
        raise ValueError(f"a causal graph needs at least 3 molecules, got {n}")
    sd = data.std(axis=0)
    live = np.flatnonzero(sd > 1e-12 * np.maximum(1.0, np.abs(data).max(axis=0)))
    z = (data[:, live] - data[:, live].mean(axis=0)) / sd[live]
    t_live = None
    if target is not None and (d - 1) in live:
        t_live = int(np.flatnonzero(live == d - 1)[0])
    prior = None
    if t_live is not None:
        # the target is a sink: no path from it to any descriptor
        prior = -np.ones((len(live), len(live)), dtype=int)
        prior[:, t_live] = 0
        prior[t_live, t_live] = -1
    seed = None if rng is None else int(rng.integers(2**31 - 1))
    model = lingam.DirectLiNGAM(random_state=seed, prior_knowledge=prior)
    model.fit(z)
    B = np.zeros((d, d))
    B[np.ix_(live, live)] = model.adjacency_matrix_
    dead = [i for i in range(d) if i not in set(live.tolist())]
    order = tuple(int(live[i]) for i in model.causal_order_) + tuple(dead)
    probs = None
    if bootstrap > 0:
        if rng is None:
            raise ValueError("a bootstrap needs rng")
        hits = np.zeros((len(live), len(live)))
        for _ in range(bootstrap):
            rows = rng.integers(0, n, size=n)
            sample = z[rows]
            sample = (sample - sample.mean(axis=0)) / np.maximum(sample.std(axis=0), 1e-12)
            boot = lingam.DirectLiNGAM(random_state=int(rng.integers(2**31 - 1)),
                                       prior_knowledge=prior)
            boot.fit(sample)
            hits += np.abs(boot.adjacency_matrix_) > 0
        probs = np.zeros((d, d))
        probs[np.ix_(live, live)] = hits / bootstrap
    return CausalGraph(tuple(labels), B, order, d - 1 if target is not None else None,
                       probs, sd)


def row_sums(B: np.ndarray) -> np.ndarray:
    """Sorted row sums of ``B`` (descending): the Laplacian spectrum of a weighted DAG.

    A DAG's Laplacian ``D - B`` (``D`` the diagonal of row sums) is triangular up to a
    permutation, so its eigenvalues are its diagonal: the row sums of ``B``.
    """
    return np.sort(np.asarray(B, dtype=float).sum(axis=1))[::-1]


def graph_distance(B1: np.ndarray, B2: np.ndarray) -> float:
    """Spectral (lambda) distance between two graphs on the same variables.

    The L2 distance between the Laplacian spectra, :func:`row_sums` of each: what
    ``netcomp.lambda_dist`` computes on the Laplacians of two DAGs, without building them.

    Args:
        B1: Adjacency matrix, shape ``(d, d)``.
        B2: Adjacency matrix, shape ``(d, d)``.
    """
    return float(np.linalg.norm(row_sums(B1) - row_sums(B2)))
