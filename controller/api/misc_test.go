package api

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/controller/node"
)

func TestAllocations(t *testing.T) {
	h, be := newTestAPI(t)
	putNode(be, &node.Node{UUID: nodeU, Name: "n", ProvisionState: node.Available, ResourceClass: "gold",
		Traits: []string{"CUSTOM_X"}})
	r := do(t, h, "1.78", "POST", "/v1/allocations", `{"resource_class": "gold", "name": "a1", "traits": ["CUSTOM_X"], "extra": {"k": 1}}`)
	if r.status != 201 {
		t.Fatalf("create = %d %s", r.status, r.body)
	}
	doc := r.object(t)
	if doc["state"] != "active" || doc["node_uuid"] != nodeU {
		t.Errorf("allocation = %s", r.body)
	}
	want := []string{"uuid", "created_at", "updated_at", "candidate_nodes", "extra", "last_error", "name",
		"owner", "resource_class", "state", "traits", "links", "node_uuid"}
	if diff := cmp.Diff(want, keysInOrder(t, r.body)); diff != "" {
		t.Errorf("allocation keys (-want +got):\n%s", diff)
	}
	if got := do(t, h, "1.78", "GET", "/v1/nodes/n?fields=allocation_uuid,instance_uuid", "").object(t); got["allocation_uuid"] != doc["uuid"] {
		t.Errorf("node after allocation = %v", got)
	}
	cases := []struct {
		ver, method, path, body string
		status                  int
		msg                     string
	}{
		{"1.78", "GET", "/v1/allocations/a1", "", 200, ""},
		{"1.78", "GET", "/v1/allocations?node=n&fields=uuid,state", "", 200, ""},
		{"1.78", "GET", "/v1/nodes/n/allocation", "", 200, ""},
		{"1.78", "PATCH", "/v1/allocations/a1", `[{"op": "add", "path": "/extra/b", "value": 2}]`, 200, ""},
		{"1.78", "PATCH", "/v1/allocations/a1", `[{"op": "add", "path": "/state", "value": 2}]`, 400, "Cannot patch /state. Only the following can be updated: name, extra"},
		{"1.56", "PATCH", "/v1/allocations/a1", `[]`, 405, "The API version does not allow updating allocations"},
		{"1.78", "POST", "/v1/allocations", `{"resource_class": "baremetal", "bogus": 1}`, 400, "Schema error for allocation: Additional properties are not allowed ('bogus' was unexpected)"},
		{"1.78", "POST", "/v1/allocations", `{}`, 400, "The resource_class field is mandatory when not backfilling"},
		{"1.78", "POST", "/v1/allocations", `{"resource_class": "x", "traits": ["bad"]}`, 400, "Schema error for allocation: 'bad' is not valid under any of the given schemas. Possible root cause: 'bad' does not match '^CUSTOM_[A-Z0-9_]+$'"},
		{"1.78", "POST", "/v1/allocations", `{"resource_class": "x", "candidate_nodes": ["nosuch", "n"]}`, 400, "Nodes cannot be found: nosuch"},
		{"1.78", "POST", "/v1/allocations", `{"resource_class": "x", "node": "nosuch"}`, 400, "Node nosuch could not be found."},
		{"1.57", "POST", "/v1/allocations", `{"resource_class": "x", "node": "n"}`, 400, "Cannot set node when creating an allocation in this API version"},
		{"1.59", "POST", "/v1/allocations", `{"resource_class": "x", "owner": "o"}`, 406, "Request not acceptable."},
		{"1.51", "GET", "/v1/allocations", "", 404, "The API version does not allow allocations"},
		{"1.51", "POST", "/v1/allocations", `{}`, 405, "The API version does not allow allocations"},
		{"1.78", "GET", "/v1/allocations/nosuch", "", 404, "Allocation nosuch could not be found."},
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
	if got := do(t, h, "1.59", "GET", "/v1/allocations/a1", "").object(t); got["owner"] != nil || len(got) != 12 {
		t.Errorf("allocation at 1.59 shows owner: %v", got)
	}
	if r := do(t, h, "1.78", "DELETE", "/v1/nodes/n/allocation", ""); r.status != 204 {
		t.Errorf("DELETE node allocation = %d %s", r.status, r.body)
	}
	if r := do(t, h, "1.78", "GET", "/v1/nodes/n/allocation", ""); r.status != 404 {
		t.Errorf("GET after delete = %d", r.status)
	}
	// Backfill with a node name at 1.79 keeps the node.
	r = do(t, h, "1.79", "POST", "/v1/allocations", `{"node": "n"}`)
	if doc := r.object(t); r.status != 201 || doc["node_uuid"] != nodeU || doc["resource_class"] != "gold" {
		t.Errorf("backfill = %d %s", r.status, r.body)
	}
}

// noUpdater hides the optional AllocationUpdater of the test backend.
type noUpdater struct{ Backend }

func TestAllocationPatchWithoutUpdater(t *testing.T) {
	_, be := newTestAPI(t)
	h, err := New(Config{Backend: noUpdater{be}, Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, h, "1.78", "PATCH", "/v1/allocations/a1", `[]`)
	if status, _ := r.fault(t); status != 405 {
		t.Errorf("PATCH without updater = %d, want 405", status)
	}
	putNode(be, &node.Node{UUID: nodeU, Name: "n", ProvisionState: node.Enroll})
	if r := do(t, h, "1.78", "GET", "/v1/drivers/ipmi/properties", ""); r.body != "{}" {
		t.Errorf("properties without provider = %s", r.body)
	}
}

func TestDrivers(t *testing.T) {
	h, _ := newTestAPI(t)
	cases := []struct {
		ver, path string
		status    int
		check     func(t *testing.T, r resp)
	}{
		{"1.78", "/v1/drivers/ipmi", 200, func(t *testing.T, r resp) {
			doc := r.object(t)
			if doc["default_power_interface"] != "ipmitool" || doc["type"] != "dynamic" {
				t.Errorf("ipmi = %s", r.body)
			}
			if _, ok := doc["default_firmware_interface"]; ok {
				t.Error("firmware interface shown at 1.78")
			}
		}},
		{"1.31", "/v1/drivers?detail=true", 200, func(t *testing.T, r resp) {
			if strings.Contains(r.body, "bios_interface") || strings.Contains(r.body, "rescue") || strings.Contains(r.body, "storage") {
				t.Errorf("newer interfaces at 1.31: %s", r.body)
			}
		}},
		{"1.13", "/v1/drivers", 200, func(t *testing.T, r resp) {
			if strings.Contains(r.body, "properties") || strings.Contains(r.body, "dynamic") {
				t.Errorf("1.13 drivers: %s", r.body)
			}
		}},
		{"1.78", "/v1/drivers?fields=name", 200, func(t *testing.T, r resp) {
			want := `{"drivers": [{"name": "fake-hardware", "links": [{"href": "http://127.0.0.1:6399/v1/drivers/fake-hardware", "rel": "self"}, {"href": "http://127.0.0.1:6399/drivers/fake-hardware", "rel": "bookmark"}]}, {"name": "ipmi", "links": [{"href": "http://127.0.0.1:6399/v1/drivers/ipmi", "rel": "self"}, {"href": "http://127.0.0.1:6399/drivers/ipmi", "rel": "bookmark"}]}]}`
			if r.body != want {
				t.Errorf("fields=name: %s", r.body)
			}
		}},
		{"1.78", "/v1/drivers?type=classic", 200, func(t *testing.T, r resp) {
			if r.body != `{"drivers": []}` {
				t.Errorf("classic: %s", r.body)
			}
		}},
		{"1.78", "/v1/drivers/ipmi/properties", 200, func(t *testing.T, r resp) {
			if !strings.Contains(r.body, "ipmi_address") {
				t.Errorf("properties: %s", r.body)
			}
		}},
		{"1.76", "/v1/drivers?fields=name", 406, nil},
		{"1.29", "/v1/drivers?detail=true", 406, nil},
		{"1.78", "/v1/drivers?type=bogus", 400, nil},
		{"1.78", "/v1/drivers?detail=true&fields=name", 400, nil},
		{"1.78", "/v1/drivers?fields=bogus", 400, nil},
		{"1.78", "/v1/drivers/nosuch", 404, nil},
		{"1.78", "/v1/drivers/nosuch/properties", 404, nil},
	}
	for _, tc := range cases {
		r := do(t, h, tc.ver, "GET", tc.path, "")
		if r.status != tc.status {
			t.Errorf("GET %s at %s = %d, want %d: %s", tc.path, tc.ver, r.status, tc.status, r.body)
			continue
		}
		if tc.status >= 400 {
			r.fault(t)
		}
		if tc.check != nil {
			tc.check(t, r)
		}
	}
}

func TestConductors(t *testing.T) {
	h, _ := newTestAPI(t)
	cases := []struct {
		ver, path string
		status    int
		want      string
	}{
		{"1.78", "/v1/conductors", 200, `{"conductors": [{"hostname": "localhost", "conductor_group": "", "links": [{"href": "http://127.0.0.1:6399/v1/conductors/localhost", "rel": "self"}, {"href": "http://127.0.0.1:6399/conductors/localhost", "rel": "bookmark"}], "alive": true}]}`},
		{"1.78", "/v1/conductors/localhost", 200, `{"created_at": "2026-11-22T00:03:39+00:00", "updated_at": "2026-11-22T00:03:39+00:00", "hostname": "localhost", "conductor_group": "", "drivers": ["fake-hardware", "ipmi"], "links": [{"href": "http://127.0.0.1:6399/v1/conductors/localhost", "rel": "self"}, {"href": "http://127.0.0.1:6399/conductors/localhost", "rel": "bookmark"}], "alive": true}`},
		{"1.78", "/v1/conductors?limit=1", 200, `{"conductors": [{"hostname": "localhost", "conductor_group": "", "links": [{"href": "http://127.0.0.1:6399/v1/conductors/localhost", "rel": "self"}, {"href": "http://127.0.0.1:6399/conductors/localhost", "rel": "bookmark"}], "alive": true}], "next": "http://127.0.0.1:6399/v1/conductors?sort_key=id&sort_dir=asc&fields=hostname,conductor_group,alive&limit=1&marker=localhost"}`},
		{"1.78", "/v1/conductors?marker=localhost", 200, `{"conductors": []}`},
		{"1.78", "/v1/conductors?fields=hostname", 200, `{"conductors": [{"hostname": "localhost", "links": [{"href": "http://127.0.0.1:6399/v1/conductors/localhost", "rel": "self"}, {"href": "http://127.0.0.1:6399/conductors/localhost", "rel": "bookmark"}]}]}`},
		{"1.48", "/v1/conductors", 404, ""},
		{"1.78", "/v1/conductors/nosuch", 404, ""},
		{"1.78", "/v1/conductors?fields=bogus", 400, ""},
		{"1.78", "/v1/conductors?sort_key=alive", 400, ""},
		{"1.78", "/v1/conductors?marker=bad%20name", 400, ""},
	}
	for _, tc := range cases {
		r := do(t, h, tc.ver, "GET", tc.path, "")
		if r.status != tc.status {
			t.Errorf("GET %s = %d, want %d: %s", tc.path, r.status, tc.status, r.body)
			continue
		}
		if tc.status >= 400 {
			r.fault(t)
		} else if r.body != tc.want {
			t.Errorf("GET %s =\n%s\nwant\n%s", tc.path, r.body, tc.want)
		}
	}
}

func TestShards(t *testing.T) {
	h, be := newTestAPI(t)
	for i, shard := range []string{"", "a", "a"} {
		putNode(be, &node.Node{UUID: "00000000-0000-0000-0000-00000000000" + string(rune('1'+i)), ProvisionState: node.Enroll, Shard: shard})
	}
	if r := do(t, h, "1.82", "GET", "/v1/shards", ""); r.body != `{"shards": [{"name": "a", "count": 2}, {"name": "None", "count": 1}]}` {
		t.Errorf("shards = %s", r.body)
	}
	if r := do(t, h, "1.81", "GET", "/v1/shards", ""); r.status != 404 {
		t.Errorf("shards at 1.81 = %d", r.status)
	}
}

func TestApitestSatisfiesOptionalInterfaces(t *testing.T) {
	_, be := newTestAPI(t)
	var b Backend = be
	if _, ok := b.(AllocationUpdater); !ok {
		t.Error("apitest.Backend does not implement AllocationUpdater")
	}
	if _, ok := b.(DriverPropertiesProvider); !ok {
		t.Error("apitest.Backend does not implement DriverPropertiesProvider")
	}
	if _, ok := b.(BootDeviceManager); !ok {
		t.Error("apitest.Backend does not implement BootDeviceManager")
	}
	if _, err := be.Drivers(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestChassis(t *testing.T) {
	h, _ := newTestAPI(t)
	cases := []struct {
		path   string
		status int
		body   string
	}{
		{"/v1/chassis", 200, `{"chassis": []}`},
		{"/v1/chassis/detail", 200, `{"chassis": []}`},
		{"/v1/chassis/11111111-2222-3333-4444-555555555555", 404, `{"error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Chassis 11111111-2222-3333-4444-555555555555 could not be found.\", \"debuginfo\": null}"}`},
		{"/v1/chassis/abc", 400, `{"error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Expected UUID for chassis_uuid: abc\", \"debuginfo\": null}"}`},
	}
	for _, tc := range cases {
		if r := do(t, h, "1.78", "GET", tc.path, ""); r.status != tc.status || r.body != tc.body {
			t.Errorf("GET %s = %d %s\nwant %d %s", tc.path, r.status, r.body, tc.status, tc.body)
		}
	}
}
