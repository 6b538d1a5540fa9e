-- Whether a dead letter's raw text had a reporter's personal data masked (so differs from the original bytes).
ALTER TABLE dead_letters ADD COLUMN raw_masked boolean NOT NULL DEFAULT false;
