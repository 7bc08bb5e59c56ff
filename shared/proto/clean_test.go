package proto

import (
	"strings"
	"testing"
)

func init() {
	v3Examples = append(v3Examples, func() []example {
		return []example{
			{"get_clean_steps.result", CleanSteps{Steps: DefaultCleanSteps()}},
			{"erase_devices.args", EraseArgs{Devices: []string{"/dev/sda", "/dev/nvme0n1"}, AllowDiscard: true, SkipReadOnly: true}},
			{"erase_devices.args.express", EraseArgs{Express: true}},
			{"erase_devices.result", EraseResult{Devices: []ErasedDevice{
				{Device: "/dev/nvme0n1", Method: EraseSecureDiscard, Bytes: 512 << 30, DurationMs: 1200},
				{Device: "/dev/sda", Method: EraseZero, Bytes: 8 << 30, DurationMs: 64000},
				{Device: "/dev/sr0", Skipped: "read-only", Bytes: 1 << 20}}}},
			{"erase_devices_metadata.result", EraseResult{Devices: []ErasedDevice{
				{Device: "/dev/sda", Method: EraseMetadata, Bytes: 8 << 30, Regions: 6, Signatures: []string{"gpt", "ext4", "linux_raid_member"}, DurationMs: 30}}}},
		}
	})
}

func TestDefaultCleanSteps(t *testing.T) {
	want := map[string]struct {
		iface    string
		priority int
		command  string
	}{
		"erase_devices_metadata": {StepInterfaceDeploy, 99, CmdEraseDevicesMetadata},
		"erase_devices":          {StepInterfaceDeploy, 10, CmdEraseDevices},
		"erase_devices_express":  {StepInterfaceDeploy, 0, CmdEraseDevices},
		"delete_configuration":   {StepInterfaceRAID, 0, CmdDeleteRAID},
		"create_configuration":   {StepInterfaceRAID, 0, CmdCreateRAID},
		"apply_configuration":    {StepInterfaceBIOS, 0, CmdApplyBIOSSettings},
		"factory_reset":          {StepInterfaceBIOS, 0, CmdFactoryResetBIOS},
	}
	steps := DefaultCleanSteps()
	if len(steps) != len(want) {
		t.Errorf("DefaultCleanSteps() has %d steps, want %d", len(steps), len(want))
	}
	for _, s := range steps {
		w, ok := want[s.Step]
		if !ok || s.Interface != w.iface || s.Priority != w.priority || s.Command != w.command {
			t.Errorf("step %+v, want %+v", s, w)
		}
		if CommandFeature(s.Command) == "" {
			t.Errorf("step %s: command %q needs no feature", s.Step, s.Command)
		}
		if len(s.CommandArgs) > 0 {
			var a EraseArgs
			if err := DecodeArgs(s.CommandArgs, &a); err != nil || a.Validate() != nil {
				t.Errorf("step %s: command_args %s: %v", s.Step, s.CommandArgs, err)
			}
		}
	}
}

func TestEraseArgsValidate(t *testing.T) {
	tests := []struct {
		name string
		devs []string
		want string
	}{
		{"ok/all", nil, ""},
		{"ok/some", []string{"/dev/sda", "/tmp/disk.img"}, ""},
		{"relative", []string{"sda"}, "absolute"},
		{"empty", []string{""}, "missing"},
		{"twice", []string{"/dev/sda", "/dev/sda"}, "twice"},
		{"nul", []string{"/dev/sd\x00a"}, "NUL"},
		{"too-many", make([]string, MaxEraseDevices+1), "at most"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := EraseArgs{Devices: tc.devs}
			err := a.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func FuzzEraseArgs(f *testing.F) {
	f.Add([]byte(`{"devices":["/dev/sda"],"allow_discard":true}`))
	f.Add([]byte(`{"devices":["/dev/sda","/dev/sda"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var a EraseArgs
		if DecodeArgs(data, &a) != nil || a.Validate() != nil {
			return
		}
		seen := map[string]bool{}
		for _, d := range a.Devices {
			if !strings.HasPrefix(d, "/") || seen[d] {
				t.Fatalf("accepted devices %q", a.Devices)
			}
			seen[d] = true
		}
	})
}
