package main

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrumhq/ferrum/controller/power/ipmi/bmcsim"
)

// bmcPassword is distinctive so that a leak into logs can be searched for.
const bmcPassword = "Xq7-ferrum-pw"

// ipmiNode enrolls a node with driver ipmi through the API and returns its UUID.
func (d *daemon) ipmiNode(name, host string, port int, password string) string {
	d.t.Helper()
	var n apiNode
	code, _, body := d.call("POST", "/v1/nodes", map[string]any{"name": name, "driver": "ipmi",
		"driver_info": map[string]any{"ipmi_address": host, "ipmi_port": port, "ipmi_username": "admin",
			"ipmi_password": password, "ipmi_cipher_suite": 3}}, &n)
	if code != 201 {
		d.t.Fatalf("create ipmi node %s: %d %s", name, code, body)
	}
	return n.UUID
}

// manage moves a node to manageable, which reads its power state over IPMI.
func (d *daemon) manage(ident string) apiNode {
	d.t.Helper()
	if code, _, body := d.call("PUT", "/v1/nodes/"+ident+"/states/provision", map[string]any{"target": "manage"}, nil); code != 202 {
		d.t.Fatalf("manage %s: %d %s", ident, code, body)
	}
	return d.waitNode(ident, "manageable", func(n apiNode) bool {
		return n.ProvisionState == "manageable" && n.Reservation == nil
	})
}

// startIpmiSim gates the test on FERRUM_IPMI_SIM (failing when a tool is missing), starts an
// ipmi_sim BMC with bmcPassword, and returns it with an ipmitool runner that fails the test
// on error.
func startIpmiSim(t *testing.T, tools ...string) (*bmcsim.Sim, func(args ...string) string) {
	t.Helper()
	why := "needs ipmi_sim (openipmi) and ipmitool"
	if len(tools) > 0 {
		why += " and " + strings.Join(tools, ", ")
	}
	gate(t, "FERRUM_IPMI_SIM", why)
	for _, tool := range append([]string{"ipmi_sim", "ipmitool"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("FERRUM_IPMI_SIM is set but %s is missing: %v", tool, err)
		}
	}
	ctx := context.Background()
	sim, err := bmcsim.StartSim(ctx, bmcsim.SimOptions{Dir: t.TempDir(), Password: bmcPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim, func(args ...string) string {
		t.Helper()
		out, err := sim.Ipmitool(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

func (d *daemon) noSecretsInLogs() {
	d.t.Helper()
	if strings.Contains(d.logs.String(), bmcPassword) {
		d.t.Errorf("the BMC password appears in the daemon's logs")
	}
}

// TestIPMIWithIpmiSim drives a node whose BMC is OpenIPMI's ipmi_sim with the baremetal CLI and
// checks every effect independently with ipmitool.
func TestIPMIWithIpmiSim(t *testing.T) {
	sim, ipmitool := startIpmiSim(t, "baremetal")
	waitBMC := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			out := ipmitool("power", "status")
			if strings.Contains(out, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("ipmitool power status = %q, never %q", out, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	d := startDaemon(t, "", "--power-sync-interval", "1s")
	b := &baremetal{t: t, d: d, home: t.TempDir()}
	uuid := d.ipmiNode("sim-0", sim.Host, sim.Port, bmcPassword)
	if n := d.manage(uuid); str(n.PowerState) != "power off" {
		t.Fatalf("after manage: power_state %q, want power off read from the BMC", str(n.PowerState))
	}

	b.ok("node", "power", "on", "sim-0")
	d.waitNode(uuid, "powered on", func(n apiNode) bool { return str(n.PowerState) == "power on" && n.TargetPowerState == nil })
	if out := ipmitool("power", "status"); !strings.Contains(out, "Chassis Power is on") {
		t.Fatalf("after baremetal node power on, ipmitool says %q", out)
	}

	b.ok("node", "boot", "device", "set", "sim-0", "pxe")
	if out := ipmitool("chassis", "bootparam", "get", "5"); !strings.Contains(out, "Boot Device Selector : Force PXE") {
		t.Fatalf("after boot device set pxe, ipmitool bootparam 5:\n%s", out)
	}
	var shown map[string]any
	b.json(&shown, "node", "boot", "device", "show", "sim-0")
	if shown["boot_device"] != "pxe" {
		t.Errorf("baremetal node boot device show = %v, want pxe", shown)
	}

	// Behind the controller's back: the sync notices and, forcing by default, powers it on again.
	ipmitool("power", "off")
	waitBMC("Chassis Power is on")
	if !strings.Contains(d.logs.String(), "changing the hardware") {
		t.Errorf("the daemon never logged the forced correction")
	}
	if n := d.node(uuid); str(n.PowerState) != "power on" || n.Maintenance {
		t.Errorf("after the forced correction: power %q maintenance %v", str(n.PowerState), n.Maintenance)
	}

	b.ok("node", "power", "off", "sim-0")
	d.waitNode(uuid, "powered off", func(n apiNode) bool { return str(n.PowerState) == "power off" && n.TargetPowerState == nil })
	waitBMC("Chassis Power is off")
	d.noSecretsInLogs()

	// The same data with force_power_state_during_sync off: the record follows the hardware.
	d.stop(syscall.SIGTERM)
	d2 := startDaemon(t, d.DataDir, "--power-sync-interval", "1s", "--force-power-state-during-sync=false")
	ipmitool("power", "on")
	d2.waitNode(uuid, "recorded as on", func(n apiNode) bool { return str(n.PowerState) == "power on" })
	time.Sleep(1500 * time.Millisecond) // a pass or more later it must still be on
	if out := ipmitool("power", "status"); !strings.Contains(out, "Chassis Power is on") {
		t.Errorf("with force off the controller changed the hardware: %q", out)
	}
	var masked map[string]any
	d2.call("GET", "/v1/nodes/"+uuid, nil, &masked)
	if di, _ := masked["driver_info"].(map[string]any); di["ipmi_password"] != "******" {
		t.Errorf("driver_info in the API = %v, want the password masked", masked["driver_info"])
	}
	d2.noSecretsInLogs()
}

// TestIPMIMixedFleet runs the daemon against go-ipmi BMCs in this process: a silent BMC, a
// wrong password and a BMC slower than the timeout each get a clear last_error, then
// maintenance with fault "power failure", while a healthy node's sync goes on; a fixed node
// recovers on its own.
func TestIPMIMixedFleet(t *testing.T) {
	start := func(o bmcsim.Options) *bmcsim.BMC {
		b, err := bmcsim.Start("127.0.0.1:0", o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	restart := func(b *bmcsim.BMC, o bmcsim.Options) *bmcsim.BMC {
		b.Close()
		o.Password = bmcPassword
		nb, err := bmcsim.Start(b.Addr(), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nb.Close() })
		return nb
	}
	good := start(bmcsim.Options{Password: bmcPassword, PowerOn: true})
	silent := start(bmcsim.Options{Password: bmcPassword})
	slow := start(bmcsim.Options{Password: bmcPassword})
	wrong := start(bmcsim.Options{Password: bmcPassword})

	d := startDaemon(t, "", "--power-sync-interval", "500ms", "--power-failure-recovery-interval", "500ms",
		"--ipmi-timeout", "300ms", "--ipmi-attempts", "1", "--ipmi-probe-interval", "200ms",
		"--log-level", "debug") // the password must not show even in debug logs
	ids := map[string]string{}
	for name, b := range map[string]*bmcsim.BMC{"good": good, "silent": silent, "slow": slow, "wrong": wrong} {
		ids[name] = d.ipmiNode(name, b.Host, b.Port, bmcPassword)
		d.manage(ids[name])
	}
	// Break three of them after enrolment.
	silent = restart(silent, bmcsim.Options{Silent: true})
	restart(slow, bmcsim.Options{Delay: time.Second})
	if code, _, body := d.call("PATCH", "/v1/nodes/wrong", []map[string]any{{"op": "replace",
		"path": "/driver_info/ipmi_password", "value": "not-the-password"}}, nil); code != 200 {
		t.Fatalf("PATCH password: %d %s", code, body)
	}

	for name, want := range map[string]string{"silent": "no answer from the BMC within 300ms",
		"slow": "no answer from the BMC within 300ms", "wrong": "the BMC refused the credentials"} {
		n := d.waitNode(ids[name], "failing with a clear last_error", func(n apiNode) bool {
			return strings.Contains(str(n.LastError), want)
		})
		if !strings.Contains(str(n.LastError), "127.0.0.1:") {
			t.Errorf("%s: last_error %q does not name the BMC", name, str(n.LastError))
		}
		n = d.waitNode(ids[name], "in maintenance", func(n apiNode) bool { return n.Maintenance })
		var full map[string]any
		d.call("GET", "/v1/nodes/"+ids[name], nil, &full)
		if full["fault"] != "power failure" || !strings.Contains(str(n.MaintenanceReason), "max retries exceeded") {
			t.Errorf("%s: fault %v reason %q", name, full["fault"], str(n.MaintenanceReason))
		}
	}

	// Meanwhile the healthy node is still watched: switched off behind our back, it comes back.
	good.Chassis.SetPowerBehindBack(false)
	deadline := time.Now().Add(10 * time.Second)
	for !good.Chassis.Power() {
		if time.Now().After(deadline) {
			t.Fatal("the healthy node's sync stopped: it was never powered back on")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := d.node(ids["good"]); n.Maintenance || str(n.LastError) != "" {
		t.Errorf("healthy node: maintenance %v last_error %q", n.Maintenance, str(n.LastError))
	}

	// Fixing the password (allowed in maintenance) lets recovery take the node out of it.
	if code, _, body := d.call("PATCH", "/v1/nodes/wrong", []map[string]any{{"op": "replace",
		"path": "/driver_info/ipmi_password", "value": bmcPassword}}, nil); code != 200 {
		t.Fatalf("PATCH password back: %d %s", code, body)
	}
	d.waitNode(ids["wrong"], "recovered", func(n apiNode) bool { return !n.Maintenance && str(n.PowerState) == "power off" })
	// The silent BMC comes back too.
	restart(silent, bmcsim.Options{})
	d.waitNode(ids["silent"], "recovered", func(n apiNode) bool { return !n.Maintenance })
	d.noSecretsInLogs()
}
