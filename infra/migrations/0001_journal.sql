-- The journal: one row per record, idempotent on (run_id, kind, key). Applied by infra/journal_pg.migrate
-- with search_path set to the target schema. Never edit an applied migration: add the next number.
CREATE TABLE journal (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- insertion order (ties of ts_local)
    run_id      text   NOT NULL,
    kind        text   NOT NULL CHECK (kind IN ('intent', 'order_event', 'fill', 'trade_transition',
                                                'risk_verdict', 'pnl_snapshot', 'alert')),
    key         text   NOT NULL,                                   -- idempotency key within (run_id, kind)
    route       text   NOT NULL,                                   -- '*' when portfolio-wide
    client_id   text,                                              -- payload's client order id, if any
    ts_venue    bigint NOT NULL CHECK (ts_venue >= -1),            -- ns; -1 unknown / local act
    ts_local    bigint NOT NULL CHECK (ts_local >= 0),             -- ns
    payload     jsonb  NOT NULL,                                   -- money and quantities as decimal strings
    written_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT journal_idempotency UNIQUE (run_id, kind, key)
);

-- report queries: a run's records by route / by kind in time order; an order's records by client id
CREATE INDEX journal_run_route_ts ON journal (run_id, route, ts_local, id);
CREATE INDEX journal_run_kind_ts ON journal (run_id, kind, ts_local, id);
CREATE INDEX journal_client ON journal (client_id, run_id, kind) WHERE client_id IS NOT NULL;
-- retention across runs: rows arrive roughly in ts_local order, a BRIN index is tiny and enough
CREATE INDEX journal_ts_brin ON journal USING brin (ts_local);
