package api

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/controller/node"
)

// replay sends a capture's request (method, path, version header, body) to h.
func replay(t *testing.T, h http.Handler, c capture) resp {
	t.Helper()
	return do(t, h, c.req.Header.Get(hdrVersion), c.req.Method, c.req.URL.RequestURI(), c.reqBody)
}

// versionHeaders are the headers a v1 response must carry, as the capture has them.
var versionHeaders = []string{hdrMinVersion, hdrMaxVersion, hdrVersion}

func checkHeaders(t *testing.T, name string, got http.Header, want http.Header) {
	t.Helper()
	for _, k := range versionHeaders {
		if g, w := got.Get(k), want.Get(k); g != w {
			t.Errorf("%s: header %s = %q, want %q", name, k, g, w)
		}
	}
	if id := got.Get(hdrRequestID); !strings.HasPrefix(id, "req-") || !uuidRE.MatchString(id) {
		t.Errorf("%s: %s = %q, want req-<uuid>", name, hdrRequestID, id)
	}
	if w := want.Get("Location"); w != "" && normalize(got.Get("Location")) != normalize(w) {
		t.Errorf("%s: Location = %q, want %q", name, got.Get("Location"), w)
	}
	if want.Get("Content-Type") != "" && got.Get("Content-Type") != want.Get("Content-Type") {
		t.Errorf("%s: Content-Type = %q, want %q", name, got.Get("Content-Type"), want.Get("Content-Type"))
	}
}

// TestGoldenExact replays captures whose responses Ferrum reproduces byte for byte (modulo
// UUIDs and timestamps).
func TestGoldenExact(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, h http.Handler)
	}{
		{"00-get-root.txt", nil},
		{"01-get-v1.txt", nil},
		{"02-get-v1-nodes-noversion.txt", nil},
		{"03-version-too-high-406.txt", nil},
		{"04-version-latest.txt", nil},
		{"05-version-malformed-406.txt", nil},
		{"10-cli-driver-list.txt", nil},
		{"11-cli-node-create.txt", nil},
		{"12-cli-node-show.txt", withFake0},
		{"13-cli-node-list.txt", withFake0},
		{"14-cli-node-list-long.txt", withFake0},
		{"16-cli-node-validate.txt", withFake0},
		{"17-cli-port-create-by-name-400.txt", withFake0},
		{"18-cli-deploy-from-enroll-400.txt", withFake0},
		{"20-cli-node-manage.txt", withFake0},
		{"23-cli-power-off.txt", withFake0},
		{"26-cli-power-on-wait.txt", withFake0},
		{"27-cli-maintenance-set.txt", withFake0},
		{"28-cli-maintenance-unset.txt", withFake0},
		{"30-bad-driver-400.txt", nil},
		{"31-not-found-404.txt", nil},
		{"32-bad-json-400.txt", nil},
		{"33-duplicate-name-409.txt", withFake0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newTestAPI(t)
			if tc.setup != nil {
				tc.setup(t, h)
			}
			c := readCapture(t, tc.name)
			got := replay(t, h, c)
			if got.status != c.resp.StatusCode {
				t.Fatalf("status = %d, want %d\n%s", got.status, c.resp.StatusCode, got.body)
			}
			if diff := cmp.Diff(normalize(c.body), normalize(got.body)); diff != "" {
				t.Errorf("body differs from Ironic (-ironic +ferrum):\n%s", diff)
			}
			if strings.HasPrefix(c.req.URL.Path, "/v1") && c.resp.StatusCode != http.StatusNotAcceptable {
				checkHeaders(t, tc.name, got.header, c.resp.Header)
			}
		})
	}
}

// withFake0 creates the capture's node fake-0 the way capture 11 did.
func withFake0(t *testing.T, h http.Handler) {
	c := readCapture(t, "11-cli-node-create.txt")
	mustCreateNode(t, h, c.reqBody)
}

// TestGoldenVersionErrors checks the 406 headers: range errors carry min/max, a malformed
// version carries neither.
func TestGoldenVersionErrors(t *testing.T) {
	h, _ := newTestAPI(t)
	for _, name := range []string{"03-version-too-high-406.txt", "05-version-malformed-406.txt"} {
		c := readCapture(t, name)
		got := replay(t, h, c)
		for _, k := range []string{hdrMinVersion, hdrMaxVersion, hdrVersion} {
			if g, w := got.header.Get(k), c.resp.Header.Get(k); g != w {
				t.Errorf("%s: %s = %q, want %q", name, k, g, w)
			}
		}
	}
}

// TestGoldenNodeKeys compares the key sets and order of node documents with Ironic's.
func TestGoldenNodeKeys(t *testing.T) {
	h, _ := newTestAPI(t)
	withFake0(t, h)
	show := readCapture(t, "12-cli-node-show.txt")
	want := keysInOrder(t, show.body)
	if len(want) != 62 {
		t.Fatalf("capture 12 has %d keys, want 62", len(want))
	}
	got := keysInOrder(t, do(t, h, "1.78", "GET", "/v1/nodes/fake-0", "").body)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("node keys at 1.78 (-ironic +ferrum):\n%s", diff)
	}
	// 1.82 adds shard (between secure_boot and storage_interface): 63 keys.
	want82 := slices.Clone(want)
	i := slices.Index(want82, "storage_interface")
	want82 = slices.Insert(want82, i, "shard")
	got82 := keysInOrder(t, do(t, h, "1.82", "GET", "/v1/nodes/fake-0", "").body)
	if diff := cmp.Diff(want82, got82); diff != "" {
		t.Errorf("node keys at 1.82 (-want +got):\n%s", diff)
	}
	if len(got82) != 63 {
		t.Errorf("node at 1.82 has %d keys, want 63", len(got82))
	}
}

// TestGoldenPatch replays capture 15: the PATCH response matches Ironic's except for the
// reservation Ironic's conductor still held when it answered and free-form key order.
func TestGoldenPatch(t *testing.T) {
	h, _ := newTestAPI(t)
	withFake0(t, h)
	c := readCapture(t, "15-cli-node-set-patch.txt")
	got := replay(t, h, c)
	if got.status != http.StatusOK {
		t.Fatalf("status = %d: %s", got.status, got.body)
	}
	want := mustObject(t, c.body)
	want["reservation"] = nil
	if diff := cmp.Diff(normalizeValue(want), normalizeValue(got.object(t))); diff != "" {
		t.Errorf("PATCH response (-ironic +ferrum):\n%s", diff)
	}
}

// TestGoldenPorts replays the port captures 17b and 17c.
func TestGoldenPorts(t *testing.T) {
	h, _ := newTestAPI(t)
	create := readCapture(t, "17b-cli-port-create-by-uuid.txt")
	// The capture's node UUID must exist.
	nodeUUID := uuidRE.FindString(create.reqBody)
	mustCreateNode(t, h, `{"driver": "fake-hardware", "uuid": "`+nodeUUID+`"}`)
	got := replay(t, h, create)
	if got.status != http.StatusCreated {
		t.Fatalf("port create: %d %s", got.status, got.body)
	}
	if diff := cmp.Diff(normalize(create.body), normalize(got.body)); diff != "" {
		t.Errorf("port create (-ironic +ferrum):\n%s", diff)
	}
	checkHeaders(t, "17b", got.header, create.resp.Header)
	list := readCapture(t, "17c-cli-port-list.txt")
	got = replay(t, h, list)
	if diff := cmp.Diff(normalize(list.body), normalize(got.body)); diff != "" {
		t.Errorf("port list (-ironic +ferrum):\n%s", diff)
	}
}

// TestGoldenLocked replays capture 25's PATCH on a node reserved by another conductor.
func TestGoldenLocked(t *testing.T) {
	h, be := newTestAPI(t)
	putNode(be, &node.Node{UUID: "1664d7b2-3b3d-4347-8e03-f796dc36bf1e", Name: "fake-0",
		ProvisionState: node.Enroll, Reservation: "localhost"})
	c := readCaptureN(t, "25-locked-node-409.txt", 1)
	if c.req.Method != http.MethodPatch {
		t.Fatalf("exchange 1 of capture 25 is %s, want PATCH", c.req.Method)
	}
	got := replay(t, h, c)
	if got.status != c.resp.StatusCode || got.body != c.body {
		t.Errorf("locked PATCH = %d %s, want %d %s", got.status, got.body, c.resp.StatusCode, c.body)
	}
	checkHeaders(t, "25", got.header, c.resp.Header)
}

// TestGoldenDelete replays captures 34–35: create then delete by name.
func TestGoldenDelete(t *testing.T) {
	h, _ := newTestAPI(t)
	mustCreateNode(t, h, `{"driver": "fake-hardware", "name": "tmp-1"}`)
	c := readCapture(t, "35-cli-node-delete.txt")
	got := replay(t, h, c)
	if got.status != http.StatusNoContent || got.body != "" {
		t.Errorf("delete = %d %q, want 204 and no body", got.status, got.body)
	}
	checkHeaders(t, "35", got.header, c.resp.Header)
}

func mustObject(t *testing.T, body string) map[string]any {
	t.Helper()
	return resp{body: body}.object(t)
}

// normalizeValue replaces UUIDs and timestamps inside a decoded value.
func normalizeValue(v any) any {
	switch v := v.(type) {
	case string:
		return normalize(v)
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			out[k] = normalizeValue(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normalizeValue(e)
		}
		return out
	}
	return v
}
