package sqlite

import (
	"errors"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// uniqueViolation returns the "table.column" a UNIQUE or PRIMARY KEY constraint failed on,
// or "" when err is not such a violation.
func uniqueViolation(err error) string {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return ""
	}
	if e.Code() != sqlite3.SQLITE_CONSTRAINT_UNIQUE && e.Code() != sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
		return ""
	}
	// The message ends "UNIQUE constraint failed: nodes.name (2067)".
	msg := e.Error()
	i := strings.LastIndex(msg, "constraint failed: ")
	if i < 0 {
		return ""
	}
	col, _, _ := strings.Cut(msg[i+len("constraint failed: "):], " ")
	col, _, _ = strings.Cut(col, ",")
	return col
}

// isForeignKeyViolation reports whether err is a failed FOREIGN KEY constraint.
func isForeignKeyViolation(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}
