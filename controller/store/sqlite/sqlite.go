// Package sqlite keeps the controller's state (nodes, ports, portgroups, allocations,
// conductors and node reservations) in one SQLite database file, for a single controller
// process. It uses the pure-Go driver modernc.org/sqlite, so the binary needs no cgo.
//
// The schema lives in migrations/*.sql, embedded and applied at Open. *Store satisfies
// conductor.Store; only the controller's wiring (controller/cmd) should construct one, and
// everything else should see it through that interface.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/rs/zerolog"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/ferrumhq/ferrum/controller/store/internal/nodecache"
)

// Config configures a Store.
type Config struct {
	// Path is the database file, created when missing; its directory must exist. The WAL
	// mode adds Path+"-wal" and Path+"-shm" next to it.
	Path string
	// Log receives the store's lifecycle messages. The zero value logs nothing, like
	// zerolog.Nop().
	Log zerolog.Logger
	// BusyTimeout is how long a write waits for the database's write lock while another
	// process holds it. Zero means DefaultBusyTimeout.
	BusyTimeout time.Duration
}

// DefaultBusyTimeout is the BusyTimeout used when Config leaves it zero.
const DefaultBusyTimeout = 5 * time.Second

func (c *Config) checkAndSetDefaults() error {
	switch {
	case c.Path == "":
		return errors.New("sqlite: Config.Path is required")
	case c.Path == ":memory:" || strings.HasPrefix(c.Path, "file:") || strings.ContainsRune(c.Path, '?'):
		// One database is opened through two connection pools, so it must be a plain file;
		// '?' would be read as the start of the driver's parameters.
		return fmt.Errorf("sqlite: Config.Path must be a plain file path, got %q", c.Path)
	case c.BusyTimeout < 0:
		return fmt.Errorf("sqlite: Config.BusyTimeout must not be negative, got %s", c.BusyTimeout)
	case c.BusyTimeout == 0:
		c.BusyTimeout = DefaultBusyTimeout
	}
	return nil
}

// Store is a conductor.Store backed by SQLite. Its methods are safe for concurrent use.
type Store struct {
	// w is the only connection that writes. Every write is one BEGIN IMMEDIATE transaction
	// on it, so writers of this process queue in database/sql instead of failing with
	// SQLITE_BUSY, and a read-then-write inside a transaction cannot race another writer.
	w *sql.DB
	// r serves reads. In WAL mode readers see the last commit and never block the writer.
	r     *sql.DB
	nodes nodecache.Cache // decoded node bodies
	log   zerolog.Logger
}

// Open opens (creating if needed) the database at cfg.Path and applies pending migrations.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.checkAndSetDefaults(); err != nil {
		return nil, err
	}
	s := &Store{log: cfg.Log.With().Str("component", "store").Str("path", cfg.Path).Logger()}
	busy := fmt.Sprintf("_pragma=busy_timeout(%d)", max(cfg.BusyTimeout.Milliseconds(), 1))

	// Durability: WAL with synchronous=FULL syncs the WAL on every commit, so a commit that
	// returned survives a kill -9 of the process and a power loss or kernel crash. NORMAL
	// would also survive a process crash but may drop the last commits on an OS crash;
	// a reservation or provision state silently rolled back is worse for a controller of
	// physical machines than one fsync per write.
	var err error
	s.w, err = sql.Open("sqlite", cfg.Path+"?"+strings.Join([]string{busy,
		"_pragma=journal_mode(WAL)", "_pragma=synchronous(FULL)", "_pragma=foreign_keys(1)",
		"_txlock=immediate"}, "&"))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)

	if err := s.migrate(ctx); err != nil {
		s.w.Close()
		return nil, err
	}

	// Readers open after migrate, so the file exists and is in WAL mode already.
	s.r, err = sql.Open("sqlite", cfg.Path+"?"+strings.Join([]string{busy,
		"_pragma=foreign_keys(1)", "_pragma=query_only(1)"}, "&"))
	if err != nil {
		s.w.Close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", cfg.Path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	s.r.SetMaxOpenConns(n)
	s.r.SetMaxIdleConns(n)
	if err := s.r.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", cfg.Path, err)
	}
	s.log.Info().Msg("store opened")
	return s, nil
}

// Close closes the database. Calls in flight finish first; later calls fail.
func (s *Store) Close() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	s.log.Info().Msg("store closed")
	return nil
}

// write runs fn in one write transaction and commits it when fn returns nil. Errors from fn
// are returned as they are (they carry the client-facing message); what fails around them is
// wrapped with what.
func (s *Store) write(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: %s: begin: %w", what, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: %s: commit: %w", what, err)
	}
	return nil
}

// queryer is what reads need; *sql.DB and *sql.Tx have it.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
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
func micros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

// fromMicros decodes a time column written by micros.
func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// nullString encodes an optional unique column: the empty string is NULL.
func nullString(s string) sql.NullString {
	return sql.NullString{String: s, Valid: s != ""}
}

// now is the store's clock, in the stored precision.
func now() time.Time { return utc(time.Now()) }
