package direct_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/ferrumhq/ferrum/controller/direct"
	"github.com/ferrumhq/ferrum/controller/httpauth"
	"github.com/ferrumhq/ferrum/controller/metrics"
)

// seen is what a handler reports back about the request it got.
type seen struct {
	Method, Host, RequestURI, Path, Query, RemoteAddr string
	ContentLength                                     int64
	Body                                              string
	APIVersion                                        string
}

func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-OpenStack-Ironic-API-Version", r.Header.Get("X-OpenStack-Ironic-API-Version"))
	_ = json.NewEncoder(w).Encode(seen{
		Method: r.Method, Host: r.Host, RequestURI: r.RequestURI, Path: r.URL.Path,
		Query: r.URL.RawQuery, RemoteAddr: r.RemoteAddr, ContentLength: r.ContentLength,
		Body: string(body), APIVersion: r.Header.Get("X-OpenStack-Ironic-API-Version"),
	})
}

func TestRoundTrip(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/nodes/{id}", echo)
	mux.HandleFunc("POST /v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "http://"+r.Host+"/v1/nodes/new")
		w.WriteHeader(http.StatusCreated)
		echo(w, r)
	})
	mux.HandleFunc("DELETE /v1/nodes/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	c := direct.Client(mux)

	tests := []struct {
		name       string
		method     string
		url        string
		body       string
		wantStatus int
		wantHeader http.Header // only these keys are compared
		wantSeen   *seen
	}{
		{
			name: "get/base-url", method: "GET", url: direct.BaseURL + "/v1/nodes/node-1?fields=uuid,name",
			wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"application/json"}, "X-Openstack-Ironic-Api-Version": {"1.82"}},
			wantSeen: &seen{Method: "GET", Host: "ferrum.direct", RequestURI: "/v1/nodes/node-1?fields=uuid,name",
				Path: "/v1/nodes/node-1", Query: "fields=uuid,name", RemoteAddr: direct.RemoteAddr, APIVersion: "1.82"},
		},
		{
			name: "get/any-url", method: "GET", url: "https://elsewhere.invalid:6385/v1/nodes/a%2Fb",
			wantStatus: 200,
			wantSeen: &seen{Method: "GET", Host: "elsewhere.invalid:6385", RequestURI: "/v1/nodes/a%2Fb",
				Path: "/v1/nodes/a/b", RemoteAddr: direct.RemoteAddr, APIVersion: "1.82"},
		},
		{
			name: "post/body-and-location", method: "POST", url: direct.BaseURL + "/v1/nodes", body: `{"driver":"fake-hardware"}`,
			wantStatus: 201,
			wantHeader: http.Header{"Location": {"http://ferrum.direct/v1/nodes/new"}},
			wantSeen: &seen{Method: "POST", Host: "ferrum.direct", RequestURI: "/v1/nodes", Path: "/v1/nodes",
				RemoteAddr: direct.RemoteAddr, ContentLength: 26, Body: `{"driver":"fake-hardware"}`, APIVersion: "1.82"},
		},
		{name: "delete/no-content", method: "DELETE", url: direct.BaseURL + "/v1/nodes/node-1", wantStatus: 204},
		{name: "not-found", method: "GET", url: direct.BaseURL + "/v1/chassis", wantStatus: 404},
		{name: "method-not-allowed", method: "PATCH", url: direct.BaseURL + "/v1/nodes", wantStatus: 405,
			wantHeader: http.Header{"Allow": {"POST"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, tc.url, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-OpenStack-Ironic-API-Version", "1.82")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.url, err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("%s %s status = %d (%s), want %d", tc.method, tc.url, resp.StatusCode, resp.Status, tc.wantStatus)
			}
			if want := fmt.Sprintf("%d %s", tc.wantStatus, http.StatusText(tc.wantStatus)); resp.Status != want {
				t.Errorf("%s %s Status = %q, want %q", tc.method, tc.url, resp.Status, want)
			}
			gotHeader := http.Header{}
			for k := range tc.wantHeader {
				gotHeader[k] = resp.Header.Values(k)
			}
			if diff := cmp.Diff(tc.wantHeader, gotHeader, cmpEmptyHeader); diff != "" {
				t.Errorf("%s %s headers (-want +got):\n%s", tc.method, tc.url, diff)
			}
			raw, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.ContentLength != int64(len(raw)) {
				t.Errorf("%s %s ContentLength = %d, body has %d bytes", tc.method, tc.url, resp.ContentLength, len(raw))
			}
			if tc.wantSeen == nil {
				return
			}
			var got seen
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("%s %s body %q: %v", tc.method, tc.url, raw, err)
			}
			if diff := cmp.Diff(*tc.wantSeen, got); diff != "" {
				t.Errorf("%s %s request seen by the handler (-want +got):\n%s", tc.method, tc.url, diff)
			}
		})
	}
}

var cmpEmptyHeader = cmp.Comparer(func(a, b http.Header) bool {
	return len(a) == 0 && len(b) == 0 || cmp.Equal(map[string][]string(a), map[string][]string(b))
})

func TestResponseLikeAServer(t *testing.T) {
	c := direct.Client(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/sniff":
			io.WriteString(w, "<html><body>hi</body></html>")
		case "/late-header":
			w.Header().Set("X-Before", "1")
			w.WriteHeader(http.StatusAccepted)
			w.Header().Set("X-After", "1") // too late, not sent
		case "/no-body":
			w.WriteHeader(http.StatusNoContent)
			if _, err := w.Write([]byte("x")); !errors.Is(err, http.ErrBodyNotAllowed) {
				t.Errorf("Write after 204 = %v, want ErrBodyNotAllowed", err)
			}
		case "/flush":
			w.(http.Flusher).Flush()
			io.WriteString(w, "after flush")
		default:
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		}
	}))
	tests := []struct {
		method, path string
		wantStatus   int
		wantBody     string
		wantHeader   http.Header
		wantLen      int64
	}{
		{"GET", "/sniff", 200, "<html><body>hi</body></html>", http.Header{"Content-Type": {"text/html; charset=utf-8"}}, 28},
		{"GET", "/late-header", 202, "", http.Header{"X-Before": {"1"}, "X-After": nil}, 0},
		{"GET", "/no-body", 204, "", nil, 0},
		{"GET", "/flush", 200, "after flush", nil, 11},
		{"GET", "/hello", 200, "hello", http.Header{"Content-Length": {"5"}}, 5},
		{"HEAD", "/hello", 200, "", http.Header{"Content-Length": {"5"}}, 5},
	}
	for _, tc := range tests {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, direct.BaseURL+tc.path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			got := struct {
				Status int
				Body   string
				Len    int64
			}{resp.StatusCode, string(body), resp.ContentLength}
			want := struct {
				Status int
				Body   string
				Len    int64
			}{tc.wantStatus, tc.wantBody, tc.wantLen}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s %s (-want +got):\n%s", tc.method, tc.path, diff)
			}
			for k, v := range tc.wantHeader {
				if diff := cmp.Diff(v, resp.Header.Values(k)); diff != "" {
					t.Errorf("%s %s header %s (-want +got):\n%s", tc.method, tc.path, k, diff)
				}
			}
		})
	}
}

func TestConcurrent(t *testing.T) {
	c := direct.Client(http.HandlerFunc(echo))
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			for j := range 20 {
				body := fmt.Sprintf("request %d/%d", i, j)
				resp, err := c.Post(direct.BaseURL+"/v1/nodes/x", "text/plain", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				var got seen
				err = json.NewDecoder(resp.Body).Decode(&got)
				resp.Body.Close()
				if err != nil || got.Body != body {
					t.Errorf("POST %q: handler saw %q (%v)", body, got.Body, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// closeTracker is a request body that records being closed.
type closeTracker struct {
	io.Reader
	closed atomic.Bool
}

func (b *closeTracker) Close() error { b.closed.Store(true); return nil }

func TestRequestBodyClosed(t *testing.T) {
	release := make(chan struct{})
	c := direct.Client(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			<-release
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close() // must not close the client's body before the transport does
	}))
	t.Cleanup(func() { close(release) })

	t.Run("success", func(t *testing.T) {
		body := &closeTracker{Reader: strings.NewReader("payload")}
		req, _ := http.NewRequest("PUT", direct.BaseURL+"/x", body)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if !body.closed.Load() {
			t.Errorf("request body not closed after the round trip")
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		body := &closeTracker{Reader: strings.NewReader("payload")}
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "PUT", direct.BaseURL+"/block", body)
		errc := make(chan error, 1)
		go func() {
			_, err := c.Do(req)
			errc <- err
		}()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Do() with a cancelled context = %v, want context.Canceled", err)
		}
		if !body.closed.Load() {
			t.Errorf("request body not closed after a cancelled round trip")
		}
	})
}

func TestContextCancel(t *testing.T) {
	handlerCtxDone := make(chan struct{})
	started := make(chan struct{})
	c := direct.Client(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		close(handlerCtxDone)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", direct.BaseURL+"/v1/nodes", nil)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Do(req)
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Do() = %v, want context.Canceled", err)
	}
	<-handlerCtxDone // the handler saw the cancellation; the test would hang otherwise
}

func TestHandlerContext(t *testing.T) {
	type key struct{}
	var handlerCtx context.Context
	c := direct.Client(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlerCtx = r.Context()
		if r.Context().Value(key{}) != nil {
			t.Errorf("the handler sees the client's context values")
		}
	}))
	ctx := context.WithValue(context.Background(), key{}, "client")
	req, _ := http.NewRequestWithContext(ctx, "GET", direct.BaseURL+"/", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if handlerCtx.Err() == nil {
		t.Errorf("the handler's context is not cancelled after it returned")
	}
}

func TestPanic(t *testing.T) {
	c := direct.Client(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		panic("boom")
	}))
	_, err := c.Get(direct.BaseURL + "/")
	var pe *direct.PanicError
	if !errors.As(err, &pe) || pe.Value != "boom" || !strings.Contains(string(pe.Stack), "direct_test.TestPanic") {
		t.Errorf("Get() after a handler panic = %v, want a *direct.PanicError with value boom and a stack", err)
	}
	if _, err := c.Get(direct.BaseURL + "/abort"); !errors.Is(err, http.ErrAbortHandler) {
		t.Errorf("Get() after panic(http.ErrAbortHandler) = %v, want it to wrap ErrAbortHandler", err)
	}
}

// TestMiddlewareStack runs requests through the controller's real middleware.
func TestMiddlewareStack(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(file, []byte("admin:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := httpauth.New(httpauth.Config{Mode: httpauth.ModeHTTPBasic, HtpasswdFile: file})
	if err != nil {
		t.Fatal(err)
	}
	m, err := metrics.New(metrics.Config{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/nodes/{id}", echo)
	c := direct.Client(m.Middleware(auth.Middleware(mux)))

	req, _ := http.NewRequest("GET", direct.BaseURL+"/v1/nodes/node-1", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("without credentials: %s, WWW-Authenticate %q; want 401 with a challenge", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}

	req.SetBasicAuth("admin", "pw")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("with credentials: %s, want 200", resp.Status)
	}

	scrape, err := direct.Client(m.Handler()).Get(direct.BaseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(scrape.Body)
	scrape.Body.Close()
	for _, want := range []string{
		`ferrum_api_requests_total{code="401",method="GET",route="unmatched"} 1`,
		`ferrum_api_requests_total{code="200",method="GET",route="GET /v1/nodes/{id}"} 1`,
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("metrics lack %s:\n%s", want, text)
		}
	}
}

func Example() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/nodes/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"uuid": %q}`, r.PathValue("id"))
	})
	c := direct.Client(mux)

	resp, err := c.Get(direct.BaseURL + "/v1/nodes/node-1")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(body))
	// Output: 200 OK {"uuid": "node-1"}
}
