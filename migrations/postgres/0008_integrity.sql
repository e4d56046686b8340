-- Ed25519-signed checkpoints name the key that signed them (rotation keeps old ones
-- checkable); checkpoints written before this migration were HMAC-SHA256.
ALTER TABLE checkpoints ADD COLUMN key_id TEXT NOT NULL DEFAULT 'hmac-sha256';

-- Retention: the app role may neither delete events nor move the floor. It may call this
-- function (owned by the migrating user), which purges only whole ranges ending at a
-- checkpoint and only raises the floor.
CREATE FUNCTION vigil_purge(new_floor BIGINT) RETURNS BIGINT
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    deleted BIGINT;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM checkpoints WHERE seq = new_floor) THEN
        RAISE EXCEPTION 'vigil: a purge must end at a checkpoint (seq %)', new_floor
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE retention_floor SET floor = new_floor WHERE id = 1 AND floor < new_floor;
    DELETE FROM events WHERE seq <= new_floor;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END $$;
REVOKE ALL ON FUNCTION vigil_purge(BIGINT) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vigil_purge(BIGINT) TO vigil_app;
