-- Initial schema. Times are Unix microseconds (UTC); NULL stands for the zero time.
-- Unique columns hold NULL, not '', when the field is empty, so that many rows may leave them unset.

CREATE TABLE nodes (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                   TEXT    NOT NULL UNIQUE,
    name                   TEXT    UNIQUE,
    driver                 TEXT    NOT NULL,
    provision_state        TEXT    NOT NULL,
    target_provision_state TEXT    NOT NULL,
    power_state            TEXT    NOT NULL,
    maintenance            INTEGER NOT NULL,
    instance_uuid          TEXT    UNIQUE,
    conductor_group        TEXT    NOT NULL,
    resource_class         TEXT    NOT NULL,
    fault                  TEXT    NOT NULL,
    owner                  TEXT    NOT NULL,
    lessee                 TEXT    NOT NULL,
    chassis_uuid           TEXT    NOT NULL,
    shard                  TEXT    NOT NULL,
    retired                INTEGER NOT NULL,
    description            TEXT    NOT NULL,
    reservation            TEXT,
    reservation_expires    INTEGER,
    created_at             INTEGER,
    updated_at             INTEGER,
    provision_updated_at   INTEGER,
    -- The whole node.Node as JSON, without the reservation; the columns above are derived
    -- from the same struct when it is written.
    body                   TEXT    NOT NULL CHECK (json_valid(body))
) STRICT;

-- An index on one column also orders by rowid (id), which is the tie-breaker of every sort.
CREATE INDEX nodes_provision_state      ON nodes (provision_state);
CREATE INDEX nodes_driver               ON nodes (driver);
CREATE INDEX nodes_power_state          ON nodes (power_state);
CREATE INDEX nodes_maintenance          ON nodes (maintenance);
CREATE INDEX nodes_conductor_group      ON nodes (conductor_group);
CREATE INDEX nodes_resource_class       ON nodes (resource_class);
CREATE INDEX nodes_owner                ON nodes (owner);
CREATE INDEX nodes_lessee               ON nodes (lessee);
CREATE INDEX nodes_chassis_uuid         ON nodes (chassis_uuid);
CREATE INDEX nodes_shard                ON nodes (shard);
CREATE INDEX nodes_reservation          ON nodes (reservation);
CREATE INDEX nodes_created_at           ON nodes (created_at);
CREATE INDEX nodes_updated_at           ON nodes (updated_at);
CREATE INDEX nodes_provision_updated_at ON nodes (provision_updated_at);

CREATE TABLE portgroups (
    id                         INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                       TEXT    NOT NULL UNIQUE,
    node_uuid                  TEXT    NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
    name                       TEXT    UNIQUE,
    address                    TEXT    UNIQUE, -- lower-case MAC
    mode                       TEXT    NOT NULL,
    properties                 TEXT    NOT NULL,
    extra                      TEXT    NOT NULL,
    internal_info              TEXT    NOT NULL,
    standalone_ports_supported INTEGER NOT NULL,
    created_at                 INTEGER,
    updated_at                 INTEGER
) STRICT;

CREATE INDEX portgroups_node_uuid  ON portgroups (node_uuid);
CREATE INDEX portgroups_created_at ON portgroups (created_at);
CREATE INDEX portgroups_updated_at ON portgroups (updated_at);

CREATE TABLE ports (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                  TEXT    NOT NULL UNIQUE,
    node_uuid             TEXT    NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
    address               TEXT    UNIQUE, -- lower-case MAC
    portgroup_uuid        TEXT    REFERENCES portgroups (uuid),
    name                  TEXT    UNIQUE,
    pxe_enabled           INTEGER NOT NULL,
    local_link_connection TEXT    NOT NULL,
    physical_network      TEXT    NOT NULL,
    extra                 TEXT    NOT NULL,
    internal_info         TEXT    NOT NULL,
    is_smartnic           INTEGER NOT NULL,
    created_at            INTEGER,
    updated_at            INTEGER
) STRICT;

CREATE INDEX ports_node_uuid      ON ports (node_uuid);
CREATE INDEX ports_portgroup_uuid ON ports (portgroup_uuid);
CREATE INDEX ports_created_at     ON ports (created_at);
CREATE INDEX ports_updated_at     ON ports (updated_at);

CREATE TABLE allocations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid            TEXT    NOT NULL UNIQUE,
    name            TEXT    UNIQUE,
    node_uuid       TEXT    NOT NULL,
    resource_class  TEXT    NOT NULL,
    traits          TEXT    NOT NULL,
    candidate_nodes TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    last_error      TEXT    NOT NULL,
    extra           TEXT    NOT NULL,
    owner           TEXT    NOT NULL,
    created_at      INTEGER,
    updated_at      INTEGER
) STRICT;

CREATE INDEX allocations_node_uuid      ON allocations (node_uuid);
CREATE INDEX allocations_state          ON allocations (state);
CREATE INDEX allocations_owner          ON allocations (owner);
CREATE INDEX allocations_resource_class ON allocations (resource_class);
CREATE INDEX allocations_created_at     ON allocations (created_at);
CREATE INDEX allocations_updated_at     ON allocations (updated_at);

CREATE TABLE conductors (
    hostname        TEXT    PRIMARY KEY,
    conductor_group TEXT    NOT NULL,
    drivers         TEXT    NOT NULL,
    online          INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
