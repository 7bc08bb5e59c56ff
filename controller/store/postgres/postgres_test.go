package postgres

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/store/storetest"
)

var _ conductor.Store = (*Store)(nil)

var dbSeq atomic.Int64

// newDatabase creates an empty database for one test on the server in FERRUM_PG_DSN and
// returns its DSN; it is dropped when the test ends. Without FERRUM_PG_DSN the test skips.
func newDatabase(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("FERRUM_PG_DSN")
	if dsn == "" {
		t.Skip("set FERRUM_PG_DSN to a PostgreSQL server's URL to run (make test starts one with controller/store/postgres/test-setup.sh)")
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to FERRUM_PG_DSN: %v", err)
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("ferrum_test_%d_%d", os.Getpid(), dbSeq.Add(1))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("FERRUM_PG_DSN must be a postgres:// URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// open opens a store on a new database, closed when the test ends.
func open(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{DSN: newDatabase(t), Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) conductor.Store { return open(t) })
}

func TestSharedConformance(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (conductor.Store, conductor.Store) {
		dsn := newDatabase(t)
		var stores [2]conductor.Store
		for i := range stores {
			s, err := Open(context.Background(), Config{DSN: dsn, Log: zerolog.New(zerolog.NewTestWriter(t))})
			if err != nil {
				t.Fatalf("Open = %v", err)
			}
			t.Cleanup(func() { s.Close() })
			stores[i] = s
		}
		return stores[0], stores[1]
	})
}

// TestOpenConfig: bad configurations are refused before any connection, and the password of
// a malformed DSN never reaches the error.
func TestOpenConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"dsn/missing", Config{}, "Config.DSN is required"},
		{"max-conns/negative", Config{DSN: "postgres://localhost/x", MaxConns: -1}, "must not be negative"},
		{"dsn/malformed", Config{DSN: "postgres://u:hunter2@[::1/x"}, "not a valid connection string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.cfg)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%+v) = nil error, want %q", tc.cfg, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Open = %v, want an error containing %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Open error %q shows the password", err)
			}
		})
	}
}
