"""A causal graph drawn for people: descriptors in layers by causal order, the target last.

Drawn from the JSON form of a graph (:meth:`bodisc.causal.graph.CausalGraph.to_dict`, as
the campaign store keeps it), so the report and MLflow need neither lingam nor a refit.
Edges are arrows from cause to effect, their width the absolute weight (z-score units),
blue for a positive and red for a negative effect, labelled with the weight and, where a
bootstrap was run, the share of resamples that found the edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bodisc.plotting import pyplot, save

__all__ = ["draw_graph", "layers"]


def layers(graph: Mapping[str, Any]) -> dict[str, int]:
    """Each variable's layer: the length of the longest path of edges that reaches it.

    Args:
        graph: ``names``, ``order`` (causes first) and ``edges`` (``cause``, ``effect``).
    """
    depth = {name: 0 for name in graph["names"]}
    incoming: dict[str, list[str]] = {name: [] for name in graph["names"]}
    for edge in graph["edges"]:
        incoming[edge["effect"]].append(edge["cause"])
    for name in graph["order"]:  # causes come first, so their depth is final
        if incoming[name]:
            depth[name] = 1 + max(depth[c] for c in incoming[name])
    target = graph.get("target")
    if target is not None:
        depth[target] = max(depth.values()) + (0 if incoming[target] else 1)
    return depth


def draw_graph(graph: Mapping[str, Any], path: Path, title: str = "") -> Path:
    """Draw ``graph`` to a PNG file; variables without any edge are left out (noted).

    Args:
        graph: The JSON form of a causal graph.
        path: The PNG to write.
        title: Title above the drawing.

    Returns:
        ``path``.
    """
    plt = pyplot()

    used = {e["cause"] for e in graph["edges"]} | {e["effect"] for e in graph["edges"]}
    target = graph.get("target")
    if target is not None:
        used.add(target)
    depth = layers(graph)
    by_layer: dict[int, list[str]] = {}
    for name in graph["order"]:
        if name in used:
            by_layer.setdefault(depth[name], []).append(name)
    pos = {}
    for x, layer in enumerate(sorted(by_layer)):
        names = by_layer[layer]
        for k, name in enumerate(names):
            pos[name] = (float(x), (len(names) - 1) / 2.0 - k)
    width = max(4.0, 2.2 * len(by_layer))
    height = max(3.0, 0.9 * max((len(v) for v in by_layer.values()), default=1))
    fig, ax = plt.subplots(figsize=(width, height))
    top = max((abs(e["weight"]) for e in graph["edges"]), default=1.0) or 1.0
    for edge in graph["edges"]:
        (x0, y0), (x1, y1) = pos[edge["cause"]], pos[edge["effect"]]
        colour = "tab:blue" if edge["weight"] > 0 else "tab:red"
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops={"arrowstyle": "-|>", "color": colour, "alpha": 0.7,
                                "lw": 0.6 + 3.0 * abs(edge["weight"]) / top,
                                "shrinkA": 18, "shrinkB": 18})
        text = f"{edge['weight']:+.2f}"
        if edge.get("probability") is not None:
            text += f" ({edge['probability']:.0%})"
        ax.text((x0 + x1) / 2, (y0 + y1) / 2, text, fontsize=7, color=colour,
                ha="center", va="center",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5})
    for name, (x, y) in pos.items():
        face = "gold" if name == target else "whitesmoke"
        ax.text(x, y, name, ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round", "facecolor": face, "edgecolor": "grey"})
    left_out = len(graph["names"]) - len(used)
    note = f"; {left_out} descriptor(s) without edges not shown" if left_out else ""
    ax.set_title((title + "\n" if title else "") +
                 f"cause -> effect, weight in standard deviations{note}", fontsize=9)
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    ax.set_xlim(min(xs) - 0.7, max(xs) + 0.7)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.axis("off")
    fig.tight_layout()
    return save(fig, path, dpi=110)
