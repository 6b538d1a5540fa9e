-- A report's free-text description travels with its reporter (intake -> <app id>-reporters -> sink), no longer in
-- the work log or the `created` event: `reporters` holds each report's private part, a reporter, a description or
-- both, and the sink fills the incident record's description from it (as it does the reporter, under the same
-- per-report lock: migration 0008).
ALTER TABLE reporters ALTER COLUMN reporter DROP NOT NULL;
ALTER TABLE reporters ADD COLUMN description text;

-- Retention (`patrol retention`, and the sink once an hour): a reporter's name and phone are erased once the
-- report is older than PATROL_REPORTER_RETENTION_DAYS, and the erasure recorded where they were. An erased row is
-- kept (its reporter null), so that a replay of the reporters topic cannot write the reporter again.
ALTER TABLE reporters ADD COLUMN erased_at timestamptz;
ALTER TABLE incidents ADD COLUMN reporter_erased_at timestamptz;
CREATE INDEX reporters_to_erase ON reporters (received_at) WHERE erased_at IS NULL;
CREATE INDEX incidents_to_erase ON incidents (created_at) WHERE reporter_erased_at IS NULL;
COMMENT ON COLUMN reporters.erased_at IS 'when retention erased this report''s reporter and description';
COMMENT ON COLUMN incidents.reporter_erased_at IS 'when retention erased the reporter (and masked the description''s phone numbers)';

-- What earlier releases left in the event log: the `created` events' descriptions (and any reporter) are in
-- their incident records already.
UPDATE incident_events SET data = data - 'description' - 'reporter'
WHERE type = 'created' AND (data ? 'description' OR data ? 'reporter');

-- Whom to call back: only the reports that named someone, and only until retention erased them.
CREATE OR REPLACE VIEW incident_reporters AS
SELECT i.incident_id, r.report_id, true AS first_report, r.reporter, r.received_at
FROM incidents i JOIN reporters r USING (report_id)
WHERE r.reporter IS NOT NULL
UNION ALL
SELECT e.incident_id, r.report_id, false, r.reporter, r.received_at
FROM incident_events e JOIN reporters r ON r.report_id = e.data->>'report_id'
WHERE e.type = 'report_merged' AND r.reporter IS NOT NULL;
