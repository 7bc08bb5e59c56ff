package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestLifecycle runs the whole lifecycle on a QEMU machine behind ipmi_sim (package doc). It
// needs FERRUM_E2E=1 (`make e2e`, `make test`), the tools initramfs/e2e/test-setup.sh installs
// and the ramdisk (`make initramfs`); under FERRUM_E2E a missing tool fails the test.
func TestLifecycle(t *testing.T) {
	if os.Getenv("FERRUM_E2E") == "" {
		t.Skip("FERRUM_E2E not set: the lifecycle on a QEMU machine behind ipmi_sim (make e2e)")
	}
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, Options{Work: work, Format: os.Getenv("FERRUM_E2E_FORMAT"), Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel),
		Report: func(msg string) { t.Logf("[%6.1fs] %s", time.Since(start).Seconds(), msg) }})
	if err != nil {
		for _, f := range []string{"controller.log", "machine/console.log"} {
			if b, rerr := os.ReadFile(work + "/" + f); rerr == nil {
				t.Logf("---- %s (last 12 KiB)\n%s", f, tail(b, 12<<10))
			}
		}
		t.Fatal(err)
	}
	for i, d := range res.BootToConnected {
		t.Logf("FIGURE e2e boot→agent-connected #%d %.1fs (PXE under TCG: QEMU start to the agent's connected line on the console)", i, d.Seconds())
	}
	for _, m := range res.FirstBoot {
		t.Logf("FIGURE e2e first PXE boot: %s at %.1fs", m.What, m.At.Seconds())
	}
	t.Logf("FIGURE e2e power-on→active %.1fs for a %d MiB image served as %s (deploy request→active %.1fs, write_image %.1fs)",
		res.PowerOnToActive.Seconds(), res.ImageSize>>20, res.Format, res.DeployRequestToActive.Seconds(), res.WriteImage.Seconds())
	t.Logf("FIGURE e2e reboot→marker %.1fs (%s)", res.RebootToMarker.Seconds(), res.Marker)
	for _, p := range res.Phases {
		t.Logf("FIGURE e2e phase %s %.1fs", p.Name, p.Took.Seconds())
	}
	t.Logf("FIGURE e2e lifecycle %.1fs (enroll → available after undeploy)", res.Lifecycle.Seconds())
	if len(res.BootToConnected) < 4 {
		t.Errorf("agent boots measured: %d, want 4 (inspect, provide, deploy, undeploy)", len(res.BootToConnected))
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// TestChassisCommands: ipmi_sim's chassis_control commands, through the real script and TCP,
// start and stop the machine's process and choose its -boot order from the boot device.
func TestChassisCommands(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m, err := NewMachine(dir, 1<<20, MACs, dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.SetCommand(func(order string) *exec.Cmd {
		return exec.Command("sh", "-c", "echo booted "+order+"; exec sleep 60")
	})
	script := dir + "/chassis.sh"
	if err := os.WriteFile(script, []byte(m.ChassisScript()), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args    []string
		out     string
		fail    bool
		powered bool
		order   string // -boot order of the last power-on
	}{
		{args: []string{"check"}},
		{args: []string{"get", "power", "boot"}, out: "power:0\nboot:none\n"},
		{args: []string{"set", "boot", "pxe"}},
		{args: []string{"get", "boot"}, out: "boot:pxe\n"},
		{args: []string{"set", "power", "1"}, powered: true, order: "n"},
		{args: []string{"get", "power"}, out: "power:1\n", powered: true, order: "n"},
		{args: []string{"set", "boot", "default"}, powered: true, order: "n"},
		{args: []string{"set", "reset", "1"}, powered: true, order: "c"},
		{args: []string{"set", "identify", "15 0"}, powered: true, order: "c"},
		{args: []string{"set", "boot", "floppy"}, fail: true, powered: true, order: "c"},
		{args: []string{"set", "shutdown", "1"}, order: "c"},
		{args: []string{"get", "power"}, out: "power:0\n", order: "c"},
		{args: []string{"set", "power", "1"}, powered: true, order: "c"},
		{args: []string{"set", "power", "0"}, order: "c"},
		{args: []string{"frob"}, fail: true, order: "c"},
	} {
		out, err := exec.Command(script, tc.args...).Output()
		if (err != nil) != tc.fail || string(out) != tc.out {
			t.Errorf("%v: %q, %v; want %q, failure %v", tc.args, out, err, tc.out, tc.fail)
		}
		if m.PoweredOn() != tc.powered {
			t.Errorf("after %v: powered %v, want %v", tc.args, m.PoweredOn(), tc.powered)
		}
		if boots := m.Boots(); tc.order != "" && (len(boots) == 0 || boots[len(boots)-1].Order != tc.order) {
			t.Errorf("after %v: power-ons %+v, want the last with -boot order=%s", tc.args, boots, tc.order)
		}
	}
	if _, err := m.WaitConsole("booted c", 0, 5*time.Second); err != nil {
		t.Error(err)
	}
	if n := len(m.Boots()); n != 3 {
		t.Errorf("%d power-ons, want 3: %+v", n, m.Boots())
	}
	if ev := strings.Join(m.Events(), "\n"); !strings.Contains(ev, "set reset 1") {
		t.Errorf("events:\n%s", ev)
	}
}
