package inspect

import (
	"errors"
	"net"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCPUInfo(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want cpuInfo
		ok   bool
	}{
		{"x86-two-sockets", "processor : 0\nmodel name : Xeon\ncpu MHz : 2400.000\nflags : fpu vmx\nphysical id : 0\n\n" +
			"processor : 1\nmodel name : Xeon\ncpu MHz : 1200.000\nflags : fpu vmx\nphysical id : 1\n",
			cpuInfo{count: 2, modelName: "Xeon", mhz: "2400.000", flags: []string{"fpu", "vmx"}, sockets: 2}, true},
		{"arm", "processor\t: 0\nFeatures\t: fp asimd\nCPU part\t: 0xd0c\n\nprocessor\t: 1\nFeatures\t: fp asimd\n",
			cpuInfo{count: 2, flags: []string{"fp", "asimd"}}, true},
		{"bad-mhz-ignored", "processor : 0\ncpu MHz : fast\n", cpuInfo{count: 1}, true},
		{"empty", "", cpuInfo{}, false},
		{"no-processor-number", "processor : x\n", cpuInfo{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCPUInfo(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("parseCPUInfo error = %v, want ok %v", err, tc.ok)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(cpuInfo{})); diff != "" {
				t.Errorf("parseCPUInfo (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseMemTotal(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"MemTotal:        2027412 kB\nMemFree: 1 kB\n", 2027412 * 1024, true},
		{"MemFree: 1 kB\nMemTotal: 4 kB", 4096, true},
		{"MemTotal: 4 MB\n", 0, false},
		{"MemTotal: -4 kB\n", 0, false},
		{"MemTotal: 99999999999999999999 kB\n", 0, false},
		{"MemTotal:\n", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		got, err := parseMemTotal(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseMemTotal(%q) = %d, %v, want %d (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseBOOTIF(t *testing.T) {
	tests := []struct{ in, want string }{
		{"console=ttyS0 BOOTIF=01-52-54-00-12-34-56 quiet", "52:54:00:12:34:56"},
		{"BOOTIF=52:54:00:AB:CD:EF", "52:54:00:ab:cd:ef"},
		{`BOOTIF="01-52-54-00-12-34-56"`, "52:54:00:12:34:56"},
		{"BOOTIF=01-52-54-00-12", ""},
		{"BOOTIF=01-52-54-00-12-34", "01:52:54:00:12:34"}, // six octets are a MAC without the type
		{"BOOTIF=zz-52-54-00-12-34-56", ""},
		{"bootif=01-52-54-00-12-34-56", ""},
		{"", ""},
	}
	for _, tc := range tests {
		if got := parseBOOTIF(tc.in); got != tc.want {
			t.Errorf("parseBOOTIF(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// fakeBMC answers GetLanConfig from a table of (channel, param) → reply.
type fakeBMC map[[2]byte][]byte

func (f fakeBMC) GetLanConfig(ch, param byte) ([]byte, error) {
	if b, ok := f[[2]byte{ch, param}]; ok {
		return b, nil
	}
	return nil, errors.New("completion code 0xcc: invalid data field")
}

func TestBMCFromLAN(t *testing.T) {
	ip := func(a, b, c, d byte) []byte { return []byte{0, 0x11, a, b, c, d} }
	mac := []byte{0, 0x11, 0x52, 0x54, 0, 0xaa, 0xbb, 0xcc}
	// an IPv6 address reply: cc, revision, set selector, source, address (prefix bytes then
	// ...::1), prefix length 64, status
	v6 := func(status byte, prefix ...byte) []byte {
		addr := make([]byte, 16)
		copy(addr, prefix)
		addr[15] = 1
		return append(append([]byte{0, 0x11, 0, 0}, addr...), 64, status)
	}
	tests := []struct {
		name string
		bmc  fakeBMC
		want BMCAddress
		ok   bool
	}{
		{"channel-1", fakeBMC{{1, 3}: ip(10, 1, 0, 5), {1, 5}: mac}, BMCAddress{IPv4: "10.1.0.5", MAC: "52:54:00:aa:bb:cc"}, true},
		{"ipv6-static", fakeBMC{{1, 3}: ip(10, 1, 0, 5), {1, 56}: v6(0, 0x20, 0x01, 0x0d, 0xb8), {1, 59}: v6(0, 0xfe, 0x80)},
			BMCAddress{IPv4: "10.1.0.5", IPv6: "2001:db8::1"}, true},
		{"ipv6-slaac-when-static-inactive", fakeBMC{{1, 3}: ip(10, 1, 0, 5), {1, 56}: v6(2, 0x20, 0x01), {1, 59}: v6(0, 0xfe, 0x80)},
			BMCAddress{IPv4: "10.1.0.5", IPv6: "fe80::1"}, true},
		{"ipv6-unset", fakeBMC{{1, 3}: ip(10, 1, 0, 5), {1, 56}: make([]byte, 23)}, BMCAddress{IPv4: "10.1.0.5"}, true},
		{"skips-unset-channels", fakeBMC{{1, 3}: ip(0, 0, 0, 0), {2, 3}: ip(0, 0, 0, 0), {8, 3}: ip(192, 168, 1, 9)},
			BMCAddress{IPv4: "192.168.1.9"}, true},
		{"no-address", fakeBMC{{1, 3}: ip(0, 0, 0, 0)}, BMCAddress{}, true},
		{"short-replies", fakeBMC{{1, 3}: {0, 0x11, 10}}, BMCAddress{}, false},
		{"nothing-answers", fakeBMC{}, BMCAddress{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bmcFromLAN(tc.bmc)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("bmcFromLAN = %+v, %v, want %+v (ok %v)", got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestReadBMCIPMIMissingDevice(t *testing.T) {
	if _, err := readBMCIPMI(t.Context(), t.TempDir()+"/ipmi0"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("readBMCIPMI(missing) = %v, want os.ErrNotExist", err)
	}
}

func TestHostAddrsLoopback(t *testing.T) {
	lo, err := net.InterfaceByIndex(1)
	if err != nil {
		t.Skipf("no interface 1 to look at: %v", err)
	}
	v4, v6 := hostAddrs(lo.Name)
	if v4 == "" && v6 == "" {
		t.Errorf("hostAddrs(%s) found no address", lo.Name)
	}
	if a, b := hostAddrs("no-such-interface0"); a != "" || b != "" {
		t.Errorf("hostAddrs(missing) = %q, %q", a, b)
	}
}

func FuzzParseCPUInfo(f *testing.F) {
	f.Add("processor : 0\nmodel name : Xeon\ncpu MHz : 2400.000\nflags : fpu\nphysical id : 0\n")
	f.Add("processor\t: 0\nFeatures\t: fp\n")
	f.Fuzz(func(t *testing.T, s string) {
		ci, err := parseCPUInfo(s)
		if err == nil && ci.count <= 0 {
			t.Fatalf("parseCPUInfo(%q) succeeded with %d CPUs", s, ci.count)
		}
	})
}

func FuzzParseMemTotal(f *testing.F) {
	f.Add("MemTotal:        2027412 kB\n")
	f.Add("MemTotal: 1 kB")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseMemTotal(s)
		if err == nil && n <= 0 {
			t.Fatalf("parseMemTotal(%q) = %d", s, n)
		}
	})
}

func FuzzParseBOOTIF(f *testing.F) {
	f.Add("BOOTIF=01-52-54-00-12-34-56")
	f.Add("BOOTIF=52:54:00:ab:cd:ef")
	f.Fuzz(func(t *testing.T, s string) {
		if m := parseBOOTIF(s); m != "" {
			if _, err := net.ParseMAC(m); err != nil {
				t.Fatalf("parseBOOTIF(%q) = %q, not a MAC", s, m)
			}
		}
	})
}
