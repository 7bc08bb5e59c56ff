package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/controller/store/internal/sqlutil"
)

// where is the shared WHERE builder (store/internal/sqlutil).
type where = sqlutil.Where

// listSpec describes how one table is listed: which sort keys it accepts and which of their
// columns may hold NULL.
type listSpec struct {
	table string
	kind  string          // for "<kind> <marker> could not be found."
	keys  map[string]bool // sort key (= column) → nullable
}

// page validates p, adds the keyset condition for p.Marker to w and returns the ORDER BY and
// LIMIT clauses.
//
// Rows are ordered by (sort column, id), both in the requested direction. NULL sorts first
// ascending and last descending (SQLite's rule); empty unique fields are NULL. The marker's own
// (value, id) is read once and the next page starts strictly after it, so a page boundary
// inside a run of equal values neither repeats nor skips rows.
func (s *Store) page(ctx context.Context, spec listSpec, p node.Page, w *where) (string, error) {
	key := p.SortKey
	if key == "" {
		key = "id"
	}
	nullable, ok := spec.keys[key]
	if !ok {
		return "", node.Errorf(node.ErrInvalid, "The sort_key value \"%s\" is an invalid field for sorting", key)
	}
	dir := p.SortDir
	switch dir {
	case "":
		dir = "asc"
	case "asc", "desc":
	default:
		return "", node.Errorf(node.ErrInvalid, "Invalid sort direction: %s. Acceptable values are 'asc' or 'desc'", dir)
	}
	if p.Limit < 0 {
		return "", node.Errorf(node.ErrInvalid, "Limit must be positive")
	}

	if p.Marker != "" {
		if !isUUID(p.Marker) {
			return "", node.Errorf(node.ErrInvalid, "Expected UUID for marker: %s", p.Marker)
		}
		var v any
		var id int64
		err := s.r.QueryRowContext(ctx, "SELECT "+key+", id FROM "+spec.table+" WHERE uuid = ?", p.Marker).Scan(&v, &id)
		if errors.Is(err, sql.ErrNoRows) {
			return "", node.NotFound(spec.kind, p.Marker)
		}
		if err != nil {
			return "", fmt.Errorf("sqlite: list %s: marker: %w", spec.table, err)
		}
		switch {
		case key == "id" && dir == "asc":
			w.Add("id > ?", id)
		case key == "id":
			w.Add("id < ?", id)
		case dir == "asc" && v == nil:
			w.Add("("+key+" IS NULL AND id > ? OR "+key+" IS NOT NULL)", id)
		case dir == "asc":
			w.Add("("+key+", id) > (?, ?)", v, id)
		case v == nil:
			w.Add(key+" IS NULL AND id < ?", id)
		case nullable:
			w.Add("(("+key+", id) < (?, ?) OR "+key+" IS NULL)", v, id)
		default:
			w.Add("("+key+", id) < (?, ?)", v, id)
		}
	}

	clause := " ORDER BY " + key + " " + dir
	if key != "id" {
		clause += ", id " + dir
	}
	if p.Limit > 0 {
		clause += fmt.Sprintf(" LIMIT %d", p.Limit)
	}
	return clause, nil
}

// sortKeys maps each key to whether its column may be NULL (see migrations).
func sortKeys(keys []string, nullable ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = slices.Contains(nullable, k)
	}
	return m
}
