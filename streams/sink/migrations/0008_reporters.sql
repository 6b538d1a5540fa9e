-- Reporters' names and phones, one row per report that names its reporter: the first report's of each incident
-- and those merged into it (every caller can be called back). They come from intake on their own internal topic
-- (<app id>-reporters, keyed by report_id), never through the district work log or incident.events, which many
-- read and keep for long. Grafana's role reads only v_* views: neither this table nor incident_reporters.
CREATE TABLE reporters (
    report_id   text PRIMARY KEY,
    reporter    jsonb       NOT NULL,
    received_at timestamptz NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT now()
);

-- incidents.reporter keeps meaning what it meant: the reporter of the incident's first report. Two messages now
-- fill it, the incident's `created` event (on incident.events) and its first report's reporter record (on the
-- reporters topic), in either order and possibly written by two sinks at once (other topics, other partitions).
-- The created event's insert takes the reporter from this table; a reporter's write then fills its incident if
-- it exists. Left to themselves, under READ COMMITTED, the two can miss each other: each transaction runs while
-- the other's rows are uncommitted, so the insert finds no reporter yet, the update finds no incident yet, and
-- both commit — the record stays without its reporter for good (a lost update). So both writers first take a
-- transaction-scoped advisory lock per report id (streams/sink.py, REPORTER_LOCK): the second to come waits
-- until the first has committed, and its statements, each with a fresh snapshot, then see the first's rows.
-- The writes stay idempotent (ON CONFLICT DO NOTHING; the update only where the reporter is still missing).
COMMENT ON COLUMN incidents.reporter IS 'the reporter of the incident''s first report, from reporters';

-- What was kept before: the first reports' reporters, from the incident records.
INSERT INTO reporters (report_id, reporter, received_at)
SELECT report_id, reporter, created_at FROM incidents WHERE reporter IS NOT NULL
ON CONFLICT DO NOTHING;

-- Whom to call back about an incident: the reporter of its first report and of every report merged into it.
CREATE VIEW incident_reporters AS
SELECT i.incident_id, r.report_id, true AS first_report, r.reporter, r.received_at
FROM incidents i JOIN reporters r USING (report_id)
UNION ALL
SELECT e.incident_id, r.report_id, false, r.reporter, r.received_at
FROM incident_events e JOIN reporters r ON r.report_id = e.data->>'report_id'
WHERE e.type = 'report_merged';
