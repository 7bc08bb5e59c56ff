-- The power-change outbox, as store/sqlite's 0003 (see node.PowerEvent). No foreign key to
-- nodes: an event outlives a node deleted after its power changed.

CREATE TABLE power_events (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node_uuid     TEXT    NOT NULL,
    instance_uuid TEXT    NOT NULL,
    power_state   TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'superseded')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    code          INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT    NOT NULL DEFAULT '',
    created_at    BIGINT  NOT NULL,
    next_attempt  BIGINT  NOT NULL,
    finished_at   BIGINT
);

CREATE INDEX power_events_pending ON power_events (node_uuid, id) WHERE status = 'pending';
CREATE INDEX power_events_status ON power_events (status, id);
