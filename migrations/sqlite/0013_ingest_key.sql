-- Provenance and idempotency per API key (issue 21). Every event a client sends records the
-- id of the key that sent it, in `canon` (hashed) and in this column (indexed, checked
-- against canon by verify). The server's own events and events stored before this
-- migration have none. Idempotency is per (ingest_key, event_id): the same event_id from
-- another key is its own event, so one app can no longer make another's events vanish by
-- posting their ids first.
ALTER TABLE events ADD COLUMN ingest_key TEXT;
DROP INDEX events_event_id;
CREATE UNIQUE INDEX events_event_id_key ON events (event_id, COALESCE(ingest_key, ''));
DROP TRIGGER events_insert_next_only;
CREATE TRIGGER events_insert_next_only BEFORE INSERT ON events
WHEN NEW.seq <> (SELECT COALESCE(MAX(seq), 0) + 1 FROM events)
  OR EXISTS (SELECT 1 FROM events WHERE event_id = NEW.event_id
             AND COALESCE(ingest_key, '') = COALESCE(NEW.ingest_key, ''))
BEGIN
    SELECT RAISE(ABORT, 'vigil: events are append-only (insert must be the next seq with a new event_id)');
END;
