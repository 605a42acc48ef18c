"""Generator filters: SA score, RDKit filter catalogues, a scaffold, and their counts."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem

from bodisc.chem.filters import CATALOGUES, SA, SCAFFOLD, CandidateFilters, sa_score, summary
from bodisc.chem.generator import Generator
from bodisc.config import GeneratorConfig

PARENTS = ["CCO", "c1ccccc1", "CC(N)=O", "OC=O"]
CONFIG = GeneratorConfig(max_heavy_atoms=9, allowed_elements=("C", "N", "O", "F"))
STRYCHNINE = "O=C1CC2OCC=C3CN4CCC56C4CC3C2C6N1c1ccccc15"
RHODANINE = "O=C1NC(=S)SC1=Cc1ccccc1"  # 5-benzylidene rhodanine: PAINS ene_rhod
CATECHOL = "Oc1ccccc1O"  # PAINS catechol


def _generator(**update) -> Generator:
    return Generator(CONFIG.model_copy(update=update))


def _propose(generator: Generator, seed: int = 3, n: int = 40):
    return generator.propose(PARENTS, n, np.random.default_rng(seed))


def test_sa_score_orders_easy_before_hard_and_takes_smiles_or_mol() -> None:
    ethanol, strychnine = sa_score("CCO"), sa_score(STRYCHNINE)
    assert 1.0 <= ethanol < 3.0  # easy to make
    assert 5.0 < strychnine <= 10.0  # hard
    assert ethanol < strychnine
    assert sa_score(Chem.MolFromSmiles("CCO")) == pytest.approx(ethanol)


def test_registry_holds_rdkit_catalogue_names() -> None:
    assert {"PAINS", "PAINS_A", "PAINS_B", "PAINS_C", "BRENK", "NIH", "ZINC",
            "CHEMBL", "CHEMBL_Glaxo"} <= set(CATALOGUES)


@pytest.mark.parametrize(("smiles", "catalogue"), [(RHODANINE, "PAINS_A"),
                                                   (CATECHOL, "PAINS_B")])
def test_pains_hits_are_rejected_by_their_catalogue(smiles: str, catalogue: str) -> None:
    assert CandidateFilters(catalogues=(catalogue,)).rejects(smiles) == catalogue
    assert CandidateFilters(catalogues=("PAINS",)).rejects(smiles) == "PAINS"
    assert CandidateFilters(catalogues=("PAINS",)).rejects("CCO") is None


def test_first_filter_in_order_names_the_removal() -> None:
    filters = CandidateFilters(sa_max=1.2, catalogues=("PAINS",), scaffold="[#8]")
    assert filters.names == (SCAFFOLD, "PAINS", SA)
    assert filters.rejects("c1ccccc1") == SCAFFOLD  # no oxygen
    assert filters.rejects(CATECHOL) == "PAINS"
    assert filters.rejects("CC(C)(C)OC(C)C(C)O") == SA
    assert CandidateFilters(scaffold="[#8]").rejects("CC(C)(C)OC(C)C(C)O") is None
    assert not CandidateFilters().active and CandidateFilters().rejects("c1ccccc1") is None


def test_no_filters_generate_exactly_what_the_generator_did() -> None:
    plain = _generator()
    assert plain.removed == {} and not plain.filters.active
    with_none = _propose(plain)
    # a lenient filter that removes nothing draws no random numbers either
    lenient = _generator(sa_max=10.0)
    assert _propose(lenient) == with_none and lenient.removed == {SA: 0}


def test_scaffold_keeps_only_candidates_with_it_and_counts_removals() -> None:
    generator = _generator(scaffold="c1ccccc1")
    found = _propose(generator)
    pattern = Chem.MolFromSmarts("c1ccccc1")
    assert found
    assert all(Chem.MolFromSmiles(c.smiles).HasSubstructMatch(pattern) for c in found)
    assert generator.removed[SCAFFOLD] > 0
    assert set(generator.removed) == {SCAFFOLD}


def test_counts_per_filter_match_what_each_filter_rejects() -> None:
    unfiltered = [c.smiles for c in _propose(_generator(), n=60)]
    generator = _generator(sa_max=2.5, filter_catalogs=("BRENK",))
    kept = _propose(generator, n=60)
    filters = generator.filters
    assert all(filters.rejects(c.smiles) is None for c in kept)
    assert set(generator.removed) == {"BRENK", SA}
    assert generator.removed[SA] > 0 and generator.removed["BRENK"] > 0
    # the first children are the same molecules; those the filters rejected are missing
    rejected = [s for s in unfiltered if filters.rejects(s) is not None]
    assert rejected and not set(rejected) & {c.smiles for c in kept}


def test_removed_children_are_failed_attempts_so_the_generator_tries_again() -> None:
    one_try = _generator(scaffold="[#8]", max_attempts_per_candidate=1)
    many = _generator(scaffold="[#8]", max_attempts_per_candidate=30)
    few, enough = _propose(one_try, n=20), _propose(many, n=20)
    assert len(few) < 20 == len(enough)
    assert one_try.removed[SCAFFOLD] > 0
    assert [c.smiles for c in enough[: len(few)]] == [c.smiles for c in few]


def test_same_seed_same_candidates_with_filters_on() -> None:
    update = {"sa_max": 3.0, "filter_catalogs": ("PAINS", "BRENK"), "scaffold": "[#6]~[#8]"}
    first, second = _generator(**update), _generator(**update)
    assert _propose(first, seed=11) == _propose(second, seed=11)
    assert first.removed == second.removed
    assert _propose(first, seed=11) != _propose(first, seed=12)


def test_summary_is_one_phrase_without_zero_counts() -> None:
    assert summary({"sa": 8, "PAINS": 4, "scaffold": 0}) == "12 candidates (sa 8, PAINS 4)"
    assert summary({"sa": 1}) == "1 candidate (sa 1)"


def test_unknown_catalogue_lists_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown filter catalogue.*'PAINZ'.*PAINS_A, PAINS_B"):
        GeneratorConfig(filter_catalogs=("PAINS", "PAINZ"))
    with pytest.raises(ValueError, match="unknown filter catalogue"):
        Generator(CONFIG.model_construct(**{**dict(CONFIG), "filter_catalogs": ("X",)}))


def test_campaign_logs_counts_as_iteration_metrics_and_one_progress_line(tmp_path) -> None:
    from bodisc import Campaign, load_campaign
    from bodisc.campaign import Reporter
    from tests.test_campaign_api import RDKitFeatures, logp, logp_campaign

    class Lines(Reporter):
        def __init__(self) -> None:
            self.lines: list[str] = []

        def message(self, text: str) -> None:
            self.lines.append(text)

    path = logp_campaign(tmp_path, acquisition="random", budget=7)
    config = load_campaign(path, {"generator.sa_max": 3.5,
                                  "generator.filter_catalogs": ["BRENK"]})
    reporter = Lines()
    campaign = Campaign(config, str(path), tracking=False, features=RDKitFeatures(config),
                        reporter=reporter)
    while proposals := campaign.ask():
        campaign.tell({p.inchikey: logp(p.smiles) for p in proposals})
    rows = campaign.store.iterations()
    later = [r["metrics"] for r in rows if r["iteration"] > 0]
    assert later and all({"filtered_BRENK", "filtered_sa"} <= set(m) for m in later)
    assert "filtered_BRENK" not in rows[0]["metrics"]  # the seeds are not filtered
    removed = sum(m["filtered_BRENK"] + m["filtered_sa"] for m in later)
    assert removed > 0
    lines = [t for t in reporter.lines if "filters removed" in t]
    assert lines and all(t.startswith("iteration ") for t in lines)
