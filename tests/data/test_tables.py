"""Reading the molecules and labels a user brings: real files in a temporary folder,
every problem reported at once with file, row, column and value."""

from __future__ import annotations

import csv
import gzip
import math
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bodisc.config import GeneratorConfig
from bodisc.data.tables import (
    STATUSES,
    LabelTable,
    import_rules,
    read_labels,
    read_library,
)
from bodisc.errors import ConfigError, InputError

GEN = GeneratorConfig()  # C, N, O, F; neutral
QMEX = Path(__file__).resolve().parents[2] / "examples" / "qmex_dGs" / "qmex_dGs.csv"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(exc: pytest.ExceptionInfo[InputError]) -> list[str]:
    return str(exc.value).splitlines()


# ------------------------------------------------------------------------ good files


def test_reads_rows_canonical_with_spreadsheet_row_numbers(tmp_path: Path) -> None:
    f = write(tmp_path / "labels.csv",
              "SMILES,dGs,status,reason,source,notes\n"
              "OCC,-5.0,,,page 12,x\n"
              "\n"
              "c1ccccc1,-0.9,done,,B3LYP,\n"
              "CC#N,,failed,SCF did not converge,,\n"
              "CN,,cancelled,,,\n")
    table = read_labels(f, label="dGs", constraints=GEN)
    assert isinstance(table, LabelTable)
    assert [r.row for r in table.rows] == [2, 4, 5, 6]  # the blank line is row 3
    first = table.rows[0]
    assert (first.smiles, first.value, first.status, first.source) == ("CCO", -5.0, "done",
                                                                       "page 12")
    assert first.inchikey == "LFQSCWFLJHTTHZ-UHFFFAOYSA-N" and first.heavy_atoms == 3
    failed = table.rows[2]
    assert (failed.value, failed.status, failed.reason) == (None, "failed",
                                                            "SCF did not converge")
    assert table.rows[3].status == "cancelled" and table.rows[3].reason is None
    assert len(table.digest) == 64 and table.label == "dGs"
    assert not hasattr(first, "notes")


def test_digest_is_of_the_bytes(tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", "smiles,y\nCCO,1\n")
    b = write(tmp_path / "b.csv", "smiles,y\nCCO,1\n")
    c = write(tmp_path / "c.csv", "smiles,y\nCCO,2\n")
    digests = [read_labels(p, label="y", constraints=None).digest for p in (a, b, c)]
    assert digests[0] == digests[1] != digests[2]


def test_gzip_and_parquet_round_trip(tmp_path: Path) -> None:
    text = "smiles,dGs,status,reason\nCCO,-5.0,done,\nCC#N,,failed,no SCF\n"
    gz = tmp_path / "labels.csv.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    pq = tmp_path / "labels.parquet"
    pd.DataFrame({"smiles": ["CCO", "CC#N"], "dGs": [-5.0, float("nan")],
                  "status": ["done", "failed"], "reason": [None, "no SCF"]}).to_parquet(pq)
    plain = read_labels(write(tmp_path / "labels.csv", text), label="dGs", constraints=GEN)
    for path in (gz, pq):
        table = read_labels(path, label="dGs", constraints=GEN)
        assert [(r.row, r.smiles, r.value, r.status, r.reason) for r in table.rows] == \
               [(r.row, r.smiles, r.value, r.status, r.reason) for r in plain.rows]


def test_parquet_problems_use_the_same_row_numbers(tmp_path: Path) -> None:
    pq = tmp_path / "labels.parquet"
    pd.DataFrame({"smiles": ["CCO", "CCl"], "dGs": [1.0, 2.0]}).to_parquet(pq)
    with pytest.raises(InputError) as exc:
        read_labels(pq, label="dGs", constraints=GEN)
    assert problems_of(exc) == [
        f"{pq}: row 3, column 'smiles': 'CCl' has element Cl; allowed: C, N, O, F"
    ]


def test_identical_duplicates_collapse_to_the_first(tmp_path: Path) -> None:
    f = write(tmp_path / "labels.csv", "smiles,dGs\nCCO,-5\nOCC,-5.0\nC,1\nC(O)C,-5\n")
    table = read_labels(f, label="dGs", constraints=GEN)
    assert [(r.row, r.smiles) for r in table.rows] == [(2, "CCO"), (4, "C")]
    assert table.duplicates == 2


def test_heavy_atom_limits_do_not_apply_to_labels(tmp_path: Path) -> None:
    spec = GeneratorConfig(max_heavy_atoms=3, min_heavy_atoms=2,
                           forbidden_substructures=("[OX2H]",))
    f = write(tmp_path / "labels.csv", "smiles,y\nC,1\nCCCCCCCCCCO,2\n")
    assert len(read_labels(f, label="y", constraints=spec).rows) == 2


def test_charge_rule_and_elements_of_the_campaign(tmp_path: Path) -> None:
    f = write(tmp_path / "labels.csv", "smiles,y\nC[N+](=O)[O-],1\nCCS,2\n")
    with pytest.raises(InputError) as exc:
        read_labels(f, label="y", constraints=GEN)
    assert problems_of(exc) == [
        f"{f}: row 2, column 'smiles': 'C[N+](=O)[O-]' is refused: charged atoms; "
        "charge_rule = 'neutral' allows none",
        f"{f}: row 3, column 'smiles': 'CCS' has element S; allowed: C, N, O, F",
    ]
    loose = GeneratorConfig(allowed_elements=("C", "N", "O", "S"), charge_rule="net_neutral")
    assert len(read_labels(f, label="y", constraints=loose).rows) == 2
    assert len(read_labels(f, label="y", constraints=None).rows) == 2


def test_import_rules_keep_elements_and_charge_only() -> None:
    spec = GeneratorConfig(max_heavy_atoms=3, forbidden_substructures=("[OH]",))
    labels = import_rules(spec, substructures=False)
    library = import_rules(spec, substructures=True)
    assert labels is not None and library is not None
    assert labels.allowed_elements == ("C", "N", "O", "F") and labels.charge_rule == "neutral"
    assert labels.forbidden_substructures == () and library.forbidden_substructures == ("[OH]",)
    assert labels.max_heavy_atoms > 10**6 and labels.min_heavy_atoms == 0
    assert import_rules(None, substructures=True) is None


# ------------------------------------------------------------------------ bad files


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("smiles,dGs\nCCO,abc\n", "row 2, column 'dGs': 'abc' is not a number"),
        ("smiles,dGs\nCCO,1_000\n", "row 2, column 'dGs': '1_000' is not a number"),
        ("smiles,dGs\nC1CC,1\n", "row 2, column 'smiles': 'C1CC' is not a valid SMILES"),
        ("smiles,dGs\nCCl,1\n", "row 2, column 'smiles': 'CCl' has element Cl; allowed: C, N, "
                                "O, F"),
        ("smiles,dGs\n,1\n", "row 2, column 'smiles': (empty); every row needs a SMILES"),
        ("smiles,dGs\nCCO,inf\n", "row 2, column 'dGs': 'inf' is not finite"),
        ("smiles,dGs\nCCO,-Infinity\n", "row 2, column 'dGs': '-Infinity' is not finite"),
        ("smiles,dGs\nCCO,NaN\n", "row 2, column 'dGs': 'NaN' is not a value; status 'done' "
                                  "needs a finite number"),
        ("smiles,dGs,status\nCCO,,done\n", "row 2, column 'dGs': '' is not a value; status "
                                           "'done' needs a finite number"),
        ("smiles,dGs,status\nCCO,,failed\n", "row 2, column 'reason': (empty); status "
                                             "'failed' needs a reason (add a 'reason' column)"),
        ("smiles,dGs,status,reason\nCCO,, failed ,\n", "row 2, column 'reason': (empty); status "
                                                       "'failed' needs a reason"),
        ("smiles,dGs,status\nCCO,1,ok\n", "row 2, column 'status': 'ok' is not a status; "
                                          "allowed: done, failed, cancelled"),
        ("smiles,dGs,status,reason\nCCO,1.5,failed,x\n", "row 2, column 'dGs': '1.5' given "
                                                         "with status 'failed'"),
        ("smiles,dGs\nCCO,1,extra\n", "row 2: 3 fields, the header has 2"),
        ("smiles,dG\nCCO,1\n", "no column 'dGs' (the campaign's objective); columns: smiles, dG"),
        ("name,dGs\nCCO,1\n", "no column 'smiles' (the molecules); columns: name, dGs"),
        ("smiles,SMILES,dGs\nCCO,CCO,1\n", "row 1: columns 'smiles', 'SMILES' all name the "
                                           "SMILES; keep one"),
        ("", "the file is empty; expected a header row with 'smiles' and 'dGs'"),
        ("\n\n", "the file is empty"),
        ("smiles,dGs\n", "no data rows under the header (row 1)"),
        ("smiles,dGs\n\n,\n", "no data rows under the header (row 1)"),
    ],
)
def test_each_problem_names_file_row_column_and_value(
    tmp_path: Path, body: str, expected: str
) -> None:
    f = write(tmp_path / "labels.csv", body)
    with pytest.raises(InputError) as exc:
        read_labels(f, label="dGs", constraints=GEN)
    lines = problems_of(exc)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{f}: {expected}"), lines[0]
    assert exc.value.exit_code == 2 == ConfigError.exit_code


def test_all_problems_of_a_file_at_once(tmp_path: Path) -> None:
    f = write(tmp_path / "labels.csv",
              "smiles,dGs,status,reason\n"
              "CCO,-5,,\n"
              "C1CC,1,,\n"
              "CCN,abc,,\n"
              "CCl,2,,\n"
              "OCC,-4,,\n"
              "CC#N,,failed,\n"
              "CO,nan,,\n")
    with pytest.raises(InputError) as exc:
        read_labels(f, label="dGs", constraints=GEN)
    lines = problems_of(exc)
    assert [line.split(",")[0] for line in lines] == [
        f"{f}: row {n}" for n in (3, 4, 5, 6, 7, 8)
    ]
    assert "'C1CC' is not a valid SMILES" in lines[0]
    assert "column 'dGs': 'abc' is not a number" in lines[1]
    assert "'CCl' has element Cl" in lines[2]
    assert "'-4' for 'OCC' differs from row 2 ('-5' for 'CCO')" in lines[3]
    assert "InChIKey LFQSCWFLJHTTHZ-UHFFFAOYSA-N" in lines[3]
    assert "column 'reason': (empty); status 'failed' needs a reason" in lines[4]
    assert "column 'dGs': 'nan' is not a value" in lines[5]
    assert len(exc.value.problems) == 6 and exc.value.file == str(f)


def test_header_problems_together(tmp_path: Path) -> None:
    f = write(tmp_path / "labels.csv", "molecule,dG\nCCO,1\n")
    with pytest.raises(InputError) as exc:
        read_labels(f, label="dGs", constraints=GEN)
    assert problems_of(exc) == [
        f"{f}: no column 'smiles' (the molecules); columns: molecule, dG",
        f"{f}: no column 'dGs' (the campaign's objective); columns: molecule, dG",
    ]


def test_message_is_capped(tmp_path: Path) -> None:
    f = write(tmp_path / "labels.csv", "smiles,y\n" + "CCO,abc\n" * 45)
    with pytest.raises(InputError) as exc:
        read_labels(f, label="y", constraints=GEN)
    lines = problems_of(exc)
    assert len(lines) == 21 and len(exc.value.problems) == 45
    assert lines[-1] == f"{f}: ... and 25 more problem(s)"
    assert lines[0] == f"{f}: row 2, column 'y': 'abc' is not a number"


def test_different_duplicates_refused_naming_both_rows(tmp_path: Path) -> None:
    f = write(tmp_path / "labels.csv",
              "smiles,y,status,reason\nCl/C=C\\Cl,1.0,,\nC,2,,\nCl/C=C/Cl,1.5,,\n"
              "C,,failed,boom\n")
    spec = GeneratorConfig(allowed_elements=("C", "Cl"))
    with pytest.raises(InputError) as exc:
        read_labels(f, label="y", constraints=spec)
    lines = problems_of(exc)
    assert len(lines) == 2
    assert lines[0].startswith(f"{f}: row 4, column 'y': '1.5' for 'Cl/C=C/Cl' differs from "
                               "row 2 ('1.0' for 'Cl/C=C\\\\Cl'), the same molecule "
                               "(stereoisomers: bodisc ignores stereochemistry)")
    assert lines[1].startswith(f"{f}: row 5, column 'y': status 'failed' for 'C' differs "
                               "from row 3 ('2' for 'C'), the same molecule (InChIKey")
    first = read_labels(f, label="y", constraints=spec, on_conflict="first")
    assert [(r.row, r.value) for r in first.rows] == [(2, 1.0), (3, 2.0)]
    mean = read_labels(f, label="y", constraints=spec, on_conflict="mean")
    assert [(r.row, r.value, r.status) for r in mean.rows] == [(2, 1.25, "done"),
                                                               (3, 2.0, "done")]
    assert mean.duplicates == 2


def test_file_type_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"labels.txt: unsupported file type; allowed: \.csv"):
        read_labels(write(tmp_path / "labels.txt", "smiles,y\n"), label="y", constraints=None)
    with pytest.raises(InputError, match=r"nope.csv: no such file"):
        read_labels(tmp_path / "nope.csv", label="y", constraints=None)
    with pytest.raises(InputError, match=r"broken.parquet: cannot be read as Parquet"):
        read_labels(write(tmp_path / "broken.parquet", "smiles,y\n"), label="y",
                    constraints=None)
    bad = tmp_path / "latin.csv"
    bad.write_bytes(b"smiles,y\nCCO,1\n\xff\xfe,2\n")
    with pytest.raises(InputError, match=r"latin.csv: row \d+: cannot be read as CSV"):
        read_labels(bad, label="y", constraints=None)
    with pytest.raises(ValueError, match="on_conflict"):
        read_labels(tmp_path / "x.csv", label="y", constraints=None,
                    on_conflict="max")  # type: ignore[arg-type]


# ------------------------------------------------------------------- hypothesis


_SMILES = ["CCO", "OCC", "C", "c1ccccc1", "CC#N", "CCl", "C1CC", "", "C[N+](=O)[O-]",
           "xyz", "[Na+].[Cl-]", "C[CH2]", "Cl/C=C/Cl", "Cl/C=C\\Cl", " CCO ", "C,C", "C\"C"]
_VALUES = ["1", "-2.5", "1e3", "", "nan", "inf", "-inf", "abc", "0", " 3 ", "1_0", "1,5"]
_STATUS = ["", "done", "failed", "cancelled", "DONE", "ok", "Failed"]
_REASON = ["", "no SCF", "x"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.lists(st.sampled_from(["smiles", "SMILES", "y", "status", "reason", "source",
                                     "Y", "extra", ""]), min_size=0, max_size=6),
    rows=st.lists(st.tuples(st.sampled_from(_SMILES), st.sampled_from(_VALUES),
                            st.sampled_from(_STATUS), st.sampled_from(_REASON)),
                  max_size=8),
    junk=st.text(max_size=30),
    raw=st.booleans(),
)
def test_bad_files_give_valid_rows_or_an_input_error(
    tmp_path: Path, header: list[str], rows: list[tuple[str, str, str, str]], junk: str,
    raw: bool,
) -> None:
    f = tmp_path / "fuzz.csv"
    if raw:  # anything at all
        f.write_text(junk, encoding="utf-8")
    else:
        with f.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for smiles, value, status, reason in rows:
                cells = {"smiles": smiles, "SMILES": smiles, "y": value, "Y": value,
                         "status": status, "reason": reason, "source": "s", "extra": junk}
                writer.writerow([cells.get(h, junk) for h in header])
    try:
        table = read_labels(f, label="y", constraints=GEN)
    except InputError as exc:
        lines = str(exc).splitlines()
        assert lines and all(line.startswith(f"{f}: ") for line in lines)
        return
    assert table.rows
    keys = [r.inchikey for r in table.rows]
    assert len(keys) == len(set(keys))
    for row in table.rows:
        assert row.row >= 2 and row.status in STATUSES
        if row.status == "done":
            assert row.value is not None and math.isfinite(row.value)
        else:
            assert row.value is None
        if row.status == "failed":
            assert row.reason
        assert row.smiles and "." not in row.smiles and "+" not in row.smiles


# ------------------------------------------------------------------------ libraries


def test_smi_library_with_comments_names_and_rejections(tmp_path: Path) -> None:
    f = write(tmp_path / "library.smi",
              "# a library\n"
              "smiles name\n"
              "CCO ethanol\n"
              "\n"
              "C1CC broken ring\n"
              "c1ccccc1\tbenzene ring\n"
              "OCC ethanol-again\n"
              "CCl chloromethane\n"
              "   # indented comment\n"
              "CC#N\n")
    lib = read_library(f, constraints=GEN)
    assert [(m.row, m.smiles, m.name) for m in lib.molecules] == [
        (3, "CCO", "ethanol"), (6, "c1ccccc1", "benzene ring"), (10, "CC#N", None)]
    assert lib.duplicates == 1
    assert [(r.row, r.smiles, r.name) for r in lib.rejected] == [
        (5, "C1CC", "broken ring"), (8, "CCl", "chloromethane")]
    assert lib.rejected[0].reason.startswith("is not a valid SMILES")
    assert lib.rejected[1].message(str(f)) == (
        f"{f}: row 8: 'CCl' has element Cl; allowed: C, N, O, F")
    assert len(lib.digest) == 64


def test_library_applies_forbidden_substructures_not_heavy_atoms(tmp_path: Path) -> None:
    spec = GeneratorConfig(max_heavy_atoms=2, forbidden_substructures=("C#N",))
    lib = read_library(write(tmp_path / "l.smi", "CCCCCCO\nCC#N\n"), constraints=spec)
    assert [m.smiles for m in lib.molecules] == ["CCCCCCO"]
    assert lib.rejected[0].reason == "is refused: contains forbidden substructure C#N"


def test_csv_and_parquet_libraries(tmp_path: Path) -> None:
    f = write(tmp_path / "lib.csv", "ID,Smiles,dGs\nm1,CCO,1\nm2,,2\nm3,CN,3,4\nm4,CC,\n")
    lib = read_library(f, constraints=GEN)
    assert [(m.row, m.smiles, m.name) for m in lib.molecules] == [(2, "CCO", "m1"),
                                                                  (5, "CC", "m4")]
    assert [(r.row, r.reason[:12]) for r in lib.rejected] == [(3, "is empty: no"),
                                                              (4, "is left out:")]
    pq = tmp_path / "lib.parquet"
    pd.DataFrame({"smiles": ["CCO", "OCC", "C1CC", "CN"], "name": ["a", "b", "c", None]}) \
        .to_parquet(pq)
    lib = read_library(pq, constraints=GEN)
    assert [(m.row, m.name) for m in lib.molecules] == [(2, "a"), (5, None)]
    assert lib.duplicates == 1 and [r.row for r in lib.rejected] == [4]


def test_library_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"empty.smi: no molecules in the file"):
        read_library(write(tmp_path / "empty.smi", "# nothing\n\n"), constraints=GEN)
    with pytest.raises(InputError, match=r"lib.csv: no column 'smiles' \(the molecules\); "
                                         r"columns: mol, name"):
        read_library(write(tmp_path / "lib.csv", "mol,name\nCCO,a\n"), constraints=GEN)
    with pytest.raises(InputError) as exc:
        read_library(write(tmp_path / "bad.smi", "CCl\nC1CC\n"), constraints=GEN)
    f = tmp_path / "bad.smi"
    assert problems_of(exc)[0] == f"{f}: none of its 2 molecule(s) can be used"
    assert problems_of(exc)[1] == f"{f}: row 1: 'CCl' has element Cl; allowed: C, N, O, F"
    with pytest.raises(InputError, match=r"lib.sdf: unsupported file type"):
        read_library(write(tmp_path / "lib.sdf", ""), constraints=GEN)


def test_library_in_worker_processes_keeps_order(tmp_path: Path) -> None:
    smiles = ["C" * (i % 9 + 1) + "O" * (i % 3) for i in range(300)] + ["CCl", "C1CC"]
    f = write(tmp_path / "lib.smi", "".join(f"{s} m{i}\n" for i, s in enumerate(smiles)))
    one = read_library(f, constraints=GEN)
    two = read_library(f, constraints=GEN, workers=2, chunk_size=50)
    assert one.molecules == two.molecules and one.rejected == two.rejected
    assert one.duplicates == two.duplicates == 300 - 9  # i % 9 fixes both parts


# ------------------------------------------------------------------------ the example


def test_qmex_example_reads_with_its_elements() -> None:
    spec = GeneratorConfig(allowed_elements=("C", "N", "O", "F", "S", "Cl", "Br", "I", "P"),
                           charge_rule="net_neutral")
    with pytest.raises(InputError) as exc:  # three pairs of stereoisomers, two labels each
        read_labels(QMEX, label="dGs", constraints=spec)
    assert [line.split(",")[0] for line in problems_of(exc)] == [
        f"{QMEX}: row {n}" for n in (233, 261, 506)]
    table = read_labels(QMEX, label="dGs", constraints=spec, on_conflict="mean")
    assert len(table.rows) == 628 and table.duplicates == 3
    assert table.rows[0].value == -14.21


def test_odd_files_are_input_errors_of_one_line_each(tmp_path: Path) -> None:
    f = write(tmp_path / "labels.csv", "smi\x1eles,y\u2028z\nCCO,1\n")
    with pytest.raises(InputError) as exc:
        read_labels(f, label="y", constraints=GEN)
    lines = problems_of(exc)
    assert len(lines) == 2 and all(line.startswith(f"{f}: ") for line in lines)
    assert "\\x1e" in lines[0]
    semi = write(tmp_path / "semi.csv", "smiles;y\nCCO;1\n")
    with pytest.raises(InputError, match="seems separated by ';' or tabs"):
        read_labels(semi, label="y", constraints=GEN)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputError) as exc:
        read_labels(binary, label="y", constraints=GEN)
    assert all(line.startswith(f"{binary}: ") for line in problems_of(exc))


def test_broken_gzip_and_unreadable_file(tmp_path: Path) -> None:
    good = gzip.compress(b"smiles,y\n" + b"CCO,1\n" * 2000)
    for name, data in (("trunc.csv.gz", good[: len(good) // 2]), ("junk.csv.gz", b"nope"),
                       ("flip.csv.gz", good[:20] + bytes(40) + good[60:])):
        f = tmp_path / name
        f.write_bytes(data)
        with pytest.raises(InputError) as exc:
            read_labels(f, label="y", constraints=None)
        assert all(line.startswith(f"{f}: ") for line in problems_of(exc)), str(exc.value)
    with pytest.raises(InputError, match=r"a.csv: not a file"):
        (tmp_path / "a.csv").mkdir()
        read_labels(tmp_path / "a.csv", label="y", constraints=None)


def test_unanswered_rows_are_skipped_only_when_asked(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text("smiles,dGs,status,reason\nCCO,-5.0,,\nCC#N,,,\nCN,,failed,lost\n")
    with pytest.raises(InputError, match="row 3, column 'dGs'"):
        read_labels(path, label="dGs", constraints=None)
    table = read_labels(path, label="dGs", constraints=None, unanswered="skip")
    assert [(r.row, r.status) for r in table.rows] == [(2, "done"), (4, "failed")]


# ------------------------------------------------------------- several label columns


def test_further_property_columns_are_read_with_the_label(tmp_path: Path) -> None:
    f = write(tmp_path / "two.csv",
              "smiles,dipole,gap,status,reason\n"
              "CCO,1.5,8.25,,\n"
              "CC#N,3.9,9.5,done,\n"
              "CN,,,failed,no SCF\n")
    table = read_labels(f, label="dipole", constraints=GEN, properties=["gap"])
    assert [(r.value, r.properties) for r in table.rows] == [
        (1.5, {"dipole": 1.5, "gap": 8.25}),
        (3.9, {"dipole": 3.9, "gap": 9.5}),
        (None, None),  # a failure has no properties
    ]
    # one label column: no properties, as before
    assert all(r.properties is None for r in read_labels(f, label="dipole",
                                                          constraints=GEN).rows)


def test_a_missing_property_column_is_one_problem_naming_it(tmp_path: Path) -> None:
    f = write(tmp_path / "one.csv", "smiles,dipole\nCCO,1.5\n")
    with pytest.raises(InputError) as exc:
        read_labels(f, label="dipole", constraints=GEN, properties=("gap",))
    assert problems_of(exc) == [f"{f}: no column 'gap' (a property the campaign models); "
                                "columns: smiles, dipole"]


def test_a_property_that_is_not_a_number_names_row_and_column(tmp_path: Path) -> None:
    f = write(tmp_path / "bad.csv",
              "smiles,dipole,gap,status,reason\n"
              "CCO,1.5,eight,,\n"
              "CC#N,3.9,,,\n"
              "CN,,7.0,failed,no SCF\n")
    with pytest.raises(InputError) as exc:
        read_labels(f, label="dipole", constraints=GEN, properties=("gap",))
    assert problems_of(exc) == [
        f"{f}: row 2, column 'gap': 'eight' is not a number",
        f"{f}: row 3, column 'gap': '' is not a value; status 'done' needs a finite "
        "number (or give status 'failed' and a reason)",
        f"{f}: row 4, column 'gap': '7.0' given with status 'failed'; a failed or cancelled "
        "row has an empty label",
    ]


def test_repeats_compare_and_average_every_property(tmp_path: Path) -> None:
    f = write(tmp_path / "rep.csv",
              "smiles,dipole,gap\nCCO,1.0,8.0\nOCC,1.0,9.0\nCN,2.0,5.0\nCN,2.0,5.0\n")
    with pytest.raises(InputError) as exc:
        read_labels(f, label="dipole", constraints=GEN, properties=("gap",))
    lines = problems_of(exc)
    assert len(lines) == 1  # the identical CN rows collapse
    assert lines[0].startswith(f"{f}: row 3, column 'gap': '9.0' for 'OCC' differs from row "
                               "2 ('8.0' for 'CCO')")
    mean = read_labels(f, label="dipole", constraints=GEN, properties=("gap",),
                       on_conflict="mean")
    assert [(r.row, r.value, r.properties) for r in mean.rows] == [
        (2, 1.0, {"dipole": 1.0, "gap": 8.5}), (4, 2.0, {"dipole": 2.0, "gap": 5.0})]
    assert mean.duplicates == 2
    first = read_labels(f, label="dipole", constraints=GEN, properties=("gap",),
                        on_conflict="first")
    assert first.rows[0].properties == {"dipole": 1.0, "gap": 8.0}
