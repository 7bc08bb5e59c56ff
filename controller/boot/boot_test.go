package boot

import (
	"bytes"
	"context"
	"errors"
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
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/node"
)

const (
	uuidA   = "6f1a2b3c-0000-4000-8000-00000000000a"
	uuidB   = "6f1a2b3c-0000-4000-8000-00000000000b"
	secret  = "eyJhbGciOiJFUzI1NiJ9.SECRET-TOKEN-zz9"
	macA    = "52:54:00:12:34:56"
	macB    = "52:54:00:ab:cd:ef"
	advAddr = "10.0.2.2:8080"
)

// fakeNodes is the conductor's view: ports by MAC and nodes by UUID.
type fakeNodes struct {
	ports map[string]*node.Port
	nodes map[string]*node.Node
	err   error
}

func (f *fakeNodes) ListPorts(_ context.Context, q node.PortQuery) ([]*node.Port, error) {
	if f.err != nil {
		return nil, f.err
	}
	if p, ok := f.ports[q.Address]; ok {
		return []*node.Port{p}, nil
	}
	return nil, nil
}

func (f *fakeNodes) GetNode(_ context.Context, id string) (*node.Node, error) {
	if n, ok := f.nodes[id]; ok {
		return n, nil
	}
	return nil, node.Errorf(node.ErrNotFound, "Node %s could not be found.", id)
}

type fakeLinks struct {
	mu    sync.Mutex
	links []node.AgentLink
}

func (f *fakeLinks) UpdateAgentLinks(_ context.Context, l []node.AgentLink) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links = append(f.links, l...)
	return nil
}

func (f *fakeLinks) all() []node.AgentLink {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]node.AgentLink(nil), f.links...)
}

type fixture struct {
	srv    *Server
	h      http.Handler
	links  *fakeLinks
	logs   *bytes.Buffer
	kernel []byte
	minted int
	now    time.Time
}

func newFixture(t *testing.T, nodes *fakeNodes, paramsErr error) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{links: &fakeLinks{}, logs: &bytes.Buffer{}, kernel: bytes.Repeat([]byte("kernel-bytes-"), 1000),
		now: time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)}
	if err := os.WriteFile(filepath.Join(dir, "vmlinuz"), f.kernel, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "initrd"), []byte("initrd"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	srv, err := New(Config{Nodes: nodes, Links: f.links, AdvertiseAddr: advAddr,
		Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd"), KernelArgs: "console=ttyS0,115200  quiet",
		Params: func(_ context.Context, id string) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			if paramsErr != nil {
				return "", paramsErr
			}
			f.minted++
			return "ferrum.controller=10.0.2.2:6386 ferrum.fingerprint=abcd ferrum.token=" + secret, nil
		},
		Log: zerolog.New(io.MultiWriter(f.logs, zerolog.NewTestWriter(t))),
		Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	f.srv, f.h = srv, srv.Handler()
	return f
}

func (f *fixture) get(t *testing.T, target string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	req.RemoteAddr = "10.0.2.15:1234"
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	return w.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testNodes() *fakeNodes {
	return &fakeNodes{
		ports: map[string]*node.Port{macA: {NodeUUID: uuidA, Address: macA}, macB: {NodeUUID: uuidB, Address: macB}},
		nodes: map[string]*node.Node{uuidA: {UUID: uuidA, ProvisionState: node.InspectWait},
			uuidB: {UUID: uuidB, ProvisionState: node.Active}},
	}
}

func TestScript(t *testing.T) {
	agentScript := "#!ipxe\n" +
		"kernel http://10.0.2.2:8080/boot/nodes/" + uuidA + "/vmlinuz initrd=initramfs.cpio.gz console=ttyS0,115200 quiet " +
		"BOOTIF=01-52-54-00-12-34-56 ferrum.node=" + uuidA + " ferrum.controller=10.0.2.2:6386 ferrum.fingerprint=abcd ferrum.token=" + secret + "\n" +
		"initrd http://10.0.2.2:8080/boot/nodes/" + uuidA + "/initramfs.cpio.gz\n" +
		"boot\n"
	for _, tc := range []struct {
		name      string
		nodes     *fakeNodes
		paramsErr error
		target    string
		code      int
		want      string // the whole body, or for 4xx a part of it
		stats     Stats
		recorded  bool
	}{
		{name: "agent/inspect-wait", target: "/boot/ipxe?mac=" + macA, code: 200, want: agentScript,
			stats: Stats{Agent: 1}, recorded: true},
		{name: "agent/upper-case-dashes", target: "/boot/ipxe?mac=52-54-00-12-34-56", code: 200, want: agentScript,
			stats: Stats{Agent: 1}, recorded: true},
		{name: "agent/escaped-colons", target: "/boot/ipxe?mac=52%3A54%3A00%3A12%3A34%3A56", code: 200, want: agentScript,
			stats: Stats{Agent: 1}, recorded: true},
		{name: "exit/unknown-mac", target: "/boot/ipxe?mac=52:54:00:00:00:01", code: 200, want: exitScript, stats: Stats{UnknownMAC: 1}},
		{name: "exit/active-node", target: "/boot/ipxe?mac=" + macB, code: 200, want: exitScript, stats: Stats{NoAgent: 1}},
		{name: "exit/port-lookup-fails", nodes: &fakeNodes{err: errors.New("db down")}, target: "/boot/ipxe?mac=" + macA,
			code: 200, want: exitScript, stats: Stats{Failed: 1}},
		{name: "exit/node-gone", nodes: &fakeNodes{ports: map[string]*node.Port{macA: {NodeUUID: uuidA}}},
			target: "/boot/ipxe?mac=" + macA, code: 200, want: exitScript, stats: Stats{Failed: 1}},
		{name: "exit/token-fails", paramsErr: errors.New("agent tunnels are not enabled"), target: "/boot/ipxe?mac=" + macA,
			code: 200, want: exitScript, stats: Stats{Failed: 1}},
		{name: "bad/no-mac", target: "/boot/ipxe", code: 400, want: "exactly one mac"},
		{name: "bad/two-macs", target: "/boot/ipxe?mac=" + macA + "&mac=" + macB, code: 400, want: "exactly one mac"},
		{name: "bad/unexpanded-ipxe-setting", target: "/boot/ipxe?mac=${net0/mac}", code: 400, want: "want 6 bytes"},
		{name: "bad/eui64", target: "/boot/ipxe?mac=00:11:22:33:44:55:66:77", code: 400, want: "want 6 bytes"},
		{name: "bad/query-syntax", target: "/boot/ipxe?mac=%zz", code: 400, want: "exactly one mac"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := tc.nodes
			if nodes == nil {
				nodes = testNodes()
			}
			f := newFixture(t, nodes, tc.paramsErr)
			r := f.get(t, tc.target)
			b := body(t, r)
			if r.StatusCode != tc.code {
				t.Fatalf("GET %s = %d %q, want %d", tc.target, r.StatusCode, b, tc.code)
			}
			if tc.code == 200 {
				if diff := cmp.Diff(tc.want, b); diff != "" {
					t.Errorf("GET %s (-want +got):\n%s", tc.target, diff)
				}
			} else if !strings.Contains(b, tc.want) {
				t.Errorf("GET %s = %q, want it to say %q", tc.target, b, tc.want)
			}
			if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			if diff := cmp.Diff(tc.stats, f.srv.Stats()); diff != "" {
				t.Errorf("Stats (-want +got):\n%s", diff)
			}
			var want []node.AgentLink
			if tc.recorded {
				want = []node.AgentLink{{NodeUUID: uuidA, ScriptFetchedAt: f.now, BootClientAddr: "10.0.2.15", BootMAC: macA}}
			}
			if diff := cmp.Diff(want, f.links.all()); diff != "" {
				t.Errorf("recorded (-want +got):\n%s", diff)
			}
			if strings.Contains(f.logs.String(), secret) || strings.Contains(f.logs.String(), "SECRET") {
				t.Errorf("the token reached the logs:\n%s", f.logs)
			}
			if tc.code == 200 && tc.want == exitScript && !strings.Contains(f.logs.String(), "next boot device") {
				t.Errorf("no log line says why the machine was sent on:\n%s", f.logs)
			}
		})
	}
}

// HEAD has no side effects: no token, no record.
func TestScriptHead(t *testing.T) {
	f := newFixture(t, testNodes(), nil)
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, httptest.NewRequest("HEAD", "/boot/ipxe?mac="+macA, nil))
	if w.Code != 200 || f.minted != 0 || len(f.links.all()) != 0 {
		t.Errorf("HEAD: %d, %d tokens minted, %d records; want 200 and none", w.Code, f.minted, len(f.links.all()))
	}
}

// Every fetch mints a new token: the script is never cached or reused.
func TestScriptMintsPerFetch(t *testing.T) {
	f := newFixture(t, testNodes(), nil)
	for range 3 {
		if r := f.get(t, "/boot/ipxe?mac="+macA); r.StatusCode != 200 {
			t.Fatalf("status %d", r.StatusCode)
		}
	}
	if f.minted != 3 {
		t.Errorf("3 fetches minted %d tokens, want 3", f.minted)
	}
}

func TestChainScript(t *testing.T) {
	f := newFixture(t, testNodes(), nil)
	want := "#!ipxe\nchain http://10.0.2.2:8080/boot/ipxe?mac=${netX/mac}\n"
	if got := string(f.srv.ChainScript()); got != want {
		t.Errorf("ChainScript() = %q, want %q", got, want)
	}
	if r := f.get(t, "/boot/boot.ipxe"); r.StatusCode != 200 || body(t, r) != want {
		t.Errorf("GET /boot/boot.ipxe = %d, want 200 and the chain script", r.StatusCode)
	}
}

func TestFiles(t *testing.T) {
	f := newFixture(t, testNodes(), nil)
	for _, tc := range []struct {
		name    string
		target  string
		hdr     []string
		code    int
		body    string
		records []node.AgentLink
	}{
		{name: "kernel/anonymous", target: "/boot/vmlinuz", code: 200, body: string(f.kernel)},
		{name: "kernel/range", target: "/boot/vmlinuz", hdr: []string{"Range", "bytes=13-25"}, code: 206, body: "kernel-bytes-"},
		{name: "kernel/node", target: "/boot/nodes/" + uuidA + "/vmlinuz", code: 200, body: string(f.kernel),
			records: []node.AgentLink{{NodeUUID: uuidA, KernelFetchedAt: f.now, BootClientAddr: "10.0.2.15"}}},
		{name: "kernel/node-range-not-recorded", target: "/boot/nodes/" + uuidA + "/vmlinuz", hdr: []string{"Range", "bytes=0-5"},
			code: 206, body: "kernel"},
		{name: "initrd/node", target: "/boot/nodes/" + uuidA + "/initramfs.cpio.gz", code: 200, body: "initrd",
			records: []node.AgentLink{{NodeUUID: uuidA, InitrdFetchedAt: f.now, BootClientAddr: "10.0.2.15"}}},
		{name: "bad/not-a-uuid", target: "/boot/nodes/..%2f..%2fetc/vmlinuz", code: 404},
		{name: "bad/query", target: "/boot/vmlinuz?x=1", code: 400},
		{name: "bad/other-file", target: "/boot/nodes/" + uuidA + "/passwd", code: 404},
		{name: "bad/traversal-cleaned", target: "/boot/../etc/passwd", code: 307}, // the mux redirects to the clean path…
		{name: "bad/outside", target: "/etc/passwd", code: 404},                   // …which is not served
		{name: "bad/unsatisfiable-range", target: "/boot/vmlinuz", hdr: []string{"Range", "bytes=99999999-"}, code: 416},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.links.all())
			r := f.get(t, tc.target, tc.hdr...)
			b := body(t, r)
			if r.StatusCode != tc.code {
				t.Fatalf("GET %s = %d %q, want %d", tc.target, r.StatusCode, b, tc.code)
			}
			if tc.body != "" && b != tc.body {
				t.Errorf("GET %s: %d bytes, want %d", tc.target, len(b), len(tc.body))
			}
			if diff := cmp.Diff(tc.records, f.links.all()[before:], cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("recorded (-want +got):\n%s", diff)
			}
		})
	}
	if s := f.srv.Stats(); s.Kernels != 5 || s.Initrds != 1 {
		t.Errorf("Stats = %+v, want 5 kernel requests (416 included) and 1 initramfs served", s)
	}
}

func TestMissingFileIs404(t *testing.T) {
	srv, err := New(Config{Nodes: testNodes(), Params: func(context.Context, string) (string, error) { return "", nil },
		AdvertiseAddr: advAddr, Kernel: "/nonexistent/vmlinuz", Initrd: "/nonexistent/initrd"})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/boot/vmlinuz", nil))
	if w.Code != 404 || !strings.Contains(w.Body.String(), "not available") || strings.Contains(w.Body.String(), "nonexistent") {
		t.Errorf("missing kernel: %d %q, want 404 without the path", w.Code, w.Body)
	}
}

func TestNewValidates(t *testing.T) {
	ok := Config{Nodes: testNodes(), Params: func(context.Context, string) (string, error) { return "", nil },
		AdvertiseAddr: advAddr, Kernel: "k", Initrd: "i"}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no-nodes", func(c *Config) { c.Nodes = nil }, "Nodes"},
		{"no-params", func(c *Config) { c.Params = nil }, "Params"},
		{"advertise/no-port", func(c *Config) { c.AdvertiseAddr = "10.0.2.2" }, "AdvertiseAddr"},
		{"advertise/unspecified", func(c *Config) { c.AdvertiseAddr = "0.0.0.0:8080" }, "unspecified"},
		{"no-files", func(c *Config) { c.Kernel = "" }, "Kernel"},
		{"args/newline", func(c *Config) { c.KernelArgs = "console=ttyS0\nshell" }, "not allowed"},
		{"args/ipxe-setting", func(c *Config) { c.KernelArgs = "x=${ip}" }, "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			if _, err := New(c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error about %s", err, tc.want)
			}
		})
	}
	if _, err := New(ok); err != nil {
		t.Errorf("New(valid) = %v", err)
	}
}

func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{macA, "52-54-00-12-34-56", "5254.0012.3456", "", "${net0/mac}", "zz:zz:zz:zz:zz:zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mac, err := ParseMAC(s)
		if err != nil {
			return
		}
		if len(mac) != 17 || strings.ToLower(mac) != mac {
			t.Errorf("ParseMAC(%q) = %q: not canonical", s, mac)
		}
		if again, err := ParseMAC(mac); err != nil || again != mac {
			t.Errorf("ParseMAC(%q) = %q, %v: not idempotent", mac, again, err)
		}
	})
}

// Whatever a client sends, the script handler answers a script or a 4xx, never a 5xx, and
// never a token to a MAC that was not asked for properly.
func FuzzScriptQuery(f *testing.F) {
	for _, s := range []string{"mac=" + macA, "mac=" + macB, "", "mac=%zz", "mac=a&mac=b", "mac=52-54-00-12-34-56&x=1"} {
		f.Add(s)
	}
	nodes := testNodes()
	srv, err := New(Config{Nodes: nodes, AdvertiseAddr: advAddr, Kernel: "k", Initrd: "i",
		Params: func(context.Context, string) (string, error) { return "ferrum.token=" + secret, nil }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, q string) {
		req, err := http.NewRequest("GET", "http://x/boot/ipxe", nil)
		if err != nil {
			t.Skip()
		}
		req.URL.RawQuery = q
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, req)
		switch {
		case w.Code >= 500:
			t.Errorf("query %q: %d", q, w.Code)
		case w.Code == 200 && !strings.HasPrefix(w.Body.String(), "#!ipxe\n"):
			t.Errorf("query %q: 200 without a script: %q", q, w.Body)
		case w.Code == 200 && strings.Contains(w.Body.String(), secret) && !strings.Contains(w.Body.String(), "BOOTIF=01-52-54-00-12-34-56"):
			t.Errorf("query %q: a token for another node", q)
		}
	})
}

// Any path and query on the boot handler: a file, a script or a 4xx (or a redirect to a
// cleaned path), never a 5xx, and a token only in the script of the node asked for.
func FuzzBootPaths(f *testing.F) {
	for _, s := range []string{"/boot/vmlinuz", "/boot/nodes/" + uuidA + "/initramfs.cpio.gz", "/boot/ipxe?mac=" + macA,
		"/boot/nodes/../../etc/passwd", "/boot/nodes/%2e%2e/vmlinuz", "/boot/boot.ipxe?x", "/", "/boot/nodes//vmlinuz"} {
		f.Add(s)
	}
	dir := f.TempDir()
	kernel, initrd := filepath.Join(dir, "k"), filepath.Join(dir, "i")
	os.WriteFile(kernel, []byte("kernel"), 0o600)
	os.WriteFile(initrd, []byte("initrd"), 0o600)
	srv, err := New(Config{Nodes: testNodes(), AdvertiseAddr: advAddr, Kernel: kernel, Initrd: initrd,
		Params: func(context.Context, string) (string, error) { return "ferrum.token=" + secret, nil }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, target string) {
		req, err := http.NewRequest("GET", "http://x"+target, nil)
		if err != nil || !strings.HasPrefix(target, "/") {
			return // not a request a server could receive
		}
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Errorf("GET %q: %d %q", target, w.Code, w.Body)
		}
		if strings.Contains(w.Body.String(), secret) && !strings.Contains(w.Body.String(), "ferrum.node="+uuidA) {
			t.Errorf("GET %q: a token outside node A's script", target)
		}
	})
}
