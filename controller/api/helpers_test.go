package api

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/api/apitest"
	"github.com/ferrumhq/ferrum/controller/node"
)

// captureHost is the Host of the reference captures; requests use it so links compare.
const captureHost = "127.0.0.1:6399"

// testClock is a fixed clock for reproducible timestamps.
var testClock = func() time.Time { return time.Date(2026, 11, 22, 0, 3, 39, 0, time.UTC) }

// newTestAPI returns the handler over a fresh in-memory backend.
func newTestAPI(t testing.TB) (http.Handler, *apitest.Backend) {
	t.Helper()
	be := apitest.New(testClock)
	var log zerolog.Logger
	if tt, ok := t.(*testing.T); ok {
		log = zerolog.New(zerolog.NewTestWriter(tt)).Level(zerolog.WarnLevel)
	}
	h, err := New(Config{Backend: be, Hostname: "localhost", Log: log, Now: testClock, MaxBodyBytes: 64 << 10})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h, be
}

// resp is a recorded response.
type resp struct {
	status int
	header http.Header
	body   string
}

// json decodes the body into a generic value.
func (r resp) json(t testing.TB) any {
	t.Helper()
	v, err := decodeJSON([]byte(r.body))
	if err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, r.body)
	}
	return v
}

// object decodes the body as an object.
func (r resp) object(t testing.TB) map[string]any {
	t.Helper()
	m, ok := r.json(t).(map[string]any)
	if !ok {
		t.Fatalf("body is not an object: %s", r.body)
	}
	return m
}

// fault returns the status and the inner error of an Ironic error body, failing the test
// when the body does not have Ironic's shape.
func (r resp) fault(t testing.TB) (int, string) {
	t.Helper()
	msg, err := parseFault(r.body)
	if err != nil {
		t.Fatalf("%d body is not Ironic's error shape: %v\n%s", r.status, err, r.body)
	}
	return r.status, msg
}

// parseFault checks Ironic's double-encoded error body and returns its message.
func parseFault(body string) (string, error) {
	var outer map[string]any
	if err := json.Unmarshal([]byte(body), &outer); err != nil {
		return "", err
	}
	s, ok := outer["error_message"].(string)
	if !ok || len(outer) != 1 {
		return "", errString("no error_message string")
	}
	var inner map[string]any
	if err := json.Unmarshal([]byte(s), &inner); err != nil {
		return "", err
	}
	if fs, ok := inner["faultstring"].(string); ok {
		if len(inner) != 3 || inner["debuginfo"] != nil {
			return "", errString("faultstring form without faultcode/debuginfo")
		}
		if c := inner["faultcode"]; c != "Client" && c != "Server" {
			return "", errString("bad faultcode")
		}
		return fs, nil
	}
	if d, ok := inner["description"].(string); ok && len(inner) == 3 {
		return d, nil
	}
	return "", errString("unknown inner error form")
}

type errString string

func (e errString) Error() string { return string(e) }

// do sends a request; ver "" sends no version header, body "" sends no body.
func do(t testing.TB, h http.Handler, ver, method, path, body string) resp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, "http://"+captureHost+path, rd)
	if ver != "" {
		req.Header.Set(hdrVersion, ver)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return resp{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
}

// mustCreateNode creates a node through the API and returns its UUID.
func mustCreateNode(t testing.TB, h http.Handler, body string) string {
	t.Helper()
	r := do(t, h, "1.78", "POST", "/v1/nodes", body)
	if r.status != http.StatusCreated {
		t.Fatalf("create node: %d %s", r.status, r.body)
	}
	return r.object(t)["uuid"].(string)
}

// putNode stores a node in a given state straight into the backend.
func putNode(be *apitest.Backend, n *node.Node) {
	if n.Driver == "" {
		n.Driver = "fake-hardware"
	}
	n.Interfaces = node.Interfaces{Bios: "fake", Boot: "fake", Console: "fake", Deploy: "fake",
		Inspect: "fake", Management: "fake", Network: "noop", Power: "fake", Raid: "fake",
		Rescue: "fake", Storage: "noop", Vendor: "fake"}
	n.CreatedAt = testClock()
	be.PutNode(n)
}

// capture is one exchange of a reference capture file.
type capture struct {
	req     *http.Request
	reqBody string
	resp    *http.Response
	body    string
}

// readCapture parses the first exchange of testdata/ironic-wire/<name>.
func readCapture(t testing.TB, name string) capture { return readCaptureN(t, name, 0) }

// readCaptureN parses exchange n (from 0) of a capture file.
func readCaptureN(t testing.TB, name string, n int) capture {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "ironic-wire", name))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(string(raw), "### >>> client->server")
	if len(parts) < n+2 {
		t.Fatalf("%s: no exchange %d", name, n)
	}
	afterReq := parts[n+1]
	_, reqText, _ := strings.Cut(afterReq, "\n")
	reqText, respPart, ok := strings.Cut(reqText, "### <<< server->client")
	if !ok {
		t.Fatalf("%s: no response", name)
	}
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(reqText)))
	if err != nil {
		t.Fatalf("%s: request: %v", name, err)
	}
	reqBody, _ := io.ReadAll(req.Body)
	_, respText, _ := strings.Cut(respPart, "\n")
	res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(respText)), req)
	if err != nil {
		t.Fatalf("%s: response: %v", name, err)
	}
	body, _ := io.ReadAll(res.Body)
	return capture{req: req, reqBody: string(reqBody), resp: res, body: string(body)}
}

var (
	uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	tsRE   = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00`)
)

// normalize hides UUIDs and timestamps so bodies from different runs compare.
func normalize(s string) string {
	return tsRE.ReplaceAllString(uuidRE.ReplaceAllString(s, "<uuid>"), "<ts>")
}

// keysInOrder lists the keys of a JSON object in document order.
func keysInOrder(t testing.TB, body string) []string {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(body))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", body)
	}
	var keys []string
	for d.More() {
		k, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}
