package vmtest

import (
	"context"
	"testing"
	"time"

	"github.com/ferrumhq/ferrum/shared/proto"
)

// TestUEFIVariableSurvivesReboot sets UEFI variables with apply_bios_settings under OVMF, then
// reads them back after a power cycle (a new QEMU process on the same variable store) and after
// a warm reset (QMP system_reset).
func TestUEFIVariableSurvivesReboot(t *testing.T) {
	needVM(t)
	dir := t.TempDir()
	const name, value = "FerrumVMTest", "survives-reboot"
	steps := []Step{
		{Name: "mount", Shell: "mount -t efivarfs efivarfs /sys/firmware/efi/efivars"},
		Exec("before", proto.CmdGetBIOSSettings, nil),
		Exec("apply", proto.CmdApplyBIOSSettings, proto.ApplyBIOSArgs{Settings: []proto.BIOSSettingValue{
			{Name: name, Value: value}, {Name: "Timeout", Value: "7"}}}),
	}
	setting := func(t *testing.T, res map[string]StepResult, step, n string) (string, proto.BIOSSettings) {
		t.Helper()
		var s proto.BIOSSettings
		if err := res[step].Decode(&s); err != nil {
			t.Fatalf("%v (mount step rc %d)", err, res["mount"].RC)
		}
		for _, x := range s.Settings {
			if x.Name == n {
				return x.Value, s
			}
		}
		return "", s
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	// Boot 1: set, power off.
	v := start(t, Config{Dir: dir, UEFI: true, Script: steps})
	res, err := v.Results(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Wait(ctx); err != nil {
		t.Fatalf("QEMU: %v", err)
	}
	v.Close()
	if got, s := setting(t, res, "before", name); got != "" || s.BootMode != proto.BootModeUEFI {
		t.Errorf("boot 1 before apply: %s = %q, boot mode %q; want unset, %q", name, got, s.BootMode, proto.BootModeUEFI)
	}
	if got, s := setting(t, res, "apply", name); got != value {
		t.Errorf("boot 1 after apply: %s = %q, want %q (changed %v)", name, got, value, s.Changed)
	}

	// Boot 2: a new QEMU process on the same OVMF_VARS.fd (a power cycle); then a warm reset.
	v = start(t, Config{Dir: dir, UEFI: true, Script: steps, Reboot: true, Hold: true})
	for run, how := range []string{"after a power cycle", "after a warm reset"} {
		res, err := v.RunResults(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := setting(t, res, "before", name); got != value {
			t.Errorf("%s: %s = %q, want %q", how, name, got, value)
		}
		// OVMF's boot manager rewrites Timeout from QEMU's boot-menu setting on every boot.
		timeout, _ := setting(t, res, "before", "Timeout")
		t.Logf("%s: Timeout = %q (set to 7 before)", how, timeout)
		if run == 0 {
			if _, err := v.QMP(ctx, "system_reset", nil); err != nil {
				t.Fatal(err)
			}
		}
	}
}
