package proto

import (
	"strings"
	"testing"
)

func init() {
	v3Examples = append(v3Examples, func() []example {
		one, max := int64(0), int64(65535)
		return []example{
			{"apply_bios_settings.args", ApplyBIOSArgs{Settings: []BIOSSettingValue{{Name: "BootOrder", Value: "0003,0001"}, {Name: "ProcVirtualization", Value: "Enabled"}}}},
			{"get_bios_settings.result", BIOSSettings{Backend: "efivarfs", BootMode: BootModeUEFI,
				Settings: []BIOSSetting{
					{Name: "BootOrder", Value: "0001,0000", AttributeType: BIOSTypeString, ResetRequired: true},
					{Name: "ProcVirtualization", Value: "Enabled", AttributeType: BIOSTypeString},
					{Name: "SecureBoot", Value: "Disabled", AttributeType: BIOSTypeEnumeration, AllowableValues: []string{"Disabled", "Enabled"}, ReadOnly: true},
					{Name: "Timeout", Value: "5", AttributeType: BIOSTypeInteger, LowerBound: &one, UpperBound: &max, ResetRequired: true},
				},
				Changed: []string{"ProcVirtualization"}, RebootRequired: true,
				BootEntries: []BootEntry{{Number: "0001", Description: "UEFI PXEv4", Active: true, DevicePath: "7f01ff04"}},
				System: &SMBIOS{BIOSVendor: "EFI Development Kit II / OVMF", BIOSVersion: "0.0.0", SysVendor: "Acme", ProductName: "BM-1000",
					ProductSerial: "SYS-SERIAL-0001", ProductUUID: "6c9e1f32-3b52-4b0e-9c1d-1f2e3d4c5b6a", ChassisAssetTag: "ASSET-1"}}},
		}
	})
}

func TestApplyBIOSArgsValidate(t *testing.T) {
	tests := []struct {
		name     string
		settings []BIOSSettingValue
		want     string
	}{
		{"ok", []BIOSSettingValue{{"ProcVirtualization", "Enabled"}, {"BootOrder", "0001"}}, ""},
		{"ok/empty-value", []BIOSSettingValue{{"Foo", ""}}, ""},
		{"none", nil, "no settings"},
		{"no-name", []BIOSSettingValue{{"", "x"}}, "without a name"},
		{"slash", []BIOSSettingValue{{"a/b", "x"}}, "'/'"},
		{"space", []BIOSSettingValue{{"a b", "x"}}, "printable"},
		{"unicode", []BIOSSettingValue{{"é", "x"}}, "printable"},
		{"long-name", []BIOSSettingValue{{strings.Repeat("a", MaxBIOSNameLen+1), "x"}}, "longer"},
		{"long-value", []BIOSSettingValue{{"a", strings.Repeat("v", MaxBIOSValueLen+1)}}, "longer"},
		{"nul-value", []BIOSSettingValue{{"a", "x\x00"}}, "NUL"},
		{"twice", []BIOSSettingValue{{"a", "1"}, {"a", "2"}}, "twice"},
		{"too-many", make([]BIOSSettingValue, MaxBIOSApply+1), "at most"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := ApplyBIOSArgs{Settings: tc.settings}
			err := a.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	for _, c := range []string{CmdGetBIOSSettings, CmdApplyBIOSSettings, CmdFactoryResetBIOS} {
		if CommandFeature(c) != FeatureBIOS {
			t.Errorf("CommandFeature(%q) = %q", c, CommandFeature(c))
		}
	}
}

func FuzzApplyBIOSArgs(f *testing.F) {
	f.Add([]byte(`{"settings":[{"name":"ProcVirtualization","value":"Enabled"}]}`))
	f.Add([]byte(`{"settings":[{"name":"a/b","value":""}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var a ApplyBIOSArgs
		if DecodeArgs(data, &a) != nil || a.Validate() != nil {
			return
		}
		for _, s := range a.Settings {
			if s.Name == "" || strings.ContainsAny(s.Name, "/ \x00") || strings.ContainsRune(s.Value, 0) {
				t.Fatalf("accepted %q=%q", s.Name, s.Value)
			}
		}
	})
}
