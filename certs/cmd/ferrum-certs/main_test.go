package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrumhq/ferrum/certs"
)

func TestCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	node := "7d0d3b3e-5a36-4a47-9d7e-3d1a3f5b9c10"
	var fp string
	tests := []struct {
		name  string
		args  []string
		ok    bool
		check func(t *testing.T, out string)
	}{
		{"init", []string{"init", "-dir", dir}, true, func(t *testing.T, out string) {
			if !strings.Contains(out, "root fingerprint") {
				t.Errorf("init output %q", out)
			}
		}},
		{"init-again-refused", []string{"init", "-dir", dir}, false, nil},
		{"fingerprint", []string{"fingerprint", "-dir", dir}, true, func(t *testing.T, out string) {
			fp = strings.TrimSpace(out)
			if len(fp) != 64 {
				t.Errorf("fingerprint %q", out)
			}
		}},
		{"controller-cert", []string{"controller-cert", "-dir", dir, "-names", "ctl.example,127.0.0.1"}, true, nil},
		{"token", []string{"token", "-dir", dir, "-node", node}, true, func(t *testing.T, out string) {
			if c, err := certs.PeekClaims(strings.TrimSpace(out)); err != nil || c.Subject != node {
				t.Errorf("token claims %+v, %v", c, err)
			}
		}},
		{"token-bad-node", []string{"token", "-dir", dir, "-node", "nope"}, false, nil},
		{"kernel-params", []string{"kernel-params", "-dir", dir, "-node", node, "-controller", "10.0.0.1:6386"}, true, func(t *testing.T, out string) {
			for _, want := range []string{"ferrum.controller=10.0.0.1:6386 ", "ferrum.fingerprint=" + fp + " ", "ferrum.token=ey"} {
				if !strings.Contains(out, want) {
					t.Errorf("kernel-params %q lacks %q", out, want)
				}
			}
		}},
		{"unknown", []string{"frobnicate"}, false, nil},
		{"none", nil, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(tc.args, &out, &errb)
			if (err == nil) != tc.ok {
				t.Fatalf("run(%q) = %v (stderr %q), want ok=%v", tc.args, err, errb.String(), tc.ok)
			}
			if tc.check != nil {
				tc.check(t, out.String())
			}
		})
	}
	p, err := certs.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.LoadController(); err != nil {
		t.Errorf("controller-cert did not write a loadable certificate: %v", err)
	}
}
