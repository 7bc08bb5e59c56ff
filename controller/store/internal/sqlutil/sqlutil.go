// Package sqlutil holds the SQL-dialect-independent pieces both store implementations
// (store/sqlite, store/postgres) use: the WHERE clause builder and the JSON column codecs.
// Only those packages import it.
package sqlutil

import (
	"encoding/json"
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
