package sqlutil

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func TestWhere(t *testing.T) {
	var w Where
	if w.String() != "" {
		t.Errorf("empty Where = %q", w.String())
	}
	on := true
	w.Eq("name", "")
	w.Eq("driver", "ipmi")
	w.Flag("maintenance", nil)
	w.Flag("maintenance", &on)
	w.Add("instr(description, ?) > 0", "x")
	if got, want := w.String(), " WHERE driver = ? AND maintenance = ? AND instr(description, ?) > 0"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if diff := cmp.Diff([]any{"ipmi", true, "x"}, w.Args); diff != "" {
		t.Errorf("Args (-want +got):\n%s", diff)
	}
}

func TestLoadMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	ms, err := LoadMigrations(fstest.MapFS{"migrations/0002_b.sql": file("B"), "migrations/0001_a.sql": file("A")})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Migration{{1, "0001_a", "A"}, {2, "0002_b", "B"}}, ms); diff != "" {
		t.Errorf("migrations (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		name string
		fs   fstest.MapFS
		want string
	}{
		{"bad name", fstest.MapFS{"migrations/init.sql": file("")}, "NNNN_what.sql"},
		{"zero", fstest.MapFS{"migrations/0000_x.sql": file("")}, "NNNN_what.sql"},
		{"same version", fstest.MapFS{"migrations/0001_a.sql": file(""), "migrations/01_b.sql": file("")}, "share a version"},
	} {
		if _, err := LoadMigrations(tc.fs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestJSONColumns(t *testing.T) {
	got, err := JSONObjects(nil, map[string]any{"a": 1})
	if err != nil || !cmp.Equal(got, []string{"{}", `{"a":1}`}) {
		t.Errorf("JSONObjects = %v, %v", got, err)
	}
	if l, _ := JSONList(nil); l != "[]" {
		t.Errorf("JSONList(nil) = %q", l)
	}
	var m map[string]int
	if err := DecodeJSON(`{"a":1}`, &m); err != nil || m["a"] != 1 {
		t.Errorf("DecodeJSON = %v, %v", m, err)
	}
}
