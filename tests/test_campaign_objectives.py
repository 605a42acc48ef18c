"""Campaigns with several objectives and constraints, end to end.

The fast tests label with a plug-in that gives Crippen logP and the TPSA from one call
(RDKit descriptors stand in for xTB); the slow one runs the shipped kind of campaign,
dipole and HOMO-LUMO gap from real GFN2-xTB calls, from the command line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import Crippen, Descriptors

from bodisc import Campaign, Outcome, TellError, load_campaign
from bodisc.pareto import pareto_mask
from tests.conftest import TINY, write_campaign
from tests.test_campaign_api import RDKitFeatures
from tests.test_config import TWO

PLUGIN = Path(__file__).parent / "plugins" / "crippen_two.py"


def two_property_campaign(folder: Path, acquisition: str = "qlognehvi", budget: int = 19,
                          objectives: str = "both", constraint: str = "") -> Path:
    """logP and TPSA from one call; both maximised, or logP alone with a TPSA window."""
    obj = ('[[objectives]]\nproperty = "logp"\n\n[[objectives]]\nproperty = "tpsa"\n'
           'unit = "A^2"\n' if objectives == "both" else '[objective]\nproperty = "logp"\n')
    text = TINY.replace('[objective]\nproperty = "dipole"\ndirection = "maximize"\nunit = "D"\n',
                        obj + constraint)
    text = text.replace('name = "xtb_dipole"', f'name = "{PLUGIN}:CrippenTwo"')
    text = text.replace("[oracle.options]\nn_conformers = 2\n", "")
    text = text.replace('name = "logei"', f'name = "{acquisition}"')
    text = text.replace("oracle_calls = 10", f"oracle_calls = {budget}")
    text = text.replace("workers = 2", "workers = 1")
    return write_campaign(folder, text)


def open_campaign(path: Path) -> Campaign:
    config = load_campaign(path)
    return Campaign(config, str(path), tracking=False, features=RDKitFeatures(config))


def label(smiles: str) -> dict[str, float]:
    mol = Chem.MolFromSmiles(smiles)
    return {"logp": Crippen.MolLogP(mol), "tpsa": Descriptors.TPSA(mol)}


@pytest.mark.parametrize("acquisition", ["qlognehvi", "parego"])
def test_two_objectives_run_keep_both_properties_and_report_the_front(tmp_path, acquisition):
    summary = open_campaign(two_property_campaign(tmp_path, acquisition)).run()
    assert summary.calls_used == 19 and summary.failures == 0
    with open_campaign(two_property_campaign(tmp_path, acquisition)) as campaign:
        jobs = campaign.store.jobs("done")
    assert len({j.inchikey for j in jobs}) == 19  # q distinct molecules every batch
    for j in jobs:  # both properties of one call, the value being the first objective's
        assert j.properties == pytest.approx(label(j.smiles))
        assert j.value == pytest.approx(j.properties["logp"])
    Y = np.array([[j.properties["logp"], j.properties["tpsa"]] for j in jobs])
    on_front = {j.smiles for j, m in zip(jobs, pareto_mask(Y), strict=True) if m}
    assert {s for s, _, _ in summary.front} == on_front
    assert all(set(values) == {"logp", "tpsa"} for _, values, _ in summary.front)
    assert summary.hypervolume is not None and summary.hypervolume > 0


def test_ask_tell_with_properties_and_a_missing_one_refused(tmp_path):
    with open_campaign(two_property_campaign(tmp_path)) as campaign:
        seeds = campaign.ask()
        with pytest.raises(TellError, match="gave no 'tpsa'.*models logp, tpsa"):
            campaign.tell({p.smiles: label(p.smiles)["logp"] for p in seeds})
        assert campaign.store.jobs("done") == []  # nothing committed
        n = campaign.tell([Outcome(p.smiles, label(p.smiles)["logp"],
                                   properties=label(p.smiles)) for p in seeds])
        assert n == len(seeds)
        batch = campaign.ask()
        assert len(batch) == 3 and all(p.mean is not None for p in batch)
        assert not {p.inchikey for p in batch} & {p.inchikey for p in seeds}


def test_constrained_logei_keeps_to_the_window_once_it_knows_it(tmp_path):
    window = '\n[[constraints]]\nproperty = "tpsa"\nmax = 30.0\n'
    path = two_property_campaign(tmp_path, "logei", 31, objectives="one", constraint=window)
    config = load_campaign(path)
    assert [c.property for c in config.modelled_constraints] == ["tpsa"]
    summary = open_campaign(path).run()
    assert summary.calls_used == 31
    with open_campaign(path) as campaign:
        jobs = campaign.store.jobs("done")
    later = [j for j in jobs if j.iteration >= 4]
    feasible = [j.properties["tpsa"] <= 30.0 for j in later]
    assert sum(feasible) >= 0.75 * len(later), [j.properties["tpsa"] for j in later]


def test_an_sa_score_constraint_filters_candidates(tmp_path):
    from bodisc.chem.filters import sa_score

    sa = '\n[[constraints]]\nproperty = "sa_score"\nmax = 2.5\n'
    path = two_property_campaign(tmp_path, "qlognehvi", 13, constraint=sa)
    summary = open_campaign(path).run()
    assert summary.calls_used == 13
    with open_campaign(path) as campaign:
        chosen = [j.smiles for j in campaign.store.jobs() if j.iteration > 0]
        removed = [r["metrics"].get("filtered_sa", 0) for r in campaign.store.iterations()]
    assert chosen and all(sa_score(s) <= 2.5 for s in chosen)
    assert sum(removed) > 0  # the filter did remove candidates


@pytest.mark.slow
def test_dipole_and_gap_from_xtb_on_the_command_line(tmp_path):
    """Real GFN2-xTB labels for both objectives, MLflow's hypervolume, the CLI's front."""
    path = write_campaign(tmp_path, TWO)
    proc = subprocess.run([sys.executable, "-m", "bodisc.cli", "campaign", str(path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "non-dominated molecules" in proc.stdout and "hypervolume" in proc.stdout
    config = load_campaign(path)
    campaign = Campaign(config, str(path), tracking=False)
    with campaign:
        jobs = campaign.store.jobs("done")
    assert jobs and all(set(j.properties) >= {"dipole", "gap"} for j in jobs)
    assert all(3.0 < j.properties["gap"] < 25.0 for j in jobs)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{config.path('mlruns')}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name(config.name).experiment_id])
    assert run.data.metrics["final/hypervolume"] > 0
    curve = client.get_metric_history(run.info.run_id, "call/hypervolume")
    values = [m.value for m in sorted(curve, key=lambda m: m.step)]
    assert len(values) == 10 and values == sorted(values)  # never falls
    assert (config.path("export_csv").parent / "pareto.png").exists()


def test_each_model_keeps_its_refit_state_and_a_continued_campaign_picks_the_same(tmp_path):
    """One refit state per GP (two objectives) is stored per iteration and read back by
    the next: a campaign stopped at 10 calls and continued to 19 takes the molecules of
    an uninterrupted run, with hyperparameters re-optimised only on `refit_growth`."""
    growth = "[surrogate]\nrefit_growth = 1.5\n\n[acquisition]"

    def campaign(folder: Path, budget: int) -> Path:
        path = two_property_campaign(folder, "parego", budget=budget)
        path.write_text(path.read_text().replace("[acquisition]", growth, 1))
        return path

    (tmp_path / "whole").mkdir()
    (tmp_path / "parts").mkdir()
    open_campaign(campaign(tmp_path / "whole", 19)).run()
    open_campaign(campaign(tmp_path / "parts", 10)).run()
    open_campaign(campaign(tmp_path / "parts", 19)).run()
    picked = []
    for folder in ("whole", "parts"):
        with open_campaign(campaign(tmp_path / folder, 19)) as c:
            picked.append([(j.iteration, j.inchikey) for j in c.store.jobs("done")])
            states = {it: c.store.get_meta(f"surrogates/{it}") for it in range(1, 8)}
    assert picked[0] == picked[1]
    fitted = {it: s for it, s in states.items() if s is not None}
    assert len(fitted) >= 3 and all(len(s) == 2 for s in fitted.values())
    at = [s[0]["optimised_at"] for _, s in sorted(fitted.items())]
    assert at == sorted(at) and len(set(at)) < len(at)  # some steps only conditioned


def test_pareto_depth_reaches_the_multi_output_step(tmp_path, monkeypatch):
    import bodisc.loop.step as step

    seen: list[dict] = []
    real = step.choose_multi_batch

    def spy(*args, **kwargs):
        seen.append(dict(kwargs["options"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(step, "choose_multi_batch", spy)
    path = two_property_campaign(tmp_path, budget=14)
    path.write_text(path.read_text().replace('name = "qlognehvi"',
                                             'name = "qlognehvi"\npareto_depth = 3'))
    summary = open_campaign(path).run()
    assert summary.calls_used == 14 and seen
    assert all(options == {"pareto_depth": 3} for options in seen)
