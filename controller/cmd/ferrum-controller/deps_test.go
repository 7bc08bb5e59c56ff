package main

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/ferrumhq/ferrum/"

// rule forbids packages under From (a path prefix inside the module) to import those under any
// of Deny, except those under Allow.
type rule struct {
	name   string
	from   string
	deny   []string
	allow  []string
	exempt []string // packages under from that the rule does not cover
}

// The dependency rules of docs/architecture (layout.md). Direct imports are checked for the
// layering; transitive ones for what must never reach the agent.
var rules = []rule{
	{name: "shared imports only the standard library and yamux", from: "shared/",
		deny: []string{"controller/", "agent/", "certs/"}},
	{name: "agent never imports controller", from: "agent/", deny: []string{"controller/", "certs/"}},
	{name: "controller never imports agent", from: "controller/", deny: []string{"agent/"},
		// The link benchmark runs real agents against a real controller in one process.
		exempt: []string{"controller/bench/agentlink"}},
	{name: "certs serves the controller, never imports it", from: "certs/", deny: []string{"controller/", "agent/"}},
	{name: "agentlink is an adapter", from: "controller/agentlink", deny: []string{"controller/api", "controller/conductor",
		"controller/store", "controller/power", "controller/hardware", "controller/httpauth", "controller/metrics"}},
	{name: "node imports nothing of the project", from: "controller/node", deny: []string{""}},
	{name: "conductor knows only node and shared", from: "controller/conductor",
		deny: []string{"controller/"}, allow: []string{"controller/node", "controller/conductor"}},
	{name: "api talks to the world through the conductor", from: "controller/api",
		deny: []string{"controller/store", "controller/hardware", "controller/power", "controller/httpauth"}},
	{name: "stores are adapters", from: "controller/store/",
		deny:   []string{"controller/api", "controller/conductor", "controller/hardware", "controller/power"},
		exempt: []string{"controller/store/storetest"}}, // the conformance suite tests conductor.Store
	{name: "stores never import each other", from: "controller/store/postgres",
		deny: []string{"controller/store/"}, allow: []string{"controller/store/postgres", "controller/store/internal/"}},
	{name: "stores never import each other", from: "controller/store/sqlite",
		deny: []string{"controller/store/"}, allow: []string{"controller/store/sqlite", "controller/store/internal/"}},
	{name: "hardware types plug into the conductor only", from: "controller/hardware/",
		deny: []string{"controller/api", "controller/store", "controller/httpauth", "controller/metrics"}},
	{name: "power drivers plug into the conductor only", from: "controller/power/",
		deny: []string{"controller/api", "controller/store", "controller/hardware", "controller/httpauth",
			"controller/metrics", "controller/config", "controller/direct", "controller/agentlink"}},
	{name: "simulated BMCs are for tests and benchmarks", from: "controller/",
		deny:   []string{"controller/power/ipmi/bmcsim"},
		exempt: []string{"controller/bench", "controller/power/ipmi/bmcsim"}},
	{name: "middleware stays independent", from: "controller/httpauth",
		deny: []string{"controller/"}},
	{name: "metrics stays independent", from: "controller/metrics", deny: []string{"controller/"}},
	{name: "the agent deploy plugs into the conductor only", from: "controller/agentdeploy",
		deny: []string{"controller/api", "controller/store", "controller/power", "controller/hardware", "controller/httpauth",
			"controller/metrics", "controller/agentlink", "controller/nova", "controller/config"}},
	{name: "the boot server is an adapter", from: "controller/boot", deny: []string{"controller/"},
		allow: []string{"controller/node", "controller/boot"}},
	{name: "nova is an adapter", from: "controller/nova", deny: []string{"controller/"},
		allow:  []string{"controller/node", "controller/nova"},
		exempt: []string{"controller/nova/novatest"}},
}

func TestDependencyRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], mod)
		for _, r := range rules {
			if !strings.HasPrefix(pkg, r.from) || matches(pkg, r.exempt) {
				continue
			}
			checked++
			for _, imp := range fields[1:] {
				if !strings.HasPrefix(imp, mod) {
					continue
				}
				rel := strings.TrimPrefix(imp, mod)
				if matches(rel, r.deny) && !matches(rel, r.allow) {
					t.Errorf("%s imports %s: breaks rule %q", pkg, rel, r.name)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package matched any rule: the module path changed?")
	}
}

// The agent ends up in a small ramdisk: no database drivers or server-side heavyweights.
func TestAgentStaysSmall(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", mod+"agent/...").CombinedOutput()
	if strings.Contains(string(out), "matched no packages") {
		t.Log("no agent packages yet; nothing to check")
		return
	}
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"modernc.org/sqlite", "github.com/jackc/pgx", "database/sql",
			"github.com/prometheus/", "github.com/gophercloud/", mod + "controller/", mod + "certs",
			"github.com/smallstep/", "go.step.sm/", "google.golang.org/grpc"} {
			if strings.HasPrefix(dep, bad) {
				t.Errorf("agent depends on %s", dep)
			}
		}
	}
}

func matches(p string, prefixes []string) bool {
	for _, pre := range prefixes {
		if strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}

// shared/ is imported by both binaries: beyond the standard library only yamux may come in.
func TestSharedStaysStdlib(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", mod+"shared/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("no shared packages")
	}
	for _, dep := range deps {
		if !strings.HasPrefix(dep, mod+"shared/") && dep != "github.com/hashicorp/yamux" {
			t.Errorf("shared depends on %s", dep)
		}
	}
}
