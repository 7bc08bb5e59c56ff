package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
	}{
		{"params", "BOOT_IMAGE=/vmlinuz console=ttyS0 ferrum.controller=10.0.0.1:6386 ferrum.fingerprint=ab quiet\n",
			map[string]string{"BOOT_IMAGE": "/vmlinuz", "console": "ttyS0", "ferrum.controller": "10.0.0.1:6386", "ferrum.fingerprint": "ab", "quiet": ""}},
		{"quoted", `a="b c" d=e`, map[string]string{"a": "b c", "d": "e"}},
		{"value-with-equals", "ferrum.token=x.y=.z", map[string]string{"ferrum.token": "x.y=.z"}},
		{"empty", "", map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, parseCmdline(tc.in)); diff != "" {
				t.Errorf("parseCmdline(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func FuzzParseCmdline(f *testing.F) {
	f.Add(`BOOT_IMAGE=/vmlinuz ferrum.controller=10.0.0.1:6386 "a b"=c`)
	f.Fuzz(func(t *testing.T, s string) {
		for k := range parseCmdline(s) {
			if k == "" && s == "" {
				t.Fatal("empty key from an empty command line")
			}
		}
	})
}
