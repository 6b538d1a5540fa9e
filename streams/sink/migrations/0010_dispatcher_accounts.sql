-- The command API's dispatcher accounts (streams/gateway/accounts.py; `patrol accounts add/disable`): argon2id
-- password hashes only. An account is disabled, never deleted, so that every name in the audit trail's `by`
-- stays the name of an account.
CREATE TABLE dispatcher_accounts (
    name          text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._@-]{1,128}$'),
    role          text        NOT NULL CHECK (role IN ('dispatcher', 'supervisor')),
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);

-- The command centre's action list: each escalation of an incident still open that no dispatcher has acknowledged,
-- with its level, the deadline it ran past, and the unit(s) concerned (the unit that let an order lapse, else the
-- units holding the incident's orders).
CREATE VIEW v_open_escalations AS
SELECT e.escalation_id, e.incident_id, e.level, e.reason, e.deadline AS due, e.at AS escalated_at,
       e.district, e.street, e.category, i.status, i.priority,
       coalesce(x.data->>'unit_id', u.units[1]) AS unit_id,
       coalesce(u.units, '{}') AS units
FROM escalations e
JOIN incidents i USING (incident_id)
LEFT JOIN incident_events x
       ON x.incident_id = e.incident_id AND x.type = 'escalated' AND x.data->>'escalation_id' = e.escalation_id
LEFT JOIN LATERAL (
    SELECT array_agg(o.unit_id ORDER BY o.issued_at, o.unit_id) AS units
    FROM dispatch_orders o
    WHERE o.incident_id = e.incident_id AND o.kind = 'assign'
      AND NOT EXISTS (SELECT 1 FROM dispatch_orders c WHERE c.order_id = o.order_id AND c.kind = 'cancel')
) u ON true
WHERE i.status NOT IN ('closed', 'cancelled')
  AND NOT EXISTS (SELECT 1 FROM incident_events a
                  WHERE a.incident_id = e.incident_id AND a.type = 'escalation_acknowledged'
                    AND a.data->>'escalation_id' = e.escalation_id);

-- Verification and closure (核查结案) per street over 24 hours: closures verified by the complainant, closed
-- unverified when the window ran out, closed by a supervisor's command, and reopened as not resolved.
CREATE VIEW v_street_verification AS
SELECT i.district, i.street,
       count(*) FILTER (WHERE e.type = 'closed' AND e.data->>'verification' = 'verified') AS verified_24h,
       count(*) FILTER (WHERE e.type = 'closed' AND e.data->>'verification' = 'unverified') AS unverified_24h,
       count(*) FILTER (WHERE e.type = 'closed' AND e.data->>'verification' = 'closed_by_command') AS closed_by_command_24h,
       count(*) FILTER (WHERE e.type = 'reopened') AS reopened_24h,
       count(*) FILTER (WHERE e.type = 'awaiting_verification') AS awaiting_24h
FROM incident_events e JOIN incidents i USING (incident_id)
WHERE e.at > now() - interval '24 hours' AND e.type IN ('closed', 'reopened', 'awaiting_verification')
GROUP BY i.district, i.street;

-- A command's outcome is read by its id (GET /command/v1/commands/{command_id}): the events it caused.
CREATE INDEX incident_events_command ON incident_events ((data->>'command_id')) WHERE data ? 'command_id';
