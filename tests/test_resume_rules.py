import pytest

from bodisc.campaign import Campaign, Reporter
from bodisc.config import load_campaign
from bodisc.errors import StoreError


class Collect(Reporter):
    def __init__(self):
        self.lines = []

    def message(self, text):
        self.lines.append(text)


def test_unsafe_changes_are_refused_and_safe_ones_applied(tiny_campaign):
    Campaign(load_campaign(tiny_campaign))._open_store().close()
    changed = load_campaign(tiny_campaign, {"descriptors.names": ["mu", "homo"]})
    with pytest.raises(StoreError, match="changed descriptors since this store was made"):
        Campaign(changed)._open_store()
    changed = load_campaign(tiny_campaign, {"objective.direction": "minimize"})
    with pytest.raises(StoreError, match="changed objective"):
        Campaign(changed)._open_store()
    safe = load_campaign(tiny_campaign, {"budget.oracle_calls": 20,
                                         "acquisition.name": "ucb"})
    rep = Collect()
    store = Campaign(safe, reporter=rep)._open_store()
    assert rep.lines == ["campaign file changed acquisition, budget; resuming with the new "
                         "settings"]
    assert store.get_meta("config")["budget"]["oracle_calls"] == 20
    store.close()
