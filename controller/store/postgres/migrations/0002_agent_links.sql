-- The agent link, as store/sqlite's 0002: enrollment tokens already used (by ID, never the
-- token), revoked agent certificate serials, and each node's agent record as JSON.

CREATE TABLE used_tokens (
    id         TEXT   PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

CREATE INDEX used_tokens_expires_at ON used_tokens (expires_at);

CREATE TABLE revoked_certificates (
    serial     TEXT   PRIMARY KEY,
    reason     TEXT   NOT NULL,
    revoked_at BIGINT NOT NULL
);

CREATE TABLE agent_links (
    node_uuid       TEXT   COLLATE "C" PRIMARY KEY REFERENCES nodes (uuid) ON DELETE CASCADE,
    connected_at    BIGINT,
    disconnected_at BIGINT,
    body            TEXT   NOT NULL
);
