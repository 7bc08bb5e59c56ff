package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// TestBenchRuns runs the benchmark at a tiny size with 1 and 2 controllers so it keeps
// working between releases; run itself checks that every node is synced exactly once.
func TestBenchRuns(t *testing.T) {
	dsn := os.Getenv("FERRUM_PG_DSN")
	if dsn == "" {
		t.Skip("set FERRUM_PG_DSN to a PostgreSQL server's URL to run (make test starts one with controller/store/postgres/test-setup.sh)")
	}
	for _, n := range []int{1, 2} {
		var out bytes.Buffer
		if err := run(dsn, n, 40, time.Millisecond, 200*time.Millisecond, 4, &out); err != nil {
			t.Fatalf("run(%d controllers): %v", n, err)
		}
		if f := strings.Split(strings.TrimSpace(out.String()), " | "); len(f) != 6 {
			t.Errorf("run(%d controllers) printed %q, want 6 columns", n, out.String())
		}
	}
}
