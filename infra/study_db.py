"""Tuning studies in a database: the study's spec, every trial (config, fold, metrics, times) and each fold's
choice, so a study can be resumed (finished trials are never run again) and queried with SQL.

SQLite by default (a file path); PostgreSQL through asyncpg with a ``postgresql://`` DSN. Only the tuning
driver writes (trial results come back to it through Ray Tune), so workers on other nodes never need the
database. A trial row is inserted, never replaced: running a finished trial again fails loudly.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UserError

_TABLES = (
    """CREATE TABLE IF NOT EXISTS tune_studies (
        study TEXT PRIMARY KEY, created_at DOUBLE PRECISION NOT NULL, spec TEXT NOT NULL, result TEXT)""",
    """CREATE TABLE IF NOT EXISTS tune_trials (
        study TEXT NOT NULL, fold INTEGER NOT NULL, trial INTEGER NOT NULL, session INTEGER NOT NULL,
        status TEXT NOT NULL, config TEXT NOT NULL, metrics TEXT NOT NULL, score DOUBLE PRECISION,
        started_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (study, fold, trial))""",
    """CREATE TABLE IF NOT EXISTS tune_folds (
        study TEXT NOT NULL, fold INTEGER NOT NULL, kind TEXT NOT NULL, train_start BIGINT NOT NULL,
        train_end BIGINT NOT NULL, test_start BIGINT NOT NULL, test_end BIGINT NOT NULL, chosen TEXT NOT NULL,
        train TEXT NOT NULL, test TEXT NOT NULL, finished_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (study, fold))""",
)
TRIAL_COLS = ("fold", "trial", "session", "status", "config", "metrics", "score", "started_at", "finished_at")
FOLD_COLS = ("fold", "kind", "train_start", "train_end", "test_start", "test_end", "chosen", "train", "test",
             "finished_at")
_JSON = {"config", "metrics", "chosen", "train", "test"}


def _row(cols: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    return {c: json.loads(v) if c in _JSON else v for c, v in zip(cols, values, strict=True)}


class StudyDB:
    """One database of studies. ``url``: a file path (SQLite) or ``postgresql://...`` (asyncpg)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pg = url.startswith(("postgres://", "postgresql://"))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: Any = None
        try:
            if self.pg:
                import asyncpg

                self._loop = asyncio.new_event_loop()
                self._conn = self._loop.run_until_complete(asyncpg.connect(url, timeout=10))
            else:
                Path(url).parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(url, timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise UserError(f"study database {url} cannot be opened: {exc}") from None
        except Exception as exc:  # asyncpg's errors (bad password, missing database) are not OSErrors
            if type(exc).__module__.startswith("asyncpg"):
                raise UserError(f"study database {url} cannot be opened: {exc}") from None
            raise
        for sql in _TABLES:
            self._exec(sql)

    def close(self) -> None:
        if self.pg and self._loop is not None:
            self._loop.run_until_complete(self._conn.close())
            self._loop.close()
        elif self._conn is not None:
            self._conn.close()
        self._conn = None

    def __enter__(self) -> StudyDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sql(self, sql: str) -> str:
        if not self.pg:
            return sql
        parts = sql.split("?")
        return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))

    def _exec(self, sql: str, *args: Any) -> None:
        if self.pg and self._loop is not None:
            self._loop.run_until_complete(self._conn.execute(self._sql(sql), *args))
        else:
            self._conn.execute(sql, args)

    def _fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if self.pg and self._loop is not None:
            return [tuple(r) for r in self._loop.run_until_complete(self._conn.fetch(self._sql(sql), *args))]
        return list(self._conn.execute(sql, args).fetchall())

    # studies
    def create_study(self, study: str, spec: dict[str, Any]) -> None:
        if self.spec(study) is not None:
            raise UserError(f"study {study!r} already exists in {self.url}: --resume {study} continues it, or "
                            "pick another --study name")
        self._exec("INSERT INTO tune_studies (study, created_at, spec) VALUES (?, ?, ?)", study, time.time(),
                   json.dumps(spec))

    def spec(self, study: str) -> dict[str, Any] | None:
        rows = self._fetch("SELECT spec FROM tune_studies WHERE study = ?", study)
        return json.loads(rows[0][0]) if rows else None

    def set_result(self, study: str, result: dict[str, Any]) -> None:
        self._exec("UPDATE tune_studies SET result = ? WHERE study = ?", json.dumps(result), study)

    def result(self, study: str) -> dict[str, Any] | None:
        rows = self._fetch("SELECT result FROM tune_studies WHERE study = ?", study)
        return json.loads(rows[0][0]) if rows and rows[0][0] else None

    def studies(self) -> list[str]:
        return [r[0] for r in self._fetch("SELECT study FROM tune_studies ORDER BY created_at")]

    # trials
    def add_trial(self, study: str, fold: int, trial: int, session: int, status: str, config: dict[str, Any],
                  metrics: dict[str, Any], score: float | None, started_at: float, finished_at: float) -> None:
        self._exec("INSERT INTO tune_trials (study, fold, trial, session, status, config, metrics, score, "
                   "started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", study, fold, trial, session,
                   status, json.dumps(config), json.dumps(metrics), score, started_at, finished_at)

    def trials(self, study: str, fold: int | None = None) -> list[dict[str, Any]]:
        cols = ", ".join(TRIAL_COLS)
        if fold is None:
            rows = self._fetch(f"SELECT {cols} FROM tune_trials WHERE study = ? ORDER BY fold, trial", study)
        else:
            rows = self._fetch(f"SELECT {cols} FROM tune_trials WHERE study = ? AND fold = ? ORDER BY trial",
                               study, fold)
        return [_row(TRIAL_COLS, r) for r in rows]

    def sessions(self, study: str) -> int:
        rows = self._fetch("SELECT MAX(session) FROM tune_trials WHERE study = ?", study)
        return int(rows[0][0] or 0)

    # folds
    def add_fold(self, study: str, fold: int, kind: str, train: tuple[int, int], test: tuple[int, int],
                 chosen: dict[str, Any], train_metrics: dict[str, Any], test_metrics: dict[str, Any]) -> None:
        self._exec("INSERT INTO tune_folds (study, fold, kind, train_start, train_end, test_start, test_end, chosen, "
                   "train, test, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", study, fold, kind,
                   train[0], train[1], test[0], test[1], json.dumps(chosen), json.dumps(train_metrics),
                   json.dumps(test_metrics), time.time())

    def folds(self, study: str) -> list[dict[str, Any]]:
        rows = self._fetch(f"SELECT {', '.join(FOLD_COLS)} FROM tune_folds WHERE study = ? ORDER BY fold", study)
        return [_row(FOLD_COLS, r) for r in rows]
