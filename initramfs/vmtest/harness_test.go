package vmtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readCPIO parses a newc archive (the test's own reader, to check writeCPIO).
func readCPIO(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	for off := 0; ; {
		if string(b[off:off+6]) != "070701" {
			t.Fatalf("offset %d: magic %q", off, b[off:off+6])
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(v)
		}
		mode, size, nameLen := field(1), field(6), field(11)
		name := string(b[off+110 : off+110+nameLen-1])
		off += 110 + nameLen
		off += (4 - off%4) % 4
		if name == "TRAILER!!!" {
			return out
		}
		out[name] = fmt.Sprintf("%o:%s", mode, b[off:off+size])
		off += size
		off += (4 - off%4) % 4
	}
}

func TestWriteCPIO(t *testing.T) {
	tests := []struct {
		name  string
		files []File
		want  map[string]string
	}{
		{"nested-dirs-first-default-mode", []File{{Path: "/a/b/c.txt", Data: []byte("hello")}, {Path: "/a/x", Data: []byte("12345678"), Mode: 0o755}},
			map[string]string{"a": "40755:", "a/b": "40755:", "a/b/c.txt": "100644:hello", "a/x": "100755:12345678"}},
		{"empty-file", []File{{Path: "e"}}, map[string]string{"e": "100644:"}},
		{"none", nil, map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeCPIO(&buf, tc.files); err != nil {
				t.Fatalf("writeCPIO: %v", err)
			}
			if buf.Len()%4 != 0 {
				t.Errorf("archive length %d is not a multiple of 4", buf.Len())
			}
			if diff := cmp.Diff(tc.want, readCPIO(t, buf.Bytes())); diff != "" {
				t.Errorf("writeCPIO(%v) (-want +got):\n%s", tc.files, diff)
			}
		})
	}
}

func TestQemuArgs(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, Kernel: "K", MemoryMiB: 256, CPUs: 1, Cmdline: "x=1", NIC: "e1000", MAC: "52:54:00:00:00:01",
		Disks: []Disk{
			{Size: 1 << 20, Serial: "V0"},
			{Size: 1 << 20, Bus: SCSI, Serial: "S0", WWN: 0x5000c500a1b2c3d4, RotationRate: 1, Vendor: "ACME", Product: "SSD"},
			{Size: 1 << 20, Bus: SCSI, Serial: "S1", RotationRate: 7200},
			{Size: 1 << 20, Bus: NVMe, Serial: "N0"},
		},
		SMBIOS: []string{"type=1,serial=SYS-1"}}
	args, err := qemuArgs(&cfg, "I")
	if err != nil {
		t.Fatalf("qemuArgs: %v", err)
	}
	var devs []string
	for i, a := range args {
		if a == "-device" && (strings.Contains(args[i+1], "drive=") || strings.HasPrefix(args[i+1], "virtio-scsi")) {
			devs = append(devs, args[i+1])
		}
	}
	want := []string{
		"virtio-blk-pci,drive=d0,serial=V0",
		"virtio-scsi-pci,id=scsi0",
		"scsi-hd,bus=scsi0.0,drive=d1,wwn=0x5000c500a1b2c3d4,rotation_rate=1,vendor=ACME,product=SSD,serial=S0",
		"scsi-hd,bus=scsi0.0,drive=d2,rotation_rate=7200,serial=S1",
		"nvme,id=nvme3,drive=d3,serial=N0",
	}
	if diff := cmp.Diff(want, devs); diff != "" {
		t.Errorf("qemuArgs devices (-want +got):\n%s", diff)
	}
	joined := strings.Join(args, " ")
	for _, w := range []string{"-accel tcg", "-device e1000,netdev=n0,romfile=,mac=52:54:00:00:00:01", "-m 256", "-smp 1", "-smbios type=1,serial=SYS-1", "-initrd I",
		"-readconfig " + filepath.Join(dir, "qemu.cfg"), "-no-reboot"} {
		if !strings.Contains(joined, w) {
			t.Errorf("qemuArgs = %q, want it to contain %q", joined, w)
		}
	}
	conf, err := os.ReadFile(filepath.Join(dir, "qemu.cfg"))
	if want := "[machine]\n  append = \"console=ttyS0,115200 quiet panic=-1 x=1\"\n"; err != nil || string(conf) != want {
		t.Errorf("qemu.cfg = %q, %v; want %q", conf, err, want)
	}
}

func TestScript(t *testing.T) {
	tests := []struct {
		name    string
		steps   []Step
		hold    bool
		want    []string // substrings, in order
		wantErr bool
	}{
		{"exec-quotes-args", []Step{Exec("st", "ping", map[string]string{"payload": "it's"})}, false,
			[]string{"#!/bbin/gosh", `ferrum-agent exec ping '{"payload":"it'\''s"}'`, "@@FERRUM-STEP st $rc", "@@FERRUM-END st", "@@FERRUM-DONE", "poweroff"}, false},
		{"hold-no-poweroff", []Step{{Name: "a", Shell: "true"}}, true, []string{"@@FERRUM-DONE", "sync"}, false},
		{"repeated-name", []Step{{Name: "a", Shell: "true"}, {Name: "a", Shell: "true"}}, false, nil, true},
		{"bad-name", []Step{{Name: "a b", Shell: "true"}}, false, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := script(tc.steps, tc.hold)
			if (err != nil) != tc.wantErr {
				t.Fatalf("script() error = %v, want error %v", err, tc.wantErr)
			}
			rest := s
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("script() = %q, want %q after the previous parts", s, w)
				}
				rest = rest[i+len(w):]
			}
			if tc.hold && strings.Contains(s, "poweroff") {
				t.Errorf("script(hold) = %q, want no poweroff", s)
			}
		})
	}
}
