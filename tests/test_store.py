import math

import pytest

from bodisc.campaign import discard_store
from bodisc.config import load_campaign
from bodisc.errors import StoreError
from bodisc.store import CampaignStore, NewJob


@pytest.fixture
def store(tmp_path):
    s = CampaignStore(tmp_path / "c" / "store.sqlite")
    s.add_molecules([("K1", "CCO", 3, "seed", ()), ("K2", "CC#N", 3, "seed", ()),
                     ("K3", "CN", 2, "mutation", ("CCO",))], iteration=0)
    yield s
    s.close()


def test_meta_round_trip(store):
    store.set_meta("config", {"a": [1, 2], "b": None})
    assert store.get_meta("config") == {"a": [1, 2], "b": None}
    assert store.get_meta("missing") is None


def test_descriptors_round_trip_with_missing_values(store):
    store.put_descriptors("K1", "set", [1.5, float("nan"), -2.0], None, 0.1, iteration=1)
    store.put_descriptors("K2", "set", None, "embedding failed: x", 0.2, iteration=1)
    got = store.descriptors_of(["K1", "K2", "K3"], "set")
    status, vec, reason = got["K1"]
    assert status == "done" and vec[0] == 1.5 and math.isnan(vec[1]) and reason is None
    assert got["K2"] == ("failed", None, "embedding failed: x")
    assert "K3" not in got


def test_jobs_go_pending_then_done_exactly_once(store):
    store.start_iteration(0, [NewJob("K1"), NewJob("K2", 1.0, 0.5, -0.3)], "xtb", 2, None)
    assert store.open_iteration() == 0 and store.calls_used() == 2
    j1, j2 = store.jobs("pending")
    store.finish_job(j1.id, 2.5, None, 1.0)
    store.finish_job(j1.id, 99.0, None, 1.0)  # a second result for a finished job is ignored
    store.finish_job(j2.id, None, "SCF not converged", 1.0)
    done = store.jobs("done")
    assert [(j.inchikey, j.value) for j in done] == [("K1", 2.5)]
    assert store.jobs("failed")[0].reason == "SCF not converged"
    assert store.jobs("failed")[0].pred_mean == 1.0
    store.complete_iteration(0, {"best_so_far": 2.5})
    assert store.open_iteration() is None and store.next_iteration() == 1
    assert store.iterations()[0]["metrics"] == {"best_so_far": 2.5}
    assert store.integrity_ok()


def test_a_molecule_cannot_be_paid_for_twice(store):
    store.start_iteration(0, [NewJob("K1")], "xtb", 1, None)
    with pytest.raises(Exception, match="UNIQUE"):
        store.start_iteration(1, [NewJob("K1")], "xtb", 1, None)
    # the failed transaction left nothing behind
    assert store.calls_used() == 1 and store.next_iteration() == 1


def test_exclusions_only_see_earlier_iterations(store):
    store.start_iteration(0, [NewJob("K1")], "xtb", 1, None)
    store.put_descriptors("K2", "set", None, "embedding failed", 0.1, iteration=1)
    assert store.excluded_inchikeys("set", before_iteration=1) == {"K1"}
    assert store.excluded_inchikeys("set", before_iteration=2) == {"K1", "K2"}


def test_missing_store_is_an_error(tmp_path):
    with pytest.raises(StoreError, match="no campaign store"):
        CampaignStore(tmp_path / "none.sqlite", create=False)


def test_fresh_says_what_it_discards(tiny_campaign):
    cfg = load_campaign(tiny_campaign)
    assert discard_store(cfg) is None
    s = CampaignStore(cfg.path("store"))
    s.add_molecules([("K1", "CCO", 3, "seed", ())], 0)
    s.start_iteration(0, [NewJob("K1")], "xtb", 1, None)
    s.close()
    msg = discard_store(cfg)
    assert msg.endswith("1 oracle calls in 1 iterations")
    assert not cfg.path("store").exists()
