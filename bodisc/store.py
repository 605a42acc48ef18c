"""The campaign store: one SQLite database per campaign (WAL mode).

Everything a campaign knows lives here, so a campaign killed at any moment resumes from
it and nothing is kept only in memory:

* ``meta``: campaign name, the whole config (JSON), the fingerprint of the sections that
  must not change between runs, schema version, MLflow run id.
* ``molecules``: every molecule ever proposed, keyed by InChIKey, with where it came from.
* ``descriptors``: descriptor values per molecule and descriptor set (or the failure).
* ``jobs``: oracle calls. A job is written ``pending`` in the same transaction that
  records the iteration's selection, then becomes ``done`` (with its value) or ``failed``
  (with its reason) in its own transaction the moment its result arrives. A job is
  unique per molecule and fidelity (``target``: the campaign's oracle; ``cheap``: the
  cheap oracle of a multi-fidelity campaign), so a molecule is never paid for twice at
  the same fidelity. Readers see the ``target`` jobs unless they ask for another.
* ``iterations``: one row per iteration: ``selected`` once its batch is chosen,
  ``complete`` once every job of it has a result, with its metrics; ``logged`` says
  whether its MLflow record went out.

Exactly-once accounting follows: on resume, only ``pending`` jobs are re-submitted.

Schema versions: 1 had one job per molecule (``jobs.inchikey`` UNIQUE); 2 adds
``jobs.fidelity`` and makes ``(inchikey, fidelity)`` unique; 3 adds withdrawn jobs, ``paid``
and ``provenance``; 4 adds ``properties``, every property one call gave (JSON, name ->
value: the objectives and constraints of a campaign with several). An older store is
migrated in place when opened (its jobs become ``target`` jobs without further
properties); nothing else changes, so a campaign stopped under an older version resumes.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bodisc.errors import StoreError
from bodisc.failpoints import failpoint

SCHEMA_VERSION = 4

#: The fidelity of every job of a single-fidelity campaign (and of version-1 stores).
TARGET = "target"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS molecules (
    inchikey TEXT PRIMARY KEY,
    smiles TEXT NOT NULL,
    heavy_atoms INTEGER NOT NULL,
    origin TEXT NOT NULL,
    parents TEXT NOT NULL DEFAULT '[]',
    first_iteration INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS descriptors (
    inchikey TEXT NOT NULL REFERENCES molecules(inchikey),
    descriptor_set TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    vector TEXT,
    reason TEXT,
    seconds REAL,
    iteration INTEGER NOT NULL,
    PRIMARY KEY (inchikey, descriptor_set)
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    inchikey TEXT NOT NULL REFERENCES molecules(inchikey),
    iteration INTEGER NOT NULL,
    rank INTEGER NOT NULL,
    oracle TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed', 'cancelled')),
    value REAL,
    reason TEXT,
    pred_mean REAL,
    pred_std REAL,
    acq_value REAL,
    seconds REAL,
    extras TEXT,
    submitted_at REAL NOT NULL,
    finished_at REAL,
    fidelity TEXT NOT NULL DEFAULT 'target',
    paid INTEGER NOT NULL DEFAULT 1,
    provenance TEXT,
    properties TEXT,
    UNIQUE (inchikey, fidelity)
);
CREATE INDEX IF NOT EXISTS jobs_by_iteration ON jobs(iteration, rank);
CREATE TABLE IF NOT EXISTS iterations (
    iteration INTEGER PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('selected', 'complete')),
    n_candidates INTEGER NOT NULL DEFAULT 0,
    train_min REAL,
    train_max REAL,
    metrics TEXT NOT NULL DEFAULT '{}',
    logged INTEGER NOT NULL DEFAULT 0,
    started_at REAL NOT NULL,
    finished_at REAL
);
"""


@dataclass(frozen=True)
class Job:
    """One oracle call as stored."""

    id: int
    inchikey: str
    smiles: str
    iteration: int
    rank: int
    status: str
    value: float | None
    reason: str | None
    pred_mean: float | None
    pred_std: float | None
    fidelity: str = TARGET
    seconds: float | None = None
    finished_at: float | None = None
    acq_value: float | None = None
    oracle: str = ""
    paid: bool = True
    provenance: str | None = None
    properties: dict[str, float] | None = None

    def property_value(self, name: str) -> float | None:
        """The value of one property this call gave, or ``None`` (not given, failed)."""
        if self.properties and name in self.properties:
            return float(self.properties[name])
        return None

    @property
    def off_policy(self) -> bool:
        """A label that came from outside for a molecule bodisc never proposed."""
        return not self.paid and self.provenance is not None


@dataclass(frozen=True)
class ExternalLabel:
    """A label (or failure, or withdrawal) that came from outside bodisc, for one job.

    ``job_id`` names the pending (or withdrawn) job it settles; ``None`` makes a new,
    unpaid job for a molecule bodisc never proposed (off-policy), which needs ``smiles``
    and ``heavy_atoms`` for the molecules table. ``provenance`` is kept as JSON.
    """

    inchikey: str
    status: str
    value: float | None
    reason: str | None
    provenance: dict[str, Any]
    job_id: int | None = None
    smiles: str = ""
    heavy_atoms: int = 0
    properties: dict[str, float] | None = None


@dataclass(frozen=True)
class NewJob:
    """A job to create when an iteration's batch is chosen.

    ``fidelity`` and ``oracle`` default to the campaign's target oracle; a multi-fidelity
    campaign gives its cheap jobs ``fidelity="cheap"`` and the cheap oracle's name.
    """

    inchikey: str
    pred_mean: float | None = None
    pred_std: float | None = None
    acq_value: float | None = None
    fidelity: str = TARGET
    oracle: str | None = None


class CampaignStore:
    """Access to one campaign database.

    Args:
        path: The ``.sqlite`` file; its folder is created.
        create: Create the schema when the file is new; when ``False``, a missing file is
            an error.
    """

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise StoreError(f"{self.path}: no campaign store here")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            with self.transaction():
                self._db.execute(_SCHEMA.strip().split(";")[0])  # meta
                old = self.get_meta("schema_version")
                if old in (1, 2, 3):
                    self._migrate(old)
                for stmt in _SCHEMA.strip().split(";"):
                    if stmt.strip():
                        self._db.execute(stmt)
                if self.get_meta("schema_version") is None:
                    self.set_meta("schema_version", SCHEMA_VERSION)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the campaign store ({exc})") from None
        version = self.get_meta("schema_version")
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: store schema version {version}, this bodisc reads "
                f"{SCHEMA_VERSION}; start a new campaign with --fresh"
            )

    def _migrate(self, old: int) -> None:
        """Migrate schema version 1, 2 or 3 to the current one, in the opening transaction.

        Rebuilds ``jobs`` with today's columns and checks: version 2 added ``fidelity``
        (every old job is a ``target`` job) and the unique key ``(inchikey, fidelity)``;
        version 3 the ``cancelled`` status, ``paid`` (every old job was a call bodisc
        paid for) and ``provenance``; version 4 ``properties`` (none for old jobs). Ids,
        order and all else are kept.
        """
        db = self._db
        jobs_sql = next(s for s in _SCHEMA.split(";") if "TABLE IF NOT EXISTS jobs" in s)
        db.execute(jobs_sql.replace("TABLE IF NOT EXISTS jobs", "TABLE jobs_new"))
        columns = [r[1] for r in db.execute("PRAGMA table_info(jobs)")]
        names = ", ".join(columns)
        if "fidelity" in columns:
            db.execute(f"INSERT INTO jobs_new ({names}) SELECT {names} FROM jobs ORDER BY id")
        else:
            db.execute(f"INSERT INTO jobs_new ({names}, fidelity) SELECT {names}, '{TARGET}' "
                       f"FROM jobs ORDER BY id")
        db.execute("DROP TABLE jobs")
        db.execute("ALTER TABLE jobs_new RENAME TO jobs")
        self.set_meta("schema_version", SCHEMA_VERSION)
        if self.get_meta("migrated_from_schema") is None:
            self.set_meta("migrated_from_schema", old)

    # -- plumbing ---------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (checkpointing the WAL)."""
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic ``BEGIN IMMEDIATE ... COMMIT``; rolled back on any exception."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"{self.path}: cannot write the campaign store ({exc})") from None
        try:
            yield self._db
            self._db.execute("COMMIT")
        except sqlite3.IntegrityError:
            self._rollback()
            raise
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(
                f"{self.path}: cannot write the campaign store ({exc}); what was committed "
                f"before is intact: free space or fix permissions, then run the same command"
            ) from None
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
            self._db.execute("ROLLBACK")

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        cur = self._db.execute(sql, args)
        cur.row_factory = sqlite3.Row
        return cur.fetchall()

    # -- meta -------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        """A JSON value stored under ``key``, or ``None``."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON-able value under ``key`` (inside or outside a transaction)."""
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, sort_keys=True)),
        )

    # -- molecules and descriptors ----------------------------------------------------
    def add_molecules(self, rows: Iterable[tuple[str, str, int, str, Sequence[str]]],
                      iteration: int) -> None:
        """Insert molecules not yet known: ``(inchikey, smiles, heavy_atoms, origin, parents)``."""
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO molecules VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(k, s, h, o, json.dumps(list(p)), iteration, now) for k, s, h, o, p in rows],
            )

    def generated_between(self, first: int, last: int) -> list[tuple[str, str]]:
        """Molecules the generator made in iterations ``first`` to ``last - 1``, newest first.

        Returns ``(inchikey, smiles)`` pairs of origin ``mutation`` or ``crossover``.
        """
        rows = self._db.execute(
            "SELECT inchikey, smiles FROM molecules WHERE first_iteration >= ? AND "
            "first_iteration < ? AND origin IN ('mutation', 'crossover') "
            "ORDER BY first_iteration DESC, rowid", (first, last))
        return [(r[0], r[1]) for r in rows]

    def smiles_of(self, inchikeys: Sequence[str]) -> dict[str, str]:
        """Canonical SMILES of known molecules."""
        out: dict[str, str] = {}
        for chunk in _chunks(list(inchikeys), 500):
            marks = ",".join("?" * len(chunk))
            for k, s in self._db.execute(
                f"SELECT inchikey, smiles FROM molecules WHERE inchikey IN ({marks})", chunk
            ):
                out[k] = s
        return out

    def descriptors_of(self, inchikeys: Sequence[str], descriptor_set: str
                       ) -> dict[str, tuple[str, list[float] | None, str | None]]:
        """Cached descriptor results: ``inchikey -> (status, vector or None, reason)``."""
        out: dict[str, tuple[str, list[float] | None, str | None]] = {}
        for chunk in _chunks(list(inchikeys), 500):
            marks = ",".join("?" * len(chunk))
            for k, status, vec, reason in self._db.execute(
                f"SELECT inchikey, status, vector, reason FROM descriptors "
                f"WHERE descriptor_set = ? AND inchikey IN ({marks})",
                [descriptor_set, *chunk],
            ):
                values = None if vec is None else [_nan_if_none(v) for v in json.loads(vec)]
                out[k] = (status, values, reason)
        return out

    def put_descriptors(self, inchikey: str, descriptor_set: str, vector: Sequence[float] | None,
                        reason: str | None, seconds: float, iteration: int) -> None:
        """Commit one molecule's descriptors (``vector``) or its failure (``reason``)."""
        status = "done" if reason is None else "failed"
        vec = None if vector is None else json.dumps([_json_float(v) for v in vector])
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO descriptors VALUES (?, ?, ?, ?, ?, ?, ?)",
                (inchikey, descriptor_set, status, vec, reason, seconds, iteration),
            )

    def excluded_inchikeys(self, descriptor_set: str, before_iteration: int) -> set[str]:
        """Molecules never to propose again: labelled, pending, failed, or unfeaturisable.

        Only what earlier iterations recorded counts, so an iteration redone after a kill
        sees exactly what it saw the first time.
        """
        rows = self._db.execute(
            "SELECT inchikey FROM jobs WHERE iteration < ? UNION SELECT inchikey FROM "
            "descriptors WHERE descriptor_set = ? AND status = 'failed' AND iteration < ?",
            (before_iteration, descriptor_set, before_iteration),
        )
        return {r[0] for r in rows}

    # -- jobs and iterations ----------------------------------------------------------
    def start_iteration(self, iteration: int, jobs: Sequence[NewJob], oracle: str,
                        n_candidates: int, train_range: tuple[float, float] | None) -> None:
        """Record an iteration's chosen batch as pending jobs, atomically."""
        now = time.time()
        lo, hi = train_range if train_range else (None, None)
        with self.transaction() as db:
            db.execute(
                "INSERT INTO iterations(iteration, status, n_candidates, train_min, train_max,"
                " started_at) VALUES (?, 'selected', ?, ?, ?, ?)",
                (iteration, n_candidates, lo, hi, now),
            )
            db.executemany(
                "INSERT INTO jobs(inchikey, iteration, rank, oracle, status, pred_mean,"
                " pred_std, acq_value, submitted_at, fidelity)"
                " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
                [(j.inchikey, iteration, r, j.oracle or oracle, j.pred_mean, j.pred_std,
                  j.acq_value, now, j.fidelity) for r, j in enumerate(jobs)],
            )

    def finish_job(self, job_id: int, value: float | None, reason: str | None, seconds: float,
                   extras: dict[str, Any] | None = None,
                   properties: dict[str, float] | None = None) -> None:
        """Commit one oracle result; a job already finished is left as it is.

        ``properties``: every property the call gave (name -> value), or ``None``.
        """
        self.finish_jobs([(job_id, value, reason, seconds, extras or {}, properties)])

    def finish_jobs(self, results: Sequence[tuple[Any, ...]]) -> None:
        """Commit several results ``(job id, value, reason, seconds, extras[, properties])``.

        As :meth:`finish_job`, in one transaction: all of them, or none after a kill.
        """
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                "UPDATE jobs SET status = ?, value = ?, reason = ?, seconds = ?, extras = ?,"
                " properties = ?, finished_at = ? WHERE id = ? AND status = 'pending'",
                [("done" if r[2] is None else "failed", r[1], r[2], r[3],
                  json.dumps(r[4] or {}), _properties_json(r[5] if len(r) > 5 else None),
                  now, r[0]) for r in results],
            )

    def commit_external(self, labels: Sequence[ExternalLabel], iteration: int, oracle: str,
                        origin: str, meta: dict[str, Any] | None = None) -> None:
        """Commit labels from outside bodisc in one transaction: all of them, or none.

        A label for an existing job settles it if it is pending or withdrawn (a job
        already done or failed is left as it is); a label without a job becomes a new,
        unpaid job of ``iteration`` after its last rank, its molecule recorded with
        ``origin``. ``meta`` entries are set in the same transaction (e.g. the digest of
        an ingested file).
        """
        now = time.time()
        with self.transaction() as db:
            row = db.execute("SELECT COALESCE(MAX(rank), -1) FROM jobs WHERE iteration = ?",
                             (iteration,)).fetchone()
            rank = int(row[0]) + 1
            for lab in labels:
                prov = json.dumps(lab.provenance, sort_keys=True)
                if lab.job_id is not None:
                    db.execute(
                        "UPDATE jobs SET status = ?, value = ?, reason = ?, provenance = ?,"
                        " properties = ?, finished_at = ?"
                        " WHERE id = ? AND status IN ('pending', 'cancelled')",
                        (lab.status, lab.value, lab.reason, prov,
                         _properties_json(lab.properties), now, lab.job_id))
                    continue
                db.execute(
                    "INSERT OR IGNORE INTO molecules(inchikey, smiles, heavy_atoms, origin,"
                    " parents, first_iteration, created_at) VALUES (?, ?, ?, ?, '[]', ?, ?)",
                    (lab.inchikey, lab.smiles, lab.heavy_atoms, origin, iteration, now))
                db.execute(
                    "INSERT INTO jobs(inchikey, iteration, rank, oracle, status, value, reason,"
                    " submitted_at, finished_at, paid, provenance, properties)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                    (lab.inchikey, iteration, rank, oracle, lab.status, lab.value, lab.reason,
                     now, now, prov, _properties_json(lab.properties)))
                rank += 1
                failpoint("ingest.row")  # tests: a kill inside the transaction
            for key, value in (meta or {}).items():
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                           (key, json.dumps(value)))

    def cancel_jobs(self, job_ids: Sequence[int], provenance: dict[str, Any]) -> int:
        """Withdraw pending jobs (they no longer count as calls); returns how many."""
        with self.transaction() as db:
            cur = db.executemany(
                "UPDATE jobs SET status = 'cancelled', provenance = ?, finished_at = ?"
                " WHERE id = ? AND status = 'pending'",
                [(json.dumps(provenance, sort_keys=True), time.time(), i) for i in job_ids])
            return int(cur.rowcount)

    def complete_iteration(self, iteration: int, metrics: dict[str, float]) -> None:
        """Mark an iteration complete with its metrics."""
        with self.transaction() as db:
            db.execute(
                "UPDATE iterations SET status = 'complete', metrics = ?, finished_at = ?"
                " WHERE iteration = ?",
                (json.dumps(metrics, sort_keys=True), time.time(), iteration),
            )

    def mark_logged(self, iteration: int) -> None:
        """Record that an iteration's MLflow record went out."""
        with self.transaction() as db:
            db.execute("UPDATE iterations SET logged = 1 WHERE iteration = ?", (iteration,))

    def jobs(self, status: str | None = None, iteration: int | None = None,
             fidelity: str | None = TARGET) -> list[Job]:
        """Jobs in submission order, optionally filtered.

        ``fidelity``: the target jobs by default; ``None`` for the jobs of every fidelity.
        """
        sql = ("SELECT j.id, j.inchikey, m.smiles, j.iteration, j.rank, j.status, j.value,"
               " j.reason, j.pred_mean, j.pred_std, j.fidelity, j.seconds, j.finished_at,"
               " j.acq_value, j.oracle, j.paid, j.provenance, j.properties"
               " FROM jobs j JOIN molecules m USING (inchikey)")
        where, args = [], []
        if fidelity is not None:
            where.append("j.fidelity = ?")
            args.append(fidelity)
        if status is not None:
            where.append("j.status = ?")
            args.append(status)
        if iteration is not None:
            where.append("j.iteration = ?")
            args.append(iteration)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY j.iteration, j.rank"
        return [Job(*row[:-3], bool(row[-3]), row[-2],
                    json.loads(row[-1]) if row[-1] else None)
                for row in self._db.execute(sql, args)]

    def calls(self, fidelity: str | None = TARGET) -> list[Job]:
        """The oracle calls bodisc paid for, in order.

        :meth:`jobs` without withdrawn jobs and without labels from outside for
        molecules bodisc never proposed.
        """
        return [j for j in self.jobs(fidelity=fidelity) if j.paid and j.status != "cancelled"]

    def calls_used(self, fidelity: str | None = TARGET) -> int:
        """Oracle calls spent or committed to: every job bodisc proposed and paid for.

        Pending, done and failed jobs count; withdrawn ones (``cancelled``) and labels
        that came from outside for molecules bodisc never proposed (unpaid) do not.
        ``fidelity``: target calls by default; ``None`` counts every fidelity.
        """
        sql = "SELECT COUNT(*) FROM jobs WHERE paid = 1 AND status != 'cancelled'"
        if fidelity is None:
            return int(self._db.execute(sql).fetchone()[0])
        return int(self._db.execute(sql + " AND fidelity = ?", (fidelity,)).fetchone()[0])

    def results_committed(self) -> int:
        """Jobs of every fidelity with a committed result (done or failed)."""
        return int(self._db.execute(
            "SELECT COUNT(*) FROM jobs WHERE status IN ('done', 'failed')").fetchone()[0])

    def iterations(self) -> list[dict[str, Any]]:
        """All iteration rows as dicts, in order."""
        rows = self._rows("SELECT * FROM iterations ORDER BY iteration")
        out = []
        for r in rows:
            d = dict(r)
            d["metrics"] = json.loads(d["metrics"])
            out.append(d)
        return out

    def open_iterations(self) -> list[int]:
        """Iterations whose batch was chosen but not finished, in order."""
        rows = self._db.execute(
            "SELECT iteration FROM iterations WHERE status = 'selected' ORDER BY iteration")
        return [int(r[0]) for r in rows]

    def open_iteration(self) -> int | None:
        """The first iteration whose batch was chosen but not finished, if any."""
        its = self.open_iterations()
        return its[0] if its else None

    def next_iteration(self) -> int:
        """Number of the next iteration to start."""
        row = self._db.execute("SELECT MAX(iteration) FROM iterations").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def results_frame(self) -> Any:
        """Every oracle job with its molecule, as a pandas DataFrame (for export).

        Every property a call gave beyond its value becomes a column of its own (named
        after the property; ``property_<name>`` where that name is taken).
        """
        import pandas as pd

        rows = self._rows(
            "SELECT m.smiles, j.inchikey, j.iteration, j.rank, j.fidelity, j.oracle, j.status,"
            " j.value, j.reason, j.pred_mean, j.pred_std, j.acq_value, j.seconds, m.origin,"
            " m.parents, j.paid, j.provenance, j.properties"
            " FROM jobs j JOIN molecules m USING (inchikey) ORDER BY j.iteration, j.rank"
        )
        records = [dict(r) for r in rows]
        props = [json.loads(r.pop("properties") or "{}") for r in records]
        frame = pd.DataFrame(records)
        for name in sorted({k for p in props for k in p}):
            column = name if name not in frame.columns else f"property_{name}"
            frame[column] = [p.get(name) for p in props]
        return frame

    def integrity_ok(self) -> bool:
        """``PRAGMA integrity_check`` says ok."""
        return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _properties_json(properties: dict[str, float] | None) -> str | None:
    """The ``properties`` column's JSON (``None``: the call gave none)."""
    if not properties:
        return None
    return json.dumps({str(k): float(v) for k, v in properties.items()}, sort_keys=True)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _json_float(value: float) -> float | None:
    value = float(value)
    return None if value != value else value  # NaN -> null
