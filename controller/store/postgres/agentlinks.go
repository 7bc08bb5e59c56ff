package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/jackc/pgx/v5"
	"strings"
	"time"

	"github.com/ferrumhq/ferrum/controller/node"
)

// UseToken records a used enrollment token ID until expires; false when it was used before.
// Expired rows are dropped on the way.
func (s *Store) UseToken(ctx context.Context, id string, expires time.Time) (bool, error) {
	var fresh bool
	err := s.writeq(ctx, "use token", func(tx dbq) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM used_tokens WHERE expires_at < ?", now().UnixMicro()); err != nil {
			return fmt.Errorf("postgres: use token: %w", err)
		}
		tag, err := tx.ExecContext(ctx, "INSERT INTO used_tokens (id, expires_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
			id, expires.UnixMicro())
		if err != nil {
			return fmt.Errorf("postgres: use token: %w", err)
		}
		fresh = tag.RowsAffected() == 1
		return nil
	})
	return fresh, err
}

// IsRevoked reports whether a certificate serial was revoked.
func (s *Store) IsRevoked(ctx context.Context, serial string) (bool, error) {
	var one int
	err := s.r().QueryRowContext(ctx, "SELECT 1 FROM revoked_certificates WHERE serial = ?", serial).Scan(&one)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("postgres: is revoked: %w", err)
	}
	return true, nil
}

// RevokeCertificate records serial as revoked; revoking twice keeps the first record.
func (s *Store) RevokeCertificate(ctx context.Context, serial, reason string) error {
	return s.writeq(ctx, "revoke certificate", func(tx dbq) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO revoked_certificates (serial, reason, revoked_at) VALUES (?, ?, ?)
			ON CONFLICT (serial) DO NOTHING`, serial, reason, now().UnixMicro())
		if err != nil {
			return fmt.Errorf("postgres: revoke certificate: %w", err)
		}
		return nil
	})
}

// UpdateAgentLinks merges each link into its node's record (node.AgentLink.Merge), in one
// transaction. Links of nodes that do not exist (deleted meanwhile) are skipped.
func (s *Store) UpdateAgentLinks(ctx context.Context, links []node.AgentLink) error {
	if len(links) == 0 {
		return nil
	}
	return s.writeq(ctx, "update agent links", func(tx dbq) error {
		for _, u := range links {
			var body string
			err := tx.QueryRowContext(ctx, "SELECT body FROM agent_links WHERE node_uuid = ?", u.NodeUUID).Scan(&body)
			var l node.AgentLink
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				l.NodeUUID = u.NodeUUID
			case err != nil:
				return fmt.Errorf("postgres: update agent link %s: %w", u.NodeUUID, err)
			default:
				if err := decodeJSON(body, &l); err != nil {
					return fmt.Errorf("postgres: decode agent link %s: %w", u.NodeUUID, err)
				}
			}
			l.Merge(u)
			if err := putAgentLink(ctx, tx, &l); err != nil {
				return err
			}
		}
		return nil
	})
}

func putAgentLink(ctx context.Context, tx dbq, l *node.AgentLink) error {
	for _, t := range []*time.Time{&l.TokenIssuedAt, &l.EnrolledAt, &l.ConnectedAt, &l.DisconnectedAt, &l.LastSeenAt, &l.CertNotAfter} {
		*t = utc(*t)
	}
	b, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("postgres: encode agent link %s: %w", l.NodeUUID, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO agent_links (node_uuid, connected_at, disconnected_at, body)
		SELECT ?::text, ?::bigint, ?::bigint, ?::text WHERE EXISTS (SELECT 1 FROM nodes WHERE uuid = ?)
		ON CONFLICT (node_uuid) DO UPDATE SET connected_at = excluded.connected_at,
			disconnected_at = excluded.disconnected_at, body = excluded.body`,
		l.NodeUUID, micros(l.ConnectedAt), micros(l.DisconnectedAt), string(b), l.NodeUUID)
	if err != nil {
		return fmt.Errorf("postgres: update agent link %s: %w", l.NodeUUID, err)
	}
	return nil
}

// CloseAgentLinks sets disconnected_at = at on every link recorded as connected.
func (s *Store) CloseAgentLinks(ctx context.Context, at time.Time) error {
	return s.writeq(ctx, "close agent links", func(tx dbq) error {
		rows, err := tx.QueryContext(ctx, `SELECT body FROM agent_links
			WHERE connected_at IS NOT NULL AND connected_at > coalesce(disconnected_at, 0)`)
		if err != nil {
			return fmt.Errorf("postgres: close agent links: %w", err)
		}
		var open []node.AgentLink
		for rows.Next() {
			var body string
			var l node.AgentLink
			if err := rows.Scan(&body); err != nil {
				rows.Close()
				return fmt.Errorf("postgres: close agent links: %w", err)
			}
			if err := decodeJSON(body, &l); err != nil {
				rows.Close()
				return fmt.Errorf("postgres: close agent links: %w", err)
			}
			open = append(open, l)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("postgres: close agent links: %w", err)
		}
		for i := range open {
			open[i].DisconnectedAt = at
			if err := putAgentLink(ctx, tx, &open[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// GetAgentLinks returns the links recorded for the given nodes; nodes without one are absent.
func (s *Store) GetAgentLinks(ctx context.Context, uuids []string) (map[string]*node.AgentLink, error) {
	out := make(map[string]*node.AgentLink, len(uuids))
	const chunk = 500
	for start := 0; start < len(uuids); start += chunk {
		part := uuids[start:min(start+chunk, len(uuids))]
		args := make([]any, len(part))
		for i, u := range part {
			args[i] = u
		}
		q := "SELECT body FROM agent_links WHERE node_uuid IN (?" + strings.Repeat(", ?", len(part)-1) + ")"
		rows, err := s.r().QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("postgres: get agent links: %w", err)
		}
		for rows.Next() {
			var body string
			l := new(node.AgentLink)
			if err := rows.Scan(&body); err != nil {
				rows.Close()
				return nil, fmt.Errorf("postgres: get agent links: %w", err)
			}
			if err := decodeJSON(body, l); err != nil {
				rows.Close()
				return nil, fmt.Errorf("postgres: decode agent link: %w", err)
			}
			out[l.NodeUUID] = l
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("postgres: get agent links: %w", err)
		}
	}
	return out, nil
}
