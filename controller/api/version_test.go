package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNegotiate(t *testing.T) {
	cases := []struct {
		name      string
		header    []string // nil: no header
		want      int
		wantRange bool
		wantErr   string
	}{
		{"absent-is-1.1", nil, 1, true, ""},
		{"latest", []string{"latest"}, maxMinor, true, ""},
		{"latest-any-case", []string{"LaTeSt"}, maxMinor, true, ""},
		{"exact", []string{"1.78"}, 78, true, ""},
		{"leading-zero", []string{"1.05"}, 5, true, ""},
		{"spaces", []string{" 1 . 31 "}, 31, true, ""},
		{"max", []string{"1.82"}, 82, true, ""},
		{"too-high", []string{"1.999"}, 0, true, "Version 1.999 was requested but the minor version is not supported by this service. The supported version range is: [1.1, 1.82]."},
		{"zero", []string{"1.0"}, 0, true, "Version 1.0 was requested but the minor version is not supported by this service. The supported version range is: [1.1, 1.82]."},
		{"major-2", []string{"2.1"}, 0, true, "Mutually exclusive versions requested. Version 2.1 requested but not supported by this service. The supported version range is: [1.1, 1.82]."},
		{"malformed", []string{"abc"}, 0, false, "Invalid value for X-OpenStack-Ironic-API-Version header"},
		{"empty", []string{""}, 0, false, "Invalid value for X-OpenStack-Ironic-API-Version header"},
		{"three-parts", []string{"1.2.3"}, 0, false, "Invalid value for X-OpenStack-Ironic-API-Version header"},
		{"no-dot", []string{"1"}, 0, false, "Invalid value for X-OpenStack-Ironic-API-Version header"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.header != nil {
				h[http.CanonicalHeaderKey(hdrVersion)] = tc.header
			}
			minor, withRange, err := negotiate(h)
			gotErr := ""
			if err != nil {
				gotErr = err.msg
				if err.status != http.StatusNotAcceptable || !err.webob {
					t.Errorf("error = %d webob=%v, want 406 webob", err.status, err.webob)
				}
			}
			if minor != tc.want || withRange != tc.wantRange || gotErr != tc.wantErr {
				t.Errorf("negotiate(%q) = %d, %v, %q; want %d, %v, %q", tc.header, minor, withRange, gotErr, tc.want, tc.wantRange, tc.wantErr)
			}
		})
	}
}

func TestVersionHeadersOnEveryV1Response(t *testing.T) {
	h, _ := newTestAPI(t)
	for _, path := range []string{"/v1", "/v1/nodes", "/v1/nodes/nope", "/v1/bogus", "/nodes"} {
		r := do(t, h, "1.40", "GET", path, "")
		for k, want := range map[string]string{hdrMinVersion: "1.1", hdrMaxVersion: MaxVersion, hdrVersion: "1.40"} {
			if got := r.header.Get(k); got != want {
				t.Errorf("GET %s: %s = %q, want %q", path, k, got, want)
			}
		}
		if !strings.HasPrefix(r.header.Get(hdrRequestID), "req-") {
			t.Errorf("GET %s: no request id", path)
		}
	}
	r := do(t, h, "1.40", "GET", "/", "")
	if r.header.Get(hdrVersion) != "" || r.header.Get(hdrRequestID) == "" {
		t.Errorf("GET /: headers %v; want a request id and no version headers (as Ironic 21.4.4)", r.header)
	}
}

func TestRouting(t *testing.T) {
	h, _ := newTestAPI(t)
	mustCreateNode(t, h, `{"driver": "fake-hardware", "name": "n0"}`)
	cases := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantMsg    string // error message, "" for success
	}{
		{"no-v1-prefix", "GET", "/nodes/n0", 200, ""},
		{"trailing-slash", "GET", "/v1/nodes/", 200, ""},
		{"v1-no-slash", "GET", "/v1", 200, ""},
		{"unknown-404", "GET", "/v1/bogus", 404, ""},
		{"unknown-deep-404", "GET", "/v1/nodes/n0/bogus", 404, ""},
		{"subresource-word-404", "GET", "/v1/nodes/ports", 404, ""},
		{"bad-ident-400", "GET", "/v1/nodes/bad%20name", 400, "Expected UUID or name for node: bad name"},
		{"method-405", "PUT", "/v1/nodes", 405, ""},
		{"v1-post-405", "POST", "/v1/", 405, "The server could not comply with the request since it is either malformed or otherwise incorrect."},
		{"root-post-405", "POST", "/", 405, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, h, "1.78", tc.method, tc.path, "")
			if r.status != tc.wantStatus {
				t.Fatalf("%s %s = %d, want %d: %s", tc.method, tc.path, r.status, tc.wantStatus, r.body)
			}
			if tc.wantStatus >= 400 {
				if _, msg := r.fault(t); msg != tc.wantMsg {
					t.Errorf("message = %q, want %q", msg, tc.wantMsg)
				}
			}
		})
	}
	r := do(t, h, "1.78", "PUT", "/v1/nodes", "")
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("405 Allow = %q, want GET and POST", allow)
	}
}

func TestLinksFollowHostAndProto(t *testing.T) {
	h, _ := newTestAPI(t)
	cases := []struct {
		name   string
		header map[string]string
		want   string
	}{
		{"plain", nil, "http://api.example:6385/v1/"},
		{"forwarded-https", map[string]string{"X-Forwarded-Proto": "https"}, "https://api.example:6385/v1/"},
		{"forwarded-list", map[string]string{"X-Forwarded-Proto": "HTTPS, http"}, "https://api.example:6385/v1/"},
		{"forwarded-garbage", map[string]string{"X-Forwarded-Proto": "gopher"}, "http://api.example:6385/v1/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "http://api.example:6385/", nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if !strings.Contains(rec.Body.String(), `"href": "`+tc.want+`"`) {
				t.Errorf("root links: %s, want %s", rec.Body.String(), tc.want)
			}
		})
	}
}

func TestV1LinksByVersion(t *testing.T) {
	h, _ := newTestAPI(t)
	cases := []struct {
		ver  string
		want []string
	}{
		{"1.1", []string{"id", "links", "media_types", "chassis", "nodes", "ports", "drivers", "version"}},
		{"1.22", []string{"id", "links", "media_types", "chassis", "nodes", "ports", "drivers", "version", "lookup", "heartbeat"}},
		{"1.52", []string{"id", "links", "media_types", "chassis", "nodes", "ports", "drivers", "version", "portgroups", "volume", "lookup", "heartbeat", "conductors", "allocations"}},
		{"1.82", []string{"id", "links", "media_types", "chassis", "nodes", "ports", "drivers", "version", "portgroups", "volume", "lookup", "heartbeat", "conductors", "allocations", "events", "deploy_templates", "shards"}},
	}
	for _, tc := range cases {
		got := keysInOrder(t, do(t, h, tc.ver, "GET", "/v1/", "").body)
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("GET /v1 at %s keys = %v, want %v", tc.ver, got, tc.want)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	_, be := newTestAPI(t)
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"ok", Config{Backend: be, Hostname: "h"}, true},
		{"no-backend", Config{Hostname: "h"}, false},
		{"no-hostname", Config{Backend: be}, false},
		{"negative-body", Config{Backend: be, Hostname: "h", MaxBodyBytes: -1}, false},
	}
	for _, tc := range cases {
		if _, err := New(tc.cfg); (err == nil) != tc.ok {
			t.Errorf("%s: New err = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestBodyTooLarge(t *testing.T) {
	h, _ := newTestAPI(t) // 64 KiB limit
	big := `{"driver": "fake-hardware", "extra": {"x": "` + strings.Repeat("a", 70<<10) + `"}}`
	r := do(t, h, "1.78", "POST", "/v1/nodes", big)
	if status, msg := r.fault(t); status != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "65536") {
		t.Errorf("big body = %d %q, want 413 naming the limit", status, msg)
	}
}
