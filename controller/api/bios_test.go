package api

import (
	"testing"

	"github.com/ferrumhq/ferrum/controller/node"
)

func TestBIOS(t *testing.T) {
	h, be := newTestAPI(t)
	n := &node.Node{UUID: nodeU, Name: "n", ProvisionState: node.Manageable}
	n.Normalize()
	n.DriverInternalInfo["bios_settings"] = map[string]any{"backend": "efivarfs", "boot_mode": "uefi", "settings": []any{
		map[string]any{"name": "BootOrder", "value": "0001,0002", "attribute_type": "String", "read_only": false},
		map[string]any{"name": "SecureBoot", "value": "0", "attribute_type": "Enumeration", "allowable_values": []any{"0", "1"}, "read_only": true},
	}}
	n.DriverInternalInfo["bios_settings_at"] = "2026-11-22T10:00:00+00:00"
	putNode(be, n)
	// As Ironic: list links name the node as the request did, a single setting's its UUID.
	linkAs := func(ident, name string) string {
		return `"links": [{"href": "http://127.0.0.1:6399/v1/nodes/` + ident + `/bios/` + name + `", "rel": "self"}, {"href": "http://127.0.0.1:6399/nodes/` + ident + `/bios/` + name + `", "rel": "bookmark"}]`
	}
	link := func(name string) string { return linkAs("n", name) }
	tests := []struct {
		ver, path string
		status    int
		body      string
	}{
		{"1.39", "/v1/nodes/n/bios", 404, ""},
		{"1.40", "/v1/nodes/n/bios", 200, `{"bios": [{"created_at": "2026-11-22T10:00:00+00:00", "updated_at": null, "name": "BootOrder", "value": "0001,0002", ` + link("BootOrder") + `}, {"created_at": "2026-11-22T10:00:00+00:00", "updated_at": null, "name": "SecureBoot", "value": "0", ` + link("SecureBoot") + `}]}`},
		{"1.73", "/v1/nodes/n/bios?detail=true", 406, ""},
		{"1.74", "/v1/nodes/n/bios?fields=name,read_only", 200, `{"bios": [{"created_at": "2026-11-22T10:00:00+00:00", "updated_at": null, "name": "BootOrder", "read_only": false, ` + link("BootOrder") + `}, {"created_at": "2026-11-22T10:00:00+00:00", "updated_at": null, "name": "SecureBoot", "read_only": true, ` + link("SecureBoot") + `}]}`},
		{"1.74", "/v1/nodes/n/bios?fields=colour", 400, ""},
		{"1.74", "/v1/nodes/n/bios/SecureBoot", 200, `{"SecureBoot": {"created_at": "2026-11-22T10:00:00+00:00", "updated_at": null, "name": "SecureBoot", "value": "0", "attribute_type": "Enumeration", "allowable_values": ["0", "1"], "lower_bound": null, "max_length": null, "min_length": null, "read_only": true, "reset_required": false, "unique": false, "upper_bound": null, ` + linkAs(nodeU, "SecureBoot") + `}}`},
		{"1.74", "/v1/nodes/n/bios/Missing", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.ver+tc.path, func(t *testing.T) {
			r := do(t, h, tc.ver, "GET", tc.path, "")
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.body != "" && r.body != tc.body {
				t.Errorf("body:\n got %s\nwant %s", r.body, tc.body)
			}
		})
	}
	// A node whose settings were never read has none.
	m := &node.Node{UUID: "1be26c0b-03f2-4d2e-ae87-c02d7f33c123", Name: "m", ProvisionState: node.Manageable}
	putNode(be, m)
	if r := do(t, h, "1.40", "GET", "/v1/nodes/m/bios", ""); r.status != 200 || r.body != `{"bios": []}` {
		t.Errorf("no settings: %d %s", r.status, r.body)
	}
}
