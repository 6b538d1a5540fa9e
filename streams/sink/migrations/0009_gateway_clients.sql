-- The Open311 gateway's callers and what they posted (streams/gateway/keys.py, streams/gateway/store.py).
--
-- One API key per client system (a citizen app, a hotline, a sensor network), issued by `patrol keys issue`.
-- Only the key's SHA-256 is kept: the key itself is 32 random bytes (secrets.token_urlsafe), shown once when it is
-- issued, so a hash of it cannot be guessed back, and a copy of this table lets nobody post. Revoking a key keeps
-- its row (who posted what stays known) and stops it at once.
CREATE TABLE gateway_clients (
    key_sha256  text PRIMARY KEY CHECK (key_sha256 ~ '^[0-9a-f]{64}$'),
    client      text        NOT NULL CHECK (client ~ '^[A-Za-z0-9._-]{1,64}$'),
    role        text        NOT NULL CHECK (role IN ('citizen_app', 'hotline', 'sensor')),
    issued_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
-- a client system has at most one key in force: a new one is issued after the old is revoked (rotation)
CREATE UNIQUE INDEX gateway_clients_in_force ON gateway_clients (client) WHERE revoked_at IS NULL;

-- Every request POSTed through the gateway, by the client that posted it: whose it is (a client reads its own in
-- full), its idempotency key (scoped to the client) with the fingerprint of the body first sent under it (a
-- different body under a used key is refused), and the posted fields the audit trail does not keep per request
-- (a merged report's own place and address, media_url), returned to that client only. Not the description: that
-- is personal data, kept with the reporter in `reporters` (and erased with it by retention), read from there.
CREATE TABLE gateway_requests (
    report_id       text PRIMARY KEY,
    client          text        NOT NULL,
    idempotency_key text,
    fingerprint     text        NOT NULL,
    lat             double precision NOT NULL,
    lon             double precision NOT NULL,
    address         text,
    media_url       text,
    posted_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX gateway_requests_idempotency ON gateway_requests (client, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX gateway_requests_by_client ON gateway_requests (client, posted_at);

-- GET /requests lists reports merged into an incident under their own id, by when they were merged
CREATE INDEX incident_events_merged_at ON incident_events (at) WHERE type = 'report_merged';
COMMENT ON COLUMN gateway_requests.address IS 'as posted; kept for the posting client';
