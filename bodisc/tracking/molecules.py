"""The best molecules of a campaign as a sorted table and a picture, for people and MLflow.

``best_molecules.csv`` has the best label first and the unit in the property's column
name, so MLflow's artifact preview (its first 500 rows) starts with what a chemist looks
for; ``best_molecules.png`` draws the best few with value, unit and the structural flags
of :mod:`bodisc.chem.alerts` under each.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bodisc.config import CampaignConfig
from bodisc.store import CampaignStore

#: Molecules drawn in ``best_molecules.png`` (rows of :data:`PER_ROW`).
DRAWN, PER_ROW = 12, 4


def property_column(config: CampaignConfig) -> str:
    """The label column's name: ``property / unit`` (the property alone without a unit)."""
    obj = config.objective
    return f"{obj.property} / {obj.unit}" if obj.unit else obj.property


def best_table(store: CampaignStore, config: CampaignConfig, sign: float) -> Any:
    """Every labelled molecule, best first, as a DataFrame.

    Columns: ``rank``, ``smiles``, the property with its unit, ``iteration``, ``call``
    (the oracle call that labelled it, from 1; empty for a label from outside),
    ``pred_mean`` and ``pred_std`` (the surrogate's prediction when it was chosen, same
    unit), ``flags`` and ``inchikey``.
    A molecule labelled twice (e.g. by two oracles) appears once, with its best label.
    """
    import pandas as pd

    from bodisc.chem.alerts import flags

    extra = {s: s for s in config.generator.forbidden_substructures}
    prop = property_column(config)
    seen: dict[str, dict[str, Any]] = {}
    call_of = {j.id: n for n, j in enumerate(store.calls(), 1)}
    for job in store.jobs():
        if job.status != "done" or job.value is None:
            continue
        call = call_of.get(job.id)  # None: a label from outside bodisc
        old = seen.get(job.inchikey)
        if old is not None and sign * old[prop] >= sign * job.value:
            continue
        seen[job.inchikey] = {"smiles": job.smiles, prop: job.value, "iteration": job.iteration,
                              "call": call, "pred_mean": job.pred_mean,
                              "pred_std": job.pred_std, "inchikey": job.inchikey}
    rows = sorted(seen.values(), key=lambda r: (-sign * r[prop], r["call"] or 0))
    for i, row in enumerate(rows, 1):
        row["rank"] = i
        row["flags"] = ", ".join(flags(row["smiles"], extra))
    columns = ["rank", "smiles", prop, "iteration", "call", "pred_mean", "pred_std", "flags",
               "inchikey"]
    return pd.DataFrame(rows, columns=columns)


def draw_grid(smiles: Sequence[str], legends: Sequence[str], path: Path) -> Path:
    """Draw molecules in a grid (RDKit) with a legend under each; writes a PNG."""
    from rdkit import Chem
    from rdkit.Chem import Draw

    mols = [Chem.MolFromSmiles(s) for s in smiles]
    options = Draw.MolDrawOptions()
    options.legendFraction = 0.22  # room for two legend lines at a readable size
    options.legendFontSize = 18
    img = Draw.MolsToGridImage(mols, molsPerRow=PER_ROW, subImgSize=(280, 250),
                               legends=list(legends), drawOptions=options)
    path.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(img, "save"):
        img.save(path)
    else:  # an IPython Image (PNG bytes)
        path.write_bytes(img.data)
    return path


def write_best(store: CampaignStore, config: CampaignConfig, sign: float,
               folder: Path) -> tuple[Path, Path | None]:
    """Write ``best_molecules.csv`` and (with at least one label) ``best_molecules.png``.

    Returns:
        The CSV's path and the PNG's (``None`` when nothing is labelled yet).
    """
    table = best_table(store, config, sign)
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / "best_molecules.csv"
    tmp = csv.with_suffix(".csv.tmp")
    table.to_csv(tmp, index=False, float_format="%.6g")
    tmp.replace(csv)  # a reader never sees half a file
    if table.empty:
        return csv, None
    prop, unit = property_column(config), config.objective.unit
    top = table.head(DRAWN)
    legends = []
    for _, row in top.iterrows():
        where = f"call {int(row['call'])}" if row["call"] == row["call"] and row["call"] else \
            "external"
        text = f"#{row['rank']}  {row[prop]:.3f} {unit}".rstrip() + f"  ({where})"
        if row["flags"]:
            text += f"\nflags: {row['flags']}"
        legends.append(text)
    png = draw_grid(list(top["smiles"]), legends, folder / "best_molecules.png")
    return csv, png
