package postgres

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
)

// outboxLockKey is the advisory lock that makes one controller the deliverer of the power
// event outbox (controller/nova), so that a node's events go out one at a time and in order.
const outboxLockKey int64 = 0x6665727275_6d01 // "ferrum" + 1

// outboxLease is the connection holding the advisory lock: the lock lives as long as that
// session, so a controller that dies gives it up with its connection.
type outboxLease struct {
	mu   sync.Mutex
	conn *pgxpool.Conn
}

// HoldOutboxLease takes the outbox delivery lease, or confirms this store still holds it;
// false when another controller holds it.
func (s *Store) HoldOutboxLease(ctx context.Context) (bool, error) {
	l := &s.lease
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		if err := l.conn.Ping(ctx); err == nil {
			return true, nil
		}
		// The session (and with it the lock) is gone: take it again below if it is free.
		l.conn.Conn().Close(context.Background())
		l.conn.Release()
		l.conn = nil
	}
	c, err := s.db.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("postgres: outbox lease: %w", err)
	}
	var ok bool
	if err := c.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", outboxLockKey).Scan(&ok); err != nil {
		c.Release()
		return false, fmt.Errorf("postgres: outbox lease: %w", err)
	}
	if !ok {
		c.Release()
		return false, nil
	}
	l.conn = c
	s.log.Info().Msg("this controller now delivers the power event outbox")
	return true, nil
}

// ReleaseOutboxLease gives the lease up (Close does too).
func (s *Store) ReleaseOutboxLease(ctx context.Context) error {
	l := &s.lease
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil
	}
	_, err := l.conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", outboxLockKey)
	if err != nil {
		l.conn.Conn().Close(context.Background()) // closing the session drops the lock
	}
	l.conn.Release()
	l.conn = nil
	if err != nil {
		return fmt.Errorf("postgres: release outbox lease: %w", err)
	}
	return nil
}
