-- Provenance and idempotency per API key (issue 21). Every event a client sends records the
-- id of the key that sent it, in `canon` (hashed) and in this column (indexed, checked
-- against canon by verify). The server's own events and events stored before this
-- migration have none. Idempotency is per (ingest_key, event_id): the same event_id from
-- another key is its own event.
ALTER TABLE events ADD COLUMN ingest_key TEXT;
ALTER TABLE events DROP CONSTRAINT events_event_id_key;
CREATE UNIQUE INDEX events_event_id_ingest_key ON events (event_id, COALESCE(ingest_key, ''));
-- What a key sent (GET /v1/events?ingest_key=): the SQLite backend serves it from postings.
CREATE INDEX events_ingest_key ON events (ingest_key, seq) WHERE ingest_key IS NOT NULL;
