package config

import (
	"io"
	"path/filepath"
	"testing"
	"time"
)

func TestAgentSettings(t *testing.T) {
	none := func(string) string { return "" }
	c, err := Load([]string{"--data-dir", "d", "--agent-addr", "0.0.0.0:6386", "--agent-cert-ttl", "20m"}, none, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.AgentAddr != "0.0.0.0:6386" || c.AgentCertTTL != 20*time.Minute || c.PKIDir != filepath.Join("d", "pki") ||
		c.AgentTokenTTL != 2*time.Hour || c.AgentResumeTimeout != time.Minute {
		t.Errorf("agent settings %+v", c)
	}
	c, err = Load([]string{"--agent-addr", ":6386", "--hostname", "ctl1"}, none, io.Discard)
	if err != nil || c.AgentAdvertiseAddr != "ctl1:6386" {
		t.Errorf("advertised address for a wildcard listener = %q, %v", c.AgentAdvertiseAddr, err)
	}
	c, err = Load([]string{"--agent-addr", "10.0.0.1:6386"}, none, io.Discard)
	if err != nil || c.AgentAdvertiseAddr != "" {
		t.Errorf("advertised address for a concrete listener = %q, %v (the listener's own is used)", c.AgentAdvertiseAddr, err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"agent-addr/no-port", []string{"--agent-addr", "host"}},
		{"advertise/no-port", []string{"--agent-advertise-addr", "host"}},
		{"cert-ttl/zero", []string{"--agent-cert-ttl", "0s"}},
		{"tls-cert-without-key", []string{"--agent-tls-cert-file", "x"}},
		{"external-ca/incomplete", []string{"--ca-url", "https://ca:9000"}},
		{"external-ca/no-controller-cert", []string{"--ca-url", "https://ca:9000", "--ca-root-file", "r",
			"--ca-provisioner", "agents", "--ca-provisioner-key-file", "k"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Load(tc.args, none, io.Discard); err == nil {
				t.Errorf("Load(%q) accepted", tc.args)
			}
		})
	}
}
