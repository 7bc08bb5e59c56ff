package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/store/storetest"
)

// TestSharedConformance: two handles on one file behave as two controllers on one database
// would (SQLite serves one controller, but the semantics are the same).
func TestSharedConformance(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (conductor.Store, conductor.Store) {
		path := filepath.Join(t.TempDir(), "ferrum.db")
		return open(t, path), open(t, path)
	})
}
