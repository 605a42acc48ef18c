"""The Pareto front of a campaign with several objectives, drawn as a PNG.

A campaign's export (:func:`bodisc.loop.records.export`) writes ``pareto.png`` with
:func:`write_pareto`, and ``bodisc report`` draws ``pareto_<run>.png`` per run with
:func:`draw_pareto`. The figure lives apart from :mod:`bodisc.report` so that a campaign,
and :mod:`bodisc.compare` running campaigns in its workers, never import the report page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bodisc.config import CampaignConfig
from bodisc.plotting import pyplot, save


@dataclass
class FrontData:
    """What the figure needs of one run; :class:`bodisc.report.RunData` has the same fields.

    Attributes:
        label: Run name for the title.
        config: The run's campaign file.
        objectives: The objectives' properties, in file order.
        objective_values: Per labelled molecule its value of every objective, in their
            units, shape ``(n, k)`` (NaN where a label lacks one).
        feasible: Per labelled molecule whether it meets every modelled constraint,
            shape ``(n,)``.
        labelled_smiles: The labelled molecules' SMILES, the rows of ``objective_values``.
    """

    label: str
    config: CampaignConfig
    objectives: tuple[str, ...]
    objective_values: np.ndarray | None
    feasible: np.ndarray | None
    labelled_smiles: tuple[str, ...]

    @property
    def several_objectives(self) -> bool:
        """Two or more objectives with their labels loaded (a Pareto front to show)."""
        return len(self.objectives) > 1 and self.objective_values is not None


def objective_labels(store: Any, config: CampaignConfig
                     ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Every labelled molecule's objective values, feasibility and SMILES.

    The labelled jobs are those of :func:`bodisc.loop.diagnostics.labelled` (target
    fidelity, in submission order, labels from outside included).

    Args:
        store: The campaign's :class:`~bodisc.store.CampaignStore`.
        config: The campaign.

    Returns:
        ``(values, feasible, smiles)``: objective values in their units ``(n, k)`` (NaN
        where a label lacks one), whether each meets every modelled constraint ``(n,)``
        (a label without a constrained property does not), and the SMILES ``(n,)``.
    """
    from bodisc.loop.diagnostics import labelled
    from bodisc.loop.objectives import Objectives

    obj = Objectives(config)
    jobs = labelled(store)
    Y, C, _ = obj.matrices(jobs)
    return Y * obj.signs, obj.feasible(C), tuple(j.smiles for j in jobs)


#: Molecules of the front drawn as insets: at most this many in a run with two
#: objectives, and :data:`PARETO_INSETS_PER_PANEL` in each panel of three or more.
PARETO_INSETS, PARETO_INSETS_PER_PANEL = 6, 4
#: Colour of the feasible non-dominated front; grey of the other labels.
FRONT_COLOR, OTHER_COLOR = "#c0392b", "0.62"


@dataclass(frozen=True)
class ParetoPoints:
    """The labelled molecules of one run with several objectives, by their place.

    Row indices into ``FrontData.objective_values``; a row without every objective value
    is in none of them (it cannot be placed).

    Attributes:
        front: Feasible and non-dominated among the feasible labels (:func:`pareto_mask`
            of their values in maximisation form), ascending.
        dominated: Feasible, dominated by another feasible label.
        infeasible: Outside a constraint's window (or without the constrained property).
    """

    front: np.ndarray
    dominated: np.ndarray
    infeasible: np.ndarray


def objective_signs(config: CampaignConfig) -> np.ndarray:
    """+1 per maximised objective, -1 per minimised one, shape ``(k,)``."""
    return np.array([1.0 if o.direction == "maximize" else -1.0 for o in config.objectives])


def pareto_points(run: FrontData) -> ParetoPoints:
    """Split a run's labelled molecules into the front, the dominated and the infeasible.

    Args:
        run: A run with several objectives (:attr:`FrontData.several_objectives`).

    Returns:
        The row indices of each group (all empty for a run with one objective).
    """
    from bodisc.pareto import pareto_mask

    none = np.zeros(0, dtype=int)
    if not run.several_objectives:
        return ParetoPoints(none, none, none)
    values = np.asarray(run.objective_values, dtype=float)
    feasible = np.asarray(run.feasible, dtype=bool)
    placed = np.isfinite(values).all(axis=1)
    ok = np.flatnonzero(placed & feasible)
    on_front = np.zeros(len(values), dtype=bool)
    if len(ok):
        on_front[ok[pareto_mask(values[ok] * objective_signs(run.config))]] = True
    return ParetoPoints(np.flatnonzero(on_front),
                        np.flatnonzero(placed & feasible & ~on_front),
                        np.flatnonzero(placed & ~feasible))


def pareto_panels(run: FrontData) -> list[tuple[int, int]]:
    """The pairs of objectives ``(x, y)`` the Pareto figure draws, one panel each.

    One pair for two objectives, every pair (in file order) for three or more; none for
    a run with one objective.
    """
    import itertools

    if not run.several_objectives:
        return []
    return list(itertools.combinations(range(len(run.objectives)), 2))


def _objective_label(config: CampaignConfig, i: int) -> str:
    """``property / unit (direction)`` of objective ``i``, for an axis."""
    o = config.objectives[i]
    name = f"{o.property} / {o.unit}" if o.unit else o.property
    return f"{name} ({o.direction})"


def front_staircase(points: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """The step line through the non-dominated points of two objectives.

    Args:
        points: Points in their units, shape ``(n, 2)``, no NaN.
        signs: +1 (maximise) or -1 (minimise) per column, shape ``(2,)``.

    Returns:
        The line's vertices in the units, shape ``(m, 2)``: the 2-D front of ``points``
        in order along the first objective, a corner between each two, so that the line
        is the edge of the region the front dominates (empty without points).
    """
    from bodisc.pareto import pareto_mask

    if len(points) == 0:
        return np.zeros((0, 2))
    Y = np.asarray(points, dtype=float) * signs
    F = np.unique(Y[pareto_mask(Y)], axis=0)
    F = F[np.lexsort((F[:, 1], -F[:, 0]))]  # first objective best first
    verts = [F[0]]
    for prev, nxt in zip(F[:-1], F[1:], strict=True):
        verts.extend([np.array([nxt[0], prev[1]]), nxt])
    return np.array(verts) * signs


def _spread(n: int, m: int) -> list[int]:
    """At most ``m`` indices of ``range(n)`` evenly spread, both ends included."""
    if n <= m:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, m)})


def _molecule_image(smiles: str) -> np.ndarray | None:
    """The molecule drawn by RDKit (RGB array), or ``None`` if RDKit cannot read it."""
    from rdkit import Chem
    from rdkit.Chem import Draw

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    img = Draw.MolToImage(mol, size=(220, 170))
    return np.asarray(img.convert("RGB"))


def _pareto_panel(ax: Any, run: FrontData, pts: ParetoPoints, pair: tuple[int, int],
                  insets: int, zoom: float) -> None:
    """One panel of :func:`draw_pareto`: the labels of objectives ``pair`` as x and y."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    from bodisc.pareto import pareto_mask

    i, j = pair
    V = np.asarray(run.objective_values, dtype=float)[:, [i, j]]
    signs = objective_signs(run.config)[[i, j]]
    if len(pts.dominated):
        ax.scatter(V[pts.dominated, 0], V[pts.dominated, 1], s=16, color=OTHER_COLOR, lw=0,
                   label=f"dominated ({len(pts.dominated)})", zorder=2)
    if len(pts.infeasible):
        ax.scatter(V[pts.infeasible, 0], V[pts.infeasible, 1], s=18, facecolors="none",
                   edgecolors=OTHER_COLOR, lw=0.9,
                   label=f"infeasible ({len(pts.infeasible)})", zorder=2)
    front = V[pts.front]
    if len(front):
        step = front_staircase(front, signs)
        ax.plot(step[:, 0], step[:, 1], color=FRONT_COLOR, lw=1.3, zorder=3)
        ax.scatter(front[:, 0], front[:, 1], s=34, color=FRONT_COLOR, edgecolor="k", lw=0.5,
                   label=f"front ({len(front)})", zorder=4)
    placed = np.concatenate([pts.front, pts.dominated, pts.infeasible])
    if not len(placed):
        ax.text(0.5, 0.5, "no labelled molecule", ha="center", va="center",
                transform=ax.transAxes)
        return
    lo, hi = V[placed].min(axis=0), V[placed].max(axis=0)
    span = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1.0))
    ax.set_xlim(lo[0] - 0.06 * span[0], hi[0] + 0.06 * span[0])
    # an empty band on the better side of y holds the molecules' pictures
    up = signs[1] > 0
    band = 0.62 * span[1] if len(front) else 0.0
    ax.set_ylim(lo[1] - 0.06 * span[1] - (0 if up else band),
                hi[1] + 0.06 * span[1] + (band if up else 0))
    for axis, k in ((ax.axvline, i), (ax.axhline, j)):
        ref = run.config.objectives[k].reference
        if ref is not None:
            axis(ref, color="0.3", ls=":", lw=1)
    # the molecules on this pair's step line, spread along it (in the order of x), as
    # pictures with arrows
    edge = pts.front[pareto_mask(front * signs)] if len(front) else pts.front
    order = edge[np.argsort(V[edge, 0], kind="stable")]
    seen: set[str] = set()
    distinct = []
    for r in order:
        if run.labelled_smiles[r] not in seen:
            seen.add(run.labelled_smiles[r])
            distinct.append(r)
    chosen = [distinct[c] for c in _spread(len(distinct), insets)]
    for n, r in enumerate(chosen):
        image = _molecule_image(run.labelled_smiles[r])
        if image is None:
            continue
        x = (n + 0.5) / len(chosen)
        box = AnnotationBbox(OffsetImage(image, zoom=zoom), (V[r, 0], V[r, 1]),
                             xybox=(x, 0.835 if up else 0.165), boxcoords="axes fraction",
                             pad=0.15, bboxprops={"edgecolor": FRONT_COLOR, "lw": 0.8},
                             arrowprops={"arrowstyle": "->", "color": FRONT_COLOR, "lw": 0.8,
                                         "shrinkB": 3},
                             zorder=5)
        ax.add_artist(box)


def draw_pareto(run: FrontData, path: Path) -> Path:
    """The Pareto front of one run with several objectives, as a PNG.

    Two objectives: one scatter, the first objective as x; three or more: one panel per
    pair (:func:`pareto_panels`). Dominated labels are grey dots, infeasible ones grey
    rings, the feasible non-dominated front coloured and joined by its step line
    (:func:`front_staircase`); some molecules on the step line (spread along it) are
    drawn by RDKit in the free band on the better side of y, with an arrow to their point.
    With three or more objectives a front molecule may sit off a panel's step line (it
    wins in an objective that panel does not show).
    Axes carry the units and the direction; a dotted line marks an objective's
    ``reference``. The PNG's ``Description`` names the panels (``x vs y; ...``).
    """
    plt = pyplot()
    pairs = pareto_panels(run)
    pts = pareto_points(run)
    ncol = min(3, len(pairs))
    nrow = -(-len(pairs) // ncol)
    width = 7.6 if len(pairs) == 1 else 5.4
    fig, axes = plt.subplots(nrow, ncol, figsize=(width * ncol, 0.86 * width * nrow + 0.5),
                             squeeze=False, layout="constrained")
    insets = PARETO_INSETS if len(pairs) == 1 else PARETO_INSETS_PER_PANEL
    # pictures of 220 px, as wide together as 80 % of the axes (about 0.8 of the figure)
    zoom = min(0.42, 0.8 * 0.82 * width * 72 / (insets * 220))
    for ax, pair in zip(axes.flat, pairs, strict=False):
        _pareto_panel(ax, run, pts, pair, insets, zoom)
        ax.set_xlabel(_objective_label(run.config, pair[0]))
        ax.set_ylabel(_objective_label(run.config, pair[1]))
        if len(pairs) > 1:
            ax.set_title(f"{run.objectives[pair[0]]} vs {run.objectives[pair[1]]}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(pairs):]:
        ax.axis("off")
    if len(pts.front) or len(pts.dominated) or len(pts.infeasible):
        axes[0, 0].legend(fontsize=7, loc="lower left" if objective_signs(run.config)[1] > 0
                          else "upper left", framealpha=0.85)
    n = len(pts.front) + len(pts.dominated) + len(pts.infeasible)
    fig.suptitle(f"{run.label}: Pareto front of {n} labelled molecules\ncoloured: feasible "
                 f"and non-dominated; grey: dominated; rings: infeasible", fontsize=10)
    panels = "; ".join(f"{run.objectives[a]} vs {run.objectives[b]}" for a, b in pairs)
    return save(fig, path, dpi=110, metadata={"Title": f"{run.label}: Pareto front",
                                              "Description": panels})


def write_pareto(store: Any, config: CampaignConfig, path: Path) -> Path | None:
    """Draw a campaign's Pareto front from its store (:func:`draw_pareto`).

    Returns:
        ``path``, or ``None`` for a campaign with one objective (nothing is written).
    """
    if not config.multi_objective:
        return None
    values, feasible, smiles = objective_labels(store, config)
    run = FrontData(config.name, config, tuple(o.property for o in config.objectives),
                    values, feasible, smiles)
    path.parent.mkdir(parents=True, exist_ok=True)
    return draw_pareto(run, path)
