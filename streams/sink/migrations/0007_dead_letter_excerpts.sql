-- A dead letter keeps an excerpt of the rejected bytes (raw_truncated), their length and SHA-256; the whole
-- record stays on its topic, at (topic, partition, offset).
ALTER TABLE dead_letters ADD COLUMN raw_truncated boolean NOT NULL DEFAULT false;
ALTER TABLE dead_letters ADD COLUMN raw_length integer;
ALTER TABLE dead_letters ADD COLUMN raw_sha256 text;
