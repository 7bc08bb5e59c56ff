package api

import (
	"strings"
	"testing"

	"github.com/ferrumhq/ferrum/controller/node"
)

func TestBootDeviceEndpoints(t *testing.T) {
	h, be := newTestAPI(t)
	const id = "11111111-2222-3333-4444-555555555555"
	putNode(be, &node.Node{UUID: id, Name: "bm-0", Driver: "ipmi", ProvisionState: node.Manageable})
	const locked = "11111111-2222-3333-4444-666666666666"
	putNode(be, &node.Node{UUID: locked, Driver: "ipmi", ProvisionState: node.Manageable, Reservation: "other"})
	path := "/v1/nodes/" + id + "/management/boot_device"

	if r := do(t, h, "1.78", "GET", path, ""); r.status != 200 || r.body != `{"boot_device": null, "persistent": null}` {
		t.Errorf("GET before any set = %d %s", r.status, r.body)
	}
	if r := do(t, h, "1.78", "GET", path+"/supported", ""); r.status != 200 ||
		r.body != `{"supported_boot_devices": ["pxe", "disk", "cdrom", "bios", "safe"]}` {
		t.Errorf("GET supported = %d %s", r.status, r.body)
	}
	tests := []struct {
		name, path, body string
		status           int
		msg              string // error message, or the GET body after a 204
	}{
		{"set/pxe", path, `{"boot_device": "pxe"}`, 204, `{"boot_device": "pxe", "persistent": false}`},
		{"set/disk-persistent-string", path, `{"boot_device": "disk", "persistent": "true"}`, 204, `{"boot_device": "disk", "persistent": true}`},
		{"set/by-name", "/v1/nodes/bm-0/management/boot_device", `{"boot_device": "cdrom", "persistent": false}`, 204, `{"boot_device": "cdrom", "persistent": false}`},
		{"missing-device", path, `{"persistent": true}`, 400, "Missing mandatory parameter: boot_device"},
		{"unexpected-arg", path, `{"boot_device": "pxe", "once": true}`, 400, "Unexpected arguments: once"},
		{"bad-persistent", path, `{"boot_device": "pxe", "persistent": "sometimes"}`, 400, "Invalid persistent: Unrecognized value 'sometimes'"},
		{"device-not-string", path, `{"boot_device": 5}`, 400, "Expected string for boot_device: 5"},
		{"invalid-device", path, `{"boot_device": "floppy"}`, 400, "Invalid boot device floppy specified."},
		{"unknown-node", "/v1/nodes/99999999-2222-3333-4444-555555555555/management/boot_device", `{"boot_device": "pxe"}`, 404, "could not be found"},
		{"locked-node", "/v1/nodes/" + locked + "/management/boot_device", `{"boot_device": "pxe"}`, 409, "is locked by host other"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, h, "1.78", "PUT", tc.path, tc.body)
			if r.status != tc.status {
				t.Fatalf("PUT %s = %d %s, want %d", tc.body, r.status, r.body, tc.status)
			}
			if tc.status == 204 {
				if g := do(t, h, "1.78", "GET", tc.path, ""); g.body != tc.msg {
					t.Errorf("GET after PUT %s = %s, want %s", tc.body, g.body, tc.msg)
				}
				return
			}
			if !strings.Contains(r.body, tc.msg) {
				t.Errorf("PUT %s = %s, want a message with %q", tc.body, r.body, tc.msg)
			}
		})
	}

	be.FailNext("SetBootDevice", node.Errorf(node.ErrHardware, "BMC 10.1.1.1:623 set boot device: no answer from the BMC within 1s (2 attempts)"))
	r := do(t, h, "1.78", "PUT", path, `{"boot_device": "pxe"}`)
	if r.status != 500 || !strings.Contains(r.body, "no answer from the BMC within 1s") {
		t.Errorf("PUT with a BMC failure = %d %s, want 500 with the cause", r.status, r.body)
	}
}

func TestIPMIPasswordMasked(t *testing.T) {
	h, _ := newTestAPI(t)
	id := mustCreateNode(t, h, `{"driver": "ipmi", "driver_info": {"ipmi_address": "10.0.0.9",
		"ipmi_username": "admin", "ipmi_password": "hunter2", "ipmi_hex_kg_key": "abcd"}}`)
	for _, p := range []string{"/v1/nodes/" + id, "/v1/nodes/detail", "/v1/nodes/" + id + "?fields=driver_info"} {
		r := do(t, h, "1.78", "GET", p, "")
		if r.status != 200 || strings.Contains(r.body, "hunter2") || !strings.Contains(r.body, `"ipmi_password": "******"`) ||
			!strings.Contains(r.body, `"ipmi_hex_kg_key": "******"`) {
			t.Errorf("GET %s = %d %s: password not masked", p, r.status, r.body)
		}
		if !strings.Contains(r.body, `"ipmi_username": "admin"`) || !strings.Contains(r.body, `"ipmi_address": "10.0.0.9"`) {
			t.Errorf("GET %s masked more than secrets: %s", p, r.body)
		}
	}
	// PATCH answers with the node too.
	r := do(t, h, "1.78", "PATCH", "/v1/nodes/"+id, `[{"op": "replace", "path": "/driver_info/ipmi_password", "value": "n3w-secret"}]`)
	if r.status != 200 || strings.Contains(r.body, "n3w-secret") {
		t.Errorf("PATCH answer = %d %s: password not masked", r.status, r.body)
	}
}
