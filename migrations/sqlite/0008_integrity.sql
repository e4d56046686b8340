-- Ed25519-signed checkpoints name the key that signed them (rotation keeps old ones
-- checkable); checkpoints written before this migration were HMAC-SHA256.
ALTER TABLE checkpoints ADD COLUMN key_id TEXT NOT NULL DEFAULT 'hmac-sha256';
