package ipmi

import (
	"testing"

	"github.com/bougou/go-ipmi/pkg/types"
	"github.com/google/go-cmp/cmp"
)

func TestBootFlagsEncode(t *testing.T) {
	tests := []struct {
		name string
		f    bootFlags
		want []byte
	}{
		// Ironic's raw commands: 0x00 0x08 0x05 <0xa0|0xe0> <device> 0x00 0x00 0x00.
		{"uefi/once/pxe", bootFlags{Valid: true, EFI: true, Selector: selPXE}, []byte{0xa0, 0x04, 0, 0, 0}},
		{"uefi/persistent/disk", bootFlags{Valid: true, Persistent: true, EFI: true, Selector: selDisk}, []byte{0xe0, 0x08, 0, 0, 0}},
		{"uefi/supermicro-disk", bootFlags{Valid: true, EFI: true, Selector: selRemoteDisk}, []byte{0xa0, 0x24, 0, 0, 0}},
		{"bios/once/cdrom", bootFlags{Valid: true, Selector: selCDROM}, []byte{0x80, 0x14, 0, 0, 0}},
		{"bios/setup", bootFlags{Valid: true, Selector: selBIOS}, []byte{0x80, 0x18, 0, 0, 0}},
		{"safe", bootFlags{Valid: true, Selector: selSafe}, []byte{0x80, 0x0c, 0, 0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.f.encode()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("encode(%+v) (-want +got):\n%s", tc.f, diff)
			}
			// go-ipmi's own decoder agrees.
			var p types.BootOptionParam_BootFlags
			if err := p.Unpack(got); err != nil || p.BootFlagsValid != tc.f.Valid || p.Persist != tc.f.Persistent ||
				bool(p.BIOSBootType) != tc.f.EFI || uint8(p.BootDeviceSelector) != tc.f.Selector {
				t.Errorf("go-ipmi decodes %x as %+v (%v)", got, p, err)
			}
			back, err := decodeBootFlags(bootFlagsParam, got)
			if err != nil || back != tc.f {
				t.Errorf("decodeBootFlags(encode(%+v)) = %+v, %v", tc.f, back, err)
			}
		})
	}
}

func TestDecodeBootFlags(t *testing.T) {
	tests := []struct {
		name    string
		sel     byte
		data    []byte
		want    bootFlags
		wantErr string
	}{
		{"ipmi_sim/selector-only", 0x05, []byte{0x00, 0x04, 0, 0, 0}, bootFlags{Selector: selPXE}, ""},
		{"locked-bit-ignored", 0x85, []byte{0xe0, 0x08, 0, 0, 0}, bootFlags{Valid: true, Persistent: true, EFI: true, Selector: selDisk}, ""},
		{"extra-bytes", 0x05, []byte{0x80, 0x14, 0, 0, 0, 0xff}, bootFlags{Valid: true, Selector: selCDROM}, ""},
		{"other-bits-ignored", 0x05, []byte{0x9f, 0xc7, 0xff, 0xff, 0xff}, bootFlags{Valid: true, Selector: 1}, ""},
		{"short", 0x05, []byte{0x80, 0x04}, bootFlags{}, "bad boot options reply: 2 bytes of boot flags, want 5"},
		{"empty", 0x05, nil, bootFlags{}, "bad boot options reply: 0 bytes of boot flags, want 5"},
		{"other-parameter", 0x03, []byte{0x08, 0, 0, 0, 0}, bootFlags{}, "bad boot options reply: parameter 3, want 5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeBootFlags(tc.sel, tc.data)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("decodeBootFlags(%#x, %x) = %+v, %v; want error %q", tc.sel, tc.data, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("decodeBootFlags(%#x, %x) = %+v, %v; want %+v", tc.sel, tc.data, got, err, tc.want)
			}
		})
	}
}

func TestDeviceMapping(t *testing.T) {
	for _, dev := range SupportedBootDevices {
		for _, efi := range []bool{false, true} {
			sel, err := selectorFor(dev, efi, "supermicro")
			if err != nil {
				t.Fatalf("selectorFor(%q): %v", dev, err)
			}
			if got := deviceFor(sel); got != dev {
				t.Errorf("deviceFor(selectorFor(%q, efi=%v)) = %q", dev, efi, got)
			}
		}
	}
	if got := deviceFor(selNone); got != "" {
		t.Errorf("deviceFor(no override) = %q, want unknown", got)
	}
}

// FuzzDecodeBootFlags: any reply decodes to an error or to flags that re-encode to the same
// meaningful bits; nothing panics.
func FuzzDecodeBootFlags(f *testing.F) {
	f.Add(byte(0x05), []byte{0x00, 0x04, 0, 0, 0})
	f.Add(byte(0x85), []byte{0xe0, 0x24, 0, 0, 0})
	f.Add(byte(0x05), []byte{0x80})
	f.Add(byte(0x03), []byte{})
	f.Fuzz(func(t *testing.T, sel byte, data []byte) {
		got, err := decodeBootFlags(sel, data)
		if err != nil {
			if sel&0x7f == bootFlagsParam && len(data) >= 5 {
				t.Fatalf("decodeBootFlags(%#x, %x) refused a well-formed reply: %v", sel, data, err)
			}
			return
		}
		enc := got.encode()
		if enc[0] != data[0]&0xe0 || enc[1] != data[1]&0x3c {
			t.Fatalf("decodeBootFlags(%#x, %x) = %+v, which encodes to %x", sel, data, got, enc)
		}
		_ = deviceFor(got.Selector)
	})
}
