package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/agent/runner"
	"github.com/ferrumhq/ferrum/shared/proto"
)

const fixture = "../../inspect/testdata/qemu-q35-ovmf"

func TestInventoryCommand(t *testing.T) {
	tests := []struct {
		name string
		args []string
		err  string // "" for success
		root string // the root disk expected, on success
	}{
		{"fixture", []string{"--root", fixture}, "", "/dev/sda"},
		{"fixture-hints", []string{"--root", fixture, "--root-device", `{"serial": "s== VDA-SERIAL-0"}`}, "", "/dev/vda"},
		{"bad-hints-json", []string{"--root", fixture, "--root-device", `{"size"`}, "not a JSON object", ""},
		{"bad-hints", []string{"--root", fixture, "--root-device", `{"size": "huge"}`}, "bad root device hints", ""},
		{"missing-root", []string{"--root", "testdata/none"}, "root", ""},
		{"stray-argument", []string{"extra"}, flag.ErrHelp.Error(), ""},
		{"unknown-flag", []string{"--frobnicate"}, "flag provided but not defined", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := inventoryCommand(context.Background(), tc.args, &out, &errOut)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("inventory %q = %v, want an error containing %q", tc.args, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("inventory %q = %v (stderr %s)", tc.args, err, errOut.String())
			}
			inv, err := proto.DecodeInventory(out.Bytes())
			if err != nil {
				t.Fatalf("output is not an inventory: %v\n%s", err, out.String())
			}
			if len(inv.Disks) != 7 || inv.Ferrum.RootDisk == nil || inv.Ferrum.RootDisk.Disk.Name != tc.root {
				t.Errorf("inventory: %d disks, root disk %+v, want 7 and %s", len(inv.Disks), inv.Ferrum.RootDisk, tc.root)
			}
		})
	}
}

// `ferrum-agent inventory` on the machine the tests run on.
func TestInventoryCommandHost(t *testing.T) {
	for _, p := range []string{"/proc/cpuinfo", "/sys/block", "/sys/class/net"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("not a Linux machine with sysfs and procfs (%v)", err)
		}
	}
	sub, ok := subcommands["inventory"]
	if !ok {
		t.Fatal("no inventory subcommand")
	}
	var out, errOut bytes.Buffer
	if err := sub(context.Background(), nil, &out, &errOut); err != nil {
		t.Fatalf("ferrum-agent inventory: %v (stderr %s)", err, errOut.String())
	}
	inv, err := proto.DecodeInventory(out.Bytes())
	if err != nil {
		t.Fatalf("host inventory: %v\n%s", err, out.String())
	}
	if inv.CPU.Count <= 0 || inv.Memory.Total <= 0 || len(inv.Interfaces) == 0 {
		t.Errorf("host inventory: %d CPUs, %d bytes, %d interfaces", inv.CPU.Count, inv.Memory.Total, len(inv.Interfaces))
	}
}

func TestRegisterInspect(t *testing.T) {
	r := runner.New(runner.Config{Log: zerolog.Nop()})
	defer r.Close()
	registerCapabilities(r, zerolog.Nop())
	names := r.Names()
	for _, want := range []string{proto.CmdInspect, proto.CmdResolveRootDevice} {
		if !slices.Contains(names, want) {
			t.Errorf("registerCapabilities registers %v, missing %s", names, want)
		}
	}
}

func TestRootResolver(t *testing.T) {
	tests := []struct {
		name  string
		hints map[string]any
		want  string     // the chosen disk
		code  proto.Code // or the error's code
	}{
		{"hctl", map[string]any{"hctl": "0:0:1:0"}, "/dev/sdb", ""},
		{"default", nil, "/dev/sda", ""},
		{"no-match", map[string]any{"serial": "nope"}, "", proto.CodeFailed},
		{"bad-hints", map[string]any{"size": "<range-in> x"}, "", proto.CodeBadRequest},
	}
	resolve := rootResolver(fixture)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, reason, err := resolve(context.Background(), tc.hints)
			if tc.code != "" {
				var pe *proto.Error
				if !errors.As(err, &pe) || pe.Code != tc.code {
					t.Fatalf("resolve(%v) = %v, want code %s", tc.hints, err, tc.code)
				}
				return
			}
			if err != nil || path != tc.want || reason == "" {
				t.Errorf("resolve(%v) = %q, %q, %v, want %s", tc.hints, path, reason, err, tc.want)
			}
		})
	}
}
