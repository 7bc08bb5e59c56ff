package httpauth

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"
)

func TestIsLoopbackListenAddr(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:6385", true},
		{"127.4.5.6:6385", true},
		{"[::1]:6385", true},
		{"localhost:6385", true},
		{"LocalHost:6385", true},
		{"[::ffff:127.0.0.1]:6385", true},
		{"127.0.0.1", true},
		{"::1", true},
		{"[::1]", true},
		{"localhost", true},
		{":6385", false},
		{"", false},
		{"0.0.0.0:6385", false},
		{"[::]:6385", false},
		{"10.0.0.1:6385", false},
		{"[fe80::1%eth0]:6385", false},
		{"128.0.0.1:6385", false},
		{"ferrum.example.com:6385", false},
		{"localhost.example.com:6385", false},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			if got := isLoopbackListenAddr(tc.addr); got != tc.want {
				t.Errorf("isLoopbackListenAddr(%q) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	good := writeFile(t, "admin:"+hash(t, "secret", bcrypt.MinCost)+"\n")
	empty := writeFile(t, "# nobody yet\n\n")
	md5 := writeFile(t, "admin:$apr1$x4J9vB0E$0PeX4hVvFfIYh9n6I8nSg1\n")
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" for success
	}{
		{"noauth/loopback", Config{Mode: ModeNoAuth, ListenAddr: "127.0.0.1:6385"}, ""},
		{"noauth/localhost", Config{Mode: ModeNoAuth, ListenAddr: "localhost:6385"}, ""},
		{"noauth/all-ipv4-refused", Config{Mode: ModeNoAuth, ListenAddr: "0.0.0.0:6385"}, `set the auth mode to "http_basic"`},
		{"noauth/all-ipv6-refused", Config{Mode: ModeNoAuth, ListenAddr: "[::]:6385"}, `only allowed on a loopback listen address`},
		{"noauth/empty-host-refused", Config{Mode: ModeNoAuth, ListenAddr: ":6385"}, `only allowed on a loopback listen address`},
		{"noauth/lan-refused", Config{Mode: ModeNoAuth, ListenAddr: "192.168.1.10:6385"}, `"192.168.1.10:6385"`},
		{"mode/missing", Config{ListenAddr: "127.0.0.1:6385"}, "auth mode not set"},
		{"mode/unknown", Config{Mode: "keystone"}, `unknown auth mode "keystone"`},
		{"http_basic/ok", Config{Mode: ModeHTTPBasic, HtpasswdFile: good, ListenAddr: "0.0.0.0:6385"}, ""},
		{"http_basic/no-file", Config{Mode: ModeHTTPBasic}, "needs an htpasswd file"},
		{"http_basic/missing-file", Config{Mode: ModeHTTPBasic, HtpasswdFile: good + ".missing"}, "no such file"},
		{"http_basic/directory", Config{Mode: ModeHTTPBasic, HtpasswdFile: t.TempDir()}, "not a regular file"},
		{"http_basic/no-users", Config{Mode: ModeHTTPBasic, HtpasswdFile: empty}, "has no users"},
		{"http_basic/md5", Config{Mode: ModeHTTPBasic, HtpasswdFile: md5}, "line 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Log = zerolog.New(zerolog.NewTestWriter(t))
			_, err := New(tc.cfg)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("New() = %v, want success", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("New() succeeded, want error containing %q", tc.wantErr)
			case err != nil && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("New() = %q, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseHtpasswd(t *testing.T) {
	h1 := hash(t, "pw1", bcrypt.MinCost)
	h2a := strings.Replace(hash(t, "pw2", bcrypt.MinCost), "$2a$", "$2a$", 1) // Go writes $2a$
	h2b := strings.Replace(hash(t, "pw3", bcrypt.MinCost), "$2a$", "$2b$", 1)
	h2y := strings.Replace(hash(t, "pw4", bcrypt.MinCost), "$2a$", "$2y$", 1)
	const (
		md5   = "$apr1$x4J9vB0E$0PeX4hVvFfIYh9n6I8nSg1"
		sha1  = "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="
		crypt = "rqXexS6ZhobKA"
	)
	tests := []struct {
		name    string
		data    string
		want    map[string]string
		wantErr string   // substring; "" for success
		secrets []string // must not appear in the error
	}{
		{
			name: "good/all-prefixes-comments-blank-lines",
			data: "# Ferrum API users\n\nalice:" + h1 + "\n  bob:" + h2a + "  \r\n\n#carol:disabled\ncarol:" + h2b + "\ndave:" + h2y,
			want: map[string]string{"alice": h1, "bob": h2a, "carol": h2b, "dave": h2y},
		},
		{name: "good/empty", data: "", want: map[string]string{}},
		{name: "good/only-comments", data: "# a\n#b\n", want: map[string]string{}},
		{name: "non-bcrypt/md5", data: "alice:" + h1 + "\n\nbob:" + md5 + "\n", wantErr: `line 3 (user "bob"): only bcrypt hashes`, secrets: []string{md5, "x4J9vB0E"}},
		{name: "non-bcrypt/sha1", data: "bob:" + sha1, wantErr: "line 1", secrets: []string{sha1, "W6ph5"}},
		{name: "non-bcrypt/crypt", data: "#\nbob:" + crypt, wantErr: "line 2", secrets: []string{crypt}},
		{name: "non-bcrypt/plaintext", data: "bob:hunter2", wantErr: "line 1", secrets: []string{"hunter2"}},
		{name: "non-bcrypt/2-without-minor", data: "bob:$2$10$" + strings.Repeat("a", 53), wantErr: "only bcrypt hashes", secrets: []string{"aaaa"}},
		{name: "malformed/no-colon", data: "alice:" + h1 + "\nbob\n", wantErr: "line 2: want user:bcrypt-hash"},
		{name: "malformed/empty-user", data: ":" + h1, wantErr: "line 1: want user:bcrypt-hash", secrets: []string{h1}},
		{name: "malformed/short-bcrypt", data: "bob:$2y$05$tooshort", wantErr: `line 1 (user "bob"): malformed bcrypt hash`, secrets: []string{"tooshort"}},
		{name: "malformed/duplicate-user", data: "bob:" + h1 + "\nbob:" + h2b, wantErr: `line 2: user "bob" already defined on line 1`, secrets: []string{h1, h2b}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseHtpasswd("/etc/ferrum/htpasswd", []byte(tc.data))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseHtpasswd() = %v, want error containing %q", err, tc.wantErr)
				}
				for _, s := range tc.secrets {
					if strings.Contains(err.Error(), s) {
						t.Errorf("parseHtpasswd() error %q reveals %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("parseHtpasswd() = %v, want success", err)
			}
			gotS := map[string]string{}
			for u, h := range got {
				gotS[u] = string(h)
			}
			if diff := cmp.Diff(tc.want, gotS); diff != "" {
				t.Errorf("parseHtpasswd() users (-want +got):\n%s", diff)
			}
		})
	}
}

// bodyIncorrect is the exact body of every 401, in Ironic's error format.
const bodyIncorrect = `{"error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Incorrect username or password\", \"debuginfo\": null}"}`

func TestMiddleware(t *testing.T) {
	const password = "correct horse battery staple"
	pwHash := hash(t, password, bcrypt.MinCost)
	file := writeFile(t, "admin:"+pwHash+"\n")
	var logs bytes.Buffer
	a, err := New(Config{Mode: ModeHTTPBasic, HtpasswdFile: file, ListenAddr: ":6385",
		Log: zerolog.New(io.MultiWriter(&logs, zerolog.NewTestWriter(t)))})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Middleware(fakeAPI())

	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	tests := []struct {
		name       string
		method     string
		path       string
		authz      string
		wantStatus int
		wantBody   string
	}{
		{"public/root", "GET", "/", "", 200, "root"},
		{"public/v1", "GET", "/v1", "", 200, "v1"},
		{"public/v1-slash", "GET", "/v1/", "", 200, "v1"},
		{"public/head-root", "HEAD", "/", "", 200, "root"}, // the server drops the body
		{"public/root-with-bad-credentials", "GET", "/", basic("admin", "wrong"), 200, "root"},
		{"protected/post-root", "POST", "/", "", 401, bodyIncorrect},
		{"protected/v1-subpath", "GET", "/v1/nodes", "", 401, bodyIncorrect},
		{"protected/unclean-path", "GET", "/v1/../v1/nodes", "", 401, bodyIncorrect},
		{"protected/existing-node-no-credentials", "GET", "/v1/nodes/node-1", "", 401, bodyIncorrect},
		{"protected/missing-node-no-credentials", "GET", "/v1/nodes/no-such-node", "", 401, bodyIncorrect},
		{"protected/existing-node-wrong-password", "GET", "/v1/nodes/node-1", basic("admin", "wrong"), 401, bodyIncorrect},
		{"protected/missing-node-wrong-password", "GET", "/v1/nodes/no-such-node", basic("admin", "wrong"), 401, bodyIncorrect},
		{"protected/unknown-user", "GET", "/v1/nodes/node-1", basic("mallory", password), 401, bodyIncorrect},
		{"protected/empty-user", "GET", "/v1/nodes/node-1", basic("", password), 401, bodyIncorrect},
		{"protected/bearer", "GET", "/v1/nodes/node-1", "Bearer abc", 401, bodyIncorrect},
		{"protected/bad-base64", "GET", "/v1/nodes/node-1", "Basic !!!", 401, bodyIncorrect},
		{"protected/no-colon", "GET", "/v1/nodes/node-1", "Basic " + base64.StdEncoding.EncodeToString([]byte("admin")), 401, bodyIncorrect},
		{"authorized/existing-node", "GET", "/v1/nodes/node-1", basic("admin", password), 200, "node node-1"},
		{"authorized/missing-node", "GET", "/v1/nodes/no-such-node", basic("admin", password), 404, "no node no-such-node"},
		{"authorized/scheme-case-insensitive", "GET", "/v1/nodes/node-1", "basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+password)), 200, "node node-1"},
		{"authorized/post", "POST", "/v1/nodes", basic("admin", password), 201, "created"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.authz != "" {
				r.Header.Set("Authorization", tc.authz)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.wantStatus {
				t.Errorf("%s %s status = %d, want %d", tc.method, tc.path, w.Code, tc.wantStatus)
			}
			if diff := cmp.Diff(tc.wantBody, w.Body.String()); diff != "" {
				t.Errorf("%s %s body (-want +got):\n%s", tc.method, tc.path, diff)
			}
			if tc.wantStatus != http.StatusUnauthorized {
				return
			}
			want := http.Header{
				"Www-Authenticate": {`Basic realm="Baremetal API"`},
				"Content-Type":     {"application/json"},
			}
			if diff := cmp.Diff(want, w.Header()); diff != "" {
				t.Errorf("%s %s headers (-want +got):\n%s", tc.method, tc.path, diff)
			}
		})
	}

	for _, secret := range []string{password, pwHash, pwHash[7:29] /* salt */} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("logs contain a secret %q:\n%s", secret, logs.String())
		}
	}
	for _, want := range []string{`"user":"admin"`, `"user":"mallory"`, `"remote_addr":"192.0.2.1:1234"`, `"level":"warn"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %s:\n%s", want, logs.String())
		}
	}
}

func TestMiddlewareNoAuth(t *testing.T) {
	a, err := New(Config{Mode: ModeNoAuth, ListenAddr: "[::1]:6385"})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	a.Middleware(fakeAPI()).ServeHTTP(w, httptest.NewRequest("GET", "/v1/nodes/node-1", nil))
	if w.Code != http.StatusOK {
		t.Errorf("noauth GET /v1/nodes/node-1 status = %d, want 200", w.Code)
	}
}

// TestMiddlewareKeepsRequest checks that the inner handler gets the very request the
// middleware got, so an outer middleware can read r.Pattern set by an inner ServeMux.
func TestMiddlewareKeepsRequest(t *testing.T) {
	file := writeFile(t, "admin:"+hash(t, "pw", bcrypt.MinCost)+"\n")
	a, err := New(Config{Mode: ModeHTTPBasic, HtpasswdFile: file})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/nodes/{id}", func(http.ResponseWriter, *http.Request) {})
	r := httptest.NewRequest("GET", "/v1/nodes/abc", nil)
	r.SetBasicAuth("admin", "pw")
	a.Middleware(mux).ServeHTTP(httptest.NewRecorder(), r)
	if r.Pattern != "GET /v1/nodes/{id}" {
		t.Errorf("r.Pattern after Middleware = %q, want %q", r.Pattern, "GET /v1/nodes/{id}")
	}
}

func TestCache(t *testing.T) {
	// Cost 6 makes bcrypt slow enough (milliseconds) to tell from a cache hit and fast enough
	// for the race detector.
	file := writeFile(t, "admin:"+hash(t, "pw", 6)+"\n")
	clock := newFakeClock()
	a, err := New(Config{Mode: ModeHTTPBasic, HtpasswdFile: file, CacheTTL: time.Minute, Now: clock.Now,
		Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Middleware(fakeAPI())
	get := func(pass string) (int, time.Duration) {
		r := httptest.NewRequest("GET", "/v1/nodes/node-1", nil)
		r.SetBasicAuth("admin", pass)
		w := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(w, r)
		return w.Code, time.Since(start)
	}

	if code, _ := get("wrong"); code != 401 {
		t.Fatalf("wrong password: status %d, want 401", code)
	}
	if n := cacheLen(a); n != 0 {
		t.Fatalf("after a failed attempt the cache has %d entries, want 0", n)
	}

	code, first := get("pw")
	if code != 200 {
		t.Fatalf("first request: status %d, want 200", code)
	}
	if n := cacheLen(a); n != 1 {
		t.Fatalf("after a success the cache has %d entries, want 1", n)
	}
	fastest := time.Hour
	for range 5 {
		code, d := get("pw")
		if code != 200 {
			t.Fatalf("cached request: status %d, want 200", code)
		}
		fastest = min(fastest, d)
	}
	t.Logf("bcrypt-checked request %v, fastest cached one %v", first, fastest)
	if fastest*10 > first {
		t.Errorf("cached request took %v, bcrypt-checked one %v: want at least 10x faster", fastest, first)
	}

	// A wrong password for a cached user still fails and does not replace the entry.
	if code, _ := get("wrong"); code != 401 {
		t.Errorf("wrong password for a cached user: status %d, want 401", code)
	}
	set := a.users.Load()
	if !a.cached(set, "admin", a.digest("admin", "pw")) {
		t.Errorf("the verified password left the cache after a failed attempt")
	}

	// Past the TTL the entry no longer counts.
	clock.Advance(time.Minute + time.Second)
	if a.cached(set, "admin", a.digest("admin", "pw")) {
		t.Errorf("cache entry still used after its TTL")
	}
	if code, _ := get("pw"); code != 200 {
		t.Errorf("after the TTL: status %d, want 200", code)
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "htpasswd")
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	write := func(data string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		mtime = mtime.Add(time.Second) // do not depend on the file system's mtime resolution
		if err := os.Chtimes(file, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	write("alice:" + hash(t, "pw-a", bcrypt.MinCost) + "\n")
	clock := newFakeClock()
	a, err := New(Config{Mode: ModeHTTPBasic, HtpasswdFile: file, ReloadInterval: 5 * time.Second, Now: clock.Now,
		Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Middleware(fakeAPI())
	status := func(user, pass string) int {
		r := httptest.NewRequest("GET", "/v1/nodes/node-1", nil)
		r.SetBasicAuth(user, pass)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	type result struct{ Alice, Bob int }
	check := func(step string, want result) {
		t.Helper()
		got := result{status("alice", "pw-a"), status("bob", "pw-b")}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: statuses (-want +got):\n%s", step, diff)
		}
	}

	check("initial", result{200, 401})

	write("bob:" + hash(t, "pw-b", bcrypt.MinCost) + "\n")
	clock.Advance(time.Second)
	check("changed, before the reload interval", result{200, 401})

	clock.Advance(5 * time.Second)
	check("changed, after the reload interval", result{401, 200})

	write("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
	clock.Advance(6 * time.Second)
	check("invalid file keeps the users before", result{401, 200})

	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	clock.Advance(6 * time.Second)
	check("removed file keeps the users before", result{401, 200})

	write("alice:" + hash(t, "pw-a", bcrypt.MinCost) + "\nbob:" + hash(t, "new-pw-b", bcrypt.MinCost) + "\n")
	clock.Advance(6 * time.Second)
	check("file back with a new password for bob", result{200, 401})
	if got := status("bob", "new-pw-b"); got != 200 {
		t.Errorf("bob with the new password: status %d, want 200", got)
	}
}

// TestConcurrent runs authentications and reloads at once; it is meant for -race.
func TestConcurrent(t *testing.T) {
	file := writeFile(t, "admin:"+hash(t, "pw", bcrypt.MinCost)+"\nother:"+hash(t, "pw2", bcrypt.MinCost)+"\n")
	clock := newFakeClock()
	a, err := New(Config{Mode: ModeHTTPBasic, HtpasswdFile: file, ReloadInterval: time.Millisecond, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Middleware(fakeAPI())
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 25 {
				clock.Advance(time.Millisecond)
				if j%5 == 0 {
					mt := time.Now().Add(time.Duration(i*100+j) * time.Second)
					_ = os.Chtimes(file, mt, mt)
				}
				r := httptest.NewRequest("GET", "/v1/nodes/node-1", nil)
				r.SetBasicAuth("admin", "pw")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					t.Errorf("status %d, want 200", w.Code)
					return
				}
			}
		})
	}
	wg.Wait()
}

// fakeAPI stands in for the API: node-1 exists, everything else is not found.
func fakeAPI() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "root") })
	mux.HandleFunc("GET /v1", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "v1") })
	mux.HandleFunc("GET /v1/{$}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "v1") })
	mux.HandleFunc("POST /v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, "created")
	})
	mux.HandleFunc("GET /v1/nodes/{id}", func(w http.ResponseWriter, r *http.Request) {
		if id := r.PathValue("id"); id != "node-1" {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, "no node "+id)
			return
		}
		fmt.Fprint(w, "node node-1")
	})
	return mux
}

func hash(t *testing.T, password string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func writeFile(t *testing.T, data string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func cacheLen(a *Authenticator) int {
	a.cacheMu.Lock()
	defer a.cacheMu.Unlock()
	return len(a.cache)
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
