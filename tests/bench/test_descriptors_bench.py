"""The descriptor benchmark runs in real worker processes and reports sane numbers
(timings are not asserted: the machine is shared)."""

from __future__ import annotations

import importlib.util
import math

import pytest

from bodisc.bench.descriptors import bench_descriptors, qm9_sample, timed_descriptors
from bodisc.descriptors import TIERS

SMALL = ["O", "CO", "CC#N", "C=O", "N", "not a smiles"]


def test_bench_with_two_workers_reports_sane_keys():
    result = bench_descriptors(SMALL, workers=2, tier="fast", timeout_s=60)
    assert result["tier"] == "fast" and result["workers"] == 2
    assert result["n_molecules"] == 6 and result["n_descriptors"] == len(TIERS["fast"])
    assert result["failures"] == 1
    assert list(result["failure_reasons"]) == ["not a smiles"]
    assert "embedding failed" in result["failure_reasons"]["not a smiles"]
    for key in ("molecules_per_s", "baseline_molecules_per_s", "speedup", "efficiency",
                "median_molecule_s", "cpu_bound_molecules_per_s"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["speedup"] == pytest.approx(
        result["molecules_per_s"] / result["baseline_molecules_per_s"]
    )
    assert result["efficiency"] == pytest.approx(result["speedup"] / 2)
    assert 0.0 <= result["nan_fraction"] < 0.2
    for run in ("parallel", "baseline"):
        record = result["runs"][run]
        assert record["wall_s"] > 0 and "load_before" in record and "load_after" in record
    assert result["runs"]["baseline"]["workers"] == 1


def test_bench_arguments_are_checked():
    with pytest.raises(KeyError, match="fast, full"):
        bench_descriptors(["O"], tier="fastest")
    with pytest.raises(ValueError, match="no molecules"):
        bench_descriptors([])
    with pytest.raises(ValueError, match="workers"):
        bench_descriptors(["O"], workers=0)


def test_timed_descriptors_in_process():
    out = timed_descriptors("O", ("mw", "mu"))
    assert set(out["values"]) == {"mw", "mu"}
    assert out["seconds"] >= 0 and out["cpu_seconds"] >= 0


@pytest.mark.skipif(importlib.util.find_spec("qm9pack") is None, reason="qm9pack not installed")
def test_qm9_sample_is_seeded():
    first = qm9_sample(5, seed=3)
    assert first == qm9_sample(5, seed=3)
    assert first != qm9_sample(5, seed=4)
    assert len(first) == 5 and all(isinstance(s, str) and s for s in first)
    with pytest.raises(ValueError):
        qm9_sample(10**6)
