-- Every dispatch order issued to a field unit (assign and cancel), for the audit trail
-- and for "who was sent where" questions without replaying the topic.
CREATE TABLE dispatch_orders (
    order_id     text        NOT NULL,
    kind         text        NOT NULL,
    incident_id  text        NOT NULL,
    unit_id      text        NOT NULL,
    role         text        NOT NULL,
    agency       text        NOT NULL,
    category     text        NOT NULL,
    priority     integer     NOT NULL,
    eta_s        double precision,
    ack_by       timestamptz,
    issued_at    timestamptz NOT NULL,
    joint_with   text[]      NOT NULL DEFAULT '{}',
    written_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, kind)
);
CREATE INDEX dispatch_orders_incident ON dispatch_orders (incident_id);
CREATE INDEX dispatch_orders_unit ON dispatch_orders (unit_id, issued_at);
