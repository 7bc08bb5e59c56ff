package config

import (
	"io"
	"strings"
	"testing"
)

func TestDatabaseSetting(t *testing.T) {
	none := func(string) string { return "" }
	tests := []struct {
		name    string
		args    []string
		pg      string // PostgresDSN
		log     string // DatabaseForLog
		wantErr string
	}{
		{"default/sqlite", []string{"--data-dir", "d"}, "", "d/ferrum.db", ""},
		{"sqlite/path", []string{"--database", "/var/lib/ferrum/x.db"}, "", "/var/lib/ferrum/x.db", ""},
		{"postgres/url", []string{"--database", "postgres://ferrum:s3cret@db:5432/ferrum?sslmode=disable"},
			"postgres://ferrum:s3cret@db:5432/ferrum?sslmode=disable", "postgres://ferrum:xxxxx@db:5432/ferrum?sslmode=disable", ""},
		{"postgresql/url", []string{"--database", "postgresql://db/ferrum"}, "postgresql://db/ferrum", "postgresql://db/ferrum", ""},
		{"url/other-scheme", []string{"--database", "mysql://db/ferrum"}, "", "", "a URL must be postgres://"},
		{"heartbeat/timeout-not-longer", []string{"--heartbeat-interval", "10s", "--heartbeat-timeout", "10s"}, "", "", "heartbeat_timeout 10s: must be longer"},
		{"heartbeat/zero", []string{"--heartbeat-interval", "0s"}, "", "", "heartbeat_interval 0s: must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.args, none, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load(%q) = %v, want an error containing %q", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(%q) = %v", tc.args, err)
			}
			if got := c.PostgresDSN(); got != tc.pg {
				t.Errorf("PostgresDSN() = %q, want %q", got, tc.pg)
			}
			if got := c.DatabaseForLog(); got != tc.log {
				t.Errorf("DatabaseForLog() = %q, want %q", got, tc.log)
			}
		})
	}
}
