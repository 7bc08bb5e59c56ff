package config

import (
	"io"
	"strings"
	"testing"
)

func TestBootSettings(t *testing.T) {
	none := func(string) string { return "" }
	for _, tc := range []struct {
		name       string
		args       []string
		advertise  string
		kernel     string
		kernelArgs string
	}{
		{"off", nil, "", "initramfs/out/vmlinuz", ""},
		{"concrete", []string{"--agent-addr", "10.0.0.1:6386", "--boot-addr", "10.0.0.1:8080"}, "10.0.0.1:8080", "initramfs/out/vmlinuz", ""},
		{"wildcard/hostname", []string{"--agent-addr", ":6386", "--boot-addr", "0.0.0.0:8080", "--hostname", "ctl1"}, "ctl1:8080", "initramfs/out/vmlinuz", ""},
		{"explicit", []string{"--agent-addr", ":6386", "--boot-addr", ":8080", "--boot-advertise-addr", "10.0.2.2:8080",
			"--boot-kernel", "/srv/vmlinuz", "--boot-kernel-args", "console=ttyS0,115200 quiet", "--boot-tftp-addr", ":69"},
			"10.0.2.2:8080", "/srv/vmlinuz", "console=ttyS0,115200 quiet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.args, none, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.BootAdvertiseAddr != tc.advertise || c.BootKernel != tc.kernel || c.BootKernelArgs != tc.kernelArgs ||
				c.BootInitramfs == "" {
				t.Errorf("Load(%q): advertise %q kernel %q args %q initramfs %q", tc.args, c.BootAdvertiseAddr,
					c.BootKernel, c.BootKernelArgs, c.BootInitramfs)
			}
		})
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no-agents", []string{"--boot-addr", "127.0.0.1:8080"}, "needs agent_addr"},
		{"tftp-without-http", []string{"--boot-tftp-addr", ":69"}, "needs boot_addr"},
		{"addr/no-port", []string{"--agent-addr", ":6386", "--boot-addr", "host"}, "boot_addr"},
		{"advertise/unspecified", []string{"--agent-addr", ":6386", "--boot-addr", ":8080", "--boot-advertise-addr", "0.0.0.0:8080"}, "cannot fetch"},
		{"args/newline", []string{"--agent-addr", ":6386", "--boot-addr", "127.0.0.1:8080", "--boot-kernel-args", "a\nb"}, "not allowed"},
		{"args/dollar", []string{"--agent-addr", ":6386", "--boot-addr", "127.0.0.1:8080", "--boot-kernel-args", "x=${ip}"}, "not allowed"},
		{"no-kernel", []string{"--agent-addr", ":6386", "--boot-addr", "127.0.0.1:8080", "--boot-kernel", ""}, "must not be empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Load(tc.args, none, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load(%q) = %v, want an error about %q", tc.args, err, tc.want)
			}
		})
	}
}
