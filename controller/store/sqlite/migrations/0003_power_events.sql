-- The power-change outbox: Nova power-update events written in the same transaction as the
-- node's new power state and delivered per node in id order (see node.PowerEvent). No
-- foreign key to nodes: an event outlives a node deleted after its power changed.

CREATE TABLE power_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    node_uuid     TEXT    NOT NULL,
    instance_uuid TEXT    NOT NULL,
    power_state   TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'superseded')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    code          INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    next_attempt  INTEGER NOT NULL,
    finished_at   INTEGER
) STRICT;

-- Pending events by node in order (the head of each node's queue), and final ones by age.
CREATE INDEX power_events_pending ON power_events (node_uuid, id) WHERE status = 'pending';
CREATE INDEX power_events_status ON power_events (status, id);
