package agentlink_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferrumhq/ferrum/agent/link"
	"github.com/ferrumhq/ferrum/agent/runner"
	"github.com/ferrumhq/ferrum/certs"
	"github.com/ferrumhq/ferrum/controller/agentlink"
	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/shared/mtls"
	"github.com/ferrumhq/ferrum/shared/proto"
)

func run(t *testing.T, e *env, id, name string, args any) (proto.Result, error) {
	t.Helper()
	raw, err := proto.Args(args)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return e.srv.Run(ctx, id, proto.Command{Name: name, Args: raw}, nil)
}

// TestEndToEnd: token → enroll → mTLS tunnel → the controller runs commands → results, and
// the link's boot path is recorded.
func TestEndToEnd(t *testing.T) {
	var e *env
	e = newEnv(t, func(c *agentlink.Config) {
		// As the conductor does: ask the agent for its status; agentlink records the answer.
		c.OnConnect = func(ctx context.Context, id string) json.RawMessage {
			res, err := e.srv.Run(ctx, id, proto.Command{Name: proto.CmdGetStatus}, nil)
			if err != nil || res.Error != nil {
				t.Errorf("get_status on connect: %v %+v", err, res.Error)
				return nil
			}
			return res.Data
		}
	})
	a := e.startAgent(nodeA)
	ack := a.waitUp(t)
	if ack.Node != nodeA || ack.Version != proto.Version {
		t.Errorf("hello ack %+v", ack)
	}
	res, err := run(t, e, nodeA, proto.CmdGetStatus, nil)
	if err != nil || res.Error != nil {
		t.Fatalf("get_status: %v %+v", err, res.Error)
	}
	var st proto.Status
	if err := json.Unmarshal(res.Data, &st); err != nil || st.BootID != a.BootID() || st.AgentVersion != "test" {
		t.Errorf("status %+v, %v", st, err)
	}
	res, err = run(t, e, nodeA, proto.CmdPing, proto.PingArgs{Payload: "hello"})
	var pong proto.Pong
	if err != nil || json.Unmarshal(res.Data, &pong) != nil || pong.Payload != "hello" {
		t.Errorf("ping: %v %s", err, res.Data)
	}
	res, err = run(t, e, nodeA, proto.CmdGetLogs, proto.LogsArgs{MaxBytes: 1024})
	if err != nil || res.Error != nil {
		t.Errorf("get_logs: %v %+v", err, res.Error)
	}
	res, err = run(t, e, nodeA, "no_such_command", nil)
	if err != nil || res.Error == nil || res.Error.Code != proto.CodeUnknownCommand {
		t.Errorf("unknown command: %v %+v", err, res.Error)
	}
	if _, err := run(t, e, nodeB, proto.CmdPing, nil); proto.CodeOf(err) != proto.CodeNotConnected {
		t.Errorf("Run on a node without agent = %v, want not_connected", err)
	}
	ss := e.srv.Sessions()
	if len(ss) != 1 || ss[0].Node != nodeA || ss[0].ProtocolVersion != proto.Version {
		t.Errorf("Sessions() = %+v", ss)
	}
	waitFor(t, "link records", func() bool {
		l := e.links.get(nodeA)
		return !l.EnrolledAt.IsZero() && (&l).Connected() && !l.LastSeenAt.IsZero() && l.BootID == a.BootID() &&
			l.CertSerial == a.Certificate().SerialNumber.String() && strings.Contains(string(l.Status), a.BootID())
	})
	connectedAt := e.links.get(nodeA).ConnectedAt
	waitFor(t, "a heartbeat", func() bool { return e.links.get(nodeA).LastSeenAt.After(connectedAt) })
	a.stop()
	waitFor(t, "the disconnect record", func() bool { l := e.links.get(nodeA); return !l.Connected() })
}

// TestNegativeMatrix: each case is a connection (or enrollment) the controller or the agent
// must refuse. A case fails if it is accepted.
func TestNegativeMatrix(t *testing.T) {
	e := newEnv(t)
	other, err := certs.Init(t.TempDir()+"/other", certs.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	revoked := agentCert(t, e.pki, nodeA)
	e.tokens.RevokeCertificate(context.Background(), revoked.Leaf.SerialNumber.String(), "test")
	fp := e.pki.Fingerprint()

	tunnelCases := []struct {
		name        string
		cert        *issueFn
		fingerprint string
	}{
		{"no-client-certificate", nil, fp},
		{"certificate-from-another-ca", &issueFn{func() *tlsCert { return agentCert(t, other, nodeA) }}, fp},
		{"expired", &issueFn{func() *tlsCert {
			return issue(t, e.pki, leafOpts{cn: nodeA, uris: []string{mtls.NodeURI(nodeA)},
				nbf: time.Now().Add(-2 * time.Hour), naf: time.Now().Add(-time.Hour)})
		}}, fp},
		{"not-yet-valid", &issueFn{func() *tlsCert {
			return issue(t, e.pki, leafOpts{cn: nodeA, uris: []string{mtls.NodeURI(nodeA)},
				nbf: time.Now().Add(time.Hour), naf: time.Now().Add(2 * time.Hour)})
		}}, fp},
		{"another-nodes-uri", &issueFn{func() *tlsCert {
			return issue(t, e.pki, leafOpts{cn: nodeA, uris: []string{mtls.NodeURI(nodeB)}})
		}}, fp},
		{"node-not-expecting-an-agent", &issueFn{func() *tlsCert { return agentCert(t, e.pki, nodeC) }}, fp},
		{"unknown-node", &issueFn{func() *tlsCert { return agentCert(t, e.pki, "33333333-4444-5555-6666-777777777777") }}, fp},
		{"revoked-serial", &issueFn{func() *tlsCert { return revoked }}, fp},
		{"server-usage-only", &issueFn{func() *tlsCert {
			return issue(t, e.pki, leafOpts{cn: nodeA, uris: []string{mtls.NodeURI(nodeA)}, eku: serverOnly})
		}}, fp},
		{"agent-refuses-controller-with-other-fingerprint", &issueFn{func() *tlsCert { return agentCert(t, e.pki, nodeA) }}, other.Fingerprint()},
	}
	for _, tc := range tunnelCases {
		t.Run("tunnel/"+tc.name, func(t *testing.T) {
			var c *tlsCert
			if tc.cert != nil {
				c = tc.cert.f()
			}
			if err := tryTunnel(e.addr, tc.fingerprint, c); err == nil {
				t.Fatal("connection accepted")
			}
		})
	}
	// The same sessions with a good certificate are accepted (so the cases above fail for
	// their own reason).
	if err := tryTunnel(e.addr, fp, agentCert(t, e.pki, nodeA)); err != nil {
		t.Fatalf("good certificate refused: %v", err)
	}

	used := e.token(nodeA)
	if _, err := link.Enroll(context.Background(), link.EnrollConfig{Controller: e.addr, Fingerprint: fp, Token: used}); err != nil {
		t.Fatalf("first enrollment: %v", err)
	}
	wrongAud := e.pki.Minter(time.Hour)
	wrongAud.Audience = "https://elsewhere/1.0/sign"
	otherAud, err := wrongAud.Mint(nodeA)
	if err != nil {
		t.Fatal(err)
	}
	enrollCases := []struct {
		name        string
		token       string
		fingerprint string
		wantStatus  int // 0: refused before HTTP (TLS)
	}{
		{"replayed-token", used, fp, 401},
		{"token-for-another-audience", otherAud, fp, 401},
		{"token-of-another-ca", mintWith(t, other, nodeA), fp, 401},
		{"token-for-node-not-expecting-an-agent", e.token(nodeC), fp, 403},
		{"agent-refuses-controller-with-other-fingerprint", e.token(nodeA), other.Fingerprint(), 0},
	}
	for _, tc := range enrollCases {
		t.Run("enroll/"+tc.name, func(t *testing.T) {
			c, err := link.Enroll(context.Background(), link.EnrollConfig{Controller: e.addr, Fingerprint: tc.fingerprint, Token: tc.token})
			if err == nil {
				t.Fatalf("enrollment accepted: certificate %s", c.Leaf.SerialNumber)
			}
			var ee *link.EnrollError
			if tc.wantStatus != 0 && (!errors.As(err, &ee) || ee.Status != tc.wantStatus) {
				t.Errorf("refusal %v, want HTTP %d", err, tc.wantStatus)
			}
			if tc.wantStatus == 0 && errors.As(err, &ee) {
				t.Errorf("refusal %v came from the controller, want the agent's TLS check", err)
			}
		})
	}
}

func mintWith(t *testing.T, p *certs.PKI, id string) string {
	m := p.Minter(time.Hour)
	m.Audience = "https://" + certs.DefaultCAHost + "/1.0/sign"
	tok, err := m.Mint(id)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestOneSessionPerNode: a second session of a node replaces the first.
func TestOneSessionPerNode(t *testing.T) {
	e := newEnv(t)
	a1 := e.startAgent(nodeA, func(c *link.Config) { c.MinBackoff, c.MaxBackoff = time.Hour, time.Hour })
	a1.waitUp(t)
	boot1 := a1.BootID()
	a2 := e.startAgent(nodeA, func(c *link.Config) { c.MinBackoff, c.MaxBackoff = time.Hour, time.Hour })
	a2.waitUp(t)
	waitFor(t, "the first session to be replaced", func() bool {
		ss := e.srv.Sessions()
		return len(ss) == 1 && ss[0].BootID == a2.BootID() && !a1.Connected()
	})
	if e.srv.Sessions()[0].BootID == boot1 {
		t.Error("old session kept")
	}
}

// TestSessionClosedAtExpiry: TLS checks expiry only at the handshake; the server closes the
// session when the certificate expires.
func TestSessionClosedAtExpiry(t *testing.T) {
	e := newEnv(t, func(c *agentlink.Config) { c.Renewer = nil }) // renewal refused
	c := issue(t, e.pki, leafOpts{cn: nodeA, uris: []string{mtls.NodeURI(nodeA)}, nbf: time.Now().Add(-time.Minute), naf: time.Now().Add(1500 * time.Millisecond)})
	a := e.startAgent(nodeA, func(cfg *link.Config) {
		cfg.Certificate, cfg.Token = c, ""
		cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour
	})
	a.waitUp(t)
	if !e.srv.Connected(nodeA) {
		t.Fatal("not connected")
	}
	waitFor(t, "the session to close at expiry", func() bool { return !e.srv.Connected(nodeA) })
	if time.Now().Before(c.Leaf.NotAfter) {
		t.Errorf("session closed %v before expiry", time.Until(c.Leaf.NotAfter))
	}
}

// TestRenewal: the agent renews its short-lived certificate over the tunnel and reconnects
// with it before the old one expires.
func TestRenewal(t *testing.T) {
	p, err := certs.Init(t.TempDir()+"/pki", certs.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWithPKI(t, p, 6*time.Second)
	a := e.startAgent(nodeA)
	a.waitUp(t)
	first := a.Certificate()
	// Node B's agent renews at a tenth of its 6s; A at the default 2/3 (after this test).
	a2 := e.startAgent(nodeB, func(c *link.Config) { c.RenewAt = 0.1 })
	a2.waitUp(t)
	orig := a2.Certificate()
	a2.waitUp(t) // reconnected after renewing
	renewed := a2.Certificate()
	if renewed.SerialNumber.Cmp(orig.SerialNumber) == 0 || renewed.NotAfter.Before(orig.NotAfter) {
		t.Errorf("certificate not renewed: %s until %v → %s until %v", orig.SerialNumber, orig.NotAfter, renewed.SerialNumber, renewed.NotAfter)
	}
	if id, _ := mtls.NodeID(renewed); id != nodeB {
		t.Errorf("renewed certificate names %q", id)
	}
	waitFor(t, "a session with the renewed certificate", func() bool {
		for _, s := range e.srv.Sessions() {
			if s.Node == nodeB && s.CertSerial == renewed.SerialNumber.String() {
				return true
			}
		}
		return false
	})
	if a.Certificate().SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Error("agent A renewed too early")
	}
}

// TestSweep: a session whose node leaves the agent states, or whose certificate is revoked,
// is closed.
func TestSweep(t *testing.T) {
	e := newEnv(t, func(c *agentlink.Config) { c.SweepInterval = 50 * time.Millisecond })
	a := e.startAgent(nodeA, func(c *link.Config) { c.MinBackoff, c.MaxBackoff = time.Hour, time.Hour })
	a.waitUp(t)
	b := e.startAgent(nodeB, func(c *link.Config) { c.MinBackoff, c.MaxBackoff = time.Hour, time.Hour })
	b.waitUp(t)
	e.nodes.set(nodeA, node.Active)
	waitFor(t, "node A's session to close", func() bool { return !e.srv.Connected(nodeA) })
	e.tokens.RevokeCertificate(context.Background(), b.Certificate().SerialNumber.String(), "test")
	waitFor(t, "node B's session to close", func() bool { return !e.srv.Connected(nodeB) })
}

// TestBusyAndCancel: one mutating command at a time; cancelling the caller cancels the agent's
// command.
func TestBusyAndCancel(t *testing.T) {
	e := newEnv(t)
	started := make(chan struct{}, 4)
	a := e.startAgent(nodeA)
	a.runner.Register("work", runner.HandlerFunc(func(ctx context.Context, _ json.RawMessage, _ func(float64, string)) (any, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}), true)
	a.waitUp(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := e.srv.Run(ctx, nodeA, proto.Command{ID: "w1", Name: "work"}, nil)
		errc <- err
	}()
	<-started
	res, err := run(t, e, nodeA, "work", nil)
	if err != nil || res.Error == nil || res.Error.Code != proto.CodeBusy || !res.Error.Retryable {
		t.Errorf("second mutating command: %v %+v, want busy", err, res.Error)
	}
	if res, err := run(t, e, nodeA, proto.CmdPing, nil); err != nil || res.Error != nil {
		t.Errorf("ping beside a mutating command: %v %+v", err, res.Error)
	}
	cancel()
	if err := <-errc; proto.CodeOf(err) != proto.CodeCancelled {
		t.Errorf("cancelled Run = %v, want cancelled", err)
	}
	waitFor(t, "the agent to cancel the command", func() bool { return a.runner.Running() == nil })
}

// TestProgress: progress reports of a mutating command reach the caller before the result.
func TestProgress(t *testing.T) {
	e := newEnv(t)
	a := e.startAgent(nodeA)
	a.runner.Register("steps", runner.HandlerFunc(func(ctx context.Context, _ json.RawMessage, progress func(float64, string)) (any, error) {
		for i := 1; i <= 3; i++ {
			progress(float64(i*25), "step")
			time.Sleep(30 * time.Millisecond)
		}
		return map[string]int{"steps": 3}, nil
	}), true)
	a.waitUp(t)
	var seen []float64
	res, err := e.srv.Run(context.Background(), nodeA, proto.Command{Name: "steps"}, func(p proto.Progress) { seen = append(seen, p.Percent) })
	if err != nil || res.Error != nil || string(res.Data) != `{"steps":3}` {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	if len(seen) == 0 || seen[len(seen)-1] != 75 {
		t.Errorf("progress seen %v, want it to end at 75", seen)
	}
}

func TestBootParams(t *testing.T) {
	e := newEnv(t)
	params, err := e.srv.BootParams(context.Background(), nodeA)
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(params)
	if len(fields) != 3 || fields[0] != "ferrum.controller="+e.addr || fields[1] != "ferrum.fingerprint="+e.pki.Fingerprint() ||
		!strings.HasPrefix(fields[2], "ferrum.token=") {
		t.Fatalf("BootParams = %q", params)
	}
	if len(params) > 1024 {
		t.Errorf("%d bytes of kernel parameters", len(params))
	}
	waitFor(t, "token_issued_at", func() bool { return !e.links.get(nodeA).TokenIssuedAt.IsZero() })
	// The token from the parameters enrolls.
	a := e.startAgent(nodeA, func(c *link.Config) { c.Token = strings.TrimPrefix(fields[2], "ferrum.token=") })
	a.waitUp(t)
}

// TestRestartResumesTLS: with a ticket key kept across restarts, agents resume their TLS
// sessions after a controller restart — and the identity checks still run: a certificate
// revoked meanwhile is refused on resumption.
func TestRestartResumesTLS(t *testing.T) {
	var key [32]byte
	copy(key[:], "a ticket key kept across restarts")
	e := newEnv(t, func(c *agentlink.Config) { c.TicketKey = &key })
	a := e.startAgent(nodeA)
	a.waitUp(t)
	if ss := e.srv.Sessions(); len(ss) != 1 || ss[0].Resumed {
		t.Fatalf("first session %+v", ss)
	}
	time.Sleep(100 * time.Millisecond) // the session ticket arrives after the handshake

	e.stopSrv()
	e.start()
	a.waitUp(t)
	if ss := e.srv.Sessions(); len(ss) != 1 || !ss[0].Resumed {
		t.Fatalf("after restart: %+v, want a resumed session", ss)
	}
	if res, err := run(t, e, nodeA, proto.CmdPing, nil); err != nil || res.Error != nil {
		t.Errorf("ping after resumption: %v %+v", err, res.Error)
	}

	time.Sleep(100 * time.Millisecond)
	e.tokens.RevokeCertificate(context.Background(), a.Certificate().SerialNumber.String(), "test")
	e.stopSrv()
	e.start()
	select {
	case <-a.ups:
		t.Fatal("agent with a revoked certificate reconnected (resumed)")
	case <-time.After(time.Second):
	}
	if e.srv.Connected(nodeA) {
		t.Fatal("revoked agent connected")
	}
}
