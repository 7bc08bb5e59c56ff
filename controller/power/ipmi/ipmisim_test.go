package ipmi

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/controller/power/ipmi/bmcsim"
)

// simNode points a node at an ipmi_sim BMC.
func simNode(s *bmcsim.Sim) *node.Node {
	n := &node.Node{UUID: "sim-" + strconv.Itoa(s.Port), Driver: Name, DriverInfo: map[string]any{
		"ipmi_address": s.Host, "ipmi_port": s.Port, "ipmi_username": "admin",
		"ipmi_password": "password", "ipmi_cipher_suite": "3"}}
	n.Normalize()
	return n
}

func gateSim(t *testing.T) {
	t.Helper()
	if os.Getenv("FERRUM_IPMI_SIM") == "" {
		t.Skip("set FERRUM_IPMI_SIM=1 to run (needs ipmi_sim from openipmi and ipmitool); make test sets it")
	}
	for _, tool := range []string{"ipmi_sim", "ipmitool"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("FERRUM_IPMI_SIM is set but %s is missing: %v", tool, err)
		}
	}
}

// TestIpmiSim runs the driver against OpenIPMI's ipmi_sim and checks the BMC with ipmitool.
func TestIpmiSim(t *testing.T) {
	gateSim(t)
	ctx := context.Background()
	dir := t.TempDir()
	sim, err := bmcsim.StartSim(ctx, bmcsim.SimOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	d := newDriver(t, nil)
	p, m := d.Power(), d.Management()
	n := simNode(sim)
	status := func() string {
		t.Helper()
		out, err := sim.Ipmitool(ctx, "power", "status")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}

	steps := []struct {
		target, wantState, wantTool string
	}{
		{node.PowerOn, node.PowerOn, "Chassis Power is on"},
		{node.Rebooting, node.PowerOn, "Chassis Power is on"},
		{node.SoftPowerOff, node.PowerOff, "Chassis Power is off"},
		{node.SoftRebooting, node.PowerOn, "Chassis Power is on"},
		{node.PowerOff, node.PowerOff, "Chassis Power is off"},
	}
	for _, s := range steps {
		if err := p.SetPowerState(ctx, n, s.target, 0); err != nil {
			t.Fatalf("SetPowerState(%s): %v", s.target, err)
		}
		if got := status(); got != s.wantTool {
			t.Errorf("after %s ipmitool says %q, want %q", s.target, got, s.wantTool)
		}
		if got, err := p.PowerState(ctx, n); err != nil || got != s.wantState {
			t.Errorf("after %s PowerState = %q, %v", s.target, got, err)
		}
	}

	for dev, want := range map[string]string{DevicePXE: "Force PXE", DeviceDisk: "Force Boot from default Hard-Drive",
		DeviceCDROM: "Force Boot from CD/DVD", DeviceBIOS: "Force Boot into BIOS Setup"} {
		if err := m.SetBootDevice(ctx, n, dev, true); err != nil {
			t.Fatalf("SetBootDevice(%s): %v", dev, err)
		}
		out, err := sim.Ipmitool(ctx, "chassis", "bootparam", "get", "5")
		if err != nil || !strings.Contains(out, "Boot Device Selector : "+want) {
			t.Errorf("after SetBootDevice(%s) bootparam 5 = %v\n%s", dev, err, out)
		}
		// ipmi_sim keeps only the selector (testing-peers.md): persistence reads back false.
		if got, err := m.GetBootDevice(ctx, n); err != nil || got.Device != dev {
			t.Errorf("GetBootDevice after %s = %+v, %v", dev, got, err)
		}
	}

	// ipmi_sim restarts: the kept session is gone without a word; the next call reopens one.
	port := sim.Port
	sim.Close()
	sim, err = bmcsim.StartSim(ctx, bmcsim.SimOptions{Dir: dir, Port: port, PowerOn: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := p.PowerState(ctx, n); err != nil || got != node.PowerOn {
		t.Fatalf("PowerState after ipmi_sim restarted = %q, %v; want a new session", got, err)
	}
	if s := d.Stats(); s.Sessions != 1 || s.Unreachable != 0 {
		t.Errorf("Stats = %+v, want one session, nothing unreachable", s)
	}
}

// TestIpmiSimFast: with in-process power (no chassis script), boot devices are refused with a
// completion code, which is the BMC answering: the error says so and the circuit stays closed.
func TestIpmiSimFast(t *testing.T) {
	gateSim(t)
	ctx := context.Background()
	sim, err := bmcsim.StartSim(ctx, bmcsim.SimOptions{Dir: t.TempDir(), Mode: bmcsim.Fast})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	d := newDriver(t, func(c *Config) { c.FailureThreshold = 1 })
	n := simNode(sim)
	if got, err := d.Power().PowerState(ctx, n); err != nil || got != node.PowerOff {
		t.Fatalf("PowerState = %q, %v", got, err)
	}
	for range 2 {
		err := d.Management().SetBootDevice(ctx, n, DevicePXE, false)
		if err == nil || !strings.Contains(err.Error(), "0xcc") {
			t.Fatalf("SetBootDevice on a BMC without boot support = %v, want its completion code", err)
		}
	}
	if got, err := d.Power().PowerState(ctx, n); err != nil || got != node.PowerOff {
		t.Fatalf("PowerState after refused boot devices = %q, %v; the circuit must stay closed", got, err)
	}
}
