package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// baremetal runs the real python-ironicclient CLI against the daemon.
type baremetal struct {
	t    *testing.T
	d    *daemon
	home string
}

func (b *baremetal) run(args ...string) (string, error) {
	b.t.Helper()
	cmd := exec.Command("baremetal", args...)
	// HOME isolates the client's cached API version per test.
	cmd.Env = append(os.Environ(), "OS_ENDPOINT="+b.d.URL, "OS_AUTH_TYPE=none", "HOME="+b.home,
		"OS_CLOUD=", "OS_AUTH_URL=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (b *baremetal) ok(args ...string) string {
	b.t.Helper()
	out, err := b.run(args...)
	if err != nil {
		b.t.Fatalf("baremetal %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (b *baremetal) json(out any, args ...string) {
	b.t.Helper()
	s := b.ok(append(args, "-f", "json")...)
	if err := json.Unmarshal([]byte(s), out); err != nil {
		b.t.Fatalf("baremetal %s: not JSON: %v\n%s", strings.Join(args, " "), err, s)
	}
}

// TestBaremetalCLI drives a fake-hardware node through its life with Debian's baremetal CLI.
func TestBaremetalCLI(t *testing.T) {
	gate(t, "FERRUM_CLI_TEST", "needs python3-ironicclient")
	if _, err := exec.LookPath("baremetal"); err != nil {
		t.Fatalf("FERRUM_CLI_TEST is set but the baremetal CLI is missing: %v", err)
	}
	d := startDaemon(t, "")
	b := &baremetal{t: t, d: d, home: t.TempDir()}

	var created map[string]any
	b.json(&created, "node", "create", "--driver", "fake-hardware", "--name", "cli-0",
		"--property", "cpus=2", "--boot-interface", "ipxe", "--deploy-interface", "direct")
	uuid, _ := created["uuid"].(string)
	if len(uuid) != 36 || created["provision_state"] != "enroll" || created["boot_interface"] != "ipxe" {
		t.Fatalf("node create: %v", created)
	}

	var list []map[string]any
	b.json(&list, "node", "list")
	if len(list) != 1 || list[0]["Name"] != "cli-0" || list[0]["UUID"] != uuid {
		t.Fatalf("node list: %v", list)
	}

	b.ok("node", "set", "cli-0", "--property", "local_gb=20", "--extra", "rack=r1")
	var shown map[string]any
	b.json(&shown, "node", "show", "cli-0")
	props, _ := shown["properties"].(map[string]any)
	extra, _ := shown["extra"].(map[string]any)
	if props["local_gb"] != float64(20) || props["cpus"] != float64(2) || extra["rack"] != "r1" {
		t.Fatalf("node set: properties %v extra %v", props, extra)
	}

	b.ok("node", "power", "on", "cli-0")
	d.waitNode(uuid, "powered on", func(n apiNode) bool { return str(n.PowerState) == "power on" && n.TargetPowerState == nil })
	b.ok("node", "power", "off", "cli-0")
	d.waitNode(uuid, "powered off", func(n apiNode) bool { return str(n.PowerState) == "power off" && n.TargetPowerState == nil })

	b.ok("node", "manage", "cli-0", "--wait", "60")
	b.ok("node", "provide", "cli-0", "--wait", "60")
	b.ok("port", "create", "52:54:00:12:34:56", "--node", uuid)
	var ports []map[string]any
	b.json(&ports, "port", "list", "--node", "cli-0")
	if len(ports) != 1 || ports[0]["Address"] != "52:54:00:12:34:56" {
		t.Fatalf("port list: %v", ports)
	}
	if out, err := b.run("port", "create", "52:54:00:12:34:56", "--node", uuid); err == nil || !strings.Contains(out, "already exists") {
		t.Fatalf("duplicate port create: err %v\n%s", err, out)
	}

	b.ok("node", "deploy", "cli-0", "--wait", "60")
	b.json(&shown, "node", "show", "cli-0")
	if shown["provision_state"] != "active" || shown["power_state"] != "power on" {
		t.Fatalf("after deploy: %v / %v", shown["provision_state"], shown["power_state"])
	}

	b.ok("node", "maintenance", "set", "cli-0", "--reason", "testing")
	b.json(&shown, "node", "show", "cli-0")
	if shown["maintenance"] != true || shown["maintenance_reason"] != "testing" {
		t.Fatalf("maintenance set: %v %v", shown["maintenance"], shown["maintenance_reason"])
	}
	b.ok("node", "maintenance", "unset", "cli-0")
	b.json(&shown, "node", "show", "cli-0")
	if shown["maintenance"] != false || shown["maintenance_reason"] != nil {
		t.Fatalf("maintenance unset: %v %v", shown["maintenance"], shown["maintenance_reason"])
	}

	if out, err := b.run("node", "deploy", "cli-0"); err == nil || !strings.Contains(out, `can not be performed on node`) {
		t.Fatalf("deploy of an active node: err %v\n%s", err, out)
	}

	b.ok("node", "undeploy", "cli-0", "--wait", "60")
	b.json(&shown, "node", "show", "cli-0")
	if shown["provision_state"] != "available" {
		t.Fatalf("after undeploy: %v", shown["provision_state"])
	}

	b.ok("node", "manage", "cli-0", "--wait", "60")
	b.ok("node", "delete", "cli-0")
	if out, err := b.run("node", "show", "cli-0"); err == nil || !strings.Contains(out, "could not be found") {
		t.Fatalf("show after delete: err %v\n%s", err, out)
	}
	b.json(&ports, "port", "list")
	if len(ports) != 0 {
		t.Fatalf("ports left after node delete: %v", ports)
	}
}
