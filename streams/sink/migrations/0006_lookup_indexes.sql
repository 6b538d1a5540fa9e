-- Lookups the gateway and the dashboards make: a merged report by its id, recent incidents by time.
CREATE INDEX incident_events_merged_report ON incident_events ((data->>'report_id')) WHERE type = 'report_merged';
CREATE INDEX incidents_created_at ON incidents (created_at);
