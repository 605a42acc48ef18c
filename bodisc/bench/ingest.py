"""Ingest throughput: a file of QM9 labels taken into an external campaign's store.

The baseline the issue names is the user's patience ("seconds, not minutes"), so the
benchmark reports seconds per phase: reading and checking the file
(:func:`bodisc.data.tables.read_labels`), planning and committing it as off-policy
labels (:meth:`bodisc.campaign.Campaign.ingest`, one transaction), and the same file
again (a no-op), with rows per second of the whole first ingest.
"""

from __future__ import annotations

import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

CAMPAIGN = """
name = "ingest_bench"
random_seed = 0
seed_molecules = ["CCO"]

[objective]
property = "gap"
direction = "maximize"
unit = "eV"

[generator]
allowed_elements = ["C", "N", "O", "F"]
charge_rule = "any"

[oracle]
name = "external"

[budget]
oracle_calls = 100

[paths]
store = "{root}/store.sqlite"
export_csv = "{root}/results.csv"
mlruns = "{root}/mlruns"
"""


def bench_ingest(rows: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Ingest ``rows`` QM9 HOMO-LUMO gaps into a new external campaign, timed.

    Returns:
        ``rows``, ``read_s`` (reading and checking the file alone), ``ingest_s`` (the
        whole first ingest: read, plan, one transaction), ``again_s`` (the same file
        again), ``rows_per_s`` and the counts the ingest reported.
    """
    import pandas as pd

    from bodisc.campaign import Campaign
    from bodisc.config import load_campaign
    from bodisc.data import load_qm9
    from bodisc.data.tables import read_labels

    table = load_qm9(["smiles", "gap_eV"])
    pick = np.random.default_rng(seed).choice(len(table), size=rows, replace=False)
    sample = table.iloc[np.sort(pick)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        labels = root / "labels.csv"
        pd.DataFrame({"smiles": sample["smiles"].to_numpy(),
                      "gap": sample["gap_eV"].to_numpy()}).to_csv(labels, index=False)
        path = root / "campaign.toml"
        path.write_text(textwrap.dedent(CAMPAIGN).replace("{root}", str(root)))
        config = load_campaign(path)
        t0 = time.perf_counter()
        read = read_labels(labels, label="gap", constraints=config.generator,
                           on_conflict="first")
        read_s = time.perf_counter() - t0
        # QM9 lists stereoisomers with different gaps; keep the first, as read above
        pd.DataFrame({"smiles": [r.smiles for r in read.rows],
                      "gap": [r.value for r in read.rows]}).to_csv(labels, index=False)
        with Campaign(config, str(path), tracking=False) as campaign:
            t0 = time.perf_counter()
            plan = campaign.ingest(labels)
            ingest_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = campaign.ingest(labels)
            again_s = time.perf_counter() - t0
            stored = len(campaign.store.jobs()) if campaign.store else 0
    return {"rows": rows, "molecules": len(read.rows), "read_s": read_s,
            "ingest_s": ingest_s, "again_s": again_s,
            "rows_per_s": len(read.rows) / ingest_s, "off_policy": plan.off_policy,
            "unchanged_again": again.unchanged, "stored": stored}
