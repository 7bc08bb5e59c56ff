package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ferrum.yaml")
	if err := os.WriteFile(file, []byte("api_addr: 127.0.0.1:7000\nworkers: 7\nlock_timeout: 2m\nconductor_group: rack1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"FERRUM_WORKERS": "8", "FERRUM_CONDUCTOR_GROUP": "rack2"}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		name  string
		args  []string
		check func(*Config) string
	}{
		{"defaults", nil, func(c *Config) string {
			if c.APIAddr != "127.0.0.1:6385" || c.Auth != "noauth" || c.Database != filepath.Join("ferrum-data", "ferrum.db") {
				return "defaults wrong"
			}
			return ""
		}},
		{"file-then-env-then-flag", []string{"-config", file, "--workers", "9"}, func(c *Config) string {
			if c.APIAddr != "127.0.0.1:7000" || c.LockTimeout != 2*time.Minute {
				return "file not applied"
			}
			if c.ConductorGroup != "rack2" {
				return "env did not override the file"
			}
			if c.Workers != 9 {
				return "flag did not override env"
			}
			return ""
		}},
		{"power-sync", []string{"--power-sync-interval", "3s", "--force-power-state-during-sync=false",
			"--ipmi-timeout", "500ms"}, func(c *Config) string {
			if c.PowerSyncInterval != 3*time.Second || c.ForcePowerStateDuringSync || c.IPMITimeout != 500*time.Millisecond {
				return "power sync flags not applied"
			}
			if c.PowerStateSyncMaxRetries != 3 || c.PowerFailureRecoveryInterval != 5*time.Minute || c.DefaultBootMode != "uefi" {
				return "power sync defaults wrong"
			}
			return ""
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ge := getenv
			if tc.args == nil {
				ge = func(string) string { return "" }
			}
			c, err := Load(tc.args, ge, io.Discard)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if msg := tc.check(c); msg != "" {
				t.Fatalf("%s: %+v", msg, c)
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("api_adr: typo\n"), 0o600)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown-file-key", []string{"--config", bad}, nil, "api_adr"},
		{"bad-addr", []string{"--api-addr", "nonsense"}, nil, "api_addr"},
		{"basic-without-file", []string{"--auth", "http_basic"}, nil, "htpasswd_file"},
		{"bad-auth", []string{"--auth", "keystone"}, nil, "auth"},
		{"bad-env-duration", nil, map[string]string{"FERRUM_LOCK_TIMEOUT": "soon"}, "FERRUM_LOCK_TIMEOUT"},
		{"half-tls", []string{"--tls-cert-file", "c.pem"}, nil, "tls_key_file"},
		{"zero-workers", []string{"--workers", "0"}, nil, "workers"},
		{"negative-sync-interval", []string{"--power-sync-interval", "-1s"}, nil, "power_sync_interval"},
		{"bad-boot-mode", nil, map[string]string{"FERRUM_DEFAULT_BOOT_MODE": "legacy"}, "default_boot_mode"},
		{"zero-ipmi-attempts", []string{"--ipmi-attempts", "0"}, nil, "ipmi_attempts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load(%v) = %v, want an error naming %q", tc.args, err, tc.want)
			}
		})
	}
}
