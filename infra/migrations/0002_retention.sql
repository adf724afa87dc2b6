-- Retention: delete a run's (or, with NULL, every run's) rows older than before_ns (ts_local), except the
-- intents whose order has no terminal order event yet: recovery must still resolve those against the venue.
-- Returns the number of rows deleted.
CREATE OR REPLACE FUNCTION journal_purge_older_than(p_run_id text, p_before_ns bigint)
RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    deleted bigint;
BEGIN
    DELETE FROM journal j
    WHERE j.ts_local < p_before_ns
      AND (p_run_id IS NULL OR j.run_id = p_run_id)
      AND (j.kind <> 'intent' OR EXISTS (
            SELECT 1 FROM journal o
            WHERE o.client_id = j.client_id AND o.run_id = j.run_id AND o.kind = 'order_event'
              AND (o.payload ->> 'terminal')::boolean));
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$$;
