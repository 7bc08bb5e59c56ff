package bios

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/shared/proto"
)

// pxePath is the device path OVMF gives its first PXE entry (MAC node + IPv4 node + end).
var pxePath = []byte{0x02, 0x01, 0x0c, 0x00, 0xd0, 0x41, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x7f, 0xff, 0x04, 0x00}

// fakeEFI makes a directory in efivarfs's format with what OVMF boots with.
func fakeEFI(t *testing.T) (string, *EFIVars) {
	t.Helper()
	dir := t.TempDir()
	put := func(name, guid string, data []byte) {
		b := binary.LittleEndian.AppendUint32(nil, AttrNVBSRT)
		if err := os.WriteFile(filepath.Join(dir, name+"-"+guid), append(b, data...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for n, desc := range map[string]string{"Boot0000": "UiApp", "Boot0001": "UEFI PXEv4 (MAC:525400123456)", "Boot0002": "EFI Internal Shell"} {
		lo, err := LoadOption{Attributes: LoadOptionActive, Description: desc, FilePath: pxePath}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		put(n, GlobalGUID, lo)
	}
	put("BootOrder", GlobalGUID, []byte{1, 0, 0, 0})
	put("Timeout", GlobalGUID, []byte{5, 0})
	put("SecureBoot", GlobalGUID, []byte{0})
	put("Lang", GlobalGUID, []byte("eng"))
	put("ProcVirtualization", FerrumGUID, []byte("Disabled"))
	v, err := OpenEFIVars(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, v
}

func fakeDMI(t *testing.T) string {
	dir := t.TempDir()
	for n, v := range map[string]string{"bios_vendor": "EFI Development Kit II / OVMF\n", "sys_vendor": "Acme\n",
		"product_name": "BM-1000\n", "product_serial": "SYS-SERIAL-0001\n", "chassis_asset_tag": "ASSET-1\n"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(v), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func newBIOS(t *testing.T, v *EFIVars) *BIOS {
	t.Helper()
	var be Backend
	if v != nil {
		be = &EFIBackend{Vars: v}
	}
	b, err := New(Config{Log: zerolog.New(zerolog.NewTestWriter(t)), Backend: be, DMIDir: fakeDMI(t)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func i64(v int64) *int64 { return &v }

func sv(name, value string) proto.BIOSSettingValue {
	return proto.BIOSSettingValue{Name: name, Value: value}
}

func TestGet(t *testing.T) {
	_, v := fakeEFI(t)
	got, err := newBIOS(t, v).Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := proto.BIOSSettings{Backend: "efivarfs", BootMode: proto.BootModeUEFI,
		Settings: []proto.BIOSSetting{
			{Name: "BootOrder", Value: "0001,0000", AttributeType: "String", ResetRequired: true},
			{Name: "BootNext", Value: "", AttributeType: "String", ResetRequired: true},
			{Name: "Timeout", Value: "5", AttributeType: "Integer", LowerBound: i64(0), UpperBound: i64(65535), ResetRequired: true},
			{Name: "SecureBoot", Value: "Disabled", AttributeType: "Enumeration", AllowableValues: []string{"Disabled", "Enabled"}, ReadOnly: true},
			{Name: "ProcVirtualization", Value: "Disabled", AttributeType: "String"},
		},
		BootEntries: []proto.BootEntry{
			{Number: "0001", Description: "UEFI PXEv4 (MAC:525400123456)", Active: true, DevicePath: "02010c00d041030a000000007fff0400"},
			{Number: "0000", Description: "UiApp", Active: true, DevicePath: "02010c00d041030a000000007fff0400"},
			{Number: "0002", Description: "EFI Internal Shell", Active: true, DevicePath: "02010c00d041030a000000007fff0400"},
		},
		System: &proto.SMBIOS{BIOSVendor: "EFI Development Kit II / OVMF", SysVendor: "Acme", ProductName: "BM-1000",
			ProductSerial: "SYS-SERIAL-0001", ChassisAssetTag: "ASSET-1"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Get() (-want +got):\n%s", diff)
	}
}

func TestApply(t *testing.T) {
	tests := []struct {
		name     string
		settings []proto.BIOSSettingValue
		changed  []string
		reboot   bool
		code     proto.Code // error code, "" for success
		check    func(t *testing.T, v *EFIVars)
	}{
		{"boot-order", []proto.BIOSSettingValue{sv("BootOrder", "0000,0002,0001")}, []string{"BootOrder"}, true, "", func(t *testing.T, v *EFIVars) {
			wantVar(t, v, "BootOrder", GlobalGUID, []byte{0, 0, 2, 0, 1, 0})
		}},
		{"unchanged-skipped", []proto.BIOSSettingValue{sv("BootOrder", "0001,0000"), sv("Timeout", "5"), sv("ProcVirtualization", "Disabled")}, []string{}, false, "", nil},
		{"boot-next", []proto.BIOSSettingValue{sv("BootNext", "boot0002")}, []string{"BootNext"}, true, "", func(t *testing.T, v *EFIVars) {
			wantVar(t, v, "BootNext", GlobalGUID, []byte{2, 0})
		}},
		{"unset-boot-next-already-unset", []proto.BIOSSettingValue{sv("BootNext", "")}, []string{}, false, "", nil},
		{"timeout", []proto.BIOSSettingValue{sv("Timeout", "0")}, []string{"Timeout"}, true, "", func(t *testing.T, v *EFIVars) {
			wantVar(t, v, "Timeout", GlobalGUID, []byte{0, 0})
		}},
		{"named", []proto.BIOSSettingValue{sv("ProcVirtualization", "Enabled"), sv("Hyper-Threading", "on")}, []string{"ProcVirtualization", "Hyper-Threading"}, false, "", func(t *testing.T, v *EFIVars) {
			wantVar(t, v, "ProcVirtualization", FerrumGUID, []byte("Enabled"))
			wantVar(t, v, "Hyper-Threading", FerrumGUID, []byte("on"))
		}},
		{"named-empty-deletes", []proto.BIOSSettingValue{sv("ProcVirtualization", "")}, []string{"ProcVirtualization"}, false, "", func(t *testing.T, v *EFIVars) {
			if _, _, err := v.Get("ProcVirtualization", FerrumGUID); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get after delete = %v, want ErrNotFound", err)
			}
		}},
		{"missing-entry-writes-nothing", []proto.BIOSSettingValue{sv("Foo", "1"), sv("BootOrder", "0001,0009")}, nil, false, proto.CodeBadRequest, func(t *testing.T, v *EFIVars) {
			if _, _, err := v.Get("Foo", FerrumGUID); !errors.Is(err, ErrNotFound) {
				t.Errorf("Foo written although another setting was refused: %v", err)
			}
		}},
		{"bad-boot-order", []proto.BIOSSettingValue{sv("BootOrder", "1,2")}, nil, false, proto.CodeBadRequest, nil},
		{"duplicate-boot-order", []proto.BIOSSettingValue{sv("BootOrder", "0001,0001")}, nil, false, proto.CodeBadRequest, nil},
		{"two-boot-next", []proto.BIOSSettingValue{sv("BootNext", "0001,0000")}, nil, false, proto.CodeBadRequest, nil},
		{"timeout-range", []proto.BIOSSettingValue{sv("Timeout", "70000")}, nil, false, proto.CodeBadRequest, nil},
		{"secure-boot-read-only", []proto.BIOSSettingValue{sv("SecureBoot", "Enabled")}, nil, false, proto.CodeBadRequest, nil},
		{"boot-entry-not-a-setting", []proto.BIOSSettingValue{sv("Boot0001", "x")}, nil, false, proto.CodeBadRequest, nil},
		{"bad-name", []proto.BIOSSettingValue{sv("a/b", "x")}, nil, false, proto.CodeBadRequest, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, v := fakeEFI(t)
			got, err := newBIOS(t, v).Apply(context.Background(), proto.ApplyBIOSArgs{Settings: tc.settings})
			if tc.code != "" {
				if proto.CodeOf(err) != tc.code {
					t.Errorf("Apply() = %v, want code %s", err, tc.code)
				}
			} else if err != nil {
				t.Fatalf("Apply() = %v", err)
			} else if !cmp.Equal(got.Changed, tc.changed) || got.RebootRequired != tc.reboot {
				t.Errorf("Apply() changed %v reboot %v, want %v %v", got.Changed, got.RebootRequired, tc.changed, tc.reboot)
			}
			if tc.check != nil {
				tc.check(t, v)
			}
		})
	}
}

func wantVar(t *testing.T, v *EFIVars, name, guid string, want []byte) {
	t.Helper()
	attrs, got, err := v.Get(name, guid)
	if err != nil || attrs != AttrNVBSRT || !bytes.Equal(got, want) {
		t.Errorf("Get(%s) = %#x, %v, %v; want %#x, %v", name, attrs, got, err, AttrNVBSRT, want)
	}
}

func TestFactoryReset(t *testing.T) {
	_, v := fakeEFI(t)
	b := newBIOS(t, v)
	if _, err := b.Apply(context.Background(), proto.ApplyBIOSArgs{Settings: []proto.BIOSSettingValue{sv("BootNext", "0002"), sv("X", "1")}}); err != nil {
		t.Fatal(err)
	}
	got, err := b.FactoryReset(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ProcVirtualization", "X", "BootNext"}; !cmp.Equal(got.Changed, want) || !got.RebootRequired {
		t.Errorf("FactoryReset() changed %v reboot %v, want %v true", got.Changed, got.RebootRequired, want)
	}
	if names, _ := v.List(FerrumGUID); len(names) != 0 {
		t.Errorf("named settings left: %v", names)
	}
	wantVar(t, v, "BootOrder", GlobalGUID, []byte{1, 0, 0, 0})
	if got, err := b.FactoryReset(context.Background()); err != nil || len(got.Changed) != 0 {
		t.Errorf("second FactoryReset() = %v, %v; want nothing changed", got.Changed, err)
	}
}

func TestNoBackend(t *testing.T) {
	b := newBIOS(t, nil)
	got, err := b.Get(context.Background())
	if err != nil || got.BootMode != proto.BootModeBIOS || got.System == nil || got.System.ProductName != "BM-1000" {
		t.Errorf("Get() = %+v, %v; want legacy boot mode with SMBIOS facts", got, err)
	}
	if _, err := b.Apply(context.Background(), proto.ApplyBIOSArgs{Settings: []proto.BIOSSettingValue{sv("A", "1")}}); proto.CodeOf(err) != proto.CodeUnsupported {
		t.Errorf("Apply() = %v, want unsupported", err)
	}
	if _, err := b.FactoryReset(context.Background()); proto.CodeOf(err) != proto.CodeUnsupported {
		t.Errorf("FactoryReset() = %v, want unsupported", err)
	}
	if _, err := b.RunApply(context.Background(), []byte(`{"settings":[]}`), nil); proto.CodeOf(err) != proto.CodeBadRequest {
		t.Errorf("RunApply(no settings) = %v, want bad_request", err)
	}
}

func TestEFIVarsErrors(t *testing.T) {
	dir, v := fakeEFI(t)
	if err := os.WriteFile(filepath.Join(dir, "Short-"+GlobalGUID), []byte{7, 0}, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.Get("Short", GlobalGUID); err == nil {
		t.Error("Get(2-byte file) = nil error, want no attribute word")
	}
	if err := v.Set("Big", FerrumGUID, AttrNVBSRT, make([]byte, MaxVarSize+1)); err == nil {
		t.Error("Set(too big) = nil error")
	}
	if _, _, err := v.Get("../x", GlobalGUID); err == nil {
		t.Error("Get(../x) = nil error")
	}
	if err := v.Delete("Missing", FerrumGUID); err != nil {
		t.Errorf("Delete(missing) = %v", err)
	}
	// A shorter value replaces a longer one completely.
	if err := v.Set("ProcVirtualization", FerrumGUID, AttrNVBSRT, []byte("On")); err != nil {
		t.Fatal(err)
	}
	wantVar(t, v, "ProcVirtualization", FerrumGUID, []byte("On"))
}

// TestImmutable: efivarfs marks variables immutable; Set and Delete clear the flag, and Set
// puts it back. Setting FS_IMMUTABLE_FL needs root (CAP_LINUX_IMMUTABLE).
func TestImmutable(t *testing.T) {
	if os.Getenv("FERRUM_LOOPDEV") == "" {
		t.Skip("needs root to set FS_IMMUTABLE_FL; set FERRUM_LOOPDEV=1 (make test does)")
	}
	dir, v := fakeEFI(t)
	p := filepath.Join(dir, "BootOrder-"+GlobalGUID)
	setImmutable(t, p)
	t.Cleanup(func() { clearImmutable(p) })
	if err := os.WriteFile(p, []byte{7, 0, 0, 0, 0, 0}, 0o644); err == nil {
		t.Fatal("writing an immutable file succeeded: the filesystem ignores the flag")
	}
	if err := v.Set("BootOrder", GlobalGUID, AttrNVBSRT, []byte{0, 0, 1, 0}); err != nil {
		t.Fatalf("Set(immutable BootOrder) = %v", err)
	}
	wantVar(t, v, "BootOrder", GlobalGUID, []byte{0, 0, 1, 0})
	if !immutable(t, p) {
		t.Error("Set did not restore the immutable flag")
	}
	if err := v.Delete("BootOrder", GlobalGUID); err != nil {
		t.Fatalf("Delete(immutable) = %v", err)
	}
}

func setImmutable(t *testing.T, p string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fl, err := getFlags(f)
	if err != nil {
		t.Fatalf("FS_IOC_GETFLAGS on %s: %v", p, err)
	}
	if err := setFlags(f, fl|fsImmutableFL); err != nil {
		t.Fatalf("FS_IOC_SETFLAGS on %s: %v (needs root)", p, err)
	}
}

func immutable(t *testing.T, p string) bool {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fl, err := getFlags(f)
	return err == nil && fl&fsImmutableFL != 0
}

func TestParseLoadOption(t *testing.T) {
	lo := LoadOption{Attributes: LoadOptionActive, Description: "debian ✓", FilePath: pxePath, OptionalData: []byte("RC")}
	b, err := lo.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseLoadOption(b)
	if err != nil || !cmp.Equal(got, lo) {
		t.Errorf("ParseLoadOption(Marshal(%+v)) = %+v, %v", lo, got, err)
	}
	for name, bad := range map[string][]byte{
		"short":          {1, 0, 0},
		"no-terminator":  {1, 0, 0, 0, 0, 0, 'a', 0},
		"path-too-long":  {1, 0, 0, 0, 9, 0, 0, 0, 1, 2},
		"odd-descriptor": {1, 0, 0, 0, 0, 0, 'a'},
	} {
		if _, err := ParseLoadOption(bad); err == nil {
			t.Errorf("ParseLoadOption(%s) = nil error", name)
		}
	}
}

func FuzzParseLoadOption(f *testing.F) {
	for _, d := range []string{"UiApp", "UEFI PXEv4 (MAC:525400123456)", ""} {
		b, _ := LoadOption{Attributes: 1, Description: d, FilePath: pxePath, OptionalData: []byte{1}}.Marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		lo, err := ParseLoadOption(b)
		if err != nil {
			return
		}
		again, err := lo.Marshal()
		if err != nil {
			return // a description with unpaired surrogates decodes to U+FFFD; fine
		}
		lo2, err := ParseLoadOption(again)
		if err != nil || !cmp.Equal(lo, lo2) {
			t.Fatalf("round trip: %+v -> %+v, %v", lo, lo2, err)
		}
	})
}

func TestApplyKeepsAttributes(t *testing.T) {
	dir, v := fakeEFI(t)
	const volatile = AttrBootserviceAccess | AttrRuntimeAccess
	if err := os.WriteFile(filepath.Join(dir, "Timeout-"+GlobalGUID), []byte{byte(volatile), 0, 0, 0, 5, 0}, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := newBIOS(t, v).Apply(context.Background(), proto.ApplyBIOSArgs{Settings: []proto.BIOSSettingValue{sv("Timeout", "3")}}); err != nil {
		t.Fatal(err)
	}
	if attrs, b, err := v.Get("Timeout", GlobalGUID); err != nil || attrs != volatile || !bytes.Equal(b, []byte{3, 0}) {
		t.Errorf("Timeout = %#x %v %v, want attributes %#x kept and value 3", attrs, b, err, volatile)
	}
}
