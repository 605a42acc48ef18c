"""Play the lab for the QMex solvation campaign, driving bodisc only through its commands.

For each seed: 50 of the 628 molecules of the QMex solvation set (631 rows; stereoisomers
are one molecule to bodisc, with their mean dGs) become the labelled start
(``work/labelled.csv``), the other 578 the pool (``work/pool.smi``). Then, 10 times,
``bodisc suggest`` asks for 10 molecules and this script answers with the dataset's own
hydration free energies through ``bodisc ingest``, as a lab would. It measures the share
of the pool's 10 % most negative dGs (58 of 578) found after 50 and 100 suggestions, and
the same for two baselines that see the same 50 labels: random choice, and ranking the
pool by the single bodisc descriptor (GFN2-xTB, as the campaign computes it) most
correlated with dGs among the 50.

Usage (from the repository root)::

    python examples/qmex_dGs/run_example.py --seeds 0-4 --out docs/results/qmex_dGs

Writes ``<out>/qmex_dGs.jsonl`` (one record per method and seed: ``method``, ``seed``,
``top10pct_recall_50``, ``top10pct_recall_100``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
CAMPAIGN = HERE / "campaign.toml"
N_LABELLED, BATCH, ROUNDS = 50, 10, 10


def bodisc(*args: str) -> str:
    """Run one bodisc command as a user would; stop on failure."""
    proc = subprocess.run([sys.executable, "-m", "bodisc.cli", *args], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        sys.exit(f"bodisc {' '.join(args[:2])} failed:\n{proc.stderr}")
    return proc.stdout


def recall(chosen: list[str], top: set[str], n: int) -> float:
    """Share of ``top`` among the first ``n`` chosen molecules."""
    return len(set(chosen[:n]) & top) / len(top)


def descriptor_ranking(pool: pd.DataFrame, labelled: pd.DataFrame, names: list[str],
                       X_pool: np.ndarray, X_lab: np.ndarray) -> tuple[str, list[str]]:
    """The pool ranked by the descriptor most correlated (|Pearson r|) with dGs in the 50."""
    best, best_r = 0, 0.0
    for j in range(len(names)):
        ok = np.isfinite(X_lab[:, j])
        if ok.sum() < 3 or np.std(X_lab[ok, j]) == 0:
            continue
        r = float(np.corrcoef(X_lab[ok, j], labelled["dGs"].to_numpy()[ok])[0, 1])
        if abs(r) > abs(best_r):
            best, best_r = j, r
    # minimising dGs: small values of a positively correlated descriptor first
    score = np.where(np.isfinite(X_pool[:, best]), X_pool[:, best], np.inf if best_r > 0
                     else -np.inf)
    order = np.argsort(score if best_r > 0 else -score, kind="stable")
    return f"{names[best]} (r = {best_r:+.2f})", list(pool["inchikey"].to_numpy()[order])


def main() -> None:
    """Run the example for each seed and write the records."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-4", help="e.g. 0-4 or 0,2")
    parser.add_argument("--out", type=Path, default=Path("docs/results/qmex_dGs"))
    args = parser.parse_args()
    if "-" in args.seeds:
        lo, hi = args.seeds.split("-")
        seeds = list(range(int(lo), int(hi) + 1))
    else:
        seeds = [int(s) for s in args.seeds.split(",")]

    from bodisc.chem.library import LibraryPool
    from bodisc.chem.molecule import record_from_smiles
    from bodisc.config import load_campaign
    from bodisc.loop.features import Featuriser

    data = pd.read_csv(HERE / "qmex_dGs.csv")
    data["inchikey"] = [record_from_smiles(s).inchikey for s in data["smiles"]]
    # bodisc's identity ignores stereochemistry: three pairs of stereoisomers (nerol and
    # geraniol, the enantiomers of 1,1,1-trifluoropropan-2-ol, cis- and
    # trans-1,2-dichloroethene) are one molecule each, with the mean of their dGs
    data = (data.groupby("inchikey", sort=False)
            .agg(smiles=("smiles", "first"), dGs=("dGs", "mean")).reset_index())
    work = HERE / "work"
    work.mkdir(exist_ok=True)
    # every molecule's descriptors once, in the cache the campaigns share
    everything = work / "all.smi"
    everything.write_text("".join(f"{s}\n" for s in data["smiles"]))
    (work / "labelled.csv").write_text("smiles,dGs\n")  # the campaign file names them
    shutil.copy(everything, work / "pool.smi")
    cfg = load_campaign(CAMPAIGN)
    features = Featuriser(cfg)
    library = LibraryPool.open(everything, names=features.tier_names,
                               conformer_seed=cfg.descriptors.conformer_seed,
                               method=cfg.descriptors.method, workers=cfg.execution.workers)
    X_all, found = library.vectors(list(data["inchikey"]))
    X_all = X_all[:, features.columns]
    X_all[~found] = np.nan

    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(data))
        lab, pool = data.iloc[order[:N_LABELLED]], data.iloc[order[N_LABELLED:]]
        n_top = math.ceil(0.1 * len(pool))
        top = set(pool.nsmallest(n_top, "dGs")["inchikey"])
        lab[["smiles", "dGs"]].to_csv(work / "labelled.csv", index=False)
        (work / "pool.smi").write_text("".join(f"{s}\n" for s in pool["smiles"]))
        store = work / f"seed{seed}"
        if store.exists():
            shutil.rmtree(store)
        sets = ["--set", f"random_seed={seed}",
                "--set", f"paths.store={store}/store.sqlite",
                "--set", f"paths.export_csv={store}/results.csv"]
        value = dict(zip(data["inchikey"], data["dGs"], strict=True))
        chosen: list[str] = []
        for k in range(ROUNDS):
            batch = store / f"suggested_{k}.csv"
            bodisc("suggest", str(CAMPAIGN), "--n", str(BATCH), "--out", str(batch), *sets)
            rows = pd.read_csv(batch)
            rows["dGs"] = [value[key] for key in rows["inchikey"]]
            rows["source"] = "QMex solvation set (Shimakawa et al. 2024)"
            answer = store / f"labels_{k}.csv"
            rows.to_csv(answer, index=False)
            bodisc("ingest", str(CAMPAIGN), str(answer), *sets)
            chosen += list(rows["inchikey"])
        random_order = list(np.random.default_rng(10_000 + seed).permutation(
            pool["inchikey"].to_numpy()))
        X_lab = X_all[order[:N_LABELLED]]
        X_pool = X_all[order[N_LABELLED:]]
        name, ranked = descriptor_ranking(pool, lab, features.names, X_pool, X_lab)
        runs = (("bodisc", chosen, "ucb on a GP with the dEw prior mean, 10 per batch"),
                ("random", random_order, "random order of the pool"),
                ("descriptor", ranked, name))
        for method, picks, note in runs:
            rec = {"method": method, "seed": seed,
                   "top10pct_recall_50": recall(picks, top, 50),
                   "top10pct_recall_100": recall(picks, top, 100), "note": note,
                   "n_top": n_top}
            records.append(rec)
            print(f"seed {seed}  {method:<10}  @50 {rec['top10pct_recall_50']:.3f}  "
                  f"@100 {rec['top10pct_recall_100']:.3f}  {note}", flush=True)
    path = args.out / "qmex_dGs.jsonl"
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    frame = pd.DataFrame(records)
    print(frame.groupby("method")[["top10pct_recall_50", "top10pct_recall_100"]]
          .agg(["mean", "std"]).round(3).to_string())
    print(f"records: {path}")


if __name__ == "__main__":
    main()
