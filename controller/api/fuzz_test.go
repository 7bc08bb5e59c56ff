package api

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrumhq/ferrum/controller/node"
)

// checkResponse is what every fuzz target asserts: no 5xx, and an error body in Ironic's
// shape whenever the status is an error.
func checkResponse(t *testing.T, r resp) {
	t.Helper()
	if r.status >= 500 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if r.status >= 400 {
		if _, err := parseFault(r.body); err != nil {
			t.Fatalf("%d body not in Ironic's shape (%v): %s", r.status, err, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("error Content-Type %q", ct)
		}
	}
}

// fuzzVersion maps a byte onto a microversion string, mostly valid.
func fuzzVersion(b uint8) string {
	switch b {
	case 0:
		return ""
	case 255:
		return "latest"
	}
	return versionString(int(b)%(maxMinor+5) + 1)
}

// captureBodies returns the request bodies of the captures, as seeds.
func captureBodies(f *testing.F, method, pathPart string) []string {
	f.Helper()
	files, _ := filepath.Glob(filepath.Join("testdata", "ironic-wire", "*.txt"))
	var out []string
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for i := 0; i < strings.Count(string(raw), "### >>> client->server"); i++ {
			c := readCaptureN(f, filepath.Base(file), i)
			if c.req.Method == method && strings.Contains(c.req.URL.Path, pathPart) && c.reqBody != "" {
				out = append(out, c.reqBody)
			}
		}
	}
	return out
}

func FuzzNodeCreate(f *testing.F) {
	for _, b := range captureBodies(f, "POST", "/v1/nodes") {
		f.Add(uint8(78), b)
	}
	f.Add(uint8(1), `{"driver": "fake-hardware", "name": null}`)
	f.Add(uint8(82), `{"driver": "fake-hardware", "shard": "s", "maintenance": "yes", "uuid": "{1664d7b2-3b3d-4347-8e03-f796dc36bf1e}"}`)
	f.Add(uint8(78), `{"driver": "fake-hardware", "network_data": [], "automated_clean": null, "protected": true}`)
	f.Fuzz(func(t *testing.T, ver uint8, body string) {
		h, _ := newTestAPI(t)
		r := do(t, h, fuzzVersion(ver), "POST", "/v1/nodes", body)
		checkResponse(t, r)
		if r.status == http.StatusCreated {
			id := r.object(t)["uuid"].(string)
			checkResponse(t, do(t, h, fuzzVersion(ver), "GET", "/v1/nodes/"+id, ""))
		}
	})
}

func FuzzNodePatch(f *testing.F) {
	for _, b := range captureBodies(f, "PATCH", "/v1/nodes") {
		f.Add(uint8(78), b)
	}
	seeds := []string{
		`[{"op": "replace", "path": "/maintenance", "value": "true"}]`,
		`[{"op": "add", "path": "/extra/l", "value": [1]}, {"op": "add", "path": "/extra/l/-", "value": 2}, {"op": "remove", "path": "/extra/l/0"}]`,
		`[{"op": "remove", "path": "/driver_info/x/y"}]`,
		`[{"op": "replace", "path": "/driver", "value": "ipmi"}]`,
		`[{"op": "add", "path": "/properties/a/0/b", "value": null}]`,
		`[{"op": "replace", "path": "/protected", "value": "yes"}, {"op": "add", "path": "/protected_reason", "value": 5}]`,
		`[{"op": "remove", "path": "/name"}, {"op": "remove", "path": "/conductor_group"}]`,
		`{"op": "add"}`,
		`[[]]`,
	}
	for _, s := range seeds {
		f.Add(uint8(78), s)
	}
	f.Fuzz(func(t *testing.T, ver uint8, body string) {
		h, be := newTestAPI(t)
		putNode(be, &node.Node{UUID: nodeU, Name: "n", ProvisionState: node.Manageable,
			Extra:      map[string]any{"s": "str", "n": 1.0, "l": []any{1.0}, "m": map[string]any{"k": "v"}},
			DriverInfo: map[string]any{"ipmi_password": "p"}})
		path := "/v1/nodes/" + nodeU
		if ver%3 == 0 {
			path += "?reset_interfaces=true"
		}
		checkResponse(t, do(t, h, fuzzVersion(ver), "PATCH", path, body))
	})
}

func FuzzProvisionBody(f *testing.F) {
	for _, b := range captureBodies(f, "PUT", "/states/provision") {
		f.Add(uint8(78), uint8(0), b)
	}
	seeds := []string{
		`{"target": "clean", "clean_steps": [{"interface": "deploy", "step": "erase_devices", "args": {}}], "disable_ramdisk": "yes"}`,
		`{"target": "active", "configdrive": {"meta_data": {}, "user_data": ["x"]}, "deploy_steps": [{"interface": "deploy", "step": "s", "args": {}, "priority": 1}]}`,
		`{"target": "rescue", "rescue_password": "pw"}`,
		`{"target": "active", "configdrive": "H4sI\n"}`,
		`{"target": "abort"}`,
		`{"target": null}`,
	}
	for i, s := range seeds {
		f.Add(uint8(78), uint8(i), s)
	}
	states := node.AllStates()
	f.Fuzz(func(t *testing.T, ver, state uint8, body string) {
		h, be := newTestAPI(t)
		putNode(be, &node.Node{UUID: nodeU, Name: "n", ProvisionState: states[int(state)%len(states)],
			Maintenance: state%7 == 0})
		checkResponse(t, do(t, h, fuzzVersion(ver), "PUT", "/v1/nodes/"+nodeU+"/states/provision", body))
	})
}

func FuzzPowerBody(f *testing.F) {
	for _, b := range captureBodies(f, "PUT", "/states/power") {
		f.Add(uint8(78), b)
	}
	f.Add(uint8(27), `{"target": "soft power off", "timeout": 1.5}`)
	f.Add(uint8(78), `{"target": "rebooting", "timeout": 1e300}`)
	f.Fuzz(func(t *testing.T, ver uint8, body string) {
		h, be := newTestAPI(t)
		putNode(be, &node.Node{UUID: nodeU, Name: "n", ProvisionState: node.Manageable})
		checkResponse(t, do(t, h, fuzzVersion(ver), "PUT", "/v1/nodes/"+nodeU+"/states/power", body))
	})
}

func FuzzRAIDConfig(f *testing.F) {
	f.Add(`{"logical_disks": [{"size_gb": 50, "raid_level": "1", "controller": "software", "is_root_volume": true}, {"size_gb": "MAX", "raid_level": "0", "controller": "software"}]}`)
	f.Add(`{"logical_disks": [{"size_gb": 1, "raid_level": "5", "physical_disks": [{"size": 1}, "x"], "number_of_physical_disks": 3}]}`)
	f.Add(`{"logical_disks": [null, 1, "x", []]}`)
	f.Fuzz(func(t *testing.T, body string) {
		h, be := newTestAPI(t)
		putNode(be, &node.Node{UUID: nodeU, Name: "n", ProvisionState: node.Manageable})
		checkResponse(t, do(t, h, "1.78", "PUT", "/v1/nodes/"+nodeU+"/states/raid", body))
	})
}

func FuzzPortCreate(f *testing.F) {
	for _, b := range captureBodies(f, "POST", "/v1/ports") {
		f.Add(uint8(78), b)
	}
	f.Add(uint8(78), `{"address": "52:54:00:aa:bb:cc", "node_uuid": "`+nodeU+`", "local_link_connection": {"port_id": "x", "switch_id": "0123456789abcdef"}, "is_smartnic": "y", "pxe_enabled": null}`)
	f.Add(uint8(78), `{"address": "52:54:00:aa:bb:cc", "node_uuid": "`+nodeU+`", "portgroup_uuid": "`+nodeU+`", "physical_network": ""}`)
	f.Fuzz(func(t *testing.T, ver uint8, body string) {
		h, be := newTestAPI(t)
		putNode(be, &node.Node{UUID: nodeU, Name: "n", ProvisionState: node.Manageable})
		r := do(t, h, fuzzVersion(ver), "POST", "/v1/ports", body)
		checkResponse(t, r)
		if r.status == http.StatusCreated {
			id := r.object(t)["uuid"].(string)
			checkResponse(t, do(t, h, fuzzVersion(ver), "PATCH", "/v1/ports/"+id, body))
		}
	})
}

// FuzzRequest sends arbitrary methods, paths and query strings.
func FuzzRequest(f *testing.F) {
	seeds := [][3]string{
		{"GET", "/v1/nodes", "limit=-1&sort_dir=up"},
		{"GET", "/v1/nodes/detail", "fields=bogus&detail=true"},
		{"GET", "/v1/ports", "address=zz&node=%20"},
		{"GET", "/v1/portgroups/pg/ports/detail", "marker=x"},
		{"GET", "/v1/conductors", "marker=a&limit=0"},
		{"DELETE", "/v1/nodes/n/traits/CUSTOM_A", ""},
		{"POST", "/v1/nodes/n/vifs", ""},
		{"GET", "/nodes/n/states", "x=%zz"},
		{"GET", "/v1/allocations", "owner=o&node=n"},
		{"PUT", "/v1/nodes/n/traits/%2F", ""},
	}
	for _, s := range seeds {
		f.Add(uint8(78), s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, ver uint8, method, path, query string) {
		if method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") || !strings.HasPrefix(path, "/") {
			t.Skip()
		}
		h, be := newTestAPI(t)
		putNode(be, &node.Node{UUID: nodeU, Name: "n", ProvisionState: node.Manageable})
		req := &http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: query},
			Header: http.Header{}, Host: captureHost, Body: http.NoBody}
		if v := fuzzVersion(ver); v != "" {
			req.Header.Set(hdrVersion, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 300 && rec.Code < 400 {
			return // ServeMux redirects unclean paths
		}
		checkResponse(t, resp{status: rec.Code, header: rec.Header(), body: rec.Body.String()})
	})
}
