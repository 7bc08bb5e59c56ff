package hints

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/agent/internal/blockdev"
)

const g = int64(1) << 30

// The disks of blockdev's QEMU fixture, in name order.
var (
	md0  = blockdev.Disk{Name: "/dev/md0", Size: 12 * g, Type: "raid1"}
	nvme = blockdev.Disk{Name: "/dev/nvme0n1", Size: 16 * g, Type: "disk", Model: "QEMU NVMe Ctrl", Serial: "NVME-SERIAL-0",
		WWN: "nvme.1b36-4e564d45", WWNWithExtension: "nvme.1b36-4e564d45", ByPath: "/dev/disk/by-path/pci-0000:00:04.0-nvme-1", Tran: "nvme"}
	sda = blockdev.Disk{Name: "/dev/sda", Size: 10 * g, Type: "disk", Model: "SSD-X", Vendor: "ACME", Serial: "SCSI-SERIAL-0",
		WWN: "0x5000c500a1b2c3d4", WWNWithExtension: "0x5000c500a1b2c3d4", HCTL: "0:0:0:0",
		ByPath: "/dev/disk/by-path/pci-0000:00:03.0-scsi-0:0:0:0"}
	sdb = blockdev.Disk{Name: "/dev/sdb", Size: 2 * g, Type: "disk", Rotational: true, Model: "QEMU HARDDISK", Vendor: "QEMU",
		Serial: "SCSI-SERIAL-1", WWN: "0x600a0b8000123456", WWNWithExtension: "0x600a0b800012345600000000deadbeef",
		WWNVendorExtension: "0x00000000deadbeef", HCTL: "0:0:1:0", ByPath: "/dev/disk/by-path/pci-0000:00:03.0-scsi-0:0:1:0"}
	sdc = blockdev.Disk{Name: "/dev/sdc", Size: 8 * g, Type: "disk", Rotational: true, Model: "DataTraveler 3.0", Vendor: "Kingston",
		HCTL: "2:0:0:0", Tran: "usb", Removable: true}
	sdd = blockdev.Disk{Name: "/dev/sdd", Size: 4 * g, Type: "disk", Rotational: true, Model: "QEMU HARDDISK", Vendor: "ATA",
		Serial: "QM00001", HCTL: "3:0:0:0", Tran: "sata", ReadOnly: true}
	vda = blockdev.Disk{Name: "/dev/vda", Size: 20 * g, Type: "disk", Rotational: true, Vendor: "0x1af4", Serial: "VDA-SERIAL-0",
		ByPath: "/dev/disk/by-path/pci-0000:00:02.0"}
	all = []blockdev.Disk{md0, nvme, sda, sdb, sdc, sdd, vda}
)

// TestSelect covers every key and operator: want is the chosen disk, or "" when none matches.
func TestSelect(t *testing.T) {
	tests := []struct {
		name  string
		hints map[string]any
		want  string
	}{
		{"none/smallest-fixed-4GiB", nil, "/dev/sda"},
		{"none/empty-map", map[string]any{}, "/dev/sda"},

		{"size/int", map[string]any{"size": 16.0}, "/dev/nvme0n1"},
		{"size/string-default-eq", map[string]any{"size": "20"}, "/dev/vda"},
		{"size/==", map[string]any{"size": "== 10"}, "/dev/sda"},
		{"size/!=", map[string]any{"size": "!= 12"}, "/dev/nvme0n1"},
		{"size/>=", map[string]any{"size": ">= 16"}, "/dev/nvme0n1"},
		{"size/>", map[string]any{"size": "> 16"}, "/dev/vda"},
		{"size/<=", map[string]any{"size": "<= 8"}, "/dev/sdb"},
		{"size/<", map[string]any{"size": "< 4"}, "/dev/sdb"},
		{"size/=-means-at-least", map[string]any{"size": "= 13"}, "/dev/nvme0n1"},
		{"size/<or>", map[string]any{"size": "<or> 20 <or> 2"}, "/dev/sdb"},
		{"size/<range-in>-closed", map[string]any{"size": "<range-in> [16 20]"}, "/dev/nvme0n1"},
		{"size/<range-in>-open", map[string]any{"size": "<range-in> (16 20]"}, "/dev/vda"},
		{"size/<range-in>-half-open", map[string]any{"size": "<range-in> [17 20)"}, ""},
		{"size/json-number", map[string]any{"size": json.Number("8")}, "/dev/sdc"},
		{"size/no-match", map[string]any{"size": 1000}, ""},

		{"model/default-s==-case-insensitive", map[string]any{"model": "ssd-x"}, "/dev/sda"},
		{"model/s==-with-space", map[string]any{"model": "s== QEMU HARDDISK"}, "/dev/sdb"},
		{"model/s!=", map[string]any{"model": "s!= ssd-x"}, "/dev/nvme0n1"},
		{"model/<in>", map[string]any{"model": "<in> traveler"}, "/dev/sdc"},
		{"model/<or>", map[string]any{"model": "<or> nothing <or> qemu harddisk"}, "/dev/sdb"},
		{"model/<all-in>", map[string]any{"model": "<all-in> qemu ctrl"}, "/dev/nvme0n1"},
		{"model/s<", map[string]any{"model": "s< q"}, "/dev/sdc"},
		{"model/s<=", map[string]any{"model": "s<= datatraveler 3.0"}, "/dev/sdc"},
		{"model/s>", map[string]any{"model": "s> r"}, "/dev/sda"},
		{"model/s>=", map[string]any{"model": "s>= ssd-x"}, "/dev/sda"},
		{"vendor", map[string]any{"vendor": "acme"}, "/dev/sda"},
		{"vendor/virtio-pci-id", map[string]any{"vendor": "0x1af4"}, "/dev/vda"},
		{"serial", map[string]any{"serial": "s== VDA-SERIAL-0"}, "/dev/vda"},
		{"serial/empty-attribute-never-matches", map[string]any{"serial": "s!= x", "size": "<= 12"}, "/dev/sda"},
		{"wwn", map[string]any{"wwn": "0x5000C500A1B2C3D4"}, "/dev/sda"},
		{"wwn/nvme", map[string]any{"wwn": "<in> nvme.1b36"}, "/dev/nvme0n1"},
		{"wwn_with_extension", map[string]any{"wwn_with_extension": "0x600a0b800012345600000000deadbeef"}, "/dev/sdb"},
		{"wwn_vendor_extension", map[string]any{"wwn_vendor_extension": "0x00000000deadbeef"}, "/dev/sdb"},
		{"hctl", map[string]any{"hctl": "0:0:1:0"}, "/dev/sdb"},
		{"by_path", map[string]any{"by_path": "/dev/disk/by-path/pci-0000:00:02.0"}, "/dev/vda"},
		{"name", map[string]any{"name": "/dev/nvme0n1"}, "/dev/nvme0n1"},
		{"name/without-dev", map[string]any{"name": "sdb"}, "/dev/sdb"},
		{"name/md-array", map[string]any{"name": "/dev/md0"}, "/dev/md0"},
		{"name/<in>", map[string]any{"name": "<in> vd"}, "/dev/vda"},
		{"tran", map[string]any{"tran": "usb"}, "/dev/sdc"},
		{"rotational/false", map[string]any{"rotational": false}, "/dev/md0"},
		{"rotational/true-string", map[string]any{"rotational": "yes"}, "/dev/sdb"},
		{"rotational/number", map[string]any{"rotational": 1.0}, "/dev/sdb"},
		{"several/all-must-match", map[string]any{"rotational": false, "size": ">= 11", "model": "<in> qemu"}, "/dev/nvme0n1"},
		{"several/none", map[string]any{"rotational": true, "serial": "nvme-serial-0"}, ""},
		{"read-only-never", map[string]any{"serial": "QM00001"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, reason, err := Select(all, tc.hints)
			if tc.want == "" {
				if !errors.Is(err, ErrNoMatch) {
					t.Fatalf("Select(%v) = %s, %q, %v, want ErrNoMatch", tc.hints, d.Name, reason, err)
				}
				return
			}
			if err != nil || d.Name != tc.want {
				t.Fatalf("Select(%v) = %s, %q, %v, want %s", tc.hints, d.Name, reason, err, tc.want)
			}
			if !strings.Contains(reason, tc.want) {
				t.Errorf("reason %q does not name %s", reason, tc.want)
			}
		})
	}
}

func TestReasons(t *testing.T) {
	tests := []struct {
		name  string
		disks []blockdev.Disk
		hints map[string]any
		want  string
		err   bool
	}{
		{"default", all, nil, "no root device hints: /dev/sda (10 GiB) is the smallest writable fixed disk of at least 4 GiB; " +
			"not considered: /dev/md0 raid1 array, /dev/sdb 2 GiB < 4 GiB, /dev/sdc removable, /dev/sdd read-only", false},
		{"two-hints", all, map[string]any{"rotational": true, "size": "> 8"},
			"/dev/vda matches all 2 root device hints (rotational true, size > 8); first in name order of 1 matching disks (/dev/vda)", false},
		{"several-match", all, map[string]any{"model": "<or> ssd-x <or> qemu harddisk"},
			`/dev/sda matches the root device hint model <or> "ssd-x" <or> "qemu%20harddisk"; first in name order of 2 matching disks (/dev/sda, /dev/sdb)`, false},
		{"no-match-explained", []blockdev.Disk{sda, vda, sdd}, map[string]any{"serial": "qm00001"},
			`no disk matches the root device hints (serial s== "qm00001"): /dev/sda: serial is "SCSI-SERIAL-0" (wants serial s== "qm00001"); ` +
				`/dev/vda: serial is "VDA-SERIAL-0" (wants serial s== "qm00001"); /dev/sdd: read-only`, true},
		{"no-disks", nil, map[string]any{"size": 10}, "no disk matches the root device hints (size == 10): the machine has no disks", true},
		{"default-nothing-big-enough", []blockdev.Disk{sdb}, nil,
			"no disk matches: no root device hints and no writable fixed disk of at least 4 GiB among 1 disks; not considered: /dev/sdb 2 GiB < 4 GiB", true},
		{"size-fraction", []blockdev.Disk{{Name: "/dev/x", Size: 3 * g / 2, Type: "disk"}}, map[string]any{"size": 1},
			"no disk matches the root device hints (size == 1): /dev/x: size is 1.5 GiB (wants size == 1)", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, reason, err := Select(tc.disks, tc.hints)
			if tc.err {
				if err == nil {
					t.Fatalf("Select succeeded with %q", reason)
				}
				reason = err.Error()
			} else if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, reason); diff != "" {
				t.Errorf("reason (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		hints map[string]any
		want  string
	}{
		{"unknown-key", map[string]any{"color": "red"}, `unknown hint "color"; valid hints are by_path, hctl, model`},
		{"string-not-string", map[string]any{"serial": 12.0}, `hint "serial" is not a string: 12`},
		{"string-empty", map[string]any{"model": "  "}, `hint "model" is empty`},
		{"string-op-without-value", map[string]any{"model": "s=="}, `has no value`},
		{"string-numeric-op", map[string]any{"hctl": ">= 1"}, `operator >= compares numbers`},
		{"string-range", map[string]any{"model": "<range-in> [1 2]"}, `operator <range-in> compares numbers`},
		{"or-without-values", map[string]any{"vendor": "<or> <or>"}, `has no value`},
		{"size-not-int", map[string]any{"size": "big"}, `"big" is not an integer`},
		{"size-float", map[string]any{"size": 10.5}, `"10.5" is not an integer`},
		{"size-zero", map[string]any{"size": 0.0}, `0 is not a positive integer`},
		{"size-negative", map[string]any{"size": ">= -3"}, `-3 is not a positive integer`},
		{"size-bool", map[string]any{"size": true}, `not an integer: true`},
		{"size-empty", map[string]any{"size": ""}, `"size" is empty`},
		{"size-string-op", map[string]any{"size": "s== 10"}, `operator s== does not apply to a number`},
		{"size-in", map[string]any{"size": "<in> 10"}, `operator <in> does not apply`},
		{"size-or-bad-value", map[string]any{"size": "<or> 10 <or> x"}, `"x" is not an integer`},
		{"size-range-shape", map[string]any{"size": "<range-in> 10 20"}, `<range-in> wants [MIN MAX]`},
		{"size-range-three", map[string]any{"size": "<range-in> [1 2 3]"}, `<range-in> wants [MIN MAX]`},
		{"size-range-empty", map[string]any{"size": "<range-in> [20 10]"}, `empty range`},
		{"size-range-bad-number", map[string]any{"size": "<range-in> [a 10]"}, `"a" is not an integer`},
		{"rotational-word", map[string]any{"rotational": "maybe"}, `not a boolean: "maybe"`},
		{"rotational-number", map[string]any{"rotational": 2.0}, `not a boolean: "2"`},
		{"rotational-list", map[string]any{"rotational": []any{true}}, `not a boolean`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.hints)
			if !errors.Is(err, ErrBadHints) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%v) = %v, want ErrBadHints containing %q", tc.hints, err, tc.want)
			}
			if _, _, err := Select(all, tc.hints); !errors.Is(err, ErrBadHints) {
				t.Errorf("Select(%v) = %v, want ErrBadHints", tc.hints, err)
			}
		})
	}
}

func TestParseNormalizes(t *testing.T) {
	hs, err := Parse(map[string]any{"model": "  <OR> Foo Bar <or> baz/1 ", "size": 10.0, "name": "s!= sda", "rotational": "off"})
	if err != nil {
		t.Fatal(err)
	}
	got := hs.String()
	want := `model <or> "foo%20bar" <or> "baz/1", name s!= "/dev/sda", rotational false, size == 10`
	if got != want {
		t.Errorf("Parse(...).String() = %s, want %s", got, want)
	}
}

func TestQuoteLikePython(t *testing.T) {
	// urllib.parse.quote(s) of each input.
	for in, want := range map[string]string{
		"abc-_.~/09": "abc-_.~/09", "a b": "a%20b", "x:y": "x%3Ay", "é": "%C3%A9", "100%": "100%25", "a+b=c": "a%2Bb%3Dc",
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %q, want %q", in, got, want)
		}
	}
}

// Resolver on blockdev's QEMU fixture, as agent/image calls it.
func TestResolver(t *testing.T) {
	resolve := Resolver("../../internal/blockdev/testdata/qemu")
	path, reason, err := resolve(context.Background(), map[string]any{"wwn": "0x5000c500a1b2c3d4", "rotational": false})
	if err != nil || path != "/dev/sda" || reason == "" {
		t.Errorf("resolve(wwn) = %q, %q, %v, want /dev/sda", path, reason, err)
	}
	path, _, err = resolve(context.Background(), nil)
	if err != nil || path != "/dev/sda" {
		t.Errorf("resolve(nil) = %q, %v, want /dev/sda", path, err)
	}
	if _, _, err := resolve(context.Background(), map[string]any{"serial": "nope"}); !errors.Is(err, ErrNoMatch) {
		t.Errorf("resolve(serial nope) = %v, want ErrNoMatch", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := resolve(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("resolve(cancelled) = %v, want context.Canceled", err)
	}
	if _, _, err := Resolver(t.TempDir())(context.Background(), nil); err == nil {
		t.Error("resolve on a root without /sys/block succeeded")
	}
}

// FuzzParse: any JSON object of hints parses or fails with ErrBadHints, and parsed hints can
// be matched against every disk without panicking.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"size": ">= 10", "rotational": "true"}`, `{"model": "<or> a <or> b"}`, `{"size": "<range-in> [1 2)"}`,
		`{"serial": "s== x"}`, `{"wwn": "<all-in> a b"}`, `{"name": "sda"}`, `{"size": 10}`, `{"hctl": "<in> 0:0"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			return
		}
		hs, err := Parse(m)
		if err != nil {
			if !errors.Is(err, ErrBadHints) {
				t.Fatalf("Parse(%s) = %v, not ErrBadHints", b, err)
			}
			return
		}
		if len(hs) != len(m) {
			t.Fatalf("Parse(%s) gave %d hints for %d keys", b, len(hs), len(m))
		}
		_ = hs.String()
		for _, d := range all {
			hs.Match(d)
		}
		if _, _, err := SelectParsed(all, hs); err != nil && !errors.Is(err, ErrNoMatch) {
			t.Fatalf("SelectParsed = %v, want success or ErrNoMatch", err)
		}
	})
}
