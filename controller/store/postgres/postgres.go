// Package postgres keeps the controller's state (nodes, ports, portgroups, allocations,
// conductors, node reservations, agent links and the power event outbox) in PostgreSQL,
// through jackc/pgx. Several controllers may share one database: reservations are taken with
// one conditional UPDATE each, so exactly one holder wins, and the conductors table carries
// every controller's heartbeat.
//
// It behaves as store/sqlite does (store/storetest is the conformance suite both pass). The
// schema lives in migrations/*.sql, embedded and applied at Open under an advisory lock, so
// controllers starting together migrate once. *Store satisfies conductor.Store; only the
// controller's wiring (controller/cmd) should construct one.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/store/internal/nodecache"
)

// Config configures a Store.
type Config struct {
	// DSN is a postgres:// URL or a "key=value" connection string (libpq's syntax).
	DSN string
	// Log receives the store's lifecycle messages; the zero value logs nothing.
	Log zerolog.Logger
	// MaxConns bounds the connection pool; zero means DefaultMaxConns.
	MaxConns int
}

// DefaultMaxConns is the pool size used when Config leaves MaxConns zero.
const DefaultMaxConns = 32

func (c *Config) checkAndSetDefaults() error {
	switch {
	case c.DSN == "":
		return errors.New("postgres: Config.DSN is required")
	case c.MaxConns < 0:
		return fmt.Errorf("postgres: Config.MaxConns must not be negative, got %d", c.MaxConns)
	case c.MaxConns == 0:
		c.MaxConns = DefaultMaxConns
	}
	return nil
}

// Store is a conductor.Store backed by PostgreSQL. Its methods are safe for concurrent use.
type Store struct {
	db    *pgxpool.Pool
	nodes nodecache.Cache
	log   zerolog.Logger
	lease outboxLease // see HoldOutboxLease
}

// Open connects to the database in cfg.DSN and applies pending migrations.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.checkAndSetDefaults(); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// The parse error may quote the DSN, password included: do not wrap it.
		return nil, errors.New("postgres: Config.DSN is not a valid connection string")
	}
	pc.MaxConns = int32(cfg.MaxConns)
	s := &Store{log: cfg.Log.With().Str("component", "store").Str("database", pc.ConnConfig.Database).
		Str("db_host", pc.ConnConfig.Host).Logger()}
	s.db, err = pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := s.db.Ping(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	s.log.Info().Msg("store opened")
	return s, nil
}

// Close closes the pool, waiting for connections in use to be released.
func (s *Store) Close() error {
	s.ReleaseOutboxLease(context.Background())
	s.db.Close()
	s.log.Info().Msg("store closed")
	return nil
}

// rebind turns the ? placeholders of a query into PostgreSQL's $1, $2, … (no query here has
// a literal question mark).
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// querier is what reads and writes need; the pool and a transaction have it.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// write runs fn in one transaction and commits it when fn returns nil. Errors from fn are
// returned as they are; what fails around them is wrapped with what.
func (s *Store) write(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: %s: begin: %w", what, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: %s: commit: %w", what, err)
	}
	return nil
}

// isUUID reports whether s has the 8-4-4-4-12 hex form; idents in that form are looked up
// by uuid, others by name.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// utc is t as stored: UTC, microsecond precision; the zero time stays zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// micros encodes a time column; the zero time is NULL.
func micros(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	v := t.UnixMicro()
	return &v
}

// fromMicros decodes a time column written by micros.
func fromMicros(v *int64) time.Time {
	if v == nil {
		return time.Time{}
	}
	return time.UnixMicro(*v).UTC()
}

// nullString encodes an optional unique column: the empty string is NULL.
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// now is the store's clock, in the stored precision.
func now() time.Time { return utc(time.Now()) }

// dbq runs queries written with ? placeholders (as store/sqlite's) on a pool or transaction.
type dbq struct{ q querier }

func (d dbq) QueryRowContext(ctx context.Context, query string, args ...any) pgx.Row {
	return d.q.QueryRow(ctx, rebind(query), args...)
}

func (d dbq) QueryContext(ctx context.Context, query string, args ...any) (pgx.Rows, error) {
	return d.q.Query(ctx, rebind(query), args...)
}

func (d dbq) ExecContext(ctx context.Context, query string, args ...any) (pgconn.CommandTag, error) {
	return d.q.Exec(ctx, rebind(query), args...)
}

// writeq is write for functions written against dbq.
func (s *Store) writeq(ctx context.Context, what string, fn func(tx dbq) error) error {
	return s.write(ctx, what, func(tx pgx.Tx) error { return fn(dbq{tx}) })
}

// r reads outside a transaction.
func (s *Store) r() dbq { return dbq{s.db} }
