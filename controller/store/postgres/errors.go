package postgres

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// uniqueViolation returns the "table.column" a UNIQUE or PRIMARY KEY constraint failed on,
// or "" when err is not such a violation. PostgreSQL names a column's unique constraint
// TABLE_COLUMN_key (and the primary key TABLE_pkey); no table here has "_" in its name.
func uniqueViolation(err error) string {
	var e *pgconn.PgError
	if !errors.As(err, &e) || e.Code != "23505" {
		return ""
	}
	name := strings.TrimSuffix(strings.TrimSuffix(e.ConstraintName, "_key"), "_pkey")
	table, col, ok := strings.Cut(name, "_")
	if !ok {
		return ""
	}
	return table + "." + col
}

// isForeignKeyViolation reports whether err is a failed FOREIGN KEY constraint.
func isForeignKeyViolation(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23503"
}
