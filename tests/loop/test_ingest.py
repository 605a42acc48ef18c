"""What a file of outside labels does to a store: settle, off-policy, withdraw, refuse."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bodisc import Campaign, load_campaign
from bodisc.errors import InputError
from bodisc.loop.ingest import plan_ingest
from bodisc.store import CampaignStore, NewJob
from tests.conftest import write_campaign
from tests.test_campaign_api import RDKitFeatures
from tests.test_config import TWO


@dataclass(frozen=True)
class Row:
    row: int
    smiles: str
    inchikey: str
    value: float | None
    status: str = "done"
    reason: str | None = None
    source: str | None = None
    heavy_atoms: int = 3
    properties: dict[str, float] | None = None


@pytest.fixture
def store(tmp_path):
    s = CampaignStore(tmp_path / "store.sqlite")
    s.add_molecules([("K1", "CCO", 3, "seed", ()), ("K2", "CC#N", 3, "seed", ()),
                     ("K3", "CN", 2, "seed", ())], iteration=0)
    s.start_iteration(0, [NewJob("K1"), NewJob("K2"), NewJob("K3")], "external", 3, None)
    yield s
    s.close()


def apply(store, rows, file="lab.csv"):
    plan = plan_ingest(rows, store.jobs(), file, "dGs", digest="abc", now=0.0)
    if not plan.problems:
        store.commit_external(plan.labels, 0, "external", origin="ingest")
    return plan


def test_labels_settle_suggestions_and_off_policy_labels_are_unpaid(store):
    plan = apply(store, [Row(2, "CCO", "K1", -5.0, source="notebook p. 12"),
                         Row(3, "CN", "K3", None, "failed", "did not crystallise"),
                         Row(4, "CCCC", "K9", -1.0)])
    assert (plan.settled, plan.off_policy, plan.unchanged, plan.problems) == (2, 1, 0, [])
    jobs = {j.inchikey: j for j in store.jobs()}
    assert jobs["K1"].status == "done" and jobs["K1"].value == -5.0
    assert '"source": "notebook p. 12"' in jobs["K1"].provenance
    assert '"row": 2' in jobs["K1"].provenance and '"file": "lab.csv"' in jobs["K1"].provenance
    assert jobs["K3"].status == "failed" and jobs["K3"].reason == "did not crystallise"
    assert jobs["K9"].off_policy and not jobs["K9"].paid and jobs["K9"].smiles == "CCCC"
    assert jobs["K2"].status == "pending"
    # the off-policy label is not a call bodisc paid for
    assert store.calls_used() == 3 and [j.inchikey for j in store.calls()] == ["K1", "K2", "K3"]


def test_the_same_file_twice_changes_nothing(store):
    rows = [Row(2, "CCO", "K1", -5.0), Row(3, "CCCC", "K9", -1.0)]
    apply(store, rows)
    before = [(j.inchikey, j.status, j.value, j.provenance) for j in store.jobs()]
    plan = apply(store, rows)
    assert (plan.settled, plan.off_policy, plan.unchanged, plan.labels) == (0, 0, 2, [])
    assert [(j.inchikey, j.status, j.value, j.provenance) for j in store.jobs()] == before


def test_a_different_second_label_is_refused_naming_the_row(store):
    apply(store, [Row(2, "CCO", "K1", -5.0)])
    plan = plan_ingest([Row(7, "CCO", "K1", -4.0), Row(8, "CC#N", "K2", 1.0)], store.jobs(),
                       "again.csv", "dGs")
    assert plan.problems == ["again.csv: row 7, column 'dGs': -4 for CCO, which already has "
                             "-5; a molecule has one result per oracle (combine replicates "
                             "before ingest)"]


def test_withdrawing_a_suggestion_frees_its_call(store):
    plan = apply(store, [Row(2, "CC#N", "K2", None, "cancelled")])
    assert plan.withdrawn == 1 and store.calls_used() == 2
    assert {j.inchikey: j.status for j in store.jobs()}["K2"] == "cancelled"
    # a label that still arrives for it is taken
    plan = apply(store, [Row(2, "CC#N", "K2", 3.5)])
    assert plan.settled == 1 and {j.inchikey: j.value for j in store.jobs()}["K2"] == 3.5
    # nothing to withdraw: a molecule never proposed, or one with a result
    plan = plan_ingest([Row(4, "CCCC", "K9", None, "cancelled"),
                        Row(5, "CC#N", "K2", None, "cancelled")], store.jobs(), "f.csv", "dGs")
    assert len(plan.problems) == 2 and "never proposed" in plan.problems[0]
    assert "already has a result (3.5)" in plan.problems[1]


def test_cancel_jobs_withdraws_only_pending_ones(store):
    apply(store, [Row(2, "CCO", "K1", -5.0)])
    ids = [j.id for j in store.jobs()]
    assert store.cancel_jobs(ids, {"kind": "cancel"}) == 2
    assert [j.status for j in store.jobs()] == ["done", "cancelled", "cancelled"]
    assert store.calls_used() == 1
    assert store.excluded_inchikeys("set", before_iteration=1) == {"K1", "K2", "K3"}


# -- several objectives: every property of a row is kept -----------------------------


def test_properties_are_stored_and_compared_on_a_second_ingest(store):
    both = {"dGs": -5.0, "gap": 8.0}
    plan = apply(store, [Row(2, "CCO", "K1", -5.0, properties=both),
                         Row(3, "CCCC", "K9", -1.0, properties={"dGs": -1.0, "gap": 6.5})])
    assert (plan.settled, plan.off_policy, plan.problems) == (1, 1, [])
    jobs = {j.inchikey: j for j in store.jobs()}
    assert jobs["K1"].properties == both and jobs["K9"].properties == {"dGs": -1.0, "gap": 6.5}
    # the same again is a no-op; the same label with another gap is refused, naming it
    assert apply(store, [Row(2, "CCO", "K1", -5.0, properties=both)]).unchanged == 1
    plan = plan_ingest([Row(4, "CCO", "K1", -5.0, properties={"dGs": -5.0, "gap": 9.0})],
                       store.jobs(), "again.csv", "dGs")
    assert plan.problems == ["again.csv: row 4, column 'gap': 9 for CCO, which already has "
                             "8; a molecule has one result per oracle (combine replicates "
                             "before ingest)"]


def open_two(folder):
    path = write_campaign(folder, TWO.replace("workers = 2", "workers = 1"))
    config = load_campaign(path)
    return Campaign(config, str(path), tracking=False, features=RDKitFeatures(config))


def test_a_two_objective_campaign_ingests_both_columns(tmp_path):
    labels = tmp_path / "lab.csv"
    labels.write_text("smiles,dipole,gap,source\nCCO,1.7,8.9,lab\nCCCN,1.3,7.4,lab\n")
    with open_two(tmp_path) as campaign:
        plan = campaign.ingest(labels)
        assert (plan.off_policy, plan.problems) == (2, [])
        jobs = {j.smiles: j for j in campaign.store.jobs()}
        assert jobs["CCO"].value == 1.7
        assert jobs["CCO"].properties == {"dipole": 1.7, "gap": 8.9}
        assert jobs["CCCN"].properties == {"dipole": 1.3, "gap": 7.4}
        assert campaign.ingest(labels).unchanged == 2  # twice the same file: a no-op


def test_a_two_objective_campaign_refuses_a_file_without_the_gap(tmp_path):
    labels = tmp_path / "lab.csv"
    labels.write_text("smiles,dipole\nCCO,1.7\n")
    with open_two(tmp_path) as campaign:
        with pytest.raises(InputError) as info:
            campaign.ingest(labels)
        assert str(info.value).splitlines() == [
            f"{labels}: no column 'gap' (a property the campaign models); "
            "columns: smiles, dipole"]
        assert campaign.store.jobs() == []  # nothing committed
