-- Initial schema, the same tables as store/sqlite's 0001. Times are Unix microseconds (UTC);
-- NULL stands for the zero time. Unique columns hold NULL, not '', when the field is empty.
-- Sorted text columns use the "C" collation: byte order, as SQLite sorts, whatever the
-- database's locale.

CREATE TABLE nodes (
    id                     BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid                   TEXT    COLLATE "C" NOT NULL UNIQUE,
    name                   TEXT    COLLATE "C" UNIQUE,
    driver                 TEXT    COLLATE "C" NOT NULL,
    provision_state        TEXT    COLLATE "C" NOT NULL,
    target_provision_state TEXT    COLLATE "C" NOT NULL,
    power_state            TEXT    COLLATE "C" NOT NULL,
    maintenance            BOOLEAN NOT NULL,
    instance_uuid          TEXT    COLLATE "C" UNIQUE,
    conductor_group        TEXT    COLLATE "C" NOT NULL,
    resource_class         TEXT    COLLATE "C" NOT NULL,
    fault                  TEXT    COLLATE "C" NOT NULL,
    owner                  TEXT    COLLATE "C" NOT NULL,
    lessee                 TEXT    COLLATE "C" NOT NULL,
    chassis_uuid           TEXT    COLLATE "C" NOT NULL,
    shard                  TEXT    COLLATE "C" NOT NULL,
    retired                BOOLEAN NOT NULL,
    description            TEXT    NOT NULL,
    reservation            TEXT    COLLATE "C",
    reservation_expires    BIGINT,
    created_at             BIGINT,
    updated_at             BIGINT,
    provision_updated_at   BIGINT,
    -- The whole node.Node as JSON text, without the reservation; the columns above are
    -- derived from the same struct when it is written.
    body                   TEXT    NOT NULL
);

CREATE INDEX nodes_provision_state      ON nodes (provision_state, id);
CREATE INDEX nodes_driver               ON nodes (driver, id);
CREATE INDEX nodes_power_state          ON nodes (power_state, id);
CREATE INDEX nodes_maintenance          ON nodes (maintenance, id);
CREATE INDEX nodes_conductor_group      ON nodes (conductor_group, id);
CREATE INDEX nodes_resource_class       ON nodes (resource_class, id);
CREATE INDEX nodes_owner                ON nodes (owner, id);
CREATE INDEX nodes_lessee               ON nodes (lessee, id);
CREATE INDEX nodes_chassis_uuid         ON nodes (chassis_uuid, id);
CREATE INDEX nodes_shard                ON nodes (shard, id);
CREATE INDEX nodes_reservation          ON nodes (reservation);
CREATE INDEX nodes_created_at           ON nodes (created_at, id);
CREATE INDEX nodes_updated_at           ON nodes (updated_at, id);
CREATE INDEX nodes_provision_updated_at ON nodes (provision_updated_at, id);

CREATE TABLE portgroups (
    id                         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid                       TEXT    COLLATE "C" NOT NULL UNIQUE,
    node_uuid                  TEXT    COLLATE "C" NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
    name                       TEXT    COLLATE "C" UNIQUE,
    address                    TEXT    COLLATE "C" UNIQUE, -- lower-case MAC
    mode                       TEXT    NOT NULL,
    properties                 TEXT    NOT NULL,
    extra                      TEXT    NOT NULL,
    internal_info              TEXT    NOT NULL,
    standalone_ports_supported BOOLEAN NOT NULL,
    created_at                 BIGINT,
    updated_at                 BIGINT
);

CREATE INDEX portgroups_node_uuid  ON portgroups (node_uuid);
CREATE INDEX portgroups_created_at ON portgroups (created_at, id);
CREATE INDEX portgroups_updated_at ON portgroups (updated_at, id);

CREATE TABLE ports (
    id                    BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid                  TEXT    COLLATE "C" NOT NULL UNIQUE,
    node_uuid             TEXT    COLLATE "C" NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
    address               TEXT    COLLATE "C" UNIQUE, -- lower-case MAC
    portgroup_uuid        TEXT    COLLATE "C" REFERENCES portgroups (uuid),
    name                  TEXT    COLLATE "C" UNIQUE,
    pxe_enabled           BOOLEAN NOT NULL,
    local_link_connection TEXT    NOT NULL,
    physical_network      TEXT    NOT NULL,
    extra                 TEXT    NOT NULL,
    internal_info         TEXT    NOT NULL,
    is_smartnic           BOOLEAN NOT NULL,
    created_at            BIGINT,
    updated_at            BIGINT
);

CREATE INDEX ports_node_uuid      ON ports (node_uuid);
CREATE INDEX ports_portgroup_uuid ON ports (portgroup_uuid);
CREATE INDEX ports_created_at     ON ports (created_at, id);
CREATE INDEX ports_updated_at     ON ports (updated_at, id);

CREATE TABLE allocations (
    id              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid            TEXT    COLLATE "C" NOT NULL UNIQUE,
    name            TEXT    COLLATE "C" UNIQUE,
    node_uuid       TEXT    COLLATE "C" NOT NULL,
    resource_class  TEXT    COLLATE "C" NOT NULL,
    traits          TEXT    NOT NULL,
    candidate_nodes TEXT    NOT NULL,
    state           TEXT    COLLATE "C" NOT NULL,
    last_error      TEXT    NOT NULL,
    extra           TEXT    NOT NULL,
    owner           TEXT    COLLATE "C" NOT NULL,
    created_at      BIGINT,
    updated_at      BIGINT
);

CREATE INDEX allocations_node_uuid      ON allocations (node_uuid);
CREATE INDEX allocations_state          ON allocations (state);
CREATE INDEX allocations_owner          ON allocations (owner);
CREATE INDEX allocations_resource_class ON allocations (resource_class);
CREATE INDEX allocations_created_at     ON allocations (created_at, id);
CREATE INDEX allocations_updated_at     ON allocations (updated_at, id);

CREATE TABLE conductors (
    hostname        TEXT    COLLATE "C" PRIMARY KEY,
    conductor_group TEXT    NOT NULL,
    drivers         TEXT    NOT NULL,
    online          BOOLEAN NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
