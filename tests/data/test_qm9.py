"""QM9 from qm9pack's CSV files: the table and its units, geometries, targets, and the
disk-cached featuriser (real worker processes, a temporary cache folder)."""

from __future__ import annotations

import math
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bodisc.data import qm9 as qm9_module
from bodisc.data.qm9 import (
    QM9_COLUMNS,
    QM9_SIZE,
    QM9_TARGETS,
    descriptor_cache,
    export_descriptors,
    load_qm9,
    qm9_descriptors,
    qm9_geometry,
    qm9_sample_indices,
    shipped_descriptors,
)
from bodisc.descriptors import FAST_QMEX, TIERS
from bodisc.descriptors.qmex import RECIPE_VERSION, compute_qmex, compute_qmex_on_geometry

HARTREE_EV = 27.211386
BOHR3_A3 = 0.529177210903**3
METHANE, AMMONIA, WATER, ACETONITRILE = 1, 2, 3, 10


@pytest.fixture(scope="module")
def qm9() -> pd.DataFrame:
    return load_qm9()


@pytest.fixture(autouse=True, scope="module")
def _one_openmp_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def test_table_has_every_molecule_indexed_by_qm9_index(qm9):
    assert len(qm9) == QM9_SIZE == 130_831
    assert list(qm9.columns) == list(QM9_COLUMNS)
    assert qm9.index.name == "qm9_index" and qm9.index.is_unique
    assert qm9.index.is_monotonic_increasing
    assert (qm9.index[0], qm9.index[-1]) == (1, 133_885)
    assert qm9.loc[METHANE, "smiles"] == "C" and qm9.loc[WATER, "smiles"] == "O"


def test_labels_are_in_user_units(qm9):
    water = qm9.loc[WATER]
    assert water["dipole_D"] == pytest.approx(1.86, abs=0.02)  # D
    assert qm9.loc[METHANE, "dipole_D"] == pytest.approx(0.0, abs=1e-6)
    assert water["gap_eV"] == pytest.approx(0.3615 * HARTREE_EV, abs=1e-3)  # qm9pack: Hartree
    assert water["homo_eV"] == pytest.approx(-0.2928 * HARTREE_EV, abs=1e-3)
    assert water["alpha_bohr3"] == pytest.approx(6.31)
    assert water["alpha_A3"] == pytest.approx(6.31 * BOHR3_A3)
    gap = qm9["lumo_eV"] - qm9["homo_eV"]
    assert np.allclose(gap, qm9["gap_eV"], atol=1.5e-4 * HARTREE_EV)  # 4-digit Hartree
    assert qm9["dipole_D"].max() == pytest.approx(29.5567, abs=1e-3)
    assert qm9.loc[qm9["dipole_D"].idxmax(), "smiles"] == "[NH3+]CCCCCC([O-])=O"


def test_only_the_columns_asked_for():
    table = load_qm9(["gap_eV", "smiles"])
    assert list(table.columns) == ["gap_eV", "smiles"] and len(table) == QM9_SIZE
    with pytest.raises(KeyError, match="known: smiles"):
        load_qm9(["dipole"])


def test_geometry_parsing(qm9):
    numbers, xyz = qm9_geometry(qm9.loc[WATER])
    assert numbers.tolist() == [8, 1, 1] and xyz.shape == (3, 3)
    oh = np.linalg.norm(xyz[1:] - xyz[0], axis=1)
    assert np.allclose(oh, 0.962, atol=0.01)  # B3LYP O-H bond, Angstrom
    for index in (METHANE, ACETONITRILE, 100_000, 133_885):
        numbers, xyz = qm9_geometry(qm9.loc[index])
        assert len(numbers) == xyz.shape[0] == qm9.loc[index, "n_atoms"]
    with pytest.raises(ValueError, match="3 elements but 6 coordinates"):
        qm9_geometry({"elements": "['O','H','H']", "xyz": "[[0,0,0],[1,1,1]]"})
    with pytest.raises(ValueError, match="not one of QM9's"):
        qm9_geometry({"elements": "['Xe']", "xyz": "[[0,0,0]]"})


def test_targets_name_label_columns_and_fast_descriptors():
    assert set(QM9_TARGETS) == {"dipole", "alpha", "gap", "homo", "lumo"}
    for target in QM9_TARGETS.values():
        assert target.column in QM9_COLUMNS
        assert set(target.descriptors) <= set(FAST_QMEX)
    assert QM9_TARGETS["dipole"].descriptors == ("mu",)
    frame = pd.DataFrame({"homo": [-10.0, -9.0], "lumo": [-1.0, 0.5]})
    assert QM9_TARGETS["gap"].analogue(frame).tolist() == [9.0, 9.5]


def test_sample_indices_are_reproducible_and_in_qm9(qm9):
    sample = qm9_sample_indices(50, seed=0)
    assert np.array_equal(sample, qm9_sample_indices(50, seed=0))
    rows = np.sort(np.random.default_rng(0).choice(QM9_SIZE, 50, replace=False))
    assert np.array_equal(sample, qm9.index.to_numpy()[rows])
    with pytest.raises(ValueError):
        qm9_sample_indices(QM9_SIZE + 1)


@pytest.mark.parametrize("index", [WATER, ACETONITRILE, 1000])
def test_descriptors_on_qm9_geometry(qm9, index):
    row = qm9.loc[index]
    numbers, xyz = qm9_geometry(row)
    on_dft = compute_qmex_on_geometry(row["smiles"], numbers, xyz)
    embedded = compute_qmex(row["smiles"], ["mw", "Ne/Na"])
    assert tuple(on_dft) == FAST_QMEX
    assert all(math.isfinite(v) for v in on_dft.values()), on_dft
    assert on_dft["mw"] == embedded["mw"] and on_dft["Ne/Na"] == embedded["Ne/Na"]


def test_xtb_dipole_on_the_dft_geometry_is_close_to_b3lyp(qm9):
    row = qm9.loc[ACETONITRILE]
    numbers, xyz = qm9_geometry(row)
    mu = compute_qmex_on_geometry(row["smiles"], numbers, xyz, ["mu"])["mu"]
    assert mu == pytest.approx(row["dipole_D"], rel=0.05)  # 3.86 vs 3.83 D


def test_a_failing_molecule_in_a_chunk_is_a_reason_not_an_error(qm9):
    numbers, xyz = qm9_geometry(qm9.loc[WATER])
    records = qm9_module._featurise_chunk(
        [(1, "not a smiles", numbers, xyz), (WATER, "O", numbers, xyz)], ("mu", "mw")
    )
    (bad, _, reason, _, _), (good, values, ok, note, seconds) = records
    assert bad == 1 and reason.startswith("MoleculeFailure: invalid SMILES")
    assert good == WATER and ok == "" and note == "" and seconds > 0
    assert all(math.isfinite(v) for v in values)


def _files(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.npz")}


def test_disk_cache_computes_each_molecule_once(tmp_path):
    indices = [WATER, METHANE, AMMONIA, ACETONITRILE, 6, 8]
    seen = []
    first = qm9_descriptors(
        indices, "fast", workers=2, cache_dir=tmp_path, progress=seen.append, chunk_size=4
    )
    folder = next(tmp_path.glob("qm9-fast-v*"))
    files = _files(folder)
    assert len(files) == 2  # chunks of 4 and 2
    assert list(first.index) == indices and list(first.columns) == list(TIERS["fast"])
    assert first.attrs["computed"] == 6 and first.attrs["cached"] == 0
    assert first.attrs["failures"] == {}
    assert [p.computed for p in seen] in ([4, 6], [2, 6])
    assert seen[-1].total == 6 and seen[-1].molecules_per_s > 0
    assert first.loc[WATER, "mu"] == pytest.approx(2.29, abs=0.05)

    again = qm9_descriptors(indices[::-1], "fast", workers=2, cache_dir=tmp_path)
    assert again.attrs["computed"] == 0 and again.attrs["cached"] == 6
    assert _files(folder) == files  # nothing written, nothing rewritten
    pd.testing.assert_frame_equal(again.loc[indices], first)


def test_the_package_ships_the_fast_tier_of_all_of_qm9(monkeypatch, tmp_path):
    (file,) = shipped_descriptors("fast")
    package = Path(str(resources.files("bodisc.data")))
    assert file == package / "descriptors" / f"qm9-fast-v{RECIPE_VERSION}.npz"
    with np.load(file) as data:
        assert len(data["qm9_index"]) == QM9_SIZE
        assert tuple(str(n) for n in data["names"]) == TIERS["fast"]
    assert shipped_descriptors("full") == []
    with pytest.raises(KeyError, match="unknown descriptor tier"):
        shipped_descriptors("medium")
    monkeypatch.setenv("BODISC_CACHE", str(tmp_path))
    assert descriptor_cache("fast").shipped == (file,)
    assert descriptor_cache("fast", tmp_path).shipped == ()


def test_shipped_descriptors_seed_the_default_cache(monkeypatch, tmp_path):
    build, shipped = tmp_path / "build", tmp_path / "shipped"
    indices = [int(i) for i in qm9_sample_indices(3, seed=5)]
    file = shipped / f"qm9-fast-v{RECIPE_VERSION}.npz"
    proc = subprocess.run(
        [sys.executable, "-m", "bodisc.cli", "bench", "qm9-descriptors", "--sample", "3",
         "--sample-seed", "5", "--workers", "1", "--cache-dir", str(build), "--export",
         str(file)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "3 molecules: 3 computed, 0 cached, 0 failed" in proc.stdout
    with np.load(file) as data:
        assert sorted(data["qm9_index"].tolist()) == sorted(indices)
        assert data["values"].shape == (3, len(TIERS["fast"]))
    built = qm9_descriptors(indices, "fast", workers=1, cache_dir=build)
    assert built.attrs["computed"] == 0

    # a checkout's default cache starts with the shipped file and writes nothing
    monkeypatch.setattr(qm9_module, "SHIPPED_DIR", shipped)
    monkeypatch.setenv("BODISC_CACHE", str(tmp_path / "home"))
    seeded = qm9_descriptors(indices, "fast", workers=1)
    assert seeded.attrs["computed"] == 0 and seeded.attrs["cached"] == 3
    pd.testing.assert_frame_equal(seeded, built)
    assert not (tmp_path / "home").exists()
    # an explicit cache root is read alone
    own = qm9_descriptors(indices[:1], "fast", workers=1, cache_dir=tmp_path / "own")
    assert own.attrs["computed"] == 1
    with pytest.raises(KeyError, match="1 molecules are not in the fast descriptor cache"):
        export_descriptors(tmp_path / "x.npz", [*indices, WATER], cache_dir=build)


def test_failures_are_cached_with_their_reason(tmp_path):
    indices = [WATER, METHANE]
    failed = qm9_descriptors(
        indices,
        "fast",
        workers=1,
        cache_dir=tmp_path,
        chunk_timeout_s=1e-3,
        molecule_timeout_s=1e-3,
    )
    assert set(failed.attrs["failures"]) == set(indices)
    assert all(r.startswith("timeout after") for r in failed.attrs["failures"].values())
    assert failed.isna().all().all()
    cached = qm9_descriptors(indices, "fast", workers=1, cache_dir=tmp_path)
    assert cached.attrs["computed"] == 0 and set(cached.attrs["failures"]) == set(indices)
    retried = qm9_descriptors([WATER], "fast", workers=1, cache_dir=tmp_path, retry_failed=True)
    assert retried.attrs["computed"] == 1 and retried.attrs["failures"] == {}
    assert math.isfinite(retried.loc[WATER, "mu"])
    # the success now beats the cached failure; methane is still a cached failure
    both = qm9_descriptors(indices, "fast", workers=1, cache_dir=tmp_path)
    assert both.attrs["computed"] == 0 and set(both.attrs["failures"]) == {METHANE}


def test_featuriser_arguments_are_checked(tmp_path):
    with pytest.raises(KeyError, match="fast, full"):
        qm9_descriptors([WATER], "slow", cache_dir=tmp_path)
    with pytest.raises(KeyError, match="QM9 has no Index"):
        qm9_descriptors([0], cache_dir=tmp_path)
    with pytest.raises(ValueError):
        qm9_descriptors([WATER], workers=0, cache_dir=tmp_path)


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BODISC_CACHE", str(tmp_path))
    assert qm9_module.default_cache_dir() == tmp_path
    monkeypatch.delenv("BODISC_CACHE")
    assert str(qm9_module.default_cache_dir()).endswith(".cache/bodisc")
