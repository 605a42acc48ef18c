"""A campaign's objectives: labels from results, matrices, the front and its hypervolume."""

from __future__ import annotations

import numpy as np
import pytest

from bodisc.config import load_campaign
from bodisc.loop.candidates import _parent_scores
from bodisc.loop.objectives import Objectives
from bodisc.store import Job
from tests.conftest import write_campaign
from tests.test_config import CONSTRAINT, TWO


def job(i: int, value: float | None, props: dict[str, float] | None,
        status: str = "done") -> Job:
    return Job(i, f"K{i}", f"C{'C' * i}", 1, i, status, value, None, None, None,
               properties=props)


@pytest.fixture
def several(tmp_path):
    """Maximise the dipole, minimise the gap, with lumo in [-3, 0]."""
    text = TWO.replace('property = "gap"\ndirection = "maximize"',
                       'property = "gap"\ndirection = "minimize"')
    text += CONSTRAINT.format(p="lumo", bounds="min = -3.0\nmax = 0.0")
    return Objectives(load_campaign(write_campaign(tmp_path, text)))


def test_label_takes_the_objective_and_names_a_missing_property(several):
    assert several.names == ("dipole", "gap") and several.constraints == ("lumo",)
    assert list(several.signs) == [1.0, -1.0]
    props = {"dipole": 3.0, "gap": 7.0, "lumo": -1.0, "homo": -8.0}
    assert several.label(9.9, None, props) == (3.0, None, props)
    value, failure, stored = several.label(3.0, None, {"dipole": 3.0, "gap": 7.0})
    assert value is None and stored is None
    assert failure == "the result gave no 'lumo' (it gave: dipole, gap)"
    assert several.label(None, "SCF not converged", None) == (None, "SCF not converged", None)
    _, failure, _ = several.label(3.0, None, {"dipole": 3.0, "gap": float("nan"), "lumo": 0.0})
    assert failure.startswith("non-finite 'gap'")


def test_one_objective_takes_a_plain_value(tiny_campaign):
    one = Objectives(load_campaign(tiny_campaign))
    assert not one.several
    assert one.label(2.5, None, None) == (2.5, None, None)
    # the oracle's own property may differ from the one asked: the asked one is the value
    assert one.label(9.0, None, {"dipole": 2.5, "gap": 8.0}) == (
        2.5, None, {"dipole": 2.5, "gap": 8.0})


def test_matrices_front_and_hypervolume(several):
    jobs = [job(1, 1.0, {"dipole": 1.0, "gap": 5.0, "lumo": -1.0}),   # front
            job(2, 2.0, {"dipole": 2.0, "gap": 6.0, "lumo": -1.0}),   # front
            job(3, 1.5, {"dipole": 1.5, "gap": 6.5, "lumo": -1.0}),   # dominated by 2
            job(4, 9.0, {"dipole": 9.0, "gap": 1.0, "lumo": 1.0}),    # best, infeasible
            job(5, 4.0, None)]                                         # value only
    Y, C, complete = several.matrices(jobs)
    assert Y.shape == (5, 2) and C.shape == (5, 1)
    assert Y[1].tolist() == [2.0, -6.0]  # the gap minimised: negated
    assert complete.tolist() == [True, True, True, True, False]
    assert several.feasible(C).tolist() == [True, True, True, False, False]
    front = several.front(jobs)
    assert [j.id for j in front] == [2, 1]  # best first by the dipole
    ref = np.array([0.0, -10.0])
    curve = several.hypervolume_curve(jobs + [job(6, None, None, "failed")], ref)
    # (1, -5): 1 x 5; then (2, -6) adds the strip 1 x 4; (1.5, -6.5) and the rest add none
    assert curve.tolist() == pytest.approx([5.0, 9.0, 9.0, 9.0, 9.0, 9.0])


def test_reference_is_given_or_inferred_and_then_fixed(several, tmp_path):
    from bodisc.store import CampaignStore

    Y = np.array([[1.0, -5.0], [3.0, -9.0]])
    ref = several.reference(Y)
    assert ref.tolist() == pytest.approx([1.0 - 0.2, -9.0 - 0.4])
    store = CampaignStore(tmp_path / "s.sqlite")
    first = several.stored_reference(store, Y)
    later = several.stored_reference(store, Y + 100.0)
    assert first.tolist() == later.tolist() == ref.tolist()
    store.close()


def test_parents_of_several_objectives_come_from_the_front(several):
    jobs = [job(1, 1.0, {"dipole": 1.0, "gap": 5.0, "lumo": -1.0}),
            job(2, 2.0, {"dipole": 2.0, "gap": 6.0, "lumo": -1.0}),
            job(3, 1.5, {"dipole": 1.5, "gap": 6.5, "lumo": -1.0}),
            job(4, 9.0, {"dipole": 9.0, "gap": 1.0, "lumo": 1.0})]
    scores = dict(_parent_scores(several.config, jobs, 1.0))
    front, dominated, infeasible = scores["CC"], scores["CCCC"], scores["CCCCC"]
    assert scores["CCC"] == front == 0.0
    assert front > dominated > infeasible
