-- Field units' device credentials and the field API's record of the actions it published (streams/field_api/).
-- A device holds one secret, bound to one unit; only its argon2 hash is kept. Revoking sets revoked_at: the
-- device's tokens stop working at their next request, and its secret can no longer get new ones.
CREATE TABLE IF NOT EXISTS unit_credentials (
    device_id   text PRIMARY KEY,
    unit_id     text NOT NULL,
    secret_hash text NOT NULL,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    issued_by   text NOT NULL,
    revoked_at  timestamptz,
    revoked_by  text
);
CREATE INDEX IF NOT EXISTS unit_credentials_unit ON unit_credentials (unit_id);

-- Each action a unit sent (its event_id, made on the device when the action was made): an action sent again
-- after a dropped connection is recognised and published once.
CREATE TABLE IF NOT EXISTS field_actions (
    event_id     text PRIMARY KEY,
    unit_id      text NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now()
);
