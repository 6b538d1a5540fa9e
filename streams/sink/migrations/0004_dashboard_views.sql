-- Views the command centre's Grafana reads through its PostgreSQL datasource.
-- Compliance follows the worker's metrics: a limit met is an on-time flag on a stage
-- event; a limit missed is an escalation of that stage.

CREATE VIEW v_open_incidents AS
SELECT incident_id, category, domain, priority, district, street, lat, lon, status, created_at,
       extract(epoch FROM now() - created_at) AS age_s
FROM incidents
WHERE status NOT IN ('closed', 'cancelled');

CREATE VIEW v_street_performance AS
WITH streets AS (
    SELECT DISTINCT district, street FROM incidents
), created AS (
    SELECT district, street, count(*) AS n FROM incidents
    WHERE created_at > now() - interval '24 hours' GROUP BY district, street
), closed AS (
    SELECT district, street, count(*) AS n FROM incidents
    WHERE status = 'closed' AND status_at > now() - interval '24 hours' GROUP BY district, street
), escalated AS (
    SELECT district, street, count(*) AS n,
           count(*) FILTER (WHERE reason IN ('ack_overdue', 'arrival_overdue', 'resolve_overdue')) AS missed
    FROM escalations WHERE at > now() - interval '24 hours' GROUP BY district, street
), met AS (
    SELECT i.district, i.street,
           count(*) FILTER (WHERE e.data->>'ack_on_time' = 'true')
         + count(*) FILTER (WHERE e.data->>'arrive_on_time' = 'true')
         + count(*) FILTER (WHERE e.data->>'resolve_on_time' = 'true') AS n
    FROM incident_events e JOIN incidents i USING (incident_id)
    WHERE e.at > now() - interval '24 hours' AND e.type IN ('acknowledged', 'en_route', 'on_scene', 'resolved', 'closed')
    GROUP BY i.district, i.street
)
SELECT s.district, s.street,
       coalesce(c.n, 0) AS incidents_24h,
       coalesce(d.n, 0) AS closed_24h,
       coalesce(x.n, 0) AS escalations_24h,
       coalesce(m.n, 0) AS sla_met_24h,
       coalesce(x.missed, 0) AS sla_missed_24h,
       CASE WHEN coalesce(m.n, 0) + coalesce(x.missed, 0) = 0 THEN NULL
            ELSE coalesce(m.n, 0)::double precision / (coalesce(m.n, 0) + coalesce(x.missed, 0)) END AS compliance_24h
FROM streets s
LEFT JOIN created c USING (district, street)
LEFT JOIN closed d USING (district, street)
LEFT JOIN escalated x USING (district, street)
LEFT JOIN met m USING (district, street);
