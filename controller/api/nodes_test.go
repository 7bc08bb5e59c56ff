package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/controller/node"
)

func TestCreateNodeErrors(t *testing.T) {
	cases := []struct {
		name       string
		ver        string
		body       string
		wantStatus int
		wantMsg    string
	}{
		{"unknown-field", "1.78", `{"driver": "fake-hardware", "bogus_field": 1}`, 400,
			"Schema error for node: Additional properties are not allowed ('bogus_field' was unexpected)"},
		{"unknown-fields-sorted", "1.78", `{"driver": "fake-hardware", "bogus": 1, "abc": 2}`, 400,
			"Schema error for node: Additional properties are not allowed ('abc', 'bogus' were unexpected)"},
		{"required-before-extra", "1.78", `{"bogus": 1}`, 400, "Schema error for node: 'driver' is a required property"},
		{"empty-body", "1.78", ``, 400, "Schema error for node: 'driver' is a required property"},
		{"not-object", "1.78", `[1]`, 400, "Schema error for node: [1] is not of type 'object'"},
		{"driver-type", "1.78", `{"driver": 1}`, 400, "Schema error for node: 1 is not of type 'string'"},
		{"first-bad-property", "1.78", `{"driver": "fake-hardware", "name": 5, "extra": [1]}`, 400,
			"Schema error for node: [1] is not of type 'object', 'null'"},
		{"bool-type", "1.78", `{"driver": "fake-hardware", "maintenance": 1}`, 400,
			"Schema error for node: 1 is not of type 'string', 'boolean', 'null'"},
		{"bool-string", "1.78", `{"driver": "fake-hardware", "maintenance": "maybe"}`, 400,
			"Invalid maintenance: Unrecognized value 'maybe', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"},
		{"bad-uuid", "1.78", `{"driver": "fake-hardware", "uuid": "abc"}`, 400, "Expected UUID for uuid: abc"},
		{"bad-instance-uuid", "1.78", `{"driver": "fake-hardware", "instance_uuid": "abc"}`, 400, "Expected UUID for instance_uuid: abc"},
		{"description-too-long", "1.78", `{"driver": "fake-hardware", "description": "` + strings.Repeat("d", 4097) + `"}`, 400,
			"Schema error for node: '" + strings.Repeat("d", 4097) + "' is too long"},
		{"bad-name", "1.78", `{"driver": "fake-hardware", "name": "bad name"}`, 400, "Cannot create node with invalid name 'bad name'"},
		{"uuid-as-name", "1.78", `{"driver": "fake-hardware", "name": "11111111-2222-3333-4444-555555555555"}`, 400,
			"Cannot create node with invalid name '11111111-2222-3333-4444-555555555555'"},
		{"reserved-name", "1.78", `{"driver": "fake-hardware", "name": "detail"}`, 400,
			`The word "detail" is reserved and can not be used as a node name. Reserved words are: maintenance, management, states, vendor_passthru, detail, validate.`},
		{"old-hostname-rule", "1.9", `{"driver": "fake-hardware", "name": "UPPER"}`, 400, "Cannot create node with invalid name 'UPPER'"},
		{"name-below-1.5", "1.4", `{"driver": "fake-hardware", "name": "x"}`, 406, "Request not acceptable."},
		{"owner-below-1.50", "1.40", `{"driver": "fake-hardware", "owner": "x"}`, 406, "Request not acceptable."},
		{"shard-below-1.82", "1.78", `{"driver": "fake-hardware", "shard": "s"}`, 406, "Request not acceptable."},
		{"network-data-below-1.66", "1.60", `{"driver": "fake-hardware", "network_data": {}}`, 406, "Request not acceptable."},
		{"firmware-not-at-1.82", "1.82", `{"driver": "fake-hardware", "firmware_interface": "x"}`, 400,
			"Schema error for node: Additional properties are not allowed ('firmware_interface' was unexpected)"},
		{"chassis", "1.78", `{"driver": "fake-hardware", "chassis_uuid": "11111111-2222-3333-4444-555555555555"}`, 400,
			"Chassis 11111111-2222-3333-4444-555555555555 could not be found."},
		{"unknown-driver", "1.78", `{"driver": "no-such-driver", "name": "bad-0"}`, 400,
			`No valid host was found. Reason: No conductor service registered which supports driver no-such-driver for conductor group "".`},
		{"malformed-json", "1.78", `{"driver": `, 400, "Malformed JSON in the request body: unexpected EOF"},
		{"trailing-json", "1.78", `{"driver": "fake-hardware"} {}`, 400, "Malformed JSON in the request body: unexpected data after the JSON value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newTestAPI(t)
			r := do(t, h, tc.ver, "POST", "/v1/nodes", tc.body)
			status, msg := r.fault(t)
			if status != tc.wantStatus || msg != tc.wantMsg {
				t.Errorf("POST %s = %d %q\nwant %d %q", tc.body, status, msg, tc.wantStatus, tc.wantMsg)
			}
		})
	}
}

func TestCreateNode(t *testing.T) {
	cases := []struct {
		name      string
		ver       string
		body      string
		wantState any
		check     func(t *testing.T, n *node.Node)
	}{
		{"enroll-at-1.11", "1.11", `{"driver": "fake-hardware"}`, "enroll", nil},
		{"available-below-1.11", "1.10", `{"driver": "fake-hardware"}`, "available", nil},
		{"null-name-below-1.5", "1.1", `{"driver": "fake-hardware", "name": null}`, nil, nil},
		{"coerced-bools", "1.78", `{"driver": "fake-hardware", "maintenance": "yes", "automated_clean": "off", "retired": "1"}`, "enroll",
			func(t *testing.T, n *node.Node) {
				if !n.Maintenance || n.AutomatedClean == nil || *n.AutomatedClean || !n.Retired {
					t.Errorf("bools = %v %v %v", n.Maintenance, n.AutomatedClean, n.Retired)
				}
			}},
		{"conductor-group-lowercase", "1.78", `{"driver": "fake-hardware", "conductor_group": ""}`, "enroll",
			func(t *testing.T, n *node.Node) {
				if n.ConductorGroup != "" {
					t.Errorf("conductor_group = %q", n.ConductorGroup)
				}
			}},
		{"uuid-braces", "1.78", `{"driver": "fake-hardware", "uuid": "{1664D7B2-3B3D-4347-8E03-F796DC36BF1E}"}`, "enroll",
			func(t *testing.T, n *node.Node) {
				if n.UUID != "1664d7b2-3b3d-4347-8e03-f796dc36bf1e" {
					t.Errorf("uuid = %q", n.UUID)
				}
			}},
		{"interfaces-and-maps", "1.78", `{"driver": "fake-hardware", "deploy_interface": "direct", "properties": {"cpus": 2}, "driver_info": null}`, "enroll",
			func(t *testing.T, n *node.Node) {
				if n.Deploy != "direct" || n.Properties["cpus"] != float64(2) {
					t.Errorf("deploy %q properties %v", n.Deploy, n.Properties)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, be := newTestAPI(t)
			r := do(t, h, tc.ver, "POST", "/v1/nodes", tc.body)
			if r.status != http.StatusCreated {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			doc := r.object(t)
			if got := doc["provision_state"]; got != tc.wantState {
				t.Errorf("provision_state = %v, want %v", got, tc.wantState)
			}
			id := doc["uuid"].(string)
			if loc := r.header.Get("Location"); loc != "http://"+captureHost+"/v1/nodes/"+id {
				t.Errorf("Location = %q", loc)
			}
			if tc.check != nil {
				tc.check(t, be.Node(id))
			}
		})
	}
}

// TestNodeVersionViews checks which fields each microversion shows and the old names of
// states.
func TestNodeVersionViews(t *testing.T) {
	h, be := newTestAPI(t)
	putNode(be, &node.Node{UUID: "11111111-2222-3333-4444-555555555555", Name: "n",
		ProvisionState: node.Available})
	putNode(be, &node.Node{UUID: "11111111-2222-3333-4444-666666666666", Name: "w",
		ProvisionState: node.InspectWait, TargetProvisionState: node.Manageable})
	cases := []struct {
		ver, ident string
		present    []string
		absent     []string
		state      any
	}{
		{"1.1", "11111111-2222-3333-4444-555555555555", []string{"uuid", "driver", "ports", "chassis_uuid"},
			[]string{"name", "driver_internal_info", "states", "portgroups", "volume", "conductor", "traits"}, nil},
		{"1.2", "11111111-2222-3333-4444-555555555555", nil, []string{"name"}, "available"},
		{"1.14", "n", []string{"name", "states", "raid_config", "clean_step"}, []string{"portgroups", "resource_class"}, "available"},
		{"1.38", "w", []string{"traits", "rescue_interface", "volume"}, []string{"bios_interface"}, "inspecting"},
		{"1.39", "w", nil, nil, "inspect wait"},
		{"1.81", "n", []string{"conductor", "allocation_uuid", "boot_mode", "network_data"}, []string{"shard"}, "available"},
		{"1.82", "n", []string{"shard"}, []string{"firmware_interface", "service_step", "parent_node"}, "available"},
	}
	for _, tc := range cases {
		t.Run(tc.ver, func(t *testing.T) {
			r := do(t, h, tc.ver, "GET", "/v1/nodes/"+tc.ident, "")
			if r.status != 200 {
				t.Fatalf("GET = %d %s", r.status, r.body)
			}
			doc := r.object(t)
			for _, k := range tc.present {
				if _, ok := doc[k]; !ok {
					t.Errorf("%s missing at %s", k, tc.ver)
				}
			}
			for _, k := range tc.absent {
				if _, ok := doc[k]; ok {
					t.Errorf("%s shown at %s", k, tc.ver)
				}
			}
			if doc["provision_state"] != tc.state {
				t.Errorf("provision_state = %v, want %v", doc["provision_state"], tc.state)
			}
		})
	}
	r := do(t, h, "1.4", "GET", "/v1/nodes/n", "")
	if status, msg := r.fault(t); status != 404 || msg != "Node n could not be found." {
		t.Errorf("name lookup at 1.4 = %d %q, want 404", status, msg)
	}
	r = do(t, h, "1.9", "GET", "/v1/nodes/Bad_Name", "")
	if status, msg := r.fault(t); status != 400 || msg != "Expected a logical name or UUID but received Bad_Name." {
		t.Errorf("name lookup at 1.9 = %d %q", status, msg)
	}
}

func TestNodeMasking(t *testing.T) {
	h, _ := newTestAPI(t)
	mustCreateNode(t, h, `{"driver": "fake-hardware", "name": "m",
		"driver_info": {"ipmi_password": "s1", "ipmi_username": "u", "redfish_auth_key": "k",
			"token": "t", "x_TOKEN": "y", "nested": {"password": "p", "ok": "v"}, "cmd": "ipmitool -P x password=hunter2 --token abc", "n": 5},
		"instance_info": {"configdrive": {"a": 1}, "image_url": "http://u:p@h/i", "rescue_password": "r", "foo": "bar", "image_source": "x"}}`)
	doc := do(t, h, "1.78", "GET", "/v1/nodes/m", "").object(t)
	wantDI := map[string]any{"ipmi_password": "******", "ipmi_username": "u", "redfish_auth_key": "k",
		"token": "******", "x_TOKEN": "******", "nested": map[string]any{"password": "******", "ok": "v"},
		"cmd": "ipmitool -P x password=****** --token ******", "n": json.Number("5")}
	if diff := cmp.Diff(wantDI, doc["driver_info"]); diff != "" {
		t.Errorf("driver_info (-want +got):\n%s", diff)
	}
	wantII := map[string]any{"configdrive": "******", "image_url": "******", "rescue_password": "******",
		"foo": "bar", "image_source": "x"}
	if diff := cmp.Diff(wantII, doc["instance_info"]); diff != "" {
		t.Errorf("instance_info (-want +got):\n%s", diff)
	}
}

func TestNodeListPagination(t *testing.T) {
	h, _ := newTestAPI(t)
	var ids []string
	for i := range 5 {
		ids = append(ids, mustCreateNode(t, h, fmt.Sprintf(`{"driver": "fake-hardware", "name": "n%d"}`, i)))
	}
	var seen []string
	next := "/v1/nodes?limit=2&driver=fake-hardware"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("next links do not end")
		}
		doc := do(t, h, "1.78", "GET", next, "").object(t)
		for _, n := range doc["nodes"].([]any) {
			seen = append(seen, n.(map[string]any)["uuid"].(string))
		}
		next = ""
		if l, ok := doc["next"].(string); ok {
			u, err := url.Parse(l)
			if err != nil || u.Host != captureHost {
				t.Fatalf("next = %q", l)
			}
			if u.Query().Get("driver") != "fake-hardware" || u.Query().Get("limit") != "2" {
				t.Errorf("next %q lost the query", l)
			}
			next = u.RequestURI()
		}
	}
	if diff := cmp.Diff(ids, seen); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
	// A page that is not full has no next; nor does an instance_uuid lookup.
	if doc := do(t, h, "1.78", "GET", "/v1/nodes?limit=10", "").object(t); doc["next"] != nil {
		t.Errorf("partial page has next: %v", doc["next"])
	}
	first := do(t, h, "1.78", "GET", "/v1/nodes?limit=1", "").object(t)
	want := "http://" + captureHost + "/v1/nodes?sort_key=id&sort_dir=asc&fields=instance_uuid,maintenance,power_state,provision_state,uuid,name&limit=1&marker=" + ids[0]
	if first["next"] != want {
		t.Errorf("next = %v\nwant   %s (Ironic's layout)", first["next"], want)
	}
}

func TestNodeListErrors(t *testing.T) {
	h, _ := newTestAPI(t)
	mustCreateNode(t, h, `{"driver": "fake-hardware", "name": "n0"}`)
	cases := []struct {
		ver, query string
		status     int
		msg        string
	}{
		{"1.78", "limit=-1", 400, "Limit must be positive"},
		{"1.78", "limit=abc", 400, "Expected an integer for limit: abc"},
		{"1.78", "sort_dir=up", 400, "Invalid sort direction: up. Acceptable values are 'asc' or 'desc'"},
		{"1.78", "sort_key=extra", 400, "The sort_key value extra is an invalid field for sorting"},
		{"1.78", "sort_key=bogus", 400, `The sort_key value "bogus" is an invalid field for sorting`},
		{"1.30", "sort_key=owner", 406, "Request not acceptable."},
		{"1.78", "marker=abc", 400, "Expected UUID for marker: abc"},
		{"1.78", "marker=11111111-2222-3333-4444-555555555555", 404, "Node 11111111-2222-3333-4444-555555555555 could not be found."},
		{"1.78", "fields=bogus", 400, "Field bogus is not a valid field."},
		{"1.7", "fields=name", 406, "Request not acceptable."},
		{"1.78", "fields=shard", 406, "Request not acceptable."},
		{"1.78", "maintenance=maybe", 400, "Invalid maintenance: Unrecognized value 'maybe', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"},
		{"1.78", "provision_state=bogus", 400, `Provision state "bogus" is not valid`},
		{"1.8", "provision_state=enroll", 406, "Request not acceptable."},
		{"1.78", "fault=bogus", 400, `Unrecognized fault "bogus" is specified, allowed faults are ('power failure', 'clean failure', 'rescue abort failure')`},
		{"1.10", "driver=x", 406, "Request not acceptable. The minimal required API version should be 1.16"},
		{"1.78", "shard=s", 406, "Request not acceptable. The minimal required API version should be 1.82"},
		{"1.78", "bogus=1&zz=2", 400, "Unexpected arguments: bogus, zz"},
		{"1.78", "detail=true&fields=name", 400, "Can not specify ?detail=True and fields in the same request."},
		{"1.42", "detail=true", 400, "Invalid query parameter ?detail=True received."},
		{"1.78", "instance_uuid=abc", 400, "Expected UUID for instance_uuid: abc"},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			r := do(t, h, tc.ver, "GET", "/v1/nodes?"+tc.query, "")
			if status, msg := r.fault(t); status != tc.status || msg != tc.msg {
				t.Errorf("GET ?%s = %d %q\nwant %d %q", tc.query, status, msg, tc.status, tc.msg)
			}
		})
	}
	r := do(t, h, "1.78", "GET", "/v1/nodes/detail?fields=name", "")
	if status, msg := r.fault(t); status != 400 || msg != "Unexpected arguments: fields" {
		t.Errorf("detail with fields = %d %q", status, msg)
	}
}

func TestNodeListFilters(t *testing.T) {
	h, be := newTestAPI(t)
	putNode(be, &node.Node{UUID: "00000000-0000-0000-0000-000000000001", Name: "a", ProvisionState: node.Available,
		ResourceClass: "gold", Owner: "o1", Maintenance: true, Description: "rack 7 top"})
	putNode(be, &node.Node{UUID: "00000000-0000-0000-0000-000000000002", Name: "b", ProvisionState: node.Active,
		InstanceUUID: "10000000-0000-0000-0000-000000000000", ResourceClass: "silver", ConductorGroup: "g1", Shard: "s1"})
	cases := []struct {
		query string
		want  []string
	}{
		{"provision_state=available", []string{"a"}},
		{"maintenance=true", []string{"a"}},
		{"maintenance=false", []string{"b"}},
		{"associated=true", []string{"b"}},
		{"associated=False", []string{"a"}},
		{"resource_class=gold", []string{"a"}},
		{"owner=o1", []string{"a"}},
		{"conductor_group=G1", []string{"b"}},
		{"shard=s1", []string{"b"}},
		{"description_contains=rack", []string{"a"}},
		{"instance_uuid=10000000-0000-0000-0000-000000000000", []string{"b"}},
		{"conductor=localhost", []string{"a", "b"}},
		{"conductor=other", []string{}},
		{"sort_key=name&sort_dir=desc", []string{"b", "a"}},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			r := do(t, h, "1.82", "GET", "/v1/nodes?fields=name&"+tc.query, "")
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			got := []string{}
			for _, n := range r.object(t)["nodes"].([]any) {
				got = append(got, n.(map[string]any)["name"].(string))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("?%s (-want +got):\n%s", tc.query, diff)
			}
		})
	}
}

func TestNodeFields(t *testing.T) {
	h, _ := newTestAPI(t)
	mustCreateNode(t, h, `{"driver": "fake-hardware", "name": "n0"}`)
	cases := []struct {
		fields string
		want   []string
	}{
		{"name", []string{"name", "links"}},
		{"uuid,name", []string{"uuid", "name", "links"}},
		{"name,uuid", []string{"uuid", "name", "links"}},
		{"driver_info,conductor,chassis_uuid,allocation_uuid", []string{"driver_info", "links", "conductor", "allocation_uuid", "chassis_uuid"}},
		{" NAME , name ", []string{"name", "links"}},
	}
	for _, tc := range cases {
		got := keysInOrder(t, do(t, h, "1.78", "GET", "/v1/nodes/n0?fields="+url.QueryEscape(tc.fields), "").body)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("fields=%s (-want +got):\n%s", tc.fields, diff)
		}
	}
}

func TestDeleteNode(t *testing.T) {
	h, be := newTestAPI(t)
	putNode(be, &node.Node{UUID: "00000000-0000-0000-0000-000000000001", Name: "act", ProvisionState: node.Active})
	putNode(be, &node.Node{UUID: "00000000-0000-0000-0000-000000000002", Name: "prot", ProvisionState: node.Active,
		Protected: true, Maintenance: true})
	mustCreateNode(t, h, `{"driver": "fake-hardware", "name": "en"}`)
	cases := []struct {
		ident  string
		status int
	}{
		{"en", 204},
		{"en", 404},
		{"act", 409},
		{"prot", 403},
	}
	for _, tc := range cases {
		if r := do(t, h, "1.78", "DELETE", "/v1/nodes/"+tc.ident, ""); r.status != tc.status {
			t.Errorf("DELETE %s = %d, want %d: %s", tc.ident, r.status, tc.status, r.body)
		}
	}
}
