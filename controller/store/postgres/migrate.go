package postgres

import (
	"context"
	"embed"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferrumhq/ferrum/controller/store/internal/sqlutil"
)

// Migrations are files named NNNN_what.sql, applied once each in the order of NNNN. A
// released migration is never edited; a change to the schema is a new file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

type migration = sqlutil.Migration

func loadMigrations() ([]migration, error) { return sqlutil.LoadMigrations(migrationFS) }

// migrateLock is the advisory lock key that serializes migrations of controllers starting
// together on one database ("ferrum" in ASCII).
const migrateLock = 0x66657272756d

// migrate applies the migrations not yet recorded in schema_migrations, all in one
// transaction (PostgreSQL's DDL is transactional): the schema is either fully upgraded or
// left as it was.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return s.write(ctx, "migrate", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrateLock)); err != nil {
			return fmt.Errorf("postgres: migrate: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at BIGINT  NOT NULL
		)`); err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
		vs, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
		applied := map[int]bool{}
		for _, v := range vs {
			applied[int(v)] = true
		}
		known := map[int]bool{}
		for _, m := range ms {
			known[m.Version] = true
		}
		for v := range applied {
			if !known[v] {
				return fmt.Errorf("postgres: database has schema migration %d that this binary does not know: it was written by a newer Ferrum", v)
			}
		}
		for _, m := range ms {
			if applied[m.Version] {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("postgres: migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.Version, m.Name, time.Now().UnixMicro()); err != nil {
				return fmt.Errorf("postgres: migration %s: %w", m.Name, err)
			}
			s.log.Info().Int("version", m.Version).Str("migration", m.Name).Msg("schema migrated")
		}
		return nil
	})
}
