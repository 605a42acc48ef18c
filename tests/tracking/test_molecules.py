"""The best-molecules table and picture written from a campaign store."""

from __future__ import annotations

import pytest
from PIL import Image

from bodisc.config import load_campaign
from bodisc.store import CampaignStore, NewJob
from bodisc.tracking.molecules import best_table, property_column, write_best


@pytest.fixture
def store(tmp_path):
    s = CampaignStore(tmp_path / "c" / "store.sqlite")
    s.add_molecules([("K1", "CCO", 3, "seed", ()), ("K2", "CC#N", 3, "seed", ()),
                     ("K3", "FN=NC=O", 5, "mutation", ("CCO",)),
                     ("K4", "CN", 2, "mutation", ("CCO",))], iteration=0)
    s.start_iteration(0, [NewJob("K1"), NewJob("K2"), NewJob("K3", 1.0, 0.5, 0.1),
                          NewJob("K4")], "xtb", 4, None)
    j1, j2, j3, j4 = s.jobs("pending")
    s.finish_jobs([(j1.id, 1.5, None, 0.1, None), (j2.id, 3.9, None, 0.1, None),
                   (j3.id, 5.0, None, 0.1, None),
                   (j4.id, None, "SCF not converged", 0.1, None)])
    yield s
    s.close()


def test_best_first_with_the_unit_in_the_column_name(store, tiny_campaign):
    cfg = load_campaign(tiny_campaign)
    table = best_table(store, cfg, 1.0)
    assert property_column(cfg) == "dipole / D"
    assert list(table["smiles"]) == ["FN=NC=O", "CC#N", "CCO"]  # the failure is left out
    assert list(table["rank"]) == [1, 2, 3] and list(table["call"]) == [3, 2, 1]
    assert table["dipole / D"].iloc[0] == 5.0 and table["pred_mean"].iloc[0] == 1.0
    assert "N=N-F" in table["flags"].iloc[0] and table["flags"].iloc[2] == ""


def test_minimising_puts_the_smallest_first_and_a_unitless_property_keeps_its_name(
        store, tiny_campaign):
    cfg = load_campaign(tiny_campaign, {"objective.direction": "minimize",
                                        "objective.unit": ""})
    table = best_table(store, cfg, -1.0)
    assert list(table.columns[:3]) == ["rank", "smiles", "dipole"]
    assert list(table["smiles"]) == ["CCO", "CC#N", "FN=NC=O"]


def test_write_best_writes_a_csv_and_a_readable_picture(store, tiny_campaign, tmp_path):
    cfg = load_campaign(tiny_campaign)
    csv, png = write_best(store, cfg, 1.0, tmp_path / "out")
    assert csv.read_text().splitlines()[1].startswith("1,FN=NC=O,5,")
    assert png is not None
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] >= 3 * 280
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_nothing_labelled_writes_an_empty_table_and_no_picture(tmp_path, tiny_campaign):
    cfg = load_campaign(tiny_campaign)
    empty = CampaignStore(tmp_path / "e.sqlite")
    try:
        csv, png = write_best(empty, cfg, 1.0, tmp_path / "out")
    finally:
        empty.close()
    assert png is None and csv.read_text().startswith("rank,smiles,dipole / D,")
