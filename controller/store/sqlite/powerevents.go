package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/ferrumhq/ferrum/controller/node"
)

const powerEventColumns = `id, node_uuid, instance_uuid, power_state, status, attempts, code, last_error,
	created_at, next_attempt, finished_at`

// enqueuePowerEvent supersedes the node's pending events for the same instance and appends ev.
func enqueuePowerEvent(ctx context.Context, tx *sql.Tx, ev *node.PowerEvent) error {
	t := now()
	if _, err := tx.ExecContext(ctx, `UPDATE power_events SET status = 'superseded', finished_at = ?
		WHERE node_uuid = ? AND instance_uuid = ? AND status = 'pending'`, t.UnixMicro(), ev.NodeUUID, ev.InstanceUUID); err != nil {
		return fmt.Errorf("sqlite: enqueue power event: %w", err)
	}
	ev.Status, ev.Attempts, ev.Code, ev.LastError, ev.CreatedAt, ev.NextAttempt, ev.FinishedAt =
		node.EventPending, 0, 0, "", t, t, time.Time{}
	err := tx.QueryRowContext(ctx, `INSERT INTO power_events (node_uuid, instance_uuid, power_state, status, created_at, next_attempt)
		VALUES (?, ?, ?, 'pending', ?, ?) RETURNING id`, ev.NodeUUID, ev.InstanceUUID, ev.PowerState, t.UnixMicro(), t.UnixMicro()).Scan(&ev.ID)
	if err != nil {
		return fmt.Errorf("sqlite: enqueue power event: %w", err)
	}
	return nil
}

func scanPowerEvent(sc scanner) (*node.PowerEvent, error) {
	var ev node.PowerEvent
	var created, next int64
	var finished sql.NullInt64
	if err := sc.Scan(&ev.ID, &ev.NodeUUID, &ev.InstanceUUID, &ev.PowerState, &ev.Status, &ev.Attempts, &ev.Code,
		&ev.LastError, &created, &next, &finished); err != nil {
		return nil, err
	}
	ev.CreatedAt, ev.NextAttempt, ev.FinishedAt = time.UnixMicro(created).UTC(), time.UnixMicro(next).UTC(), fromMicros(finished)
	return &ev, nil
}

func (s *Store) queryPowerEvents(ctx context.Context, what, query string, args ...any) ([]*node.PowerEvent, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	defer rows.Close()
	var out []*node.PowerEvent
	for rows.Next() {
		ev, err := scanPowerEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", what, err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return out, nil
}

// DuePowerEvents returns up to limit pending events that are the oldest pending event of
// their node and due at now, oldest first: a node's later events wait for its earlier ones.
func (s *Store) DuePowerEvents(ctx context.Context, now time.Time, limit int) ([]*node.PowerEvent, error) {
	return s.queryPowerEvents(ctx, "due power events", `SELECT `+powerEventColumns+` FROM power_events e
		WHERE status = 'pending' AND next_attempt <= ?
		  AND id = (SELECT min(id) FROM power_events h WHERE h.node_uuid = e.node_uuid AND h.status = 'pending')
		ORDER BY id LIMIT ?`, now.UnixMicro(), limit)
}

// UpdatePowerEvents records delivery outcomes: each event's status, attempts, code,
// last_error and next_attempt (finished_at is set for final statuses). An event superseded
// meanwhile stays superseded unless the outcome is final.
func (s *Store) UpdatePowerEvents(ctx context.Context, evs []*node.PowerEvent) error {
	if len(evs) == 0 {
		return nil
	}
	t := now()
	return s.write(ctx, "update power events", func(tx *sql.Tx) error {
		for _, ev := range evs {
			var err error
			if ev.Status == node.EventPending {
				_, err = tx.ExecContext(ctx, `UPDATE power_events SET attempts = ?, code = ?, last_error = ?, next_attempt = ?
					WHERE id = ? AND status = 'pending'`, ev.Attempts, ev.Code, ev.LastError, utc(ev.NextAttempt).UnixMicro(), ev.ID)
			} else {
				ev.FinishedAt = t
				_, err = tx.ExecContext(ctx, `UPDATE power_events SET status = ?, attempts = ?, code = ?, last_error = ?, finished_at = ?
					WHERE id = ?`, ev.Status, ev.Attempts, ev.Code, ev.LastError, t.UnixMicro(), ev.ID)
			}
			if err != nil {
				return fmt.Errorf("sqlite: update power event %d: %w", ev.ID, err)
			}
		}
		return nil
	})
}

// ListPowerEvents returns outbox rows, newest first.
func (s *Store) ListPowerEvents(ctx context.Context, q node.PowerEventQuery) ([]*node.PowerEvent, error) {
	var where []string
	var args []any
	if q.Status != "" {
		where = append(where, "status = ?")
		args = append(args, q.Status)
	}
	if q.NodeUUID != "" {
		where = append(where, "node_uuid = ?")
		args = append(args, q.NodeUUID)
	}
	query := `SELECT ` + powerEventColumns + ` FROM power_events`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	return s.queryPowerEvents(ctx, "list power events", query+" ORDER BY id DESC LIMIT ?", append(args, limit)...)
}

// PowerEventStats counts outbox rows by status.
func (s *Store) PowerEventStats(ctx context.Context) (node.PowerEventStats, error) {
	var st node.PowerEventStats
	rows, err := s.r.QueryContext(ctx, `SELECT status, count(*), min(created_at) FROM power_events GROUP BY status`)
	if err != nil {
		return st, fmt.Errorf("sqlite: power event stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var status string
		var n int
		var oldest int64 // one query: counts and the oldest pending agree
		if err := rows.Scan(&status, &n, &oldest); err != nil {
			return st, fmt.Errorf("sqlite: power event stats: %w", err)
		}
		switch status {
		case node.EventPending:
			st.Pending, st.OldestPending = n, time.UnixMicro(oldest).UTC()
		case node.EventDelivered:
			st.Delivered = n
		case node.EventFailed:
			st.Failed = n
		case node.EventSuperseded:
			st.Superseded = n
		}
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("sqlite: power event stats: %w", err)
	}
	return st, nil
}

// PrunePowerEvents deletes final events that became final before the given time.
func (s *Store) PrunePowerEvents(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.write(ctx, "prune power events", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM power_events WHERE status != 'pending' AND finished_at < ?`, utc(before).UnixMicro())
		if err != nil {
			return fmt.Errorf("sqlite: prune power events: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}
