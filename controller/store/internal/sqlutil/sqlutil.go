// Package sqlutil holds the SQL-dialect-independent pieces both store implementations
// (store/sqlite, store/postgres) use: the WHERE clause builder, the JSON column codecs and
// the migration file loader.
// Only those packages import it.
package sqlutil

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Where collects AND-ed conditions and their arguments; conditions use ? placeholders
// (store/postgres rebinds them to $n).
type Where struct {
	Conds []string
	Args  []any
}

// Add adds a condition with its arguments.
func (w *Where) Add(cond string, args ...any) {
	w.Conds = append(w.Conds, cond)
	w.Args = append(w.Args, args...)
}

// Eq adds "col = v" unless v is empty (no filter).
func (w *Where) Eq(col, v string) {
	if v != "" {
		w.Add(col+" = ?", v)
	}
}

// Flag adds "col = v" when v is set.
func (w *Where) Flag(col string, v *bool) {
	if v != nil {
		w.Add(col+" = ?", *v)
	}
}

// String is the WHERE clause, or "" without conditions.
func (w *Where) String() string {
	if len(w.Conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.Conds, " AND ")
}

// JSONObject encodes a map column; nil is stored as {}.
func JSONObject(m map[string]any) (string, error) {
	if m == nil {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	return string(b), err
}

// JSONList encodes a list column; nil is stored as [].
func JSONList(l []string) (string, error) {
	if l == nil {
		return "[]", nil
	}
	b, err := json.Marshal(l)
	return string(b), err
}

// JSONObjects encodes several map columns at once.
func JSONObjects(ms ...map[string]any) ([]string, error) {
	out := make([]string, len(ms))
	for i, m := range ms {
		var err error
		if out[i], err = JSONObject(m); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DecodeJSON decodes column text into dst, a pointer.
func DecodeJSON(text string, dst any) error {
	return json.Unmarshal([]byte(text), dst)
}

// Migration is one schema migration file, NNNN_what.sql.
type Migration struct {
	Version int
	Name    string // file name without .sql
	SQL     string
}

// LoadMigrations reads migrations/*.sql from fsys, sorted by version; a name not in the
// NNNN_what.sql form, or two files with one version, is an error.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	files, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".sql")
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_what.sql", f)
		}
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s share a version", ms[i-1].Name, ms[i].Name)
		}
	}
	return ms, nil
}
