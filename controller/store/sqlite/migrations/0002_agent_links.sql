-- The agent link: enrollment tokens already used (by ID, never the token), revoked agent
-- certificate serials, and what is known of each node's agent (boot-path timestamps, latest
-- session) as a node.AgentLink JSON body.

CREATE TABLE used_tokens (
    id         TEXT    PRIMARY KEY,
    expires_at INTEGER NOT NULL -- the row may go once the token could no longer be accepted
) STRICT;

CREATE INDEX used_tokens_expires_at ON used_tokens (expires_at);

CREATE TABLE revoked_certificates (
    serial     TEXT    PRIMARY KEY,
    reason     TEXT    NOT NULL,
    revoked_at INTEGER NOT NULL
) STRICT;

CREATE TABLE agent_links (
    node_uuid       TEXT    PRIMARY KEY REFERENCES nodes (uuid) ON DELETE CASCADE,
    connected_at    INTEGER,
    disconnected_at INTEGER,
    body            TEXT    NOT NULL CHECK (json_valid(body))
) STRICT;
