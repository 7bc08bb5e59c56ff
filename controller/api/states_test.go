package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/controller/api/apitest"
	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
)

const nodeU = "00000000-0000-0000-0000-000000000001"

// stateAPI returns a handler with one node "n" in the given state.
func stateAPI(t *testing.T, n node.Node) (http.Handler, *apitest.Backend) {
	t.Helper()
	h, be := newTestAPI(t)
	n.UUID, n.Name = nodeU, "n"
	putNode(be, &n)
	return h, be
}

func TestGetStates(t *testing.T) {
	h, _ := stateAPI(t, node.Node{ProvisionState: node.InspectWait, TargetProvisionState: node.Manageable,
		PowerState: node.PowerOn, LastError: "oops", BootMode: "uefi"})
	cases := []struct {
		ver  string
		want string
	}{
		{"1.11", `{"console_enabled": false, "last_error": "oops", "power_state": "power on", "provision_state": "inspecting", "target_power_state": null, "target_provision_state": "manageable", "provision_updated_at": null}`},
		{"1.74", `{"console_enabled": false, "last_error": "oops", "power_state": "power on", "provision_state": "inspect wait", "target_power_state": null, "target_provision_state": "manageable", "provision_updated_at": null, "raid_config": {}, "target_raid_config": {}}`},
		{"1.75", `{"console_enabled": false, "last_error": "oops", "power_state": "power on", "provision_state": "inspect wait", "target_power_state": null, "target_provision_state": "manageable", "provision_updated_at": null, "raid_config": {}, "target_raid_config": {}, "boot_mode": "uefi", "secure_boot": null}`},
	}
	for _, tc := range cases {
		r := do(t, h, tc.ver, "GET", "/v1/nodes/n/states", "")
		if r.status != 200 || r.body != tc.want {
			t.Errorf("states at %s = %d %s\nwant %s", tc.ver, r.status, r.body, tc.want)
		}
	}
}

func TestSetPower(t *testing.T) {
	cases := []struct {
		name        string
		ver         string
		state       node.State
		body        string
		status      int
		msg         string
		wantTarget  string
		wantTimeout time.Duration
	}{
		{"off", "1.78", node.Enroll, `{"target": "power off"}`, 202, "", "power off", 0},
		{"on-timeout", "1.78", node.Enroll, `{"target": "power on", "timeout": 30}`, 202, "", "power on", 30 * time.Second},
		{"timeout-string", "1.78", node.Enroll, `{"target": "rebooting", "timeout": "10"}`, 202, "", "rebooting", 10 * time.Second},
		{"soft", "1.27", node.Enroll, `{"target": "soft power off"}`, 202, "", "soft power off", 0},
		{"soft-too-old", "1.26", node.Enroll, `{"target": "soft rebooting"}`, 406, "Request not acceptable.", "", 0},
		{"timeout-too-old", "1.26", node.Enroll, `{"target": "power on", "timeout": 5}`, 406, "Request not acceptable.", "", 0},
		{"timeout-zero", "1.78", node.Enroll, `{"target": "power on", "timeout": 0}`, 400, "timeout has to be positive integer", "", 0},
		{"timeout-bad", "1.78", node.Enroll, `{"target": "power on", "timeout": "abc"}`, 400, "Expected an integer for timeout: abc", "", 0},
		{"bad-target", "1.78", node.Enroll, `{"target": "bogus"}`, 400, `The requested action "bogus" can not be performed on node "n" while it is in state "None".`, "", 0},
		{"target-type", "1.78", node.Enroll, `{"target": 5}`, 400, "Expected string for target: 5", "", 0},
		{"no-target", "1.78", node.Enroll, `{}`, 400, "Missing mandatory parameter: target", "", 0},
		{"not-object", "1.78", node.Enroll, `[1]`, 400, "Missing mandatory parameter: target", "", 0},
		{"extra-arg", "1.78", node.Enroll, `{"target": "power on", "bogus": 1}`, 400, "Unexpected arguments: bogus", "", 0},
		{"cleaning", "1.78", node.Cleaning, `{"target": "power on"}`, 400, `The requested action "power on" can not be performed on node "n" while it is in state "cleaning".`, "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, be := stateAPI(t, node.Node{ProvisionState: tc.state})
			r := do(t, h, tc.ver, "PUT", "/v1/nodes/n/states/power", tc.body)
			if tc.status == 202 {
				if r.status != 202 || r.body != "" || r.header.Get("Location") != "http://"+captureHost+"/v1/nodes/n/states" {
					t.Fatalf("PUT power = %d %q Location %q", r.status, r.body, r.header.Get("Location"))
				}
				want := []apitest.PowerCall{{Node: nodeU, Target: tc.wantTarget, Timeout: tc.wantTimeout}}
				if diff := cmp.Diff(want, be.Powers); diff != "" {
					t.Errorf("backend calls (-want +got):\n%s", diff)
				}
				return
			}
			if status, msg := r.fault(t); status != tc.status || msg != tc.msg {
				t.Errorf("PUT power = %d %q\nwant %d %q", status, msg, tc.status, tc.msg)
			}
		})
	}
}

func TestSetProvision(t *testing.T) {
	steps := `[{"interface": "deploy", "step": "erase_devices", "args": {"x": 1}}]`
	cases := []struct {
		name   string
		ver    string
		n      node.Node
		body   string
		status int
		msg    string
		want   *conductor.ProvisionRequest
	}{
		{"manage", "1.78", node.Node{ProvisionState: node.Enroll}, `{"target": "manage"}`, 202, "",
			&conductor.ProvisionRequest{Target: "manage"}},
		{"manage-too-old", "1.3", node.Node{ProvisionState: node.Enroll}, `{"target": "manage"}`, 406, "Request not acceptable.", nil},
		{"deploy-verb-too-old", "1.72", node.Node{ProvisionState: node.Available}, `{"target": "deploy"}`, 406, "Request not acceptable.", nil},
		{"deploy-verb", "1.73", node.Node{ProvisionState: node.Available}, `{"target": "deploy"}`, 202, "",
			&conductor.ProvisionRequest{Target: "deploy"}},
		{"active-configdrive-string", "1.78", node.Node{ProvisionState: node.Available}, `{"target": "active", "configdrive": "H4sIAAAA\n"}`, 202, "",
			&conductor.ProvisionRequest{Target: "active", ConfigDrive: "H4sIAAAA\n"}},
		{"active-configdrive-url", "1.78", node.Node{ProvisionState: node.Available}, `{"target": "active", "configdrive": "http://x/cd.iso"}`, 202, "",
			&conductor.ProvisionRequest{Target: "active", ConfigDrive: "http://x/cd.iso"}},
		{"active-configdrive-dict", "1.78", node.Node{ProvisionState: node.Available}, `{"target": "active", "configdrive": {"meta_data": {"hostname": "h"}, "user_data": "#cloud-config"}}`, 202, "",
			&conductor.ProvisionRequest{Target: "active", ConfigDrive: map[string]any{"meta_data": map[string]any{"hostname": "h"}, "user_data": "#cloud-config"}}},
		{"configdrive-dict-too-old", "1.55", node.Node{ProvisionState: node.Available}, `{"target": "active", "configdrive": {"meta_data": {}}}`, 400,
			"Providing a JSON object for configdrive is only supported starting with API version 1.56", nil},
		{"vendor-data-too-old", "1.58", node.Node{ProvisionState: node.Available}, `{"target": "active", "configdrive": {"vendor_data": {}}}`, 400,
			"Providing vendor_data in configdrive is only supported starting with API version 1.59", nil},
		{"configdrive-bad-dict", "1.78", node.Node{ProvisionState: node.Available}, `{"target": "active", "configdrive": {"bogus": 1}}`, 400,
			"Invalid configdrive format: {'bogus': 1} is not valid under any of the given schemas", nil},
		{"configdrive-not-base64", "1.78", node.Node{ProvisionState: node.Available}, `{"target": "active", "configdrive": "not base64!"}`, 400,
			"Invalid configdrive format: it is neither a JSON, nor a URL, nor a base64 string", nil},
		{"configdrive-wrong-target", "1.78", node.Node{ProvisionState: node.Enroll}, `{"target": "manage", "configdrive": "abc"}`, 400,
			"Adding a config drive is only supported when setting provision state to active, rebuild", nil},
		{"configdrive-type", "1.78", node.Node{ProvisionState: node.Enroll}, `{"target": "manage", "configdrive": 5}`, 400,
			"Expected types <class 'NoneType'>, <class 'dict'>, <class 'str'> for configdrive: 5", nil},
		{"maintenance", "1.78", node.Node{ProvisionState: node.Available, Maintenance: true}, `{"target": "active"}`, 400,
			"The provisioning operation can't be performed on node " + nodeU + " because it's in maintenance mode.", nil},
		{"invalid-transition", "1.78", node.Node{ProvisionState: node.Enroll}, `{"target": "active"}`, 400,
			`The requested action "active" can not be performed on node "` + nodeU + `" while it is in state "enroll".`, nil},
		{"unknown-verb", "1.78", node.Node{ProvisionState: node.Enroll}, `{"target": "bogus"}`, 400,
			`The requested action "bogus" can not be performed on node "` + nodeU + `" while it is in state "enroll".`, nil},
		{"internal-event", "1.78", node.Node{ProvisionState: node.Deploying, TargetProvisionState: node.Active}, `{"target": "done"}`, 400,
			`The requested action "done" could not be understood.`, nil},
		{"busy-locked", "1.78", node.Node{ProvisionState: node.Deploying, Reservation: "c1"}, `{"target": "active"}`, 409,
			"Node " + nodeU + " is locked by host c1, please retry after the current operation is completed.", nil},
		{"clean", "1.78", node.Node{ProvisionState: node.Manageable}, `{"target": "clean", "clean_steps": ` + steps + `, "disable_ramdisk": true}`, 202, "",
			&conductor.ProvisionRequest{Target: "clean", CleanSteps: []node.Step{{"interface": "deploy", "step": "erase_devices", "args": map[string]any{"x": json.Number("1")}}}, DisableRamdisk: true}},
		{"clean-no-steps", "1.78", node.Node{ProvisionState: node.Manageable}, `{"target": "clean"}`, 400,
			`"clean_steps" is required when setting target provision state to clean`, nil},
		{"clean-steps-type", "1.78", node.Node{ProvisionState: node.Manageable}, `{"target": "clean", "clean_steps": "x"}`, 400,
			"Expected types <class 'NoneType'>, <class 'list'> for clean_steps: x", nil},
		{"clean-step-no-interface", "1.78", node.Node{ProvisionState: node.Manageable}, `{"target": "clean", "clean_steps": [{"step": "x"}]}`, 400,
			"Invalid clean_steps: 'interface' is a required property", nil},
		{"clean-step-no-step", "1.78", node.Node{ProvisionState: node.Manageable}, `{"target": "clean", "clean_steps": [{"interface": "deploy"}]}`, 400,
			"Invalid clean_steps: 'step' is a required property", nil},
		{"clean-step-bad-interface", "1.78", node.Node{ProvisionState: node.Manageable}, `{"target": "clean", "clean_steps": [{"interface": "foo", "step": "x"}]}`, 400,
			"Invalid clean_steps: 'foo' is not one of ['power', 'management', 'deploy', 'bios', 'raid']", nil},
		{"clean-step-extra", "1.78", node.Node{ProvisionState: node.Manageable}, `{"target": "clean", "clean_steps": [{"interface": "raid", "step": "x", "priority": 1}]}`, 400,
			"Invalid clean_steps: Additional properties are not allowed ('priority' was unexpected)", nil},
		{"clean-too-old", "1.14", node.Node{ProvisionState: node.Manageable}, `{"target": "clean", "clean_steps": ` + steps + `}`, 406, "Request not acceptable.", nil},
		{"clean-steps-wrong-target", "1.78", node.Node{ProvisionState: node.Enroll}, `{"target": "manage", "clean_steps": ` + steps + `}`, 400,
			`"clean_steps" is only valid when setting target provision state to clean`, nil},
		{"disable-ramdisk-old", "1.69", node.Node{ProvisionState: node.Manageable}, `{"target": "clean", "clean_steps": ` + steps + `, "disable_ramdisk": true}`, 406,
			"disable_ramdisk is not acceptable in this API version", nil},
		{"disable-ramdisk-not-clean", "1.78", node.Node{ProvisionState: node.Enroll}, `{"target": "manage", "disable_ramdisk": true}`, 400,
			"disable_ramdisk is supported only with manual cleaning", nil},
		{"deploy-steps", "1.78", node.Node{ProvisionState: node.Available}, `{"target": "active", "deploy_steps": [{"interface": "deploy", "step": "s", "args": {}, "priority": "90"}]}`, 202, "",
			&conductor.ProvisionRequest{Target: "active", DeploySteps: []node.Step{{"interface": "deploy", "step": "s", "args": map[string]any{}, "priority": "90"}}}},
		{"deploy-steps-old", "1.68", node.Node{ProvisionState: node.Available}, `{"target": "active", "deploy_steps": [{}]}`, 406,
			"Request not acceptable. The minimal required API version should be 1.69", nil},
		{"deploy-steps-missing-priority", "1.78", node.Node{ProvisionState: node.Available}, `{"target": "active", "deploy_steps": [{"interface": "deploy", "step": "s", "args": {}}]}`, 400,
			"Invalid deploy_steps: 'priority' is a required property", nil},
		{"deploy-steps-bad-priority", "1.78", node.Node{ProvisionState: node.Available}, `{"target": "active", "deploy_steps": [{"interface": "deploy", "step": "s", "args": {}, "priority": -1}]}`, 400,
			"Invalid deploy_steps: -1 is not valid under any of the given schemas", nil},
		{"deploy-steps-wrong-target", "1.78", node.Node{ProvisionState: node.Enroll}, `{"target": "manage", "deploy_steps": [{}]}`, 400,
			`"deploy_steps" is only valid when setting target provision state to active or rebuild`, nil},
		{"rescue", "1.78", node.Node{ProvisionState: node.Active}, `{"target": "rescue", "rescue_password": "pw"}`, 202, "",
			&conductor.ProvisionRequest{Target: "rescue", RescuePassword: "pw"}},
		{"rescue-no-password", "1.78", node.Node{ProvisionState: node.Active}, `{"target": "rescue", "rescue_password": "  "}`, 400,
			`A non-empty "rescue_password" is required when setting target provision state to rescue`, nil},
		{"rescue-password-wrong-target", "1.78", node.Node{ProvisionState: node.Enroll}, `{"target": "manage", "rescue_password": "x"}`, 400,
			`"rescue_password" is only valid when setting target provision state to rescue`, nil},
		{"rescue-too-old", "1.37", node.Node{ProvisionState: node.Active}, `{"target": "rescue", "rescue_password": "pw"}`, 406, "Request not acceptable.", nil},
		{"abort-inspect-wait-old", "1.40", node.Node{ProvisionState: node.InspectWait}, `{"target": "abort"}`, 406, "Request not acceptable.", nil},
		{"undeploy", "1.78", node.Node{ProvisionState: node.Active}, `{"target": "undeploy"}`, 202, "",
			&conductor.ProvisionRequest{Target: "undeploy"}},
		{"extra-arg", "1.78", node.Node{ProvisionState: node.Enroll}, `{"target": "manage", "bogus": 1}`, 400, "Unexpected arguments: bogus", nil},
		{"no-target", "1.78", node.Node{ProvisionState: node.Enroll}, `{}`, 400, "Missing mandatory parameter: target", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, be := stateAPI(t, tc.n)
			ident := "n"
			if _, minor, _ := parseVersion(tc.ver); minor < v5NodeName {
				ident = nodeU // names need 1.5
			}
			r := do(t, h, tc.ver, "PUT", "/v1/nodes/"+ident+"/states/provision", tc.body)
			if tc.want != nil {
				if r.status != 202 || r.body != "" || r.header.Get("Location") != "http://"+captureHost+"/v1/nodes/n/states" {
					t.Fatalf("PUT provision = %d %q Location %q", r.status, r.body, r.header.Get("Location"))
				}
				want := []apitest.ProvisionCall{{Node: nodeU, Req: *tc.want}}
				if diff := cmp.Diff(want, be.Provisions); diff != "" {
					t.Errorf("backend calls (-want +got):\n%s", diff)
				}
				return
			}
			if status, msg := r.fault(t); status != tc.status || msg != tc.msg {
				t.Errorf("PUT provision = %d %q\nwant %d %q", status, msg, tc.status, tc.msg)
			}
			if len(be.Provisions) != 0 {
				t.Errorf("backend called on an error: %v", be.Provisions)
			}
		})
	}
}

func TestMaintenance(t *testing.T) {
	h, be := stateAPI(t, node.Node{ProvisionState: node.Enroll})
	r := do(t, h, "1.78", "PUT", "/v1/nodes/n/maintenance", `{"reason": "wire capture"}`)
	if r.status != 202 || r.header.Get("Location") != "" {
		t.Fatalf("PUT maintenance = %d Location %q", r.status, r.header.Get("Location"))
	}
	if n := be.Node(nodeU); !n.Maintenance || n.MaintenanceReason != "wire capture" {
		t.Errorf("maintenance %v %q", n.Maintenance, n.MaintenanceReason)
	}
	if r := do(t, h, "1.78", "PUT", "/v1/nodes/n/maintenance", `{"reason": 5}`); r.status != 400 {
		t.Errorf("reason 5 = %d", r.status)
	}
	if r := do(t, h, "1.78", "DELETE", "/v1/nodes/n/maintenance", ""); r.status != 202 {
		t.Errorf("DELETE maintenance = %d", r.status)
	}
	if n := be.Node(nodeU); n.Maintenance || n.MaintenanceReason != "" {
		t.Errorf("after DELETE: %v %q", n.Maintenance, n.MaintenanceReason)
	}
	if r := do(t, h, "1.78", "PUT", "/v1/nodes/n/maintenance", ""); r.status != 202 {
		t.Errorf("PUT without body = %d", r.status)
	}
}

func TestValidate(t *testing.T) {
	h, _ := stateAPI(t, node.Node{ProvisionState: node.Enroll})
	want := `{"boot": {"result": true}, "deploy": {"result": true}, "management": {"result": true}, "network": {"result": true}, "power": {"result": true}, "bios": {"result": true}, "console": {"result": true}, "inspect": {"result": true}, "raid": {"result": true}, "rescue": {"result": true}, "storage": {"result": true}}`
	for _, path := range []string{"/v1/nodes/n/validate", "/v1/nodes/validate?node=n", "/v1/nodes/validate?node_uuid=" + nodeU} {
		if r := do(t, h, "1.78", "GET", path, ""); r.status != 200 || r.body != want {
			t.Errorf("GET %s = %d %s", path, r.status, r.body)
		}
	}
	h2, _ := newTestAPI(t)
	mustCreateNode(t, h2, `{"driver": "ipmi", "name": "i"}`)
	r := do(t, h2, "1.78", "GET", "/v1/nodes/i/validate", "")
	if !strings.Contains(r.body, `"bios": {"result": null, "reason": "bios interface is not supported"}`) {
		t.Errorf("unsupported interface: %s", r.body)
	}
}

func TestSetRAID(t *testing.T) {
	cases := []struct {
		name   string
		ver    string
		body   string
		status int
		msg    string
	}{
		{"ok", "1.78", `{"logical_disks": [{"size_gb": 50, "raid_level": "1", "controller": "software", "is_root_volume": true}, {"size_gb": "MAX", "raid_level": "0", "controller": "software"}]}`, 204, ""},
		{"clear", "1.78", `{}`, 204, ""},
		{"physical-disks-objects", "1.78", `{"logical_disks": [{"size_gb": 10, "raid_level": "1", "controller": "software", "physical_disks": [{"size": ">= 50"}, {"size": ">= 50"}]}]}`, 204, ""},
		{"too-old", "1.11", `{}`, 406, "Request not acceptable."},
		{"not-dict", "1.78", `[1]`, 400, "Expected types <class 'dict'> for target_raid_config: [1]"},
		{"missing-disks", "1.78", `{"x": 1}`, 400, "RAID config validation error: 'logical_disks' is a required property"},
		{"extra-top", "1.78", `{"logical_disks": [], "x": 1}`, 400, "RAID config validation error: Additional properties are not allowed ('x' was unexpected)"},
		{"empty-list", "1.78", `{"logical_disks": []}`, 400, "RAID config validation error: [] is too short"},
		{"disks-type", "1.78", `{"logical_disks": {}}`, 400, "RAID config validation error: {} is not of type 'array'"},
		{"no-size", "1.78", `{"logical_disks": [{"raid_level": "1"}]}`, 400, "RAID config validation error: 'size_gb' is a required property"},
		{"bad-level", "1.78", `{"logical_disks": [{"raid_level": "7", "size_gb": 1}]}`, 400, "RAID config validation error: '7' is not one of ['JBOD', '0', '1', '2', '5', '6', '1+0', '5+0', '6+0']"},
		{"level-int", "1.78", `{"logical_disks": [{"raid_level": 1, "size_gb": 1}]}`, 400, "RAID config validation error: 1 is not of type 'string'"},
		{"bad-size", "1.78", `{"logical_disks": [{"raid_level": "1", "size_gb": "big"}]}`, 400, "RAID config validation error: 'big' is not valid under any of the given schemas"},
		{"negative-size", "1.78", `{"logical_disks": [{"raid_level": "1", "size_gb": -1}]}`, 400, "RAID config validation error: -1 is not valid under any of the given schemas"},
		{"float-size", "1.78", `{"logical_disks": [{"raid_level": "1", "size_gb": 1.5}]}`, 400, "RAID config validation error: 1.5 is not valid under any of the given schemas"},
		{"extra-key", "1.78", `{"logical_disks": [{"raid_level": "1", "size_gb": 1, "speed": "fast"}]}`, 400, "RAID config validation error: Additional properties are not allowed ('speed' was unexpected)"},
		{"disk-type", "1.78", `{"logical_disks": [{"raid_level": "1", "size_gb": 1, "disk_type": "nvme"}]}`, 400, "RAID config validation error: 'nvme' is not one of ['hdd', 'ssd']"},
		{"interface-type", "1.78", `{"logical_disks": [{"raid_level": "1", "size_gb": 1, "interface_type": "usb"}]}`, 400, "RAID config validation error: 'usb' is not one of ['sata', 'scsi', 'sas']"},
		{"zero-disks", "1.78", `{"logical_disks": [{"raid_level": "1", "size_gb": 1, "number_of_physical_disks": 0}]}`, 400, "RAID config validation error: 0 is less than or equal to the minimum of 0"},
		{"root-bool", "1.78", `{"logical_disks": [{"raid_level": "1", "size_gb": 1, "is_root_volume": "yes"}]}`, 400, "RAID config validation error: 'yes' is not of type 'boolean'"},
		{"controller-required", "1.78", `{"logical_disks": [{"raid_level": "1", "size_gb": 1, "physical_disks": ["a", "b"]}]}`, 400, "RAID config validation error: 'controller' is a dependency of 'physical_disks'"},
		{"physical-disks-one-object", "1.78", `{"logical_disks": [{"raid_level": "1", "size_gb": 1, "controller": "c", "physical_disks": [{"a": 1}]}]}`, 400, "RAID config validation error: [{'a': 1}] is not valid under any of the given schemas"},
		{"two-roots", "1.78", `{"logical_disks": [{"raid_level": "1", "size_gb": 1, "is_root_volume": true}, {"raid_level": "0", "size_gb": 1, "is_root_volume": true}]}`, 400, "Raid config cannot have more than one root volume. 2 root volumes were specified"},
		{"disk-not-object", "1.78", `{"logical_disks": [5]}`, 400, "RAID config validation error: 5 is not of type 'object'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, be := stateAPI(t, node.Node{ProvisionState: node.Manageable})
			r := do(t, h, tc.ver, "PUT", "/v1/nodes/n/states/raid", tc.body)
			if tc.status == 204 {
				if r.status != 204 {
					t.Fatalf("PUT raid = %d %s", r.status, r.body)
				}
				var want map[string]any
				if err := json.Unmarshal([]byte(tc.body), &want); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, be.Node(nodeU).TargetRaidConfig); diff != "" {
					t.Errorf("stored config (-want +got):\n%s", diff)
				}
				return
			}
			if status, msg := r.fault(t); status != tc.status || msg != tc.msg {
				t.Errorf("PUT raid = %d %q\nwant %d %q", status, msg, tc.status, tc.msg)
			}
		})
	}
}

func TestInventory(t *testing.T) {
	h, be := stateAPI(t, node.Node{ProvisionState: node.Manageable})
	r := do(t, h, "1.81", "GET", "/v1/nodes/n/inventory", "")
	if status, msg := r.fault(t); status != 404 || msg != "Node inventory record for node "+nodeU+" could not be found." {
		t.Errorf("no inventory = %d %q", status, msg)
	}
	if r := do(t, h, "1.80", "GET", "/v1/nodes/n/inventory", ""); r.status != 404 {
		t.Errorf("inventory at 1.80 = %d, want 404", r.status)
	}
	n := be.Node(nodeU)
	n.Inventory = json.RawMessage(`{"cpu": {"count": 16}, "memory": {"physical_mb": 32768}}`)
	be.PutNode(n)
	r = do(t, h, "1.81", "GET", "/v1/nodes/n/inventory", "")
	want := `{"inventory": {"cpu": {"count": 16}, "memory": {"physical_mb": 32768}}, "plugin_data": {}}`
	if r.status != 200 || r.body != want {
		t.Errorf("inventory = %d %s\nwant %s", r.status, r.body, want)
	}
}

func TestTraits(t *testing.T) {
	h, be := stateAPI(t, node.Node{ProvisionState: node.Manageable})
	steps := []struct {
		method, path, body string
		status             int
		msg                string
	}{
		{"PUT", "/v1/nodes/n/traits", `{"traits": ["CUSTOM_B", "CUSTOM_A", "CUSTOM_B"]}`, 204, ""},
		{"PUT", "/v1/nodes/n/traits/HW_CPU_X86_AVX2", "", 204, ""},
		{"PUT", "/v1/nodes/n/traits/bad", "", 400, "Schema error for trait: 'bad' is not valid under any of the given schemas. Possible root cause: 'bad' does not match '^CUSTOM_[A-Z0-9_]+$'"},
		{"PUT", "/v1/nodes/n/traits/CUSTOM_C", `{"x": 1}`, 400, "No body should be provided when adding a trait"},
		{"PUT", "/v1/nodes/n/traits", `{}`, 400, "A single node trait may be added via PUT /v1/nodes/<node identifier>/traits/<trait> with no body, or all node traits may be replaced via PUT /v1/nodes/<node identifier>/traits with the list of traits specified in the request body."},
		{"PUT", "/v1/nodes/n/traits", `{"traits": ["x"]}`, 400, "Schema error for body: 'x' is not valid under any of the given schemas. Possible root cause: 'x' does not match '^CUSTOM_[A-Z0-9_]+$'"},
		{"DELETE", "/v1/nodes/n/traits/CUSTOM_X", "", 404, "Node " + nodeU + " doesn't have a trait 'CUSTOM_X'"},
		{"DELETE", "/v1/nodes/n/traits/CUSTOM_A", "", 204, ""},
	}
	for _, s := range steps {
		r := do(t, h, "1.78", s.method, s.path, s.body)
		if s.status == 204 {
			if r.status != 204 {
				t.Fatalf("%s %s = %d %s", s.method, s.path, r.status, r.body)
			}
			continue
		}
		if status, msg := r.fault(t); status != s.status || msg != s.msg {
			t.Errorf("%s %s = %d %q\nwant %d %q", s.method, s.path, status, msg, s.status, s.msg)
		}
	}
	r := do(t, h, "1.78", "GET", "/v1/nodes/n/traits", "")
	if r.body != `{"traits": ["CUSTOM_B", "HW_CPU_X86_AVX2"]}` {
		t.Errorf("traits = %s", r.body)
	}
	if got := do(t, h, "1.78", "PUT", "/v1/nodes/n/traits/CUSTOM_Z", ""); got.header.Get("Location") != "http://"+captureHost+"/v1/nodes/n/traits/CUSTOM_Z" {
		t.Errorf("Location = %q", got.header.Get("Location"))
	}
	if r := do(t, h, "1.78", "DELETE", "/v1/nodes/n/traits", ""); r.status != 204 || len(be.Node(nodeU).Traits) != 0 {
		t.Errorf("DELETE all = %d, traits %v", r.status, be.Node(nodeU).Traits)
	}
	for method, want := range map[string]int{"GET": 406, "PUT": 405, "DELETE": 404} {
		if r := do(t, h, "1.36", method, "/v1/nodes/n/traits", ""); r.status != want {
			t.Errorf("%s traits at 1.36 = %d, want %d", method, r.status, want)
		}
	}
}

func TestVIFs(t *testing.T) {
	h, _ := stateAPI(t, node.Node{ProvisionState: node.Active})
	cases := []struct {
		ver, method, path, body string
		status                  int
	}{
		{"1.78", "GET", "/v1/nodes/n/vifs", "", 200},
		{"1.78", "POST", "/v1/nodes/n/vifs", `{"id": "b6c4c8a0-1b2c-4d5e-8f90-123456789abc"}`, 204},
		{"1.78", "POST", "/v1/nodes/n/vifs", `{"id": "v", "port_uuid": "a", "portgroup_uuid": "b"}`, 400},
		{"1.78", "POST", "/v1/nodes/n/vifs", `{}`, 400},
		{"1.78", "DELETE", "/v1/nodes/n/vifs/v1", "", 204},
		{"1.27", "GET", "/v1/nodes/n/vifs", "", 404},
		{"1.78", "GET", "/v1/nodes/nope/vifs", "", 404},
	}
	for _, tc := range cases {
		if r := do(t, h, tc.ver, tc.method, tc.path, tc.body); r.status != tc.status {
			t.Errorf("%s %s %s = %d, want %d: %s", tc.ver, tc.method, tc.path, r.status, tc.status, r.body)
		}
	}
}
