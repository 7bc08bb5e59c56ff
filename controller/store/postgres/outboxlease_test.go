package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestOutboxLease: one of two controllers on a database holds the lease; it passes to the
// other on release, and when the holder's session dies.
func TestOutboxLease(t *testing.T) {
	ctx := context.Background()
	dsn := newDatabase(t)
	var stores [2]*Store
	for i := range stores {
		s, err := Open(ctx, Config{DSN: dsn, Log: zerolog.New(zerolog.NewTestWriter(t))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	a, b := stores[0], stores[1]
	hold := func(s *Store, want bool, when string) {
		t.Helper()
		got, err := s.HoldOutboxLease(ctx)
		if err != nil || got != want {
			t.Fatalf("%s: HoldOutboxLease = %v, %v; want %v", when, got, err, want)
		}
	}
	hold(a, true, "first")
	hold(a, true, "again (renewal)")
	hold(b, false, "while a holds it")
	if err := a.ReleaseOutboxLease(ctx); err != nil {
		t.Fatal(err)
	}
	hold(b, true, "after a released it")
	hold(a, false, "while b holds it")
	// b's session dies (as with a killed controller): a can take the lease.
	b.lease.mu.Lock()
	b.lease.conn.Conn().Close(ctx)
	b.lease.mu.Unlock()
	// The server drops the lock when its backend notices the closed connection: soon, not at once.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := a.HoldOutboxLease(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("after b's session died: a never got the lease")
		}
		time.Sleep(50 * time.Millisecond)
	}
	hold(b, false, "b notices it lost the lease")
}
