-- The audit trail: every incident event, the incident records built from them,
-- and every dead letter. Rows are written idempotently (replays change nothing).

CREATE TABLE incident_events (
    event_id     text PRIMARY KEY,
    incident_id  text        NOT NULL,
    seq          integer     NOT NULL,
    type         text        NOT NULL,
    at           timestamptz NOT NULL,
    data         jsonb       NOT NULL,
    written_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (incident_id, seq)
);
CREATE INDEX incident_events_at ON incident_events (at);

-- One row per incident (立案); the reporter's personal data lives here and nowhere else.
CREATE TABLE incidents (
    incident_id  text PRIMARY KEY,
    report_id    text        NOT NULL UNIQUE,
    category     text        NOT NULL,
    domain       text,
    priority     integer     NOT NULL,
    district     text        NOT NULL,
    street       text        NOT NULL,
    lat          double precision NOT NULL,
    lon          double precision NOT NULL,
    source       text,
    address      text,
    description  text,
    reporter     jsonb,
    reported_at  timestamptz,
    created_at   timestamptz NOT NULL,
    status       text        NOT NULL,
    status_at    timestamptz NOT NULL,
    last_seq     integer     NOT NULL
);
CREATE INDEX incidents_open ON incidents (district, street) WHERE status NOT IN ('closed', 'cancelled');

-- A dead letter is identified by the record it rejected, so re-rejecting it on replay is a no-op.
CREATE TABLE dead_letters (
    topic        text        NOT NULL,
    "partition"  integer     NOT NULL,
    "offset"     bigint      NOT NULL,
    reason       text        NOT NULL,
    error        text        NOT NULL,
    raw          text        NOT NULL,
    raw_encoding text        NOT NULL,
    key          text,
    received_at  timestamptz NOT NULL,
    written_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, "partition", "offset")
);
CREATE INDEX dead_letters_reason ON dead_letters (reason, received_at);
