package nova_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/controller/nova"
	"github.com/ferrumhq/ferrum/controller/nova/novatest"
	"github.com/ferrumhq/ferrum/controller/store/sqlite"
)

var (
	user = novatest.User{Name: "ironic", Password: "s3cret-pw", Domain: "Default", Project: "service", Roles: []string{"service"}}
	cred = novatest.AppCred{ID: "4f1c0e55c1d84a4e9d3c2e3f1a2b3c4d", Secret: "app-secret", Roles: []string{"admin"}}
)

type env struct {
	t     *testing.T
	store *sqlite.Store
	nova  *novatest.Server
	yaml  string
	reg   *prometheus.Registry
}

func newEnv(t *testing.T, instances ...novatest.Instance) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "ferrum.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := novatest.Start(novatest.Config{Users: []novatest.User{user}, AppCreds: []novatest.AppCred{cred}, Instances: instances})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	yaml := filepath.Join(t.TempDir(), "clouds.yaml")
	if err := os.WriteFile(yaml, []byte(srv.CloudsYAML(user, cred)), 0o600); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, store: st, nova: srv, yaml: yaml, reg: prometheus.NewRegistry()}
}

// sender starts a Sender for cloud with fast retries.
func (e *env) sender(cloud string, mod func(*nova.Config)) *nova.Sender {
	e.t.Helper()
	cfg := nova.Config{
		Outbox: e.store, Log: zerolog.New(zerolog.NewTestWriter(e.t)),
		Cloud:      nova.ClientConfig{Cloud: cloud, CloudsFile: e.yaml, RenewBefore: 100 * time.Millisecond},
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, PollInterval: 50 * time.Millisecond,
		Registerer: e.reg,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := nova.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { s.Close() })
	return s
}

// node creates a reserved node.
func (e *env) node(name string) *node.Node {
	e.t.Helper()
	ctx := context.Background()
	n := &node.Node{UUID: uuid.NewString(), Name: name, Driver: "fake-hardware"}
	n.Normalize()
	if err := e.store.CreateNode(ctx, n); err != nil {
		e.t.Fatal(err)
	}
	got, err := e.store.ReserveNode(ctx, n.UUID, "c1", time.Now().Add(time.Hour))
	if err != nil {
		e.t.Fatal(err)
	}
	got.Normalize()
	return got
}

// change records a power change of n for instance.
func (e *env) change(n *node.Node, instance, state string) {
	e.t.Helper()
	n.PowerState, n.InstanceUUID = state, instance
	if err := e.store.SaveNodeWithEvent(context.Background(), n, "c1", &node.PowerEvent{NodeUUID: n.UUID, InstanceUUID: instance, PowerState: state}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) waitStats(what string, cond func(node.PowerEventStats) bool) node.PowerEventStats {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var st node.PowerEventStats
	err := novatest.WaitFor(ctx, func() bool {
		var err error
		st, err = e.store.PowerEventStats(context.Background())
		return err == nil && cond(st)
	})
	if err != nil {
		e.t.Fatalf("waiting for %s: stats %+v", what, st)
	}
	return st
}

func received(s *novatest.Server) []string {
	var out []string
	for _, r := range s.Received() {
		out = append(out, r.ServerUUID[:8]+" "+r.Tag)
	}
	return out
}

func inst(prefix string) string { return prefix + "-1111-4111-8111-111111111111" }

func allDone(st node.PowerEventStats) bool { return st.Pending == 0 }

// TestBatchedInOrder: the events of many nodes go in one request; a node's events for
// different instances arrive in order.
func TestBatchedInOrder(t *testing.T) {
	var instances []novatest.Instance
	for _, p := range []string{"aaaaaaaa", "bbbbbbbb", "cccccccc"} {
		instances = append(instances, novatest.Instance{UUID: inst(p), HasHost: true})
	}
	e := newEnv(t, instances...)
	a, b := e.node("a"), e.node("b")
	e.change(a, inst("aaaaaaaa"), node.PowerOff)
	e.change(b, inst("bbbbbbbb"), node.PowerOn)
	e.change(a, inst("cccccccc"), node.PowerOn) // a new instance on node a: after a's first
	e.sender("nova-test", nil)
	st := e.waitStats("delivery", allDone)
	if st.Delivered != 3 || st.Failed != 0 {
		t.Fatalf("stats = %+v, want 3 delivered", st)
	}
	want := []string{"aaaaaaaa POWER_OFF", "bbbbbbbb POWER_ON", "cccccccc POWER_ON"}
	if diff := cmp.Diff(want, received(e.nova)); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
	if reqs, auths, _ := e.nova.Stats(); reqs != 2 || auths != 1 {
		t.Errorf("requests %d, authentications %d; want 2 (a and b batched, then a's second) and 1", reqs, auths)
	}
	if r := e.nova.Refused(); len(r) != 0 {
		t.Errorf("the double refused requests: %v", r)
	}
}

// TestPerEventCodes: 404 and 422 are final and recorded; the rest of the batch is delivered.
func TestPerEventCodes(t *testing.T) {
	e := newEnv(t, novatest.Instance{UUID: inst("aaaaaaaa"), HasHost: true}, novatest.Instance{UUID: inst("bbbbbbbb")})
	ok, hostless, gone := e.node("ok"), e.node("hostless"), e.node("gone")
	e.change(ok, inst("aaaaaaaa"), node.PowerOn)
	e.change(hostless, inst("bbbbbbbb"), node.PowerOff)
	e.change(gone, inst("dddddddd"), node.PowerOff)
	e.sender("nova-test", nil)
	st := e.waitStats("delivery", allDone)
	if st.Delivered != 1 || st.Failed != 2 {
		t.Fatalf("stats = %+v, want 1 delivered, 2 failed", st)
	}
	failed, err := e.store.ListPowerEvents(context.Background(), node.PowerEventQuery{Status: node.EventFailed})
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]int{}
	for _, f := range failed {
		codes[f.NodeUUID] = f.Code
		if f.LastError == "" || f.Attempts != 1 {
			t.Errorf("failed event %+v: want a last_error and 1 attempt", f)
		}
	}
	if codes[hostless.UUID] != 422 || codes[gone.UUID] != 404 {
		t.Errorf("codes = %v; want 422 for hostless, 404 for gone", codes)
	}
	if reqs, _, _ := e.nova.Stats(); reqs != 1 {
		t.Errorf("%d requests, want 1 (never retried)", reqs)
	}
	// Metrics say so too.
	if got := testutil.ToFloat64(collector(t, e.reg, "ferrum_nova_requests_total", "partial")); got != 1 {
		t.Errorf("partial requests = %v, want 1", got)
	}
}

// TestTokensExpireMidTest: tokens live 300 ms and are renewed ahead of expiry; tokens revoked
// behind the client's back get 401 from Nova and are replaced (gophercloud re-authenticates
// and resends). Nothing is lost either way.
func TestTokensExpireMidTest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ttl    time.Duration
		revoke bool
	}{{"expiry", 300 * time.Millisecond, false}, {"revoked-401", time.Hour, true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, novatest.Instance{UUID: inst("aaaaaaaa"), HasHost: true})
			e.nova.SetTokenTTL(tc.ttl)
			n := e.node("n")
			e.sender("nova-test", func(c *nova.Config) { c.Cloud.RenewBefore = 100 * time.Millisecond })
			var want []string
			for i := range 4 {
				state, tag := node.PowerOn, "POWER_ON"
				if i%2 == 1 {
					state, tag = node.PowerOff, "POWER_OFF"
				}
				e.change(n, inst("aaaaaaaa"), state)
				want = append(want, "aaaaaaaa "+tag)
				e.waitStats("delivery", allDone)
				if tc.revoke {
					e.nova.RevokeTokens()
				} else {
					time.Sleep(400 * time.Millisecond) // the token expires
				}
			}
			if diff := cmp.Diff(want, received(e.nova)); diff != "" {
				t.Errorf("received (-want +got):\n%s", diff)
			}
			_, auths, rejected := e.nova.Stats()
			if auths < 4 {
				t.Errorf("%d authentications, want one per expired or revoked token (≥ 4)", auths)
			}
			if tc.revoke && rejected < 3 {
				t.Errorf("%d requests refused with 401; want the revoked tokens refused (≥ 3)", rejected)
			}
			if !tc.revoke && rejected != 0 {
				t.Errorf("%d requests with an expired token; renewal ahead of expiry should avoid them", rejected)
			}
		})
	}
}

// TestNovaDown: connection resets, 503s and a Keystone outage are retried with backoff;
// afterwards every event arrives once, in order per node, and superseded ones are collapsed.
func TestNovaDown(t *testing.T) {
	for _, mode := range []string{novatest.Down503, novatest.DownReset, novatest.DownNoAuth} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, novatest.Instance{UUID: inst("aaaaaaaa"), HasHost: true}, novatest.Instance{UUID: inst("bbbbbbbb"), HasHost: true})
			e.nova.SetDown(mode)
			a, b := e.node("a"), e.node("b")
			e.sender("nova-test", nil)
			e.change(a, inst("aaaaaaaa"), node.PowerOff)
			e.change(b, inst("bbbbbbbb"), node.PowerOff)
			time.Sleep(400 * time.Millisecond)
			e.change(a, inst("aaaaaaaa"), node.PowerOn) // supersedes a's undelivered power off
			time.Sleep(400 * time.Millisecond)
			pending, err := e.store.ListPowerEvents(context.Background(), node.PowerEventQuery{Status: node.EventPending})
			if err != nil {
				t.Fatal(err)
			}
			retried := false
			for _, p := range pending {
				retried = retried || (p.Attempts > 0 && p.LastError != "")
			}
			if len(pending) != 2 || !retried {
				t.Fatalf("while down: pending %+v; want 2 pending, retried with an error recorded", pending)
			}
			if got := received(e.nova); len(got) != 0 {
				t.Fatalf("received while down: %v", got)
			}
			e.nova.SetDown(novatest.Up)
			st := e.waitStats("delivery", allDone)
			if st.Delivered != 2 || st.Superseded != 1 {
				t.Errorf("stats = %+v, want 2 delivered, 1 superseded", st)
			}
			want := []string{"aaaaaaaa POWER_ON", "bbbbbbbb POWER_OFF"}
			got := received(e.nova)
			if diff := cmp.Diff(want, got, cmpSorted); diff != "" {
				t.Errorf("received (-want +got):\n%s", diff)
			}
		})
	}
}

var cmpSorted = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

// TestMalformedEventIsolated: one event Nova's schema refuses (an instance UUID that is not a
// UUID) fails the whole request with 400; the Sender sends the batch one by one, delivers the
// good events and fails only the bad one.
func TestMalformedEventIsolated(t *testing.T) {
	e := newEnv(t, novatest.Instance{UUID: inst("aaaaaaaa"), HasHost: true})
	good, bad := e.node("good"), e.node("bad")
	e.change(good, inst("aaaaaaaa"), node.PowerOn)
	e.change(bad, "not-a-uuid", node.PowerOn)
	e.sender("nova-test", nil)
	st := e.waitStats("delivery", allDone)
	if st.Delivered != 1 || st.Failed != 1 {
		t.Fatalf("stats = %+v, want 1 delivered, 1 failed", st)
	}
	failed, _ := e.store.ListPowerEvents(context.Background(), node.PowerEventQuery{Status: node.EventFailed})
	if len(failed) != 1 || failed[0].NodeUUID != bad.UUID || failed[0].Code != 400 || !strings.Contains(failed[0].LastError, "is not a 'uuid'") {
		t.Errorf("failed = %+v; want the bad node's event with 400 and Nova's reason", failed)
	}
}

// TestApplicationCredentialAndEndpoint: the application-credential cloud works, and an
// explicit endpoint replaces the catalog's.
func TestApplicationCredentialAndEndpoint(t *testing.T) {
	e := newEnv(t, novatest.Instance{UUID: inst("aaaaaaaa"), HasHost: true})
	n := e.node("n")
	e.change(n, inst("aaaaaaaa"), node.PowerOff)
	e.sender("nova-appcred", func(c *nova.Config) { c.Cloud.Endpoint = e.nova.URL + "/compute/v2.1" })
	e.waitStats("delivery", func(st node.PowerEventStats) bool { return st.Delivered == 1 })
	if diff := cmp.Diff([]string{"aaaaaaaa POWER_OFF"}, received(e.nova)); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
}

// TestCatalogSelection: the catalog's endpoint is chosen by interface and region.
func TestCatalogSelection(t *testing.T) {
	for _, tc := range []struct {
		name, iface, region, wantPath string
	}{
		{"cloud's interface (internal)", "", "", "/compute/v2.1/os-server-external-events"},
		{"public", "public", "", "/compute-public/v2.1/os-server-external-events"},
		{"unknown region", "", "RegionTwo", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, novatest.Instance{UUID: inst("aaaaaaaa"), HasHost: true})
			n := e.node("n")
			e.change(n, inst("aaaaaaaa"), node.PowerOff)
			e.sender("nova-test", func(c *nova.Config) { c.Cloud.Interface, c.Cloud.Region = tc.iface, tc.region })
			if tc.wantPath == "" {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				var evs []*node.PowerEvent
				novatest.WaitFor(ctx, func() bool {
					evs, _ = e.store.ListPowerEvents(context.Background(), node.PowerEventQuery{})
					return len(evs) == 1 && evs[0].Attempts >= 1
				})
				if len(evs) != 1 || evs[0].Status != node.EventPending || !strings.Contains(evs[0].LastError, "compute endpoint") {
					t.Fatalf("event = %+v; want pending with an endpoint error", evs)
				}
				return
			}
			e.waitStats("delivery", func(st node.PowerEventStats) bool { return st.Delivered == 1 })
			if diff := cmp.Diff([]string{tc.wantPath}, e.nova.Paths()); diff != "" {
				t.Errorf("paths (-want +got):\n%s", diff)
			}
		})
	}
}

// TestForbidden: a user without the service or admin role gets 403, retried (an operator
// can fix the role) and recorded.
func TestForbidden(t *testing.T) {
	e := newEnv(t, novatest.Instance{UUID: inst("aaaaaaaa"), HasHost: true})
	weak := novatest.User{Name: "ironic", Password: "s3cret-pw", Domain: "Default", Project: "service", Roles: []string{"member"}}
	srv, err := novatest.Start(novatest.Config{Users: []novatest.User{weak}, Instances: []novatest.Instance{{UUID: inst("aaaaaaaa"), HasHost: true}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := os.WriteFile(e.yaml, []byte(srv.CloudsYAML(weak, cred)), 0o600); err != nil {
		t.Fatal(err)
	}
	n := e.node("n")
	e.change(n, inst("aaaaaaaa"), node.PowerOff)
	e.sender("nova-test", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var evs []*node.PowerEvent
	novatest.WaitFor(ctx, func() bool {
		evs, _ = e.store.ListPowerEvents(context.Background(), node.PowerEventQuery{})
		return len(evs) == 1 && evs[0].Attempts >= 2
	})
	if len(evs) != 1 || evs[0].Status != node.EventPending || evs[0].Code != 403 || !strings.Contains(evs[0].LastError, "Policy") {
		t.Fatalf("event = %+v; want pending, retried, code 403", evs)
	}
}

// TestSecretsNotLogged: neither the password nor the token shows in the logs.
func TestSecretsNotLogged(t *testing.T) {
	e := newEnv(t, novatest.Instance{UUID: inst("aaaaaaaa"), HasHost: true})
	logs := &syncWriter{b: &strings.Builder{}}
	n := e.node("n")
	e.change(n, inst("aaaaaaaa"), node.PowerOff)
	e.nova.SetDown(novatest.DownNoAuth)
	e.sender("nova-test", func(c *nova.Config) { c.Log = zerolog.New(logs).Level(zerolog.DebugLevel) })
	time.Sleep(300 * time.Millisecond)
	e.nova.SetDown(novatest.Up)
	e.waitStats("delivery", allDone)
	if strings.Contains(logs.String(), user.Password) || strings.Contains(logs.String(), "gAAAA") {
		t.Errorf("a secret was logged:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "will retry") {
		t.Errorf("the outage was not logged:\n%s", logs.String())
	}
}

func TestConfigErrors(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		cfg  nova.Config
		want string
	}{
		{"no outbox", nova.Config{}, "Outbox is required"},
		{"no cloud", nova.Config{Outbox: e.store}, "cloud name is required"},
		{"unknown cloud", nova.Config{Outbox: e.store, Cloud: nova.ClientConfig{Cloud: "nope", CloudsFile: e.yaml}}, `cloud "nope" not found`},
		{"bad interface", nova.Config{Outbox: e.store, Cloud: nova.ClientConfig{Cloud: "nova-test", CloudsFile: e.yaml, Interface: "private"}}, "interface must be"},
		{"negative backoff", nova.Config{Outbox: e.store, MinBackoff: -1}, "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := nova.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func collector(t *testing.T, reg *prometheus.Registry, name, label string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return m.GetCounter().GetValue() })
				}
			}
		}
	}
	t.Fatalf("metric %s{%s} not found", name, label)
	return nil
}
