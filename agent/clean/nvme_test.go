package clean

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"unsafe"
)

func TestFormatCdw10(t *testing.T) {
	tests := []struct {
		name                   string
		fna, flbas, dps, nlbaf byte
		want                   uint32
		err                    bool
	}{
		{"user-data-erase/lbaf0", 0, 0, 0, 1, 1 << 9, false},
		{"crypto-erase/lbaf1", 0x04, 1, 0, 1, 2<<9 | 1, false},
		{"keeps-metadata-and-pi", 0x05, 0x12, 0x09, 3, 2<<9 | 1<<8 | 1<<5 | 1<<4 | 2, false},
		{"lbaf-above-15", 0, 0x20 | 0x01, 0, 20, 1<<9 | 1<<12 | 1, false},
		{"lbaf-out-of-range", 0, 3, 0, 1, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctrl, ns := make([]byte, 4096), make([]byte, 4096)
			ctrl[524], ns[26], ns[29], ns[25] = tc.fna, tc.flbas, tc.dps, tc.nlbaf
			got, err := formatCdw10(ctrl, ns)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("formatCdw10() = %#x, %v; want %#x (error %v)", got, err, tc.want, tc.err)
			}
		})
	}
	if _, err := formatCdw10(nil, nil); err == nil {
		t.Error("formatCdw10(short) = nil error")
	}
	if n := unsafe.Sizeof(nvmePassthru{}); n != 72 {
		t.Errorf("nvme_passthru_cmd is %d bytes, want 72", n)
	}
}

// A regular file is not an NVMe namespace: NVMeFormat leaves it to the next method.
func TestNVMeFormatNotNVMe(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	ok, err := NVMeFormat{}.Erase(context.Background(), p)
	if ok || err != nil {
		t.Errorf("Erase(file) = %v, %v; want false, nil", ok, err)
	}
}
