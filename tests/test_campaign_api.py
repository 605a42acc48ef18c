"""The public ask/tell API of a campaign, in-process: Crippen logP labels (the docs'
example oracle) and RDKit descriptors stand in for xTB, so these tests take seconds."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import Crippen, Descriptors

import bodisc
from bodisc import Campaign, Outcome, TellError, load_campaign
from bodisc.loop.features import Featuriser
from tests.conftest import TINY, write_campaign

EXAMPLE = Path(__file__).parent / "plugins" / "crippen_logp.py"
FIXTURES = Path(__file__).parent / "fixtures"


class RDKitFeatures(Featuriser):
    """Four RDKit descriptors in the campaign's descriptor columns, cached in the store."""

    def vectors(self, store, it, keys, smiles, execute):
        cached = store.descriptors_of(keys, self.descriptor_set)
        for key, smi in zip(keys, smiles, strict=True):
            if key in cached:
                continue
            mol = Chem.MolFromSmiles(smi)
            values = [Descriptors.TPSA(mol), Crippen.MolMR(mol), mol.GetNumHeavyAtoms(),
                      Descriptors.MolWt(mol)]
            vector = [0.0] * len(self.tier_names)
            for column, value in zip(self.columns, values, strict=True):
                vector[column] = float(value)
            store.put_descriptors(key, self.descriptor_set, vector, None, 0.0, it)
            cached[key] = ("done", vector, None)
        return {k: [v[c] for c in self.columns] for k, (status, v, _) in cached.items()
                if status == "done"}

    def compute(self, keys, smiles, execute):
        out = {}
        for key, smi in zip(keys, smiles, strict=True):
            mol = Chem.MolFromSmiles(smi)
            out[key] = [Descriptors.TPSA(mol), Crippen.MolMR(mol), mol.GetNumHeavyAtoms(),
                        Descriptors.MolWt(mol)]
        return out, {}


def logp(smiles: str) -> float:
    return Crippen.MolLogP(Chem.MolFromSmiles(smiles))


def logp_campaign(folder: Path, acquisition: str = "ucb", budget: int = 16) -> Path:
    text = TINY.replace('property = "dipole"', 'property = "logp"').replace('unit = "D"', "")
    text = text.replace('name = "xtb_dipole"', f'name = "{EXAMPLE}:CrippenLogP"')
    text = text.replace("n_conformers = 2", "max_heavy_atoms = 5")
    text = text.replace('name = "logei"', f'name = "{acquisition}"')
    text = text.replace("oracle_calls = 10", f"oracle_calls = {budget}")
    text = text.replace("workers = 2", "workers = 1")
    return write_campaign(folder, text)


def open_campaign(path: Path, **overrides) -> Campaign:
    config = load_campaign(path, overrides)
    return Campaign(config, str(path), tracking=False, features=RDKitFeatures(config))


def drive(campaign: Campaign) -> None:
    """Ask, label in-process, tell, until the budget is spent."""
    while proposals := campaign.ask():
        campaign.tell({p.inchikey: logp(p.smiles) for p in proposals})


def store_jobs(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT j.iteration, j.rank, j.inchikey, j.status, j.value "
                          "FROM jobs j ORDER BY j.iteration, j.rank").fetchall()


def test_public_api_is_importable_without_torch():
    code = ("import sys, bodisc; from bodisc import Campaign, load_campaign, CampaignConfig, "
            "Oracle, OracleResult, Proposal, Outcome, BodiscError, ConfigError, TellError; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
    assert set(bodisc.__all__) >= {"Campaign", "load_campaign", "CampaignConfig", "Oracle",
                                   "OracleResult", "Proposal", "Outcome"}


def test_ask_tell_gives_the_molecules_run_gives(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    summary = open_campaign(logp_campaign(a)).run()  # the oracle in a worker process
    assert summary.calls_used == 16 and summary.failures == 0
    with open_campaign(logp_campaign(b)) as campaign:
        drive(campaign)
    ran, told = store_jobs(a / "runs/tiny/store.sqlite"), store_jobs(b / "runs/tiny/store.sqlite")
    assert [r[:4] for r in ran] == [r[:4] for r in told]
    assert [r[4] for r in ran] == pytest.approx([r[4] for r in told])
    assert len({r[2] for r in ran}) == 16


def test_asks_while_jobs_are_pending_are_disjoint(tmp_path):
    with open_campaign(logp_campaign(tmp_path, budget=13)) as campaign:
        seeds = campaign.ask(10)
        assert [p.smiles for p in seeds] == ["CCO", "CC#N", "CC(C)=O", "CN"]
        campaign.tell({p.smiles: logp(p.smiles) for p in seeds})
        first = campaign.ask(3)
        second = campaign.ask(3)  # the first batch still pending
        keys = [p.inchikey for p in first + second]
        assert len(first) == len(second) == 3 and len(set(keys)) == 6
        assert {p.iteration for p in first} == {1} and {p.iteration for p in second} == {2}
        assert all(p.mean is not None and p.std > 0 for p in first + second)
        assert {p.inchikey for p in campaign.proposals(pending_only=True)} == set(keys)
        # budget: 4 + 6 committed to, 3 left
        assert len(campaign.ask(5)) == 3 and campaign.ask(5) == []


def test_tell_refuses_what_it_cannot_take_and_commits_nothing_then(tmp_path):
    with open_campaign(logp_campaign(tmp_path)) as campaign:
        seeds = campaign.ask()
        told = {p.smiles: logp(p.smiles) for p in seeds}
        with pytest.raises(TellError, match="no target job for that molecule"):
            campaign.tell([Outcome(seeds[0].smiles, 1.0), Outcome("CCCCCC", 2.0)])
        with pytest.raises(TellError, match="not a finite number"):
            campaign.tell([Outcome(seeds[0].smiles, float("nan"))])
        with pytest.raises(TellError, match="either a value or a failure"):
            campaign.tell([Outcome(seeds[0].smiles)])
        assert campaign.proposals(pending_only=True) == seeds  # nothing was committed
        with pytest.raises(TellError, match="not a finite number"):
            campaign.tell([Outcome(seeds[0].smiles, True)])
        assert campaign.tell({k: np.float32(v) for k, v in told.items()}) == 4
        told = {k: float(np.float32(v)) for k, v in told.items()}
        assert campaign.tell(told) == 0  # identical: a no-op
        with pytest.raises(TellError, match="already has value"):
            campaign.tell({seeds[0].smiles: told[seeds[0].smiles] + 1.0})
        batch = campaign.ask()
        assert campaign.tell([Outcome(batch[0].inchikey, failure="SCF did not converge")]) == 1
        with pytest.raises(TellError, match="already has failure"):
            campaign.tell([Outcome(batch[0].inchikey, 3.0)])
        results = campaign.results()
        failed = results[results.status == "failed"]
        assert list(failed.reason) == ["SCF did not converge"]


def test_a_kill_between_ask_and_tell_keeps_the_pending_batch(tmp_path):
    path = logp_campaign(tmp_path)
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
from tests.test_campaign_api import open_campaign, logp
from pathlib import Path
campaign = open_campaign(Path({str(path)!r}))
seeds = campaign.ask()
campaign.tell({{p.inchikey: logp(p.smiles) for p in seeds}})
print(",".join(p.inchikey for p in campaign.ask()), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    asked = proc.stdout.strip().split(",")
    with open_campaign(path) as campaign:  # the lock of the killed process is taken over
        pending = campaign.proposals(pending_only=True)
        assert [p.inchikey for p in pending] == asked
        campaign.tell({p.inchikey: logp(p.smiles) for p in pending})
        drive(campaign)
    killed = store_jobs(tmp_path / "runs/tiny/store.sqlite")
    other = tmp_path / "other"
    other.mkdir()
    with open_campaign(logp_campaign(other)) as campaign:
        drive(campaign)
    assert killed == store_jobs(other / "runs/tiny/store.sqlite")


def test_same_file_and_seed_give_the_same_molecules_and_another_seed_others(tmp_path):
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        folder = tmp_path / name
        folder.mkdir()
        with open_campaign(logp_campaign(folder, budget=10), random_seed=seed) as campaign:
            drive(campaign)
        runs[name] = [r[2] for r in store_jobs(folder / "runs/tiny/store.sqlite")]
    assert runs["a"] == runs["b"]
    assert runs["a"][:4] == runs["c"][:4] and runs["a"] != runs["c"]  # seeds, then others


@pytest.mark.slow
def test_a_store_written_by_release_0_1_0_resumes_to_the_same_molecules(tmp_path):
    store = tmp_path / "runs/tiny/store.sqlite"
    store.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "store_0.1.0_killed.sqlite", store)
    before = store_jobs(store)
    assert [r[3] for r in before].count("pending") == 1
    path = write_campaign(tmp_path)
    summary = Campaign(load_campaign(path), str(path), tracking=False).run()
    assert summary.calls_used == 10 and summary.failures == 0
    after = store_jobs(store)
    assert after[: len(before) - 1] == before[:-1]  # committed results untouched
    expected = json.loads((FIXTURES / "store_0.1.0_full_run.json").read_text())
    assert [r[2] for r in after] == [e["inchikey"] for e in expected]
    assert [r[4] for r in after] == pytest.approx([e["value"] for e in expected], abs=1e-6)
    # without MLflow the best molecules are still written for people
    best = (tmp_path / "runs/tiny/best_molecules.csv").read_text().splitlines()
    assert len(best) == 1 + len({e["inchikey"] for e in expected if e["value"] is not None})
    assert (tmp_path / "runs/tiny/best_molecules.png").is_file()


@pytest.mark.slow
def test_the_ask_tell_guide_runs_as_printed(tmp_path):
    readme = (Path(__file__).parent.parent / "docs/howto/ask-tell.md").read_text()
    start = readme.index("```python\n# ask/tell") + len("```python\n")
    code = readme[start : readme.index("```", start)]
    shutil.copytree(Path(__file__).parent.parent / "campaigns", tmp_path / "campaigns")
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, "docs/howto/ask-tell.md", "exec"), namespace)  # noqa: S102
    finally:
        os.chdir(cwd)
    first, second = namespace["first"], namespace["second"]
    assert len(first) == 8 and len(second) == 10
    assert not {p.inchikey for p in first} & {p.inchikey for p in second}
    assert np.isfinite([p.mean for p in second]).all()


def test_a_campaign_starts_from_labelled_data(tmp_path):
    """[data] labelled: imported before the first iteration, unpaid, with provenance; no
    seed molecules needed, the first batch comes from the model; importing is idempotent."""
    start = ["CCO", "CC#N", "CC(C)=O", "CN", "CCCO", "CCN", "C=CC=O", "CC(=O)O"]
    labels = tmp_path / "start.csv"
    labels.write_text("smiles,logp,source\n" + "".join(
        f"{s},{logp(s):.6f},handbook\n" for s in start))
    text = logp_campaign(tmp_path).read_text()
    text = text.replace('seed_molecules = ["CCO", "CC#N", "CC(C)=O", "CN"]\n', "")
    path = tmp_path / "data.toml"
    path.write_text(text + '\n[data]\nlabelled = ["start.csv"]\n')
    with open_campaign(path) as campaign:
        store = campaign.store
        imported = store.jobs("done")
        assert len(imported) == 8 and not any(j.paid for j in imported)
        assert all(json.loads(j.provenance)["kind"] == "import" for j in imported)
        assert json.loads(imported[0].provenance)["source"] == "handbook"
        assert store.calls_used() == 0
        proposals = campaign.ask(3)
        assert len(proposals) == 3 and proposals[0].iteration == 0
        assert all(p.std is not None for p in proposals)  # chosen by the model
        assert not {p.smiles for p in proposals} & set(start)
        assert store.calls_used() == 3
    with open_campaign(path) as again:  # opened again: nothing imported twice
        assert len(again.store.jobs()) == 11 and again.store.calls_used() == 3


def test_predict_writes_nothing_and_says_how_far_molecules_are(tmp_path):
    path = logp_campaign(tmp_path, budget=10)
    with open_campaign(path) as campaign:
        drive(campaign)
        store = campaign.store
        before = (len(store.jobs()), store.calls_used(),
                  len(store.descriptors_of([j.inchikey for j in store.jobs()] + ["x"],
                                           campaign.features.descriptor_set)))
        known = store.jobs("done")[0]
        frame = campaign.predict(["CCCCCCCCO", "not a smiles", known.smiles, "OCC(O)CO"])
        assert list(frame["smiles"]) == ["CCCCCCCCO", "not a smiles", known.smiles, "OCC(O)CO"]
        assert frame["mean"].notna().sum() == 3 and (frame["std"].dropna() > 0).all()
        assert frame["reason"].iloc[1] and np.isnan(frame["mean"].iloc[1])
        assert frame["labelled"].iloc[2] == pytest.approx(known.value)
        # octanol lies farther from the small labelled molecules than the known one
        assert frame["distance"].iloc[0] > frame["distance"].iloc[2] == pytest.approx(0.0)
        assert frame["max_tanimoto"].iloc[2] == pytest.approx(1.0)
        after = (len(store.jobs()), store.calls_used(),
                 len(store.descriptors_of([j.inchikey for j in store.jobs()] + ["x"],
                                          campaign.features.descriptor_set)))
        assert after == before
        # the model ranks by what it learnt: more carbon, higher logP
        assert frame["mean"].iloc[0] > frame["mean"].iloc[3]
