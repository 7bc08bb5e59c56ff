package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"time"

	"github.com/ferrumhq/ferrum/controller/store/internal/sqlutil"
)

// Migrations are files named NNNN_what.sql, applied once each in the order of NNNN. A
// released migration is never edited; a change to the schema is a new file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

type migration = sqlutil.Migration

func loadMigrations() ([]migration, error) { return sqlutil.LoadMigrations(migrationFS) }

// migrate applies the migrations not yet recorded in schema_migrations, all in one
// transaction: the schema is either fully upgraded or left as it was.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return s.write(ctx, "migrate", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at INTEGER NOT NULL
		) STRICT`); err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		applied := map[int]bool{}
		rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: migrate: %w", err)
			}
			applied[v] = true
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		known := map[int]bool{}
		for _, m := range ms {
			known[m.Version] = true
		}
		for v := range applied {
			if !known[v] {
				return fmt.Errorf("sqlite: database has schema migration %d that this binary does not know: it was written by a newer Ferrum", v)
			}
		}
		// Each migration is applied unless recorded, so one that lands with a lower number
		// than an already applied one (parallel development) is still applied.
		for _, m := range ms {
			if applied[m.Version] {
				continue
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("sqlite: migration %s: %w", m.Name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, time.Now().UnixMicro()); err != nil {
				return fmt.Errorf("sqlite: migration %s: %w", m.Name, err)
			}
			s.log.Info().Int("version", m.Version).Str("migration", m.Name).Msg("schema migrated")
		}
		return nil
	})
}
