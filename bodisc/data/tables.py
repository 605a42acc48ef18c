"""Read the molecules and labels a user brings (CSV, Parquet, SMILES files), validated.

Two readers, shared by ``bodisc ingest``, ``[data] labelled = [...]`` and
``[pool] source = "library.smi"``:

* :func:`read_labels`: a table of measured or computed labels. Every row must be right:
  all problems of a file are collected and raised together as one
  :class:`~bodisc.errors.InputError`, one line per problem, each naming the file, the
  row, the column, the value and what is allowed.
* :func:`read_library`: a list of candidate molecules. A molecule that cannot be used
  (invalid SMILES, an element or charge the campaign does not allow) is listed in
  :attr:`LibraryTable.rejected` with its reason and left out; only a file that gives no
  molecule at all, or has no SMILES column, is an :class:`~bodisc.errors.InputError`.

File types, by name: ``.csv`` and ``.csv.gz`` (UTF-8, a header row, a byte-order mark
is accepted), ``.parquet`` (read with pyarrow) and, for libraries only, ``.smi`` and
``.smi.gz``.

Row numbers are the ones a spreadsheet shows: in a table the header is row 1 and the
first data row is row 2 (blank lines count, as they do in a spreadsheet; a Parquet
file's first row is row 2 as well, as if its column names were a header row). In a
``.smi`` file a row number is the line number (the first line is 1). Every message
and every :attr:`LabelRow.row` / :attr:`LibraryMolecule.row` uses these numbers.

Which of the campaign's constraints apply to molecules brought from outside: the
allowed elements and the charge rule, and the checks without which bodisc cannot
compute descriptors at all (one connected, closed-shell molecule without isotope
labels) -- that is :func:`~bodisc.chem.molecule.check_constraints` without the
heavy-atom range, which only bounds what the generator proposes. A labelled molecule
larger than ``generator.max_heavy_atoms`` is still information about the property, so
it is taken. ``generator.forbidden_substructures`` (structural alerts no candidate may
contain) apply to a library, whose molecules are candidates, but not to labels. With
``constraints=None`` only the SMILES are checked.

A campaign with several objectives or modelled constraints reads one column per
property (``properties``): the objectives after the first, then the constraints, each a
finite number on a ``done`` row and empty on a failed or cancelled one, like the label.

Molecules are identified by their InChIKey (:mod:`bodisc.chem.molecule`): two rows of
the same molecule with the same label (same status and, for ``done``, the same value and
properties) collapse silently to the first; with different labels they are a problem naming both
rows, unless the caller asks for the first or the mean (``on_conflict``). Stereoisomers
are one molecule to bodisc (stereochemistry is dropped). In a library the first
occurrence of a molecule is kept.

Parsing a SMILES with RDKit is the cost (a few tenths of a millisecond per molecule);
both readers stream their file and can spread that work over ``workers`` processes,
in chunks, keeping the file's order.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import hashlib
import math
import multiprocessing as mp
import statistics
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from bodisc.chem.molecule import (
    ConstraintSpec,
    MoleculeRecord,
    check_constraints,
    parse_smiles,
    to_record,
)
from bodisc.errors import InputError, InvalidMoleculeError, OptionalDependencyError

__all__ = [
    "LABEL_SUFFIXES",
    "LIBRARY_SUFFIXES",
    "STATUSES",
    "ImportRules",
    "LabelRow",
    "LabelTable",
    "LibraryMolecule",
    "LibraryTable",
    "RejectedRow",
    "import_rules",
    "read_labels",
    "read_library",
]

#: File types :func:`read_labels` reads.
LABEL_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".parquet")
#: File types :func:`read_library` reads.
LIBRARY_SUFFIXES: tuple[str, ...] = (".smi", ".smi.gz", ".csv", ".csv.gz", ".parquet")
#: Values of a label table's ``status`` column (empty means ``done``).
STATUSES: tuple[str, ...] = ("done", "failed", "cancelled")

#: Molecules handed to a worker process at a time.
_CHUNK = 1_000
#: Longest value quoted in a message.
_SHOWN = 60
#: What reading a text file (plain or gzipped) may raise on bad contents.
_READ_ERRORS = (csv.Error, UnicodeDecodeError, OSError, EOFError, zlib.error)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class LabelRow:
    """One validated row of a label table.

    Attributes:
        row: The row as a spreadsheet numbers it (header row 1, first data row 2).
        smiles: bodisc's canonical SMILES of the molecule (not the text of the file).
        inchikey: Standard InChIKey, the molecule's identity.
        value: The label, finite; ``None`` when ``status`` is not ``done``.
        status: ``done``, ``failed`` or ``cancelled``.
        reason: Why it failed (always given for ``failed``), else ``None``.
        source: Free-text provenance from the ``source`` column, or ``None``.
        heavy_atoms: Number of non-hydrogen atoms.
        properties: Every property the row gives, name -> finite value, the label's own
            column included: for a ``done`` row of a file read with ``properties``;
            ``None`` otherwise (one label column, or a failed or cancelled row).
    """

    row: int
    smiles: str
    inchikey: str
    value: float | None
    status: str
    reason: str | None
    source: str | None
    heavy_atoms: int
    properties: dict[str, float] | None = None


@dataclass(frozen=True)
class LabelTable:
    """A label file read by :func:`read_labels`.

    Attributes:
        path: The file.
        label: The label column (the campaign objective's property).
        rows: One row per molecule, in file order.
        digest: SHA-256 (hex) of the file's bytes, to recognise a file already ingested.
        duplicates: Rows folded into an earlier row of the same molecule (identical
            labels, or different ones with ``on_conflict`` ``first`` or ``mean``).
    """

    path: Path
    label: str
    rows: tuple[LabelRow, ...]
    digest: str
    duplicates: int = 0


@dataclass(frozen=True, slots=True)
class LibraryMolecule:
    """One molecule of a library.

    Attributes:
        row: Its row (table: header row 1, first data row 2; ``.smi``: line number).
        smiles: bodisc's canonical SMILES.
        inchikey: Standard InChIKey.
        heavy_atoms: Number of non-hydrogen atoms.
        name: The ``name``/``id`` column or the ``.smi`` file's second field, or ``None``.
    """

    row: int
    smiles: str
    inchikey: str
    heavy_atoms: int
    name: str | None


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A library row left out, and why.

    Attributes:
        row: Its row, numbered as in :class:`LibraryMolecule`.
        smiles: The SMILES as the file gives it.
        name: Its name, if the file gives one.
        reason: Why, phrased to follow the quoted SMILES (``"has element Cl; allowed:
            C, N, O, F"``).
    """

    row: int
    smiles: str
    name: str | None
    reason: str

    def message(self, file: str) -> str:
        """The rejection as one line naming the file, the row and the SMILES."""
        return f"{file}: row {self.row}: {_show(self.smiles)} {self.reason}"


@dataclass(frozen=True)
class LibraryTable:
    """A library read by :func:`read_library`.

    Attributes:
        path: The file.
        molecules: The usable molecules, one per InChIKey (the first), in file order.
        rejected: Rows left out, with their reasons, in file order.
        duplicates: Rows left out as a repeat of an earlier molecule.
        digest: SHA-256 (hex) of the file's bytes.
    """

    path: Path
    molecules: tuple[LibraryMolecule, ...]
    rejected: tuple[RejectedRow, ...]
    duplicates: int
    digest: str


# ----------------------------------------------------------------------- constraints


@dataclass(frozen=True)
class ImportRules:
    """The campaign's constraints as they apply to molecules brought from outside.

    It has the fields :func:`~bodisc.chem.molecule.check_constraints` reads, with the
    heavy-atom range open, and is a small picklable value for worker processes.

    Attributes:
        allowed_elements: Elements a molecule may contain (hydrogen always may).
        charge_rule: ``neutral``, ``net_neutral`` or ``any``.
        forbidden_substructures: SMARTS no molecule may contain.
        max_heavy_atoms: Open (no limit).
        min_heavy_atoms: Open (no limit).
    """

    allowed_elements: tuple[str, ...]
    charge_rule: str
    forbidden_substructures: tuple[str, ...] = ()
    max_heavy_atoms: int = 1_000_000_000
    min_heavy_atoms: int = 0


def import_rules(
    constraints: ConstraintSpec | None, *, substructures: bool
) -> ImportRules | None:
    """The part of a campaign's constraints that applies to external molecules.

    Args:
        constraints: The campaign's constraints (a ``GeneratorConfig``), or ``None``.
        substructures: Whether ``forbidden_substructures`` apply (libraries: yes;
            labels: no).

    Returns:
        The rules, or ``None`` when ``constraints`` is ``None``.
    """
    if constraints is None:
        return None
    forbidden = tuple(getattr(constraints, "forbidden_substructures", ())) if substructures else ()
    return ImportRules(
        allowed_elements=tuple(constraints.allowed_elements),
        charge_rule=str(constraints.charge_rule),
        forbidden_substructures=forbidden,
    )


def _check_smiles(text: str, rules: ImportRules | None) -> MoleculeRecord | str:
    """The molecule's record, or why it cannot be used (phrased to follow the SMILES)."""
    try:
        mol = parse_smiles(text)
    except InvalidMoleculeError as exc:
        detail = str(exc)
        if detail == "RDKit cannot parse this SMILES":
            return "is not a valid SMILES"
        return f"is not a valid SMILES ({detail})"
    if rules is not None:
        allowed = set(rules.allowed_elements) | {"H"}
        bad = sorted({a.GetSymbol() for a in mol.GetAtoms()} - allowed)
        if bad:
            word = "element" if len(bad) == 1 else "elements"
            return f"has {word} {', '.join(bad)}; allowed: {', '.join(rules.allowed_elements)}"
        reason = check_constraints(mol, rules)
        if reason is not None:
            return f"is refused: {reason}"
    try:
        return to_record(mol)
    except InvalidMoleculeError as exc:
        return f"is refused: {exc}"


def _check_chunk(
    chunk: list[tuple[int, str, Any]], rules: ImportRules | None
) -> list[tuple[int, str, Any, MoleculeRecord | str]]:
    """Worker-process task: check one chunk of ``(row, smiles, extra)``."""
    return [(row, text, extra, _check_smiles(text, rules)) for row, text, extra in chunk]


def _checked(
    items: Iterable[tuple[int, str, Any]],
    rules: ImportRules | None,
    workers: int,
    chunk_size: int = _CHUNK,
) -> Iterator[tuple[int, str, Any, MoleculeRecord | str]]:
    """Check a stream of SMILES in file order, in this process or in ``workers``."""
    if workers <= 1:
        for row, text, extra in items:
            yield row, text, extra, _check_smiles(text, rules)
        return
    iterator = iter(items)
    first = _take(iterator, chunk_size)
    if len(first) < chunk_size:  # a small file: starting processes costs more
        yield from _check_chunk(first, rules)
        return
    context = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending: deque[Future[list[tuple[int, str, Any, MoleculeRecord | str]]]] = deque()
        chunk = first
        while chunk:
            pending.append(pool.submit(_check_chunk, chunk, rules))
            if len(pending) >= 2 * workers:
                yield from pending.popleft().result()
            chunk = _take(iterator, chunk_size)
        while pending:
            yield from pending.popleft().result()


def _take(iterator: Iterator[Any], n: int) -> list[Any]:
    out = []
    for item in iterator:
        out.append(item)
        if len(out) >= n:
            break
    return out


# ----------------------------------------------------------------------- file access


def _suffix(path: Path, allowed: Sequence[str], file: str) -> str:
    name = path.name.lower()
    for suffix in sorted(allowed, key=len, reverse=True):
        if name.endswith(suffix):
            if not path.is_file():
                what = "no such file" if not path.exists() else "not a file"
                raise InputError(file, [f"{file}: {what}"])
            return suffix
    raise InputError(
        file, [f"{file}: unsupported file type; allowed: {', '.join(allowed)}"]
    )


def file_digest(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes: how an ingested file is recognised."""
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _open_text(path: Path, file: str) -> IO[str]:
    try:
        if path.name.lower().endswith(".gz"):
            return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(file, [f"{file}: cannot be opened ({exc.strerror or exc})"]) from None


@dataclass
class _Table:
    """A table file opened for streaming: its header and its rows as cells."""

    header: list[str]
    #: (spreadsheet row, cells in header order, number of fields the row had)
    rows: Iterator[tuple[int, list[Any], int]]


def _open_table(path: Path, suffix: str, file: str, stack: contextlib.ExitStack) -> _Table:
    """Header and a row iterator of a CSV or Parquet file (empty header: empty file)."""
    if suffix == ".parquet":
        return _open_parquet(path, file)
    handle = stack.enter_context(_open_text(path, file))
    reader = csv.reader(handle)
    try:
        header = next(reader, [])
    except _READ_ERRORS as exc:
        raise InputError(file, [f"{file}: row 1: cannot be read as CSV ({exc})"]) from None
    header = [h.strip() for h in header]

    def rows() -> Iterator[tuple[int, list[Any], int]]:
        row = 1
        try:
            for cells in reader:
                row += 1
                if not cells or all(not c.strip() for c in cells):
                    continue
                n = len(cells)
                yield row, cells[: len(header)] + [""] * (len(header) - n), n
        except _READ_ERRORS as exc:
            raise InputError(
                file, [f"{file}: row {row + 1}: cannot be read as CSV ({exc})"]
            ) from None

    return _Table(header, rows())


def _open_parquet(path: Path, file: str) -> _Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with mlflow
        raise OptionalDependencyError(
            f"{file}: reading Parquet needs pyarrow: pip install pyarrow"
        ) from None
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types
        raise InputError(file, [f"{file}: cannot be read as Parquet ({exc})"]) from None
    header = [str(name).strip() for name in parquet.schema_arrow.names]

    def rows() -> Iterator[tuple[int, list[Any], int]]:
        row = 1
        batches = parquet.iter_batches(batch_size=10_000)
        while True:
            try:
                batch = next(batches, None)
                if batch is None:
                    return
                columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            except Exception as exc:  # noqa: BLE001 - pyarrow raises several types
                raise InputError(
                    file, [f"{file}: row {row + 1}: cannot be read as Parquet ({exc})"]
                ) from None
            for cells in zip(*columns, strict=True):
                row += 1
                yield row, list(cells), len(header)

    return _Table(header, rows())


def _find(header: Sequence[str], names: Sequence[str], *, exact: bool = False) -> list[int]:
    """Indices of the header names matching ``names`` (case-insensitive unless exact)."""
    if exact:
        return [i for i, h in enumerate(header) if h in names]
    wanted = {n.lower() for n in names}
    return [i for i, h in enumerate(header) if h.lower() in wanted]


def _columns_text(header: Sequence[str]) -> str:
    text = ", ".join(h if h else "(unnamed)" for h in header) or "(none)"
    if len(header) == 1 and any(sep in header[0] for sep in ";\t"):
        text += " (bodisc reads comma-separated files; this one seems separated by ';' or tabs)"
    return text


def _show(value: object) -> str:
    """A value as a message quotes it: the text as typed, shortened."""
    if value is None:
        return "(empty)"
    text = value if isinstance(value, str) else str(value)
    if len(text) > _SHOWN:
        text = text[: _SHOWN - 3] + "..."
    return repr(text)


def _text(cell: object) -> str | None:
    """A free-text cell: ``None`` when empty (or a missing value in Parquet)."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    text = str(cell).strip()
    return text or None


def _listed(names: Sequence[str]) -> str:
    """``'a'``, ``'a' and 'b'``, ``'a', 'b' and 'c'``."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def _number(cell: object) -> tuple[float | None, bool]:
    """A label cell as ``(value, ok)``: ``(None, True)`` when empty, NaN is ``nan``."""
    if cell is None:
        return None, True
    if isinstance(cell, bool):
        return None, False
    if isinstance(cell, int | float):
        return float(cell), True
    text = str(cell).strip()
    if not text:
        return None, True
    if "_" in text:
        return None, False
    try:
        return float(text), True
    except ValueError:
        return None, False


# ------------------------------------------------------------------------ read_labels


def read_labels(
    path: str | Path,
    *,
    label: str,
    constraints: ConstraintSpec | None,
    on_conflict: Literal["refuse", "first", "mean"] = "refuse",
    workers: int = 1,
    unanswered: Literal["refuse", "skip"] = "refuse",
    properties: Sequence[str] = (),
) -> LabelTable:
    """Read and validate a table of labels (CSV, gzipped CSV or Parquet).

    Columns: the SMILES (``smiles``, any case), the label named exactly ``label``,
    optionally ``status`` (``done``, ``failed`` or ``cancelled``; empty means ``done``),
    ``reason`` (required when ``status`` is ``failed``) and ``source`` (free-text
    provenance), and one column named exactly as each of ``properties``; other columns
    are ignored. A ``done`` row needs a finite number in the label and in every property
    column; a ``failed`` or ``cancelled`` row leaves them empty. Rows are numbered as a
    spreadsheet shows them: the header is row 1, the first data row is row 2.

    Args:
        path: The file.
        label: The campaign objective's property: the label column's exact name.
        constraints: The campaign's constraints (a ``GeneratorConfig``); elements,
            charge rule, one connected closed-shell molecule and no isotopes apply, the
            heavy-atom range and forbidden substructures do not. ``None``: only the
            SMILES are checked.
        on_conflict: Rows of one molecule (one InChIKey; stereoisomers are one
            molecule to bodisc) with different labels: ``refuse`` (a problem naming
            both rows), ``first`` (the first row wins) or ``mean`` (one row, at the
            first ``done`` row, with the mean of the ``done`` values; failed and
            cancelled repeats of a molecule that has a value are dropped). Identical
            repeats always collapse to the first row.
        workers: Processes parsing the SMILES (1: this process only).
        unanswered: A row with an empty label (and empty property columns) and an
            empty status: ``refuse`` (a problem), or ``skip`` it (``bodisc ingest``: a
            suggestion file given back with only some rows measured; the others stay
            pending).
        properties: Further label columns, exact names (a campaign's objectives after
            the first, then its modelled constraints); each row's values, the label's
            included, are :attr:`LabelRow.properties`. A repeat of a molecule is
            identical only with the same properties too; ``mean`` averages each.

    Returns:
        The rows, one per molecule, in file order, with the file's SHA-256.

    Raises:
        InputError: Listing every problem of the file at once, one line each.
        OptionalDependencyError: For Parquet without pyarrow.
        ValueError: If ``workers`` is less than 1 or ``on_conflict`` unknown.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if on_conflict not in ("refuse", "first", "mean"):
        raise ValueError(f"on_conflict must be 'refuse', 'first' or 'mean', not {on_conflict!r}")
    path = Path(path)
    file = str(path)
    suffix = _suffix(path, LABEL_SUFFIXES, file)
    rules = import_rules(constraints, substructures=False)
    props = tuple(dict.fromkeys(p for p in properties if p != label))
    problems: list[str] = []
    with contextlib.ExitStack() as stack:
        table = _open_table(path, suffix, file, stack)
        header = table.header
        if not any(header):
            raise InputError(
                file,
                [f"{file}: the file is empty; expected a header row with "
                 f"{_listed(['smiles', label, *props])}, then one row per molecule"],
            )
        smiles_at = _find(header, ["smiles"])
        label_at = _find(header, [label], exact=True)
        optional: dict[str, int | None] = {}
        for name in ("status", "reason", "source"):
            found = _find(header, [name])
            if len(found) > 1:
                problems.append(
                    f"{file}: row 1: columns {', '.join(repr(header[i]) for i in found)} "
                    f"all name {name!r}; keep one"
                )
            optional[name] = found[0] if found else None
        if not smiles_at:
            problems.append(
                f"{file}: no column 'smiles' (the molecules); columns: {_columns_text(header)}"
            )
        elif len(smiles_at) > 1:
            problems.append(
                f"{file}: row 1: columns {', '.join(repr(header[i]) for i in smiles_at)} "
                "all name the SMILES; keep one"
            )
        if not label_at:
            problems.append(
                f"{file}: no column {label!r} (the campaign's objective); "
                f"columns: {_columns_text(header)}"
            )
        elif len(label_at) > 1:
            problems.append(f"{file}: row 1: {len(label_at)} columns named {label!r}; keep one")
        p_cols: list[int] = []
        for name in props:
            found = _find(header, [name], exact=True)
            if not found:
                problems.append(
                    f"{file}: no column {name!r} (a property the campaign models); "
                    f"columns: {_columns_text(header)}"
                )
            elif len(found) > 1:
                problems.append(f"{file}: row 1: {len(found)} columns named {name!r}; keep one")
            else:
                p_cols.append(found[0])
        if problems:
            raise InputError(file, problems)
        s_col, l_col = smiles_at[0], label_at[0]

        def items() -> Iterator[tuple[int, str, Any]]:
            for row, cells, n_fields in table.rows:
                smiles = _text(cells[s_col]) or ""
                extra = (
                    n_fields,
                    cells[l_col],
                    *(cells[i] if i is not None else None for i in optional.values()),
                    *(cells[i] for i in p_cols),
                )
                yield row, smiles, extra

        rows: list[LabelRow] = []
        first: dict[str, LabelRow] = {}
        first_text: dict[str, str] = {}
        first_raw: dict[str, object] = {}
        first_props_raw: dict[str, tuple[object, ...]] = {}
        later: dict[str, list[LabelRow]] = {}
        duplicates = n_data = skipped = 0
        for row, smiles, extra, checked in _checked(items(), rules, workers):
            n_data += 1
            here = f"{file}: row {row}"
            n_fields, raw_label, raw_status, raw_reason, raw_source, *raw_props = extra
            bad = False
            if n_fields > len(header):
                problems.append(
                    f"{here}: {n_fields} fields, the header has {len(header)} "
                    "(a comma inside an unquoted value? quote it)"
                )
                bad = True
            if not smiles:
                problems.append(
                    f"{here}, column {header[s_col]!r}: (empty); every row needs a SMILES"
                )
                bad = True
            elif isinstance(checked, str):
                problems.append(f"{here}, column {header[s_col]!r}: {_show(smiles)} {checked}")
                bad = True
            if unanswered == "skip" and _text(raw_status) is None \
                    and _number(raw_label) == (None, True) and smiles \
                    and all(_number(cell) == (None, True) for cell in raw_props):
                skipped += 1  # a suggestion not measured yet: it stays pending
                continue
            status_text = (_text(raw_status) or "done").lower()
            if status_text not in STATUSES:
                column = header[optional["status"] or 0]
                problems.append(
                    f"{here}, column {column!r}: {_show(raw_status)} is not a status; "
                    f"allowed: {', '.join(STATUSES)} (empty means done)"
                )
                bad = True
            reason = _text(raw_reason)
            where_label = f"{here}, column {label!r}"
            value, problem = _label_cell(raw_label, status_text)
            if problem is not None:
                problems.append(f"{where_label}: {problem}")
                bad = True
            found_props: dict[str, float] | None = None
            if props:
                found_props = {label: value} if value is not None else {}
                for name, raw in zip(props, raw_props, strict=True):
                    v, problem = _label_cell(raw, status_text)
                    if problem is not None:
                        problems.append(f"{here}, column {name!r}: {problem}")
                        bad = True
                    elif v is not None:
                        found_props[name] = v
            if status_text == "failed" and reason is None:
                column = header[optional["reason"]] if optional["reason"] is not None \
                    else "reason"
                missing = "" if optional["reason"] is not None else " (add a 'reason' column)"
                problems.append(
                    f"{here}, column {column!r}: (empty); status 'failed' needs a "
                    f"reason{missing}"
                )
                bad = True
            if bad or isinstance(checked, str):
                continue
            record = checked
            entry = LabelRow(
                row=row,
                smiles=record.smiles,
                inchikey=record.inchikey,
                value=value if status_text == "done" else None,
                status=status_text,
                reason=reason if status_text != "done" else None,
                source=_text(raw_source),
                heavy_atoms=record.heavy_atoms,
                properties=found_props if status_text == "done" else None,
            )
            key = record.inchikey
            earlier = first.get(key)
            if earlier is None:
                first[key] = entry
                first_text[key] = smiles
                first_raw[key] = raw_label
                if props:
                    first_props_raw[key] = tuple(raw_props)
                rows.append(entry)
            elif (earlier.status, earlier.value, earlier.properties) == \
                    (entry.status, entry.value, entry.properties):
                duplicates += 1
            elif on_conflict == "refuse":
                stereo = (
                    " (stereoisomers: bodisc ignores stereochemistry)"
                    if smiles != first_text[key] and any(c in smiles + first_text[key]
                                                         for c in "@/\\")
                    else ""
                )
                where, raw_here, raw_there = where_label, raw_label, first_raw[key]
                if (earlier.status, earlier.value) == (entry.status, entry.value):
                    # the same label, another property: name the first column that differs
                    at = next(i for i, name in enumerate(props)
                              if (earlier.properties or {}).get(name)
                              != (entry.properties or {}).get(name))
                    where = f"{here}, column {props[at]!r}"
                    raw_here, raw_there = raw_props[at], first_props_raw[key][at]
                problems.append(
                    f"{where}: {_label_text(entry, raw_here)} for {_show(smiles)} "
                    f"differs from row {earlier.row} ({_label_text(earlier, raw_there)} for "
                    f"{_show(first_text[key])}), the same molecule{stereo} "
                    f"(InChIKey {key}); keep one row or give them one label"
                )
            else:
                duplicates += 1
                later.setdefault(key, []).append(entry)
    if n_data == 0 and not problems:
        problems.append(f"{file}: no data rows under the header (row 1)")
    if problems:
        raise InputError(file, problems)
    if on_conflict == "mean" and later:
        rows = [_mean_of([entry, *later[entry.inchikey]]) if entry.inchikey in later else entry
                for entry in rows]
    return LabelTable(
        path=path, label=label, rows=tuple(rows), digest=file_digest(path), duplicates=duplicates
    )


def _label_cell(raw: object, status: str) -> tuple[float | None, str | None]:
    """A label (or property) cell as ``(value, problem)``; the problem follows the column.

    ``value`` is the finite number of a ``done`` row, else ``None``.
    """
    value, ok = _number(raw)
    if not ok:
        return None, f"{_show(raw)} is not a number"
    if value is not None and math.isinf(value):
        return None, f"{_show(raw)} is not finite"
    if status == "done" and (value is None or math.isnan(value)):
        return None, (f"{_show(raw)} is not a value; status 'done' needs a finite number "
                      "(or give status 'failed' and a reason)")
    if status in ("failed", "cancelled") and value is not None and not math.isnan(value):
        return None, (f"{_show(raw)} given with status {status!r}; a failed or cancelled "
                      "row has an empty label")
    return (value if status == "done" else None), None


def _mean_of(group: list[LabelRow]) -> LabelRow:
    """One row for a molecule given several labels: the mean of its ``done`` values.

    Each property is averaged over the same rows.
    """
    done = [g for g in group if g.status == "done"]
    if not done:
        return group[0]
    properties = None
    if done[0].properties is not None:
        properties = {name: statistics.fmean((g.properties or {}).get(name, math.nan)
                                             for g in done)
                      for name in done[0].properties}
    return dataclasses.replace(done[0], value=statistics.fmean(g.value or 0.0 for g in done),
                               properties=properties)


def _label_text(entry: LabelRow, raw: object = None) -> str:
    if entry.status != "done":
        return f"status {entry.status!r}"
    return _show(raw) if raw is not None else repr(entry.value)


# ----------------------------------------------------------------------- read_library


def read_library(
    path: str | Path,
    *,
    constraints: ConstraintSpec | None,
    workers: int = 1,
    chunk_size: int = _CHUNK,
) -> LibraryTable:
    """Read a library of candidate molecules, leaving out (and listing) unusable ones.

    ``.smi``/``.smi.gz``: one SMILES per line, optionally followed by whitespace and a
    name; blank lines and lines starting with ``#`` are skipped, and so is a first line
    whose first field is ``smiles`` (a header). ``.csv``/``.csv.gz``/``.parquet``: a
    ``smiles`` column (any case) and optionally ``name`` or ``id``; other columns are
    ignored. The file is streamed; only the molecules kept are held.

    Args:
        path: The file.
        constraints: The campaign's constraints (a ``GeneratorConfig``): elements, charge
            rule, forbidden substructures, one connected closed-shell molecule and no
            isotopes apply; the heavy-atom range does not. ``None``: only the SMILES
            are checked.
        workers: Processes parsing the SMILES (1: this process only). Worth it from some
            ten thousand molecules on; a file smaller than one chunk is always read here.
        chunk_size: Molecules per task handed to a worker.

    Returns:
        The molecules (first occurrence of each InChIKey, file order), the rejected rows
        with their reasons, the number of repeats left out and the file's SHA-256.

    Raises:
        InputError: When the file is missing, of an unknown type, empty, has no SMILES
            column, or gives no usable molecule (then listing the rejections).
        OptionalDependencyError: For Parquet without pyarrow.
        ValueError: If ``workers`` or ``chunk_size`` is less than 1.
    """
    if workers < 1 or chunk_size < 1:
        raise ValueError(f"workers and chunk_size must be at least 1, not {workers}, {chunk_size}")
    path = Path(path)
    file = str(path)
    suffix = _suffix(path, LIBRARY_SUFFIXES, file)
    rules = import_rules(constraints, substructures=True)
    molecules: list[LibraryMolecule] = []
    rejected: list[RejectedRow] = []
    seen: set[str] = set()
    ragged: list[RejectedRow] = []
    duplicates = n_rows = 0
    with contextlib.ExitStack() as stack:
        if suffix in (".smi", ".smi.gz"):
            items = _smi_items(path, file, stack)
        else:
            table = _open_table(path, suffix, file, stack)
            if not any(table.header):
                raise InputError(
                    file, [f"{file}: the file is empty; expected a header row with 'smiles'"]
                )
            found = _find(table.header, ["smiles"])
            if not found:
                raise InputError(
                    file,
                    [f"{file}: no column 'smiles' (the molecules); "
                     f"columns: {_columns_text(table.header)}"],
                )
            s_col = found[0]
            names = _find(table.header, ["name"]) or _find(table.header, ["id"])
            n_col = names[0] if names else None
            items = _table_items(table, s_col, n_col, ragged)
        for row, smiles, name, checked in _checked(items, rules, workers, chunk_size):
            n_rows += 1
            if not smiles:
                rejected.append(RejectedRow(row, smiles, name, "is empty: no SMILES"))
            elif isinstance(checked, str):
                rejected.append(RejectedRow(row, smiles, name, checked))
            elif checked.inchikey in seen:
                duplicates += 1
            else:
                seen.add(checked.inchikey)
                molecules.append(
                    LibraryMolecule(row, checked.smiles, checked.inchikey,
                                    checked.heavy_atoms, name)
                )
    if ragged:
        n_rows += len(ragged)
        rejected = sorted(rejected + ragged, key=lambda r: r.row)
    if n_rows == 0:
        raise InputError(file, [f"{file}: no molecules in the file"])
    if not molecules:
        raise InputError(
            file,
            [f"{file}: none of its {n_rows} molecule(s) can be used"]
            + [r.message(file) for r in rejected],
        )
    return LibraryTable(
        path=path,
        molecules=tuple(molecules),
        rejected=tuple(rejected),
        duplicates=duplicates,
        digest=file_digest(path),
    )


def _smi_items(
    path: Path, file: str, stack: contextlib.ExitStack
) -> Iterator[tuple[int, str, str | None]]:
    handle = stack.enter_context(_open_text(path, file))

    def lines() -> Iterator[tuple[int, str, str | None]]:
        first = True
        line_no = 0
        try:
            for line_no, line in enumerate(handle, start=1):  # noqa: B007 - used in except
                text = line.strip()
                if not text or text.startswith("#"):
                    continue
                fields = text.split(maxsplit=1)
                if first:
                    first = False
                    if fields[0].lower() == "smiles":
                        continue
                name = fields[1].strip() if len(fields) > 1 else None
                yield line_no, fields[0], name or None
        except _READ_ERRORS as exc:
            raise InputError(
                file, [f"{file}: row {line_no + 1}: cannot be read as text ({exc})"]
            ) from None

    return lines()


def _table_items(
    table: _Table, s_col: int, n_col: int | None, ragged: list[RejectedRow]
) -> Iterator[tuple[int, str, str | None]]:
    """``(row, smiles, name)`` of a table; rows with too many fields go to ``ragged``."""
    width = len(table.header)
    for row, cells, n_fields in table.rows:
        smiles = _text(cells[s_col]) or ""
        name = _text(cells[n_col]) if n_col is not None else None
        if n_fields > width:  # the columns may be shifted: do not guess
            ragged.append(RejectedRow(
                row, smiles, name,
                f"is left out: the row has {n_fields} fields, the header {width} "
                "(a comma inside an unquoted value?)",
            ))
            continue
        yield row, smiles, name
