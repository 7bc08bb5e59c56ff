package sqlite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/controller/store/storetest"
)

var _ conductor.Store = (*Store)(nil)

// open opens a store on path, closed when the test ends.
func open(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{Path: path, Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatalf("Open(%s) = %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) conductor.Store {
		return open(t, filepath.Join(t.TempDir(), "ferrum.db"))
	})
}

func TestOpenConfig(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"path/missing", Config{}, false},
		{"path/memory", Config{Path: ":memory:"}, false},
		{"path/uri", Config{Path: "file:x.db"}, false},
		{"path/question-mark", Config{Path: filepath.Join(dir, "a?b")}, false},
		{"path/directory-missing", Config{Path: filepath.Join(dir, "no", "such", "dir", "x.db")}, false},
		{"busy-timeout/negative", Config{Path: filepath.Join(dir, "neg.db"), BusyTimeout: -time.Second}, false},
		{"defaults/ok", Config{Path: filepath.Join(dir, "ok.db")}, true},
		{"busy-timeout/set", Config{Path: filepath.Join(dir, "busy.db"), BusyTimeout: 100 * time.Millisecond}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("Open(%+v) = %v, want ok %v", tc.cfg, err, tc.ok)
			}
			if s != nil {
				if err := s.Close(); err != nil {
					t.Errorf("Close() = %v", err)
				}
			}
		})
	}
}

func TestPragmas(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "p.db"))
	tests := []struct {
		db     string
		pragma string
		want   string
	}{
		{"w", "journal_mode", "wal"},
		{"w", "foreign_keys", "1"},
		{"w", "synchronous", "2"}, // FULL
		{"w", "busy_timeout", "5000"},
		{"r", "foreign_keys", "1"},
		{"r", "query_only", "1"},
		{"r", "busy_timeout", "5000"},
	}
	for _, tc := range tests {
		db := s.w
		if tc.db == "r" {
			db = s.r
		}
		var got string
		if err := db.QueryRowContext(t.Context(), "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s: PRAGMA %s = %s, want %s", tc.db, tc.pragma, got, tc.want)
		}
	}
}

type migrationRow struct {
	Version   int
	Name      string
	AppliedAt int64
}

func migrations(t *testing.T, s *Store) []migrationRow {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []migrationRow
	for rows.Next() {
		var m migrationRow
		if err := rows.Scan(&m.Version, &m.Name, &m.AppliedAt); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestReopenKeepsDataAndSkipsMigrations(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "reopen.db")
	s, err := Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	n := &node.Node{UUID: uuid.NewString(), Name: "keep", Driver: "ipmi", Extra: map[string]any{"k": "v"}}
	if err := s.CreateNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	before := migrations(t, s)
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != len(ms) {
		t.Fatalf("schema_migrations has %d rows, want %d (one per migration)", len(before), len(ms))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := open(t, path)
	if diff := cmp.Diff(before, migrations(t, s2)); diff != "" {
		t.Errorf("reopen changed schema_migrations (-before +after):\n%s", diff)
	}
	got, err := s2.GetNode(ctx, "keep")
	if err != nil {
		t.Fatalf("GetNode after reopen = %v", err)
	}
	if got.UUID != n.UUID || got.Extra["k"] != "v" {
		t.Errorf("GetNode after reopen = %+v, want the node written before", got)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "newer.db")
	s := open(t, path)
	if _, err := s.w.ExecContext(t.Context(), "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s2, err := Open(t.Context(), Config{Path: path}); err == nil {
		s2.Close()
		t.Fatalf("Open(database from a newer binary) = nil error, want a refusal")
	}
}

// TestConcurrentWriters: many goroutines, and a second Store on the same file (standing in for
// a second process), write at once; SQLITE_BUSY must never reach a caller.
func TestConcurrentWriters(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "busy.db")
	stores := []*Store{open(t, path), open(t, path)}
	const goroutines = 50
	const each = 20
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		s := stores[g%len(stores)]
		owner := fmt.Sprintf("host-%d", g)
		wg.Go(func() {
			for i := range each {
				n := &node.Node{UUID: uuid.NewString(), Name: fmt.Sprintf("g%d-n%d", g, i), Driver: "fake"}
				if err := s.CreateNode(ctx, n); err != nil {
					errs <- fmt.Errorf("CreateNode: %w", err)
					continue
				}
				r, err := s.ReserveNode(ctx, n.UUID, owner, time.Now().Add(time.Minute))
				if err != nil {
					errs <- fmt.Errorf("ReserveNode: %w", err)
					continue
				}
				r.ProvisionState = node.Manageable
				if err := s.SaveNode(ctx, r, owner); err != nil {
					errs <- fmt.Errorf("SaveNode: %w", err)
				}
				if err := s.CreatePort(ctx, &node.Port{UUID: uuid.NewString(), NodeUUID: n.UUID,
					Address: fmt.Sprintf("52:54:%02x:%02x:00:01", g, i)}); err != nil {
					errs <- fmt.Errorf("CreatePort: %w", err)
				}
				if _, err := s.ListNodes(ctx, node.NodeQuery{Page: node.Page{Limit: 10}}); err != nil {
					errs <- fmt.Errorf("ListNodes: %w", err)
				}
				if err := s.ReleaseNode(ctx, n.UUID, owner); err != nil {
					errs <- fmt.Errorf("ReleaseNode: %w", err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	all, err := stores[0].ListNodes(ctx, node.NodeQuery{ProvisionState: node.Manageable})
	if err != nil || len(all) != goroutines*each {
		t.Errorf("ListNodes(manageable) = %d nodes, %v; want %d", len(all), err, goroutines*each)
	}
}

// Crash consistency: a child process (this test binary again) writes as fast as it can and
// prints the UUID of each node once CreateNode returned; the parent kills it with SIGKILL
// mid-write, reopens the file and looks for every printed node.
const crashEnv = "FERRUM_SQLITE_CRASH_CHILD_DB"

func TestCrashConsistency(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashConsistency$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	var committed []string
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		line := sc.Text()
		u, ok := strings.CutPrefix(line, "committed ")
		if !ok {
			continue
		}
		committed = append(committed, u)
		if len(committed) == 300 && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true // keep reading what the child printed before it died
		}
	}
	werr := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL", werr)
	}
	if len(committed) < 300 {
		t.Fatalf("child reported %d commits before dying, want at least 300", len(committed))
	}

	s := open(t, path)
	var check string
	if err := s.r.QueryRowContext(t.Context(), "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v; want ok", check, err)
	}
	for _, u := range committed {
		n, err := s.GetNode(t.Context(), u)
		if err != nil {
			t.Errorf("node %s was reported committed but is lost: %v", u, err)
			continue
		}
		if n.Reservation != "child" || n.ProvisionState != node.Manageable {
			t.Errorf("node %s = reservation %q state %q; want the committed save (child, manageable)", u, n.Reservation, n.ProvisionState)
		}
	}
	all, err := s.ListNodes(t.Context(), node.NodeQuery{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("child reported %d commits; %d nodes on disk after kill -9", len(committed), len(all))
}

// crashChild writes until killed. Each "committed" line follows a node's create, reserve and
// save, all returned.
func crashChild(path string) {
	ctx := context.Background()
	s, err := Open(ctx, Config{Path: path})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	deadline := time.Now().Add(time.Minute)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				n := &node.Node{UUID: uuid.NewString(), Driver: "fake", Extra: map[string]any{"pad": strings.Repeat("x", 512)}}
				if err := s.CreateNode(ctx, n); err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					os.Exit(2)
				}
				r, err := s.ReserveNode(ctx, n.UUID, "child", time.Now().Add(time.Hour))
				if err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					os.Exit(2)
				}
				r.ProvisionState = node.Manageable
				if err := s.SaveNode(ctx, r, "child"); err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "committed %s\n", n.UUID) // unbuffered: one write(2)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	os.Exit(3) // not killed in time
}
