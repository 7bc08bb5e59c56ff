package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCreatePort(t *testing.T) {
	cases := []struct {
		name   string
		ver    string
		body   string
		status int
		msg    string
	}{
		{"ok-normalized", "1.78", `{"address": "52:54:00:AA:BB:CC", "node_uuid": "{N}"}`, 201, ""},
		{"node-name", "1.78", `{"address": "52:54:00:12:34:56", "node_uuid": "n0"}`, 400, "Expected UUID for node_uuid: n0"},
		{"bad-mac", "1.78", `{"address": "zz:zz", "node_uuid": "{N}"}`, 400, "Expected valid MAC address for address: zz:zz"},
		{"dash-mac", "1.78", `{"address": "52-54-00-aa-bb-cc", "node_uuid": "{N}"}`, 400, "Expected valid MAC address for address: 52-54-00-aa-bb-cc"},
		{"missing-node", "1.78", `{"address": "52:54:00:aa:bb:cd", "node_uuid": "11111111-2222-3333-4444-555555555555"}`, 400, "Node 11111111-2222-3333-4444-555555555555 could not be found."},
		{"required", "1.78", `{"node_uuid": "{N}"}`, 400, "Schema error for port: 'address' is a required property"},
		{"extra", "1.78", `{"address": "52:54:00:aa:bb:ce", "node_uuid": "{N}", "bogus": 1}`, 400, "Schema error for port: Additional properties are not allowed ('bogus' was unexpected)"},
		{"llc-root-cause", "1.78", `{"address": "52:54:00:aa:bb:ce", "node_uuid": "{N}", "local_link_connection": {"port_id": "x"}}`, 400,
			"Schema error for local_link_connection: {'port_id': 'x'} is not valid under any of the given schemas. Possible root cause: 'switch_id' is a required property"},
		{"llc-switch-id", "1.78", `{"address": "52:54:00:aa:bb:cf", "node_uuid": "{N}", "local_link_connection": {"port_id": "x", "switch_id": "bad"}}`, 400,
			"Expected a MAC address or OpenFlow datapath ID but received bad."},
		{"llc-network-type-old", "1.63", `{"address": "52:54:00:aa:bb:cf", "node_uuid": "{N}", "local_link_connection": {"network_type": "unmanaged"}}`, 406, "Request not acceptable."},
		{"smartnic-llc", "1.78", `{"address": "52:54:00:aa:bb:cf", "node_uuid": "{N}", "is_smartnic": true, "local_link_connection": {"port_id": "x", "switch_id": "aa:bb:cc:dd:ee:ff"}}`, 400,
			"Smart NIC port must have port_id and hostname in local_link_connection"},
		{"empty-physnet", "1.78", `{"address": "52:54:00:aa:bb:cf", "node_uuid": "{N}", "physical_network": ""}`, 400, "A non-empty value is required when setting physical_network"},
		{"physnet-old", "1.30", `{"address": "52:54:00:aa:bb:cf", "node_uuid": "{N}", "physical_network": "x"}`, 406, "Request not acceptable."},
		{"pxe-string", "1.78", `{"address": "52:54:00:aa:bb:cf", "node_uuid": "{N}", "pxe_enabled": "maybe"}`, 400,
			"Invalid pxe_enabled: Unrecognized value 'maybe', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"},
		{"missing-portgroup", "1.78", `{"address": "52:54:00:aa:bb:cf", "node_uuid": "{N}", "portgroup_uuid": "11111111-2222-3333-4444-555555555555"}`, 400,
			"Portgroup 11111111-2222-3333-4444-555555555555 could not be found."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newTestAPI(t)
			n := mustCreateNode(t, h, `{"driver": "fake-hardware", "name": "n0"}`)
			r := do(t, h, tc.ver, "POST", "/v1/ports", strings.ReplaceAll(tc.body, "{N}", n))
			if tc.status == 201 {
				if r.status != 201 {
					t.Fatalf("POST = %d %s", r.status, r.body)
				}
				doc := r.object(t)
				if doc["address"] != "52:54:00:aa:bb:cc" || doc["pxe_enabled"] != true || doc["node_uuid"] != n {
					t.Errorf("port = %s", r.body)
				}
				if r.header.Get("Location") != "http://"+captureHost+"/v1/ports/"+doc["uuid"].(string) {
					t.Errorf("Location = %q", r.header.Get("Location"))
				}
				return
			}
			if status, msg := r.fault(t); status != tc.status || msg != tc.msg {
				t.Errorf("POST = %d %q\nwant %d %q", status, msg, tc.status, tc.msg)
			}
		})
	}
}

func TestPortDuplicateMAC(t *testing.T) {
	h, _ := newTestAPI(t)
	n := mustCreateNode(t, h, `{"driver": "fake-hardware"}`)
	body := `{"address": "52:54:00:aa:bb:cc", "node_uuid": "` + n + `"}`
	if r := do(t, h, "1.78", "POST", "/v1/ports", body); r.status != 201 {
		t.Fatalf("first = %d", r.status)
	}
	r := do(t, h, "1.78", "POST", "/v1/ports", strings.Replace(body, "aa:bb:cc", "AA:BB:CC", 1))
	if status, msg := r.fault(t); status != 409 || msg != "A port with MAC address 52:54:00:aa:bb:cc already exists." {
		t.Errorf("duplicate = %d %q", status, msg)
	}
}

func TestPortListAndPatch(t *testing.T) {
	h, _ := newTestAPI(t)
	n := mustCreateNode(t, h, `{"driver": "fake-hardware", "name": "n0"}`)
	n2 := mustCreateNode(t, h, `{"driver": "fake-hardware", "name": "n1"}`)
	var ports []string
	for _, mac := range []string{"52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"} {
		r := do(t, h, "1.78", "POST", "/v1/ports", `{"address": "`+mac+`", "node_uuid": "`+n+`"}`)
		ports = append(ports, r.object(t)["uuid"].(string))
	}
	list := func(path string) []string {
		t.Helper()
		r := do(t, h, "1.78", "GET", path, "")
		if r.status != 200 {
			t.Fatalf("GET %s = %d %s", path, r.status, r.body)
		}
		out := []string{}
		for _, p := range r.object(t)["ports"].([]any) {
			out = append(out, p.(map[string]any)["address"].(string))
		}
		return out
	}
	cases := []struct {
		path string
		want []string
	}{
		{"/v1/ports", []string{"52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"}},
		{"/v1/ports?node=n0&limit=2", []string{"52:54:00:00:00:01", "52:54:00:00:00:02"}},
		{"/v1/ports?node_uuid=" + n2, []string{}},
		{"/v1/ports?address=52:54:00:00:00:02", []string{"52:54:00:00:00:02"}},
		{"/v1/ports?address=52:54:00:00:00:09", []string{}},
		{"/v1/nodes/n0/ports?sort_dir=desc", []string{"52:54:00:00:00:03", "52:54:00:00:00:02", "52:54:00:00:00:01"}},
		{"/v1/ports/detail?marker=" + ports[0], []string{"52:54:00:00:00:02", "52:54:00:00:00:03"}},
	}
	for _, tc := range cases {
		if diff := cmp.Diff(tc.want, list(tc.path)); diff != "" {
			t.Errorf("GET %s (-want +got):\n%s", tc.path, diff)
		}
	}
	r := do(t, h, "1.78", "GET", "/v1/ports?limit=2", "")
	if next, _ := r.object(t)["next"].(string); next != "http://"+captureHost+"/v1/ports?sort_key=id&sort_dir=asc&fields=uuid,address&limit=2&marker="+ports[1] {
		t.Errorf("next = %q", next)
	}
	errs := []struct {
		path   string
		status int
		msg    string
	}{
		{"/v1/ports?address=zz", 400, "Expected valid MAC address for address: zz"},
		{"/v1/ports?node=nosuch", 404, "Node nosuch could not be found."},
		{"/v1/ports?node=n0&portgroup=pg", 403, "Operation not permitted."},
		{"/v1/ports?fields=uuid,bogus", 400, `Field(s) "bogus" are not valid`},
		{"/v1/ports?sort_key=extra", 400, "The sort_key value extra is an invalid field for sorting"},
		{"/v1/ports/nosuch", 400, "Expected UUID for port_uuid: nosuch"},
		{"/v1/ports/11111111-2222-3333-4444-555555555555", 404, "Port 11111111-2222-3333-4444-555555555555 could not be found."},
	}
	for _, e := range errs {
		if status, msg := do(t, h, "1.78", "GET", e.path, "").fault(t); status != e.status || msg != e.msg {
			t.Errorf("GET %s = %d %q, want %d %q", e.path, status, msg, e.status, e.msg)
		}
	}
	if got := keysInOrder(t, do(t, h, "1.18", "GET", "/v1/ports/"+ports[0], "").body); strings.Join(got, ",") !=
		"uuid,created_at,updated_at,address,extra,internal_info,node_uuid,links" {
		t.Errorf("port keys at 1.18 = %v", got)
	}

	p := ports[0]
	patches := []struct {
		patch  string
		status int
		msg    string
	}{
		{`[{"op": "replace", "path": "/address", "value": "52:54:00:00:00:AA"}, {"op": "add", "path": "/extra/a", "value": 1}]`, 200, ""},
		{`[{"op": "replace", "path": "/node_uuid", "value": "` + n2 + `"}]`, 200, ""},
		{`[{"op": "replace", "path": "/node_uuid", "value": "11111111-2222-3333-4444-555555555555"}]`, 400, "Node 11111111-2222-3333-4444-555555555555 could not be found."},
		{`[{"op": "replace", "path": "/address", "value": "52:54:00:00:00:02"}]`, 409, "A port with MAC address 52:54:00:00:00:02 already exists."},
		{`[{"op": "replace", "path": "/address", "value": "bad"}]`, 400, "Expected valid MAC address for address: bad"},
		{`[{"op": "replace", "path": "/uuid", "value": "x"}]`, 400, "Cannot patch /uuid. Only the following can be updated: address, extra, is_smartnic, local_link_connection, node_uuid, physical_network, portgroup_uuid, pxe_enabled"},
		{`[{"op": "remove", "path": "/address"}]`, 400, "Schema error for patch: 'address' is a required property"},
		{`[{"op": "replace", "path": "/physical_network", "value": ""}]`, 400, "A non-empty value is required when setting physical_network"},
	}
	for _, pt := range patches {
		r := do(t, h, "1.78", "PATCH", "/v1/ports/"+p, pt.patch)
		if pt.status == 200 {
			if r.status != 200 {
				t.Errorf("PATCH %s = %d %s", pt.patch, r.status, r.body)
			}
			continue
		}
		if status, msg := r.fault(t); status != pt.status || msg != pt.msg {
			t.Errorf("PATCH %s = %d %q\nwant %d %q", pt.patch, status, msg, pt.status, pt.msg)
		}
	}
	doc := do(t, h, "1.78", "GET", "/v1/ports/"+p, "").object(t)
	if doc["address"] != "52:54:00:00:00:aa" || doc["node_uuid"] != n2 {
		t.Errorf("patched port = %v", doc)
	}
	if r := do(t, h, "1.78", "DELETE", "/v1/ports/"+p, ""); r.status != http.StatusNoContent {
		t.Errorf("DELETE = %d", r.status)
	}
	if r := do(t, h, "1.78", "DELETE", "/v1/ports/"+p, ""); r.status != http.StatusNotFound {
		t.Errorf("second DELETE = %d", r.status)
	}
}

func TestPortgroups(t *testing.T) {
	h, _ := newTestAPI(t)
	n := mustCreateNode(t, h, `{"driver": "fake-hardware", "name": "n0"}`)
	r := do(t, h, "1.78", "POST", "/v1/portgroups", `{"node_uuid": "`+n+`", "name": "pg1", "address": "52:54:00:00:00:01"}`)
	if r.status != 201 {
		t.Fatalf("create = %d %s", r.status, r.body)
	}
	pg := r.object(t)
	if pg["mode"] != "active-backup" || pg["standalone_ports_supported"] != true {
		t.Errorf("defaults: %s", r.body)
	}
	want := []string{"uuid", "created_at", "updated_at", "address", "extra", "internal_info", "mode",
		"name", "properties", "standalone_ports_supported", "node_uuid", "links", "ports"}
	if diff := cmp.Diff(want, keysInOrder(t, r.body)); diff != "" {
		t.Errorf("portgroup keys (-want +got):\n%s", diff)
	}
	port := do(t, h, "1.78", "POST", "/v1/ports", `{"address": "52:54:00:00:00:02", "node_uuid": "`+n+`", "portgroup_uuid": "`+pg["uuid"].(string)+`"}`)
	if port.status != 201 {
		t.Fatalf("port in portgroup = %d %s", port.status, port.body)
	}
	cases := []struct {
		ver, method, path, body string
		status                  int
		msg                     string
	}{
		{"1.78", "GET", "/v1/portgroups/pg1", "", 200, ""},
		{"1.78", "GET", "/v1/portgroups?node=n0", "", 200, ""},
		{"1.78", "GET", "/v1/portgroups/pg1/ports", "", 200, ""},
		{"1.78", "GET", "/v1/nodes/n0/portgroups/detail", "", 200, ""},
		{"1.78", "PATCH", "/v1/portgroups/pg1", `[{"op": "replace", "path": "/mode", "value": "802.3ad"}, {"op": "add", "path": "/extra/a", "value": 1}]`, 200, ""},
		{"1.78", "PATCH", "/v1/portgroups/pg1", `[{"op": "remove", "path": "/mode"}]`, 400, "'mode' is a mandatory attribute and can not be removed"},
		{"1.78", "POST", "/v1/portgroups", `{"node_uuid": "` + n + `", "name": "pg1"}`, 409, "A portgroup with name pg1 already exists."},
		{"1.78", "POST", "/v1/portgroups", `{"node_uuid": "` + n + `", "name": "bad name"}`, 400, "Cannot create portgroup with invalid name 'bad name'"},
		{"1.78", "POST", "/v1/portgroups", `{}`, 400, "Schema error for portgroup: 'node_uuid' is a required property"},
		{"1.22", "POST", "/v1/portgroups", `{}`, 400, "Schema error for portgroup: 'node_uuid' is a required property"},
		{"1.22", "POST", "/v1/portgroups", `{"node_uuid": "` + n + `"}`, 404, "Resource could not be found."},
		{"1.22", "GET", "/v1/portgroups", "", 404, "Resource could not be found."},
		{"1.25", "POST", "/v1/portgroups", `{"node_uuid": "` + n + `", "mode": "802.3ad"}`, 406, "Request not acceptable."},
		{"1.23", "GET", "/v1/nodes/n0/portgroups", "", 404, ""},
		{"1.78", "DELETE", "/v1/portgroups/pg1", "", 400, "Cannot complete the requested action because portgroup " + pg["uuid"].(string) + " contains ports."},
	}
	for _, tc := range cases {
		r := do(t, h, tc.ver, tc.method, tc.path, tc.body)
		if tc.status == 200 {
			if r.status != 200 {
				t.Errorf("%s %s = %d %s", tc.method, tc.path, r.status, r.body)
			}
			continue
		}
		if status, msg := r.fault(t); status != tc.status || msg != tc.msg {
			t.Errorf("%s %s %s = %d %q\nwant %d %q", tc.ver, tc.method, tc.path, status, msg, tc.status, tc.msg)
		}
	}
	if r := do(t, h, "1.78", "GET", "/v1/portgroups/pg1/ports", ""); !strings.Contains(r.body, "52:54:00:00:00:02") {
		t.Errorf("portgroup ports = %s", r.body)
	}
	doc := do(t, h, "1.78", "GET", "/v1/portgroups/pg1", "").object(t)
	if doc["mode"] != "802.3ad" {
		t.Errorf("mode = %v", doc["mode"])
	}
	do(t, h, "1.78", "DELETE", "/v1/ports/"+port.object(t)["uuid"].(string), "")
	if r := do(t, h, "1.78", "DELETE", "/v1/portgroups/pg1", ""); r.status != 204 {
		t.Errorf("DELETE = %d %s", r.status, r.body)
	}
}
