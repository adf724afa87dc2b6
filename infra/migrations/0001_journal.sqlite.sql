-- The journal (SQLite, the embedded default): the same columns, keys and semantics as 0001_journal.sql.
-- Payload is JSON text; retention is done by infra/journal_sqlite.SqliteJournal.purge_older_than.
CREATE TABLE journal (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused after a purge: insertion order holds
    run_id      TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('intent', 'order_event', 'fill', 'trade_transition',
                                                 'risk_verdict', 'pnl_snapshot', 'alert')),
    key         TEXT    NOT NULL,
    route       TEXT    NOT NULL,
    client_id   TEXT,
    ts_venue    INTEGER NOT NULL CHECK (ts_venue >= -1),
    ts_local    INTEGER NOT NULL CHECK (ts_local >= 0),
    payload     TEXT    NOT NULL CHECK (json_valid(payload)),
    written_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT journal_idempotency UNIQUE (run_id, kind, key)
);

CREATE INDEX journal_run_route_ts ON journal (run_id, route, ts_local);
CREATE INDEX journal_run_kind_ts ON journal (run_id, kind, ts_local);
CREATE INDEX journal_client ON journal (client_id, run_id, kind) WHERE client_id IS NOT NULL;
CREATE INDEX journal_ts ON journal (ts_local);
