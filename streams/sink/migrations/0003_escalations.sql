-- Every SLA breach escalated (限时办结): one row per incident, level and reason.
CREATE TABLE escalations (
    escalation_id text PRIMARY KEY,
    incident_id   text        NOT NULL,
    level         integer     NOT NULL,
    reason        text        NOT NULL,
    deadline      timestamptz NOT NULL,
    at            timestamptz NOT NULL,
    district      text        NOT NULL,
    street        text        NOT NULL,
    category      text        NOT NULL,
    written_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX escalations_incident ON escalations (incident_id);
CREATE INDEX escalations_street ON escalations (district, street, at);
