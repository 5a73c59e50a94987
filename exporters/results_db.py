"""The results store: runs, their labels and results, in SQLite (the default, one file) or
PostgreSQL (``postgresql://...``), with one schema and versioned migrations.

    open_store(where)   a ``Store`` for a path or a URL; creates the file and its folder, and
                        brings the schema up to ``SCHEMA_VERSION`` (each migration once, under
                        a lock: SQLite's write lock, a PostgreSQL advisory lock)
    Store.save          one transaction per checkpoint: the run's row, its results replaced,
                        new history points appended. Each master writes only its own run's
                        rows, so several masters can write at once.
    Store.runs / run / find_baseline / trend / delete   what ``lcore runs`` and the page read

Tables (every run row keyed by its id, which embeds the start time and a random tail):

    schema_version(version)
    runs(id, started, ended, updated, status, exit_code, host, target, locustfile, digest,
         version, git_commit, users, user_classes, options, percentiles, summary, thresholds,
         span, headless, schedules)        JSON in the text columns
    run_labels(run_id, key, value)
    run_entries(run_id, method, name, requests, failures, content_length, histogram, corrected)
    run_errors(run_id, method, name, error, occurrences, first_seen, last_seen)
    run_exceptions(run_id, msg, traceback, count, nodes)
    run_history(run_id, t, point)

Not thread-safe: one ``Store`` per thread (the master's writer has its own thread).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_ENV",
    "SCHEMA_VERSION",
    "RunNotFound",
    "Store",
    "StoreError",
    "default_path",
    "is_postgres",
    "open_store",
    "redact",
    "store_location",
]

DEFAULT_ENV = "LCORE_RESULTS_DB"
"""The environment variable that chooses the store (as ``--results-db`` does)."""

# a lock id of lcore's own for the migrations (pg_advisory_xact_lock takes a bigint)
_PG_MIGRATION_LOCK = 0x6C636F7265  # "lcore"


class StoreError(Exception):
    """The store cannot be opened or used; ``str()`` is one line."""


class RunNotFound(StoreError):
    """No run has that id (or the prefix given matches several)."""


def default_path() -> str:
    """``$XDG_DATA_HOME/lcore/results.db``, or ``~/.local/share/lcore/results.db``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "lcore", "results.db")


def store_location(options: Any) -> str | None:
    """Where a master with these options saves its runs; None with --no-results-db."""
    if getattr(options, "no_results_db", False):
        return None
    return getattr(options, "results_db", None) or default_path()


def is_postgres(where: str) -> bool:
    return where.startswith(("postgresql://", "postgres://"))


def _migrations(pg: bool) -> list[list[str]]:
    """Each migration: the statements that bring version N-1 to N (append, never edit)."""
    real = "DOUBLE PRECISION" if pg else "REAL"
    big = "BIGINT" if pg else "INTEGER"
    return [
        [
            f"""CREATE TABLE runs (
                id TEXT PRIMARY KEY, started {real} NOT NULL, ended {real}, updated {real} NOT NULL,
                status TEXT NOT NULL, exit_code INTEGER, host TEXT, target TEXT, locustfile TEXT,
                digest TEXT, version TEXT, git_commit TEXT, users INTEGER, user_classes TEXT,
                options TEXT, percentiles TEXT, summary TEXT, thresholds TEXT, span TEXT,
                headless INTEGER)""",
            "CREATE INDEX runs_started ON runs (started)",
            """CREATE TABLE run_labels (
                run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key))""",
            "CREATE INDEX run_labels_kv ON run_labels (key, value)",
            f"""CREATE TABLE run_entries (
                run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                method TEXT NOT NULL, name TEXT NOT NULL, requests {big} NOT NULL,
                failures {big} NOT NULL, content_length {big} NOT NULL, histogram TEXT NOT NULL,
                PRIMARY KEY (run_id, method, name))""",
            f"""CREATE TABLE run_errors (
                run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                method TEXT NOT NULL, name TEXT NOT NULL, error TEXT NOT NULL,
                occurrences {big} NOT NULL, first_seen {real}, last_seen {real})""",
            "CREATE INDEX run_errors_run ON run_errors (run_id)",
            f"""CREATE TABLE run_exceptions (
                run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                msg TEXT NOT NULL, traceback TEXT NOT NULL, count {big} NOT NULL, nodes TEXT)""",
            "CREATE INDEX run_exceptions_run ON run_exceptions (run_id)",
            f"""CREATE TABLE run_history (
                run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                t {real} NOT NULL, point TEXT NOT NULL, PRIMARY KEY (run_id, t))""",
        ],
        # 2: latency from the intended start (coordinated omission): an endpoint's corrected
        # histogram when it differs, and each user class's schedule lag and dropped arrivals
        [
            "ALTER TABLE run_entries ADD COLUMN corrected TEXT",
            "ALTER TABLE runs ADD COLUMN schedules TEXT",
        ],
    ]


SCHEMA_VERSION = len(_migrations(False))

_RUN_COLUMNS = (
    "id", "started", "ended", "updated", "status", "exit_code", "host", "target", "locustfile",
    "digest", "version", "git_commit", "users", "user_classes", "options", "percentiles",
    "summary", "thresholds", "span", "headless", "schedules",
)  # fmt: skip
_JSON_COLUMNS = frozenset(
    {"user_classes", "options", "percentiles", "summary", "thresholds", "span", "schedules"}
)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


class Store:
    """A connection to the results store (SQLite or PostgreSQL), schema up to date."""

    def __init__(self, where: str, connection: Any, pg: bool) -> None:
        self.where = where
        self.pg = pg
        self._db = connection

    # -- plumbing --

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.pg else statement

    def _execute(self, cursor: Any, statement: str, params: Sequence[Any] = ()) -> Any:
        cursor.execute(self._sql(statement), tuple(params))
        return cursor

    def _many(self, cursor: Any, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(r) for r in rows]
        if rows:
            cursor.executemany(self._sql(statement), rows)

    def close(self) -> None:
        try:
            self._db.close()
        except Exception:  # closing a broken connection: nothing left to do
            pass

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A cursor whose work is committed when the block ends, and rolled back if it raises."""
        cur = self._db.cursor()
        try:
            yield cur
            self._db.commit()
        except BaseException:
            self._db.rollback()
            raise
        finally:
            cur.close()

    def _migrate(self) -> None:
        migrations = _migrations(self.pg)
        with self._transaction() as cur:
            if self.pg:
                self._execute(cur, "SELECT pg_advisory_xact_lock(?)", (_PG_MIGRATION_LOCK,))
            else:
                cur.execute("BEGIN IMMEDIATE")  # one writer migrates; the others wait
            self._execute(cur, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self._execute(cur, "SELECT MAX(version) FROM schema_version").fetchone()
            current = int(row[0] or 0)
            if current > len(migrations):
                raise StoreError(
                    f"{self.where} has schema version {current}, newer than this lcore knows "
                    f"({len(migrations)}): upgrade lcore to read it"
                )
            for version in range(current + 1, len(migrations) + 1):
                for statement in migrations[version - 1]:
                    self._execute(cur, statement)
                self._execute(cur, "INSERT INTO schema_version (version) VALUES (?)", (version,))

    # -- writing --

    def save(self, run: dict[str, Any], results: dict[str, Any] | None, history: Sequence[dict[str, Any]] = ()) -> None:
        """One checkpoint of a run, in one transaction: its row (``run``: the ``runs`` columns
        plus ``labels``), its results replaced when given, ``history`` points appended."""
        row = {c: run.get(c) for c in _RUN_COLUMNS}
        row["updated"] = run.get("updated") or time.time()
        if results is not None:  # per user class: kept on the run's row, read back with results
            row["schedules"] = {
                "lag": results.get("schedules") or {},
                "dropped_arrivals": results.get("dropped_arrivals") or {},
            }
        for column in _JSON_COLUMNS:
            if row[column] is not None:
                row[column] = _dumps(row[column])
        if row["headless"] is not None:
            row["headless"] = int(bool(row["headless"]))
        columns = ", ".join(_RUN_COLUMNS)
        marks = ", ".join("?" for _ in _RUN_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _RUN_COLUMNS if c != "id")
        with self._transaction() as cur:
            self._execute(
                cur,
                f"INSERT INTO runs ({columns}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {updates}",
                [row[c] for c in _RUN_COLUMNS],
            )
            run_id = row["id"]
            self._many(
                cur,
                "INSERT INTO run_labels (run_id, key, value) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [(run_id, k, v) for k, v in sorted((run.get("labels") or {}).items())],
            )
            if results is not None:
                for table in ("run_entries", "run_errors", "run_exceptions"):
                    self._execute(cur, f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
                self._many(
                    cur,
                    "INSERT INTO run_entries (run_id, method, name, requests, failures, "
                    "content_length, histogram, corrected) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (run_id, method, name, wire[0], failures, length, _dumps(wire),
                         None if not rest or rest[0] is None else _dumps(rest[0]))
                        for method, name, wire, failures, length, *rest in results["entries"]
                    ],
                )  # fmt: skip
                self._many(
                    cur,
                    "INSERT INTO run_errors (run_id, method, name, error, occurrences, "
                    "first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, *e) for e in results["errors"]],
                )
                self._many(
                    cur,
                    "INSERT INTO run_exceptions (run_id, msg, traceback, count, nodes) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(run_id, m, tb, n, _dumps(list(nodes))) for m, tb, n, nodes in results["exceptions"]],
                )
            self._many(
                cur,
                "INSERT INTO run_history (run_id, t, point) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [(run_id, p["time"], _dumps(p)) for p in history],
            )

    def delete(self, run_id: str) -> str:
        """Delete a run (an id or a unique prefix) and everything stored with it."""
        full = self.resolve(run_id)
        with self._transaction() as cur:
            # child rows first: SQLite enforces ON DELETE CASCADE only with foreign_keys on
            for table in ("run_labels", "run_entries", "run_errors", "run_exceptions", "run_history"):
                self._execute(cur, f"DELETE FROM {table} WHERE run_id = ?", (full,))
            self._execute(cur, "DELETE FROM runs WHERE id = ?", (full,))
        return full

    # -- reading --

    def _rows(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self._db.cursor()
        try:
            return list(self._execute(cur, statement, params).fetchall())
        finally:
            cur.close()
            if self.pg:
                self._db.rollback()  # end the read's transaction: no idle one held open

    def resolve(self, run_id: str) -> str:
        """The full id of ``run_id`` (an id, or a prefix matching exactly one run)."""
        run_id = str(run_id).strip()
        if self._rows("SELECT id FROM runs WHERE id = ?", (run_id,)):
            return run_id
        if run_id:
            escaped = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            found = self._rows(
                "SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY id LIMIT 3",
                (escaped + "%",),
            )
            if len(found) == 1:
                return str(found[0][0])
            if found:
                raise RunNotFound(f"run id {run_id!r} is ambiguous: it starts {', '.join(r[0] for r in found)}...")
        raise RunNotFound(f"no run {run_id!r} in {self.where} (see 'lcore runs list')")

    def _label_filter(self, labels: dict[str, str]) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for key, value in sorted(labels.items()):
            clauses.append(
                "EXISTS (SELECT 1 FROM run_labels l WHERE l.run_id = runs.id AND l.key = ? AND l.value = ?)"
            )
            params += [key, value]
        return (" AND ".join(clauses) or "1 = 1"), params

    def runs(
        self,
        labels: dict[str, str] | None = None,
        last: int | None = None,
        finished_only: bool = False,
        exclude: str | None = None,
    ) -> list[dict[str, Any]]:
        """Runs, oldest first (the ``last`` most recent when given), with their labels."""
        where, params = self._label_filter(labels or {})
        if finished_only:
            where += " AND status = 'finished'"
        if exclude:
            where += " AND id <> ?"
            params.append(exclude)
        limit = f" LIMIT {int(last)}" if last else ""
        rows = self._rows(
            f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE {where} ORDER BY started DESC, id DESC{limit}",
            params,
        )
        runs = [self._run_dict(r) for r in reversed(rows)]
        self._attach_labels(runs)
        return runs

    def _run_dict(self, row: Sequence[Any]) -> dict[str, Any]:
        run = dict(zip(_RUN_COLUMNS, row, strict=True))
        for column in _JSON_COLUMNS:
            if run[column] is not None:
                run[column] = json.loads(run[column])
        run["headless"] = bool(run["headless"])
        return run

    def _attach_labels(self, runs: list[dict[str, Any]]) -> None:
        by_id = {r["id"]: r for r in runs}
        for r in runs:
            r["labels"] = {}
        if not by_id:
            return
        ids = list(by_id)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            for run_id, key, value in self._rows(
                f"SELECT run_id, key, value FROM run_labels WHERE run_id IN ({marks}) ORDER BY key", chunk
            ):
                by_id[run_id]["labels"][key] = value

    def run(self, run_id: str) -> dict[str, Any]:
        """One run with everything stored: the row, labels, ``results`` (as ``take_results``
        makes them) and ``history`` (its per-second points, in order)."""
        full = self.resolve(run_id)
        run = self._run_dict(self._rows(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE id = ?", (full,))[0])
        self._attach_labels([run])
        entries = [
            [method, name, json.loads(histogram), int(failures), int(length),
             json.loads(corrected) if corrected else None]
            for method, name, histogram, failures, length, corrected in self._rows(
                "SELECT method, name, histogram, failures, content_length, corrected FROM run_entries "
                "WHERE run_id = ? ORDER BY name, method",
                (full,),
            )
        ]  # fmt: skip
        errors = [
            [m, n, e, int(o), f, last]
            for m, n, e, o, f, last in self._rows(
                "SELECT method, name, error, occurrences, first_seen, last_seen FROM run_errors "
                "WHERE run_id = ? ORDER BY method, name, error",
                (full,),
            )
        ]
        exceptions = [
            [m, tb, int(n), json.loads(nodes or "[]")]
            for m, tb, n, nodes in self._rows(
                "SELECT msg, traceback, count, nodes FROM run_exceptions WHERE run_id = ? "
                "ORDER BY count DESC, msg",
                (full,),
            )
        ]
        span = run.get("span") or {}
        run["results"] = {
            "entries": entries,
            "errors": errors,
            "exceptions": exceptions,
            "start": span.get("start", run["started"]),
            "last_end": span.get("last_end"),
            "schedules": (run.get("schedules") or {}).get("lag", {}),
            "dropped_arrivals": (run.get("schedules") or {}).get("dropped_arrivals", {}),
        }
        run["history"] = [
            json.loads(p) for (p,) in self._rows("SELECT point FROM run_history WHERE run_id = ? ORDER BY t", (full,))
        ]
        return run

    def find_baseline(self, spec: str, exclude: str | None = None) -> dict[str, Any] | None:
        """The run ``--baseline`` names: ``last`` (the latest finished run), ``label:K=V`` (the
        latest finished run with that label), or a run id; None when there is none yet.
        An id that matches no run raises RunNotFound."""
        spec = spec.strip()
        if spec == "last" or spec.startswith("label:"):
            labels: dict[str, str] = {}
            if spec.startswith("label:"):
                key, _, value = spec[len("label:") :].partition("=")
                labels[key.strip()] = value.strip()
            found = self.runs(labels, last=1, finished_only=True, exclude=exclude)
            return self.run(found[0]["id"]) if found else None
        return self.run(spec)

    def trend(self, labels: dict[str, str], last: int, before: float | None = None) -> list[dict[str, Any]]:
        """The ``last`` finished runs with these labels (started before ``before``), oldest first."""
        runs = self.runs(labels, finished_only=True)
        if before is not None:
            runs = [r for r in runs if r["started"] <= before]
        return runs[-last:] if last else runs


def open_store(where: str | os.PathLike[str]) -> Store:
    """The store at ``where``: a file path (SQLite; folder and file made as needed) or a
    ``postgresql://`` URL (psycopg). Raises StoreError with a one-line reason."""
    where = os.fspath(where)
    if is_postgres(where):
        return _open_postgres(where)
    if where.startswith("sqlite:///"):
        where = where[len("sqlite://") :]
    path = Path(where).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as e:
        raise StoreError(f"cannot open the results store {where}: {e}") from e
    store = _SqliteStore(str(path), db, pg=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")  # readers (lcore runs, the page) never block the master
        db.execute("PRAGMA synchronous=NORMAL")
        store._migrate()
    except sqlite3.DatabaseError as e:
        store.close()
        raise StoreError(f"cannot use the results store {where}: {e}") from e
    return store


class _SqliteStore(Store):
    """sqlite3 in autocommit mode, with explicit transactions (BEGIN ... COMMIT)."""

    def save(self, run: dict[str, Any], results: dict[str, Any] | None, history: Sequence[dict[str, Any]] = ()) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        super().save(run, results, history)

    def delete(self, run_id: str) -> str:
        full = self.resolve(run_id)
        self._db.execute("BEGIN IMMEDIATE")
        return super().delete(full)

    def _rows(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._db.execute(statement, tuple(params)).fetchall())


def _open_postgres(url: str) -> Store:
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            "--results-db postgresql://... needs the psycopg package: pip install 'lcore[postgres]'"
        ) from None
    try:
        db = psycopg.connect(url, connect_timeout=10)
    except psycopg.Error as e:
        raise StoreError(f"cannot connect to the results store {redact(url)}: {' '.join(str(e).split())}") from e
    store = Store(redact(url), db, pg=True)
    try:
        store._migrate()
    except psycopg.Error as e:
        store.close()
        raise StoreError(f"cannot use the results store {redact(url)}: {' '.join(str(e).split())}") from e
    return store


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"
