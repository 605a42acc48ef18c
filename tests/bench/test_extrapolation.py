"""The extrapolation benchmark: splits, a small run, reports, and the errors bad input gets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bodisc.bench.extrapolation import (
    MODELS,
    BenchInputError,
    Split,
    bench_extrapolation,
    cluster_splits,
    load_split_csv,
    property_range_splits,
    results_markdown,
    run_extrapolation_bench,
    write_results,
)
from bodisc.errors import BodiscError


def small_table(n_per: int = 15) -> pd.DataFrame:
    smiles = []
    for k in range(1, n_per + 1):
        chain = "C" * k
        smiles += [chain, chain + "O", chain + "N", chain + "Cl"]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(len(smiles), 3))
    y = 1.5 * X[:, 0] - X[:, 1] + 0.1 * rng.normal(size=len(smiles))
    return pd.DataFrame({"smiles": smiles, "y": y, "d1": X[:, 0], "d2": X[:, 1], "d3": X[:, 2]})


def write_split_file(path: Path, rows: list[tuple[str, list[int], list[int]]]) -> Path:
    frame = pd.DataFrame({
        "extra": [r[0] for r in rows],
        "n_in": [len(r[1]) for r in rows],
        "idx_inter": [json.dumps(r[1]) for r in rows],
        "idx_extra": [json.dumps(r[2]) for r in rows],
    })
    frame.to_csv(path, index=False)
    return path


def test_property_range_splits_train_inside_test_outside() -> None:
    y = np.random.default_rng(0).normal(size=300)
    splits = property_range_splits(y, (20, 100), seed=1)
    for s in splits:
        assert s.name == "property" and s.n_in == len(s.train)
        lo, hi = y[s.train].min(), y[s.train].max()
        assert np.all((y[s.test] < lo) | (y[s.test] > hi))
        assert not set(s.train) & set(s.test)
    again = property_range_splits(y, (20, 100), seed=1)
    assert all(np.array_equal(a.train, b.train) for a, b in zip(splits, again, strict=True))
    with pytest.raises(BenchInputError, match="N_in = 290"):
        property_range_splits(y, (290,))


def test_cluster_splits_cover_the_table_without_overlap() -> None:
    X = np.random.default_rng(0).normal(size=(200, 4))
    for s in cluster_splits(X, (20, 60), seed=0):
        assert s.n_in >= {0: 20, 1: 60}[s.row]
        assert sorted(np.concatenate([s.train, s.test]).tolist()) == list(range(200))
    with pytest.raises(BenchInputError, match="smaller N_in"):
        cluster_splits(X, (199,))


def test_small_run_and_reports(tmp_path: Path) -> None:
    table = small_table()
    y = table["y"].to_numpy()
    splits = property_range_splits(y, (20,), seed=0) + cluster_splits(
        table[["d1", "d2", "d3"]].to_numpy(), (20,), seed=0)
    records = run_extrapolation_bench(table, "y", ["d1", "d2", "d3"], splits,
                                      models=["lr", "ilr", "ilr_ridge", "rf"])
    assert len(records) == 8
    keys = {"split", "n_in", "model", "rmse_over_sigma", "row", "n_test", "seconds"}
    assert keys <= set(records[0])
    lr = [r for r in records if r["model"] == "lr" and r["split"] == "property"][0]
    assert lr["rmse_over_sigma"] < 0.3  # a linear law extrapolates
    text = results_markdown(records)
    assert "| property |" in text and "cluster mean" in text
    paths = write_results(records, tmp_path / "out")
    assert all(p.is_file() for p in paths.values())
    assert len(json.loads(paths["json"].read_text())) == 8


def test_bench_from_files_with_split_file(tmp_path: Path) -> None:
    table = small_table()
    data = tmp_path / "data.csv"
    table.to_csv(data, index=False)
    order = np.argsort(table["y"].to_numpy())
    split_file = write_split_file(tmp_path / "splits.csv", [
        ("property", sorted(order[15:45].tolist()),
         sorted(order[:15].tolist() + order[45:].tolist())),
        ("cluster", list(range(30)), list(range(30, 60))),
    ])
    out = tmp_path / "res.json"
    records = bench_extrapolation(data, "d1:d3", None, split_file, out, tmp_path / "o",
                                  models=["ilr_ridge", "gp", "tanimoto_gp"], rows=[0, 1])
    assert [r["row"] for r in records] == [0, 0, 0, 1, 1, 1]
    write_split_file(split_file, [("property", [0, 1, 2, 3], [4, 5]),
                                  ("interpolation", [0, 1], [])])
    records = bench_extrapolation(data, ["d1", "d2"], None, split_file, models=["lr"])
    assert [r["row"] for r in records] == [0]
    with pytest.raises(BenchInputError, match="split row 1 has 2 training and 0 test rows"):
        bench_extrapolation(data, ["d1", "d2"], None, split_file, models=["lr"], rows=[1])
    assert json.loads(out.read_text())[0]["model"] == "ilr_ridge"
    assert (tmp_path / "o" / "extrapolation.png").is_file()


def test_load_split_csv_rows(tmp_path: Path) -> None:
    path = write_split_file(tmp_path / "s.csv", [("property", [0, 1, 2], [3, 4])])
    (split,) = load_split_csv(path)
    assert split == Split("property", 3, split.train, split.test, 0)
    assert split.train.tolist() == [0, 1, 2] and split.test.tolist() == [3, 4]
    with pytest.raises(BenchInputError, match="rows 0..0; asked for row"):
        load_split_csv(path, rows=[5])


def test_error_messages(tmp_path: Path) -> None:
    table = small_table()
    ok = [("property", 3, [0, 1, 2], [3, 4])]
    with pytest.raises(BenchInputError, match="missing from the table: d9, d8"):
        run_extrapolation_bench(table, "y", ["d1", "d9", "d8"], ok, models=["lr"])
    bad = table.copy()
    bad.loc[[4, 7], "y"] = np.nan
    with pytest.raises(BenchInputError, match="2 NaN .*rows 4, 7"):
        run_extrapolation_bench(bad, "y", ["d1"], ok, models=["lr"])
    far = [Split("cluster", 3, np.array([0, 1, 2]), np.array([3, 700]), 12)]
    message = "split row 12 names test index 700 but the table has 60 rows"
    with pytest.raises(BenchInputError, match=message):
        run_extrapolation_bench(table, "y", ["d1"], far, models=["lr"])
    with pytest.raises(BenchInputError, match="unknown model.*choose from"):
        run_extrapolation_bench(table, "y", ["d1"], ok, models=["svm"])
    with pytest.raises(BenchInputError, match="SMILES column"):
        run_extrapolation_bench(table.drop(columns="smiles"), "y", ["d1"], ok, models=["ilr"])
    data = tmp_path / "d.csv"
    table.to_csv(data, index=False)
    with pytest.raises(BenchInputError, match="none of the training sizes"):
        bench_extrapolation(data, "d1,d2", models=["lr"], n_in=(500,))
    with pytest.raises(BenchInputError, match="descriptor column.*dX"):
        bench_extrapolation(data, "d1,dX", models=["lr"])
    assert issubclass(BenchInputError, ValueError) and issubclass(BenchInputError, BodiscError)


def test_every_registered_model_has_a_description() -> None:
    assert all(spec.description for spec in MODELS.values())
