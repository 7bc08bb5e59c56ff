package api

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/controller/node"
)

func TestPatchNodeErrors(t *testing.T) {
	allowed := "automated_clean, bios_interface, boot_interface, chassis_uuid, conductor_group, " +
		"console_interface, deploy_interface, description, driver, driver_info, extra, " +
		"inspect_interface, instance_info, instance_uuid, lessee, maintenance, " +
		"management_interface, name, network_data, network_interface, owner, power_interface, " +
		"properties, protected, protected_reason, raid_interface, rescue_interface, " +
		"resource_class, retired, retired_reason, shard, storage_interface, vendor_interface"
	cases := []struct {
		name   string
		ver    string
		patch  string
		status int
		msg    string
	}{
		{"read-only-uuid", "1.78", `[{"op":"replace","path":"/uuid","value":"x"}]`, 400, "Cannot patch /uuid. Only the following can be updated: " + allowed},
		{"read-only-state", "1.78", `[{"op":"replace","path":"/provision_state","value":"active"}]`, 400, "Cannot patch /provision_state. Only the following can be updated: " + allowed},
		{"read-only-nested", "1.78", `[{"op":"add","path":"/driver_internal_info/x","value":1}]`, 400, "Cannot patch /driver_internal_info/x. Only the following can be updated: " + allowed},
		{"unknown-root", "1.78", `[{"op":"add","path":"/bogus","value":"x"}]`, 400, "Cannot patch /bogus. Only the following can be updated: " + allowed},
		{"traits", "1.78", `[{"op":"add","path":"/traits","value":["CUSTOM_X"]}]`, 400, "Cannot patch /traits. Only the following can be updated: " + allowed},
		{"move", "1.78", `[{"op":"move","path":"/extra/a","from":"/extra/b"}]`, 400, "Schema error for patch: Additional properties are not allowed ('from' was unexpected)"},
		{"test-op", "1.78", `[{"op":"test","path":"/extra/a","value":1}]`, 400, "Schema error for patch: 'test' is not one of ['add', 'replace', 'remove']"},
		{"bad-path", "1.78", `[{"op":"add","path":"/extra/a b","value":1}]`, 400, `Schema error for patch: '/extra/a b' does not match '^(/[\\w-]+)+$'`},
		{"root-path", "1.78", `[{"op":"add","path":"/","value":1}]`, 400, `Schema error for patch: '/' does not match '^(/[\\w-]+)+$'`},
		{"no-op", "1.78", `[{"path":"/extra/x"}]`, 400, "Schema error for patch: 'op' is a required property"},
		{"not-array", "1.78", `{"op":"add"}`, 400, "Schema error for patch: {'op': 'add'} is not of type 'array'"},
		{"empty-body", "1.78", ``, 400, "Schema error for patch: {} is not of type 'array'"},
		{"item-not-object", "1.78", `[1]`, 400, "Schema error for patch: 1 is not of type 'object'"},
		{"missing-value", "1.78", `[{"op":"add","path":"/extra/x"}]`, 400, "Couldn't apply patch '{'op': 'add', 'path': '/extra/x'}'. Reason: The operation does not contain a 'value' member"},
		{"missing-parent", "1.78", `[{"op":"add","path":"/properties/a/b","value":1}]`, 400, "Couldn't apply patch '{'op': 'add', 'path': '/properties/a/b', 'value': 1}'. Reason: member 'a' not found in {}"},
		{"remove-missing", "1.78", `[{"op":"remove","path":"/extra/nope"}]`, 400, "Couldn't apply patch '{'op': 'remove', 'path': '/extra/nope'}'. Reason: can't remove a non-existent object 'nope'"},
		{"replace-missing", "1.78", `[{"op":"replace","path":"/properties/cpus","value":"8"}]`, 400, "Couldn't apply patch '{'op': 'replace', 'path': '/properties/cpus', 'value': '8'}'. Reason: can't replace a non-existent object 'cpus'"},
		{"secret-in-message", "1.78", `[{"op":"add","path":"/driver_info/x/ipmi_password","value":"s3cr3t"}]`, 400, "Couldn't apply patch '{'op': 'add', 'path': '/driver_info/x/ipmi_password', 'value': '******'}'. Reason: member 'x' not found in {'ipmi_password': '******'}"},
		{"dict-type", "1.78", `[{"op":"add","path":"/extra","value":[1]}]`, 400, "Schema error for patch: [1] is not of type 'object', 'null'"},
		{"bool-type", "1.78", `[{"op":"replace","path":"/retired","value":1}]`, 400, "Schema error for patch: 1 is not of type 'string', 'boolean', 'null'"},
		{"bool-string", "1.78", `[{"op":"replace","path":"/maintenance","value":"maybe"}]`, 400, "Invalid maintenance: Unrecognized value 'maybe', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"},
		{"maintenance-null", "1.78", `[{"op":"replace","path":"/maintenance","value":null}]`, 400, "Field `maintenance' cannot be None"},
		{"remove-driver", "1.78", `[{"op":"remove","path":"/driver"}]`, 400, "Schema error for patch: 'driver' is a required property"},
		{"bad-instance-uuid", "1.78", `[{"op":"replace","path":"/instance_uuid","value":"notuuid"}]`, 400, "Expected UUID for instance_uuid: notuuid"},
		{"bad-name", "1.78", `[{"op":"replace","path":"/name","value":"bad name"}]`, 400, "Node n0: Cannot change name to invalid name 'bad name'"},
		{"name-below-1.5", "1.4", `[{"op":"replace","path":"/description","value":"x"}]`, 406, "Request not acceptable."},
		{"shard-below-1.82", "1.78", `[{"op":"replace","path":"/shard","value":"s"}]`, 406, "Request not acceptable."},
		{"description-too-long", "1.78", `[{"op":"replace","path":"/description","value":"` + strings.Repeat("d", 4097) + `"}]`, 400, "Cannot update node with description exceeding 4096 characters"},
		{"reset-without-driver", "1.78", `[{"op":"replace","path":"/extra","value":{}}]`, 400, "The reset_interfaces parameter can only be used when changing the node's driver."},
		{"protected-in-enroll", "1.78", `[{"op":"replace","path":"/protected","value":"yes"}]`, 409, "Node %s can only be made protected in provision states 'active' or 'rescue', the current state is 'enroll'"},
		{"protected-reason-alone", "1.78", `[{"op":"add","path":"/protected_reason","value":"x"}]`, 400, "The protected_reason field can only be set when protected is True"},
		{"retired-reason-alone", "1.78", `[{"op":"add","path":"/retired_reason","value":"x"}]`, 400, "The retired_reason field can only be set when retired is True"},
		{"bad-interface", "1.78", `[{"op":"replace","path":"/network_interface","value":"nope"}]`, 400, "Could not find the following interface in the 'ironic.hardware.interfaces.network' entrypoint: nope. Valid interfaces are ['noop']."},
		{"chassis", "1.78", `[{"op":"add","path":"/chassis_uuid","value":"11111111-2222-3333-4444-555555555555"}]`, 400, "Chassis 11111111-2222-3333-4444-555555555555 could not be found."},
		{"into-string", "1.78", `[{"op":"add","path":"/extra/s/x","value":1}]`, 400, "Couldn't apply patch '{'op': 'add', 'path': '/extra/s/x', 'value': 1}'. Reason: 'x' is not a valid sequence index"},
		{"into-number", "1.78", `[{"op":"add","path":"/extra/n/x","value":1}]`, 400, "Couldn't apply patch '{'op': 'add', 'path': '/extra/n/x', 'value': 1}'. Reason: Document '<class 'int'>' does not support indexing, must be mapping/sequence or support __getitem__"},
		{"list-outside", "1.78", `[{"op":"add","path":"/extra/l/5","value":1}]`, 400, "Couldn't apply patch '{'op': 'add', 'path': '/extra/l/5', 'value': 1}'. Reason: can't insert outside of list"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newTestAPI(t)
			id := mustCreateNode(t, h, `{"driver": "fake-hardware", "name": "n0", "extra": {"s": "str", "n": 1, "l": [1]}}`)
			path := "/v1/nodes/n0"
			if strings.HasPrefix(tc.name, "reset") {
				path += "?reset_interfaces=true"
			}
			if tc.name == "secret-in-message" {
				do(t, h, "1.78", "PATCH", path, `[{"op":"add","path":"/driver_info/ipmi_password","value":"p"}]`)
			}
			if tc.name == "name-below-1.5" {
				path = "/v1/nodes/" + id
				tc.patch = `[{"op":"replace","path":"/name","value":"x"}]`
			}
			r := do(t, h, tc.ver, "PATCH", path, tc.patch)
			want := tc.msg
			if strings.Contains(want, "%s") {
				want = strings.ReplaceAll(want, "%s", id)
			}
			if status, msg := r.fault(t); status != tc.status || msg != want {
				t.Errorf("PATCH %s = %d %q\nwant %d %q", tc.patch, status, msg, tc.status, want)
			}
		})
	}
}

func TestPatchNode(t *testing.T) {
	cases := []struct {
		name  string
		patch string
		check func(t *testing.T, n *node.Node)
	}{
		{"nested-add", `[{"op":"add","path":"/properties/local_gb","value":20},{"op":"add","path":"/extra/rack","value":"r1"}]`,
			func(t *testing.T, n *node.Node) {
				if n.Properties["local_gb"] != float64(20) || n.Extra["rack"] != "r1" {
					t.Errorf("properties %v extra %v", n.Properties, n.Extra)
				}
			}},
		{"coerce-maintenance", `[{"op":"replace","path":"/maintenance","value":"true"}]`,
			func(t *testing.T, n *node.Node) {
				if !n.Maintenance {
					t.Error("maintenance not set")
				}
			}},
		{"coerce-automated-clean", `[{"op":"replace","path":"/automated_clean","value":"off"}]`,
			func(t *testing.T, n *node.Node) {
				if n.AutomatedClean == nil || *n.AutomatedClean {
					t.Errorf("automated_clean = %v", n.AutomatedClean)
				}
			}},
		{"coerce-retired-with-reason", `[{"op":"replace","path":"/retired","value":"True"},{"op":"add","path":"/retired_reason","value":"old"}]`,
			func(t *testing.T, n *node.Node) {
				if !n.Retired || n.RetiredReason != "old" {
					t.Errorf("retired %v %q", n.Retired, n.RetiredReason)
				}
			}},
		{"lists", `[{"op":"add","path":"/extra/l","value":[1,2]},{"op":"add","path":"/extra/l/1","value":9},{"op":"add","path":"/extra/l/-","value":7},{"op":"remove","path":"/extra/l/0"}]`,
			func(t *testing.T, n *node.Node) {
				if diff := cmp.Diff([]any{float64(9), float64(2), float64(7)}, n.Extra["l"]); diff != "" {
					t.Errorf("list (-want +got):\n%s", diff)
				}
			}},
		{"nested-dicts", `[{"op":"add","path":"/driver_info/a","value":{"b":1}},{"op":"add","path":"/driver_info/a/c","value":2}]`,
			func(t *testing.T, n *node.Node) {
				if diff := cmp.Diff(map[string]any{"b": float64(1), "c": float64(2)}, n.DriverInfo["a"]); diff != "" {
					t.Errorf("driver_info.a (-want +got):\n%s", diff)
				}
			}},
		{"remove-name-and-dict", `[{"op":"remove","path":"/name"},{"op":"remove","path":"/extra"}]`,
			func(t *testing.T, n *node.Node) {
				if n.Name != "" || len(n.Extra) != 0 {
					t.Errorf("name %q extra %v", n.Name, n.Extra)
				}
			}},
		{"null-dict-is-empty", `[{"op":"replace","path":"/properties","value":null}]`,
			func(t *testing.T, n *node.Node) {
				if n.Properties == nil || len(n.Properties) != 0 {
					t.Errorf("properties %v", n.Properties)
				}
			}},
		{"conductor-group-lowercase", `[{"op":"replace","path":"/conductor_group","value":""}]`, nil},
		{"interface", `[{"op":"replace","path":"/deploy_interface","value":"direct"}]`,
			func(t *testing.T, n *node.Node) {
				if n.Deploy != "direct" {
					t.Errorf("deploy = %q", n.Deploy)
				}
			}},
		{"empty-patch", `[]`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, be := newTestAPI(t)
			id := mustCreateNode(t, h, `{"driver": "fake-hardware", "name": "n0", "extra": {"keep": 1}}`)
			r := do(t, h, "1.78", "PATCH", "/v1/nodes/n0", tc.patch)
			if r.status != 200 {
				t.Fatalf("PATCH = %d %s", r.status, r.body)
			}
			if tc.check != nil {
				tc.check(t, be.Node(id))
			}
		})
	}
}

func TestPatchNodeStates(t *testing.T) {
	cases := []struct {
		name   string
		n      node.Node
		patch  string
		status int
		msg    string
	}{
		{"transition-in-progress", node.Node{ProvisionState: node.Deploying, TargetProvisionState: node.Active},
			`[{"op":"add","path":"/extra/a","value":1}]`, 409, "Node n can not be updated while a state transition is in progress."},
		{"update-allowed-state", node.Node{ProvisionState: node.DeployFail, TargetProvisionState: node.Active},
			`[{"op":"add","path":"/extra/a","value":1}]`, 200, ""},
		{"inspecting", node.Node{ProvisionState: node.Inspecting, TargetProvisionState: node.Manageable},
			`[{"op":"add","path":"/extra/a","value":1}]`, 409, `Cannot update node "00000000-0000-0000-0000-000000000001" while it is in state "inspecting".`},
		{"maintenance-remove-instance", node.Node{ProvisionState: node.Deploying, TargetProvisionState: node.Active,
			Maintenance: true, InstanceUUID: "10000000-0000-0000-0000-000000000000"},
			`[{"op":"remove","path":"/instance_uuid"}]`, 200, ""},
		{"interface-when-active", node.Node{ProvisionState: node.Active},
			`[{"op":"replace","path":"/deploy_interface","value":"direct"}]`, 409,
			"Node 00000000-0000-0000-0000-000000000001 can not have deploy_interface updated unless it is in one of allowed (enroll, inspecting, inspect wait, manageable, available) states or in maintenance mode."},
		{"interface-in-maintenance", node.Node{ProvisionState: node.Active, Maintenance: true},
			`[{"op":"replace","path":"/deploy_interface","value":"direct"}]`, 200, ""},
		{"associated", node.Node{ProvisionState: node.Active, InstanceUUID: "10000000-0000-0000-0000-000000000000"},
			`[{"op":"replace","path":"/instance_uuid","value":"20000000-0000-0000-0000-000000000000"}]`, 409,
			"Node 00000000-0000-0000-0000-000000000001 is associated with instance 10000000-0000-0000-0000-000000000000."},
		{"protect-active", node.Node{ProvisionState: node.Active},
			`[{"op":"replace","path":"/protected","value":true},{"op":"add","path":"/protected_reason","value":"prod"}]`, 200, ""},
		{"retire-available", node.Node{ProvisionState: node.Available},
			`[{"op":"replace","path":"/retired","value":true}]`, 409,
			"Node 00000000-0000-0000-0000-000000000001 can not have 'retired' set in provision state 'available', the current state is 'available'"},
		{"resource-class-active", node.Node{ProvisionState: node.Active, ResourceClass: "gold"},
			`[{"op":"replace","path":"/resource_class","value":"silver"}]`, 409,
			"Node 00000000-0000-0000-0000-000000000001 can not have resource_class updated unless it is in one of allowed (enroll, inspecting, inspect wait, manageable, available) states."},
		{"locked", node.Node{ProvisionState: node.Enroll, Reservation: "other-host"},
			`[{"op":"add","path":"/extra/a","value":1}]`, 409,
			"Node 00000000-0000-0000-0000-000000000001 is locked by host other-host, please retry after the current operation is completed."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, be := newTestAPI(t)
			n := tc.n
			n.UUID, n.Name = "00000000-0000-0000-0000-000000000001", "n"
			putNode(be, &n)
			r := do(t, h, "1.78", "PATCH", "/v1/nodes/n", tc.patch)
			if tc.status == 200 {
				if r.status != 200 {
					t.Errorf("PATCH = %d %s", r.status, r.body)
				}
				return
			}
			if status, msg := r.fault(t); status != tc.status || msg != tc.msg {
				t.Errorf("PATCH = %d %q\nwant %d %q", status, msg, tc.status, tc.msg)
			}
		})
	}
}

// TestPatchMaintenanceOffClearsReason: turning maintenance off drops reason and fault.
func TestPatchMaintenanceOffClearsReason(t *testing.T) {
	h, be := newTestAPI(t)
	putNode(be, &node.Node{UUID: "00000000-0000-0000-0000-000000000001", Name: "n",
		ProvisionState: node.Enroll, Maintenance: true, MaintenanceReason: "r", Fault: node.FaultPowerFailure})
	if r := do(t, h, "1.78", "PATCH", "/v1/nodes/n", `[{"op":"replace","path":"/maintenance","value":"false"}]`); r.status != 200 {
		t.Fatalf("PATCH = %d %s", r.status, r.body)
	}
	n := be.Node("00000000-0000-0000-0000-000000000001")
	if n.Maintenance || n.MaintenanceReason != "" || n.Fault != "" {
		t.Errorf("after unset: maintenance %v reason %q fault %q", n.Maintenance, n.MaintenanceReason, n.Fault)
	}
}

func TestPatchResetInterfaces(t *testing.T) {
	h, be := newTestAPI(t)
	id := mustCreateNode(t, h, `{"driver": "fake-hardware", "name": "n"}`)
	r := do(t, h, "1.78", "PATCH", "/v1/nodes/n?reset_interfaces=true", `[{"op":"replace","path":"/driver","value":"ipmi"}]`)
	if r.status != 200 {
		t.Fatalf("PATCH = %d %s", r.status, r.body)
	}
	if n := be.Node(id); n.Power != "ipmitool" || n.Boot != "ipxe" {
		t.Errorf("interfaces after reset: power %q boot %q", n.Power, n.Boot)
	}
	r = do(t, h, "1.44", "PATCH", "/v1/nodes/n?reset_interfaces=true", `[{"op":"replace","path":"/driver","value":"fake-hardware"}]`)
	if status, _ := r.fault(t); status != 406 {
		t.Errorf("reset_interfaces at 1.44 = %d, want 406", status)
	}
}
