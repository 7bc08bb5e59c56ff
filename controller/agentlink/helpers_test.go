package agentlink_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.step.sm/crypto/keyutil"

	"github.com/ferrumhq/ferrum/agent/diag"
	"github.com/ferrumhq/ferrum/agent/link"
	"github.com/ferrumhq/ferrum/agent/runner"
	"github.com/ferrumhq/ferrum/certs"
	"github.com/ferrumhq/ferrum/certs/certstest"
	"github.com/ferrumhq/ferrum/controller/agentlink"
	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/shared/mtls"
	"github.com/ferrumhq/ferrum/shared/proto"
	"github.com/ferrumhq/ferrum/shared/tunnel"
)

// These tests run the real pieces in one process: the certs authority, an agentlink.Server,
// and agents made of agent/link and agent/runner (test imports; the binaries never import
// each other's side).

const (
	nodeA = "7d0d3b3e-5a36-4a47-9d7e-3d1a3f5b9c10"
	nodeB = "11111111-2222-3333-4444-555555555555"
	nodeC = "22222222-3333-4444-5555-666666666666" // active: expects no agent
)

// nodes is an in-memory agentlink.Nodes.
type nodes struct {
	mu     sync.Mutex
	states map[string]node.State
}

func (n *nodes) GetNode(_ context.Context, ident string) (*node.Node, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	st, ok := n.states[ident]
	if !ok {
		return nil, node.NotFound("Node", ident)
	}
	return &node.Node{UUID: ident, ProvisionState: st}, nil
}

func (n *nodes) set(id string, s node.State) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.states[id] = s
}

// links is an in-memory agentlink.Recorder.
type links struct {
	mu sync.Mutex
	m  map[string]node.AgentLink
}

func (l *links) UpdateAgentLinks(_ context.Context, us []node.AgentLink) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, u := range us {
		a := l.m[u.NodeUUID]
		a.NodeUUID = u.NodeUUID
		a.Merge(u)
		l.m[u.NodeUUID] = a
	}
	return nil
}

func (l *links) CloseAgentLinks(_ context.Context, at time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, a := range l.m {
		if (&a).Connected() {
			a.DisconnectedAt = at
			l.m[k] = a
		}
	}
	return nil
}

func (l *links) get(id string) node.AgentLink {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[id]
}

// env is a controller side: PKI, authority, server.
type env struct {
	t       *testing.T
	pki     *certs.PKI
	auth    *certs.Authority
	tokens  *certstest.Store
	nodes   *nodes
	links   *links
	srv     *agentlink.Server
	addr    string
	cfg     agentlink.Config
	stopSrv func()
}

type envOpt func(*agentlink.Config)

func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	p, err := certs.Init(filepath.Join(t.TempDir(), "pki"), certs.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return newEnvWithPKI(t, p, 0, opts...)
}

func testLog(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
}

func newEnvWithPKI(t *testing.T, p *certs.PKI, certTTL time.Duration, opts ...envOpt) *env {
	t.Helper()
	e := &env{t: t, pki: p, tokens: certstest.NewStore(),
		nodes: &nodes{states: map[string]node.State{nodeA: node.DeployWait, nodeB: node.CleanWait, nodeC: node.Active}},
		links: &links{m: map[string]node.AgentLink{}}}
	if certTTL == 0 {
		certTTL = time.Hour
	}
	auth, err := certs.NewAuthority(certs.AuthorityConfig{PKI: p, CertTTL: certTTL, Store: e.tokens, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	e.auth = auth
	ctrl, err := p.IssueController(certs.ControllerOptions{DNSNames: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = agentlink.Config{Addr: "127.0.0.1:0", Certificate: ctrl, ClientCAs: p.ClientCAs(), Fingerprint: p.Fingerprint(),
		Nodes: e.nodes, Revocations: e.tokens, Recorder: e.links,
		Renewer:   &certs.Renewer{Signer: auth, Minter: p.Minter(time.Hour)},
		MintToken: p.Minter(time.Hour).Mint, HeartbeatInterval: 100 * time.Millisecond,
		ResumeTimeout: 5 * time.Second, FlushInterval: 20 * time.Millisecond, Log: testLog(t)}
	for _, o := range opts {
		o(&e.cfg)
	}
	e.start()
	return e
}

// start runs a server with e.cfg (again, after stop: a controller restart on the same port).
func (e *env) start() {
	t := e.t
	t.Helper()
	var srv *agentlink.Server
	enroll, err := certs.EnrollHandler(certs.EnrollConfig{Signer: e.auth, Roots: []*x509.Certificate{e.pki.Root},
		Admit: func(ctx context.Context, id string) error {
			n, err := e.nodes.GetNode(ctx, id)
			if err != nil {
				return err
			}
			if !n.ProvisionState.ExpectsAgent() {
				return errors.New("state does not expect an agent")
			}
			return nil
		},
		Issued:   func(_ context.Context, id string, leaf *x509.Certificate) { srv.RecordEnrolled(id, leaf) },
		TokenKey: e.pki.Provisioner,
		Log:      testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Enroll = enroll
	if e.addr != "" {
		cfg.Addr = e.addr
	}
	srv, err = agentlink.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv, e.addr = srv, srv.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	e.stopSrv = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve = %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("Serve did not return 15s after its context ended")
			}
		})
	}
	t.Cleanup(e.stopSrv)
}

func (e *env) token(id string) string {
	e.t.Helper()
	tok, err := e.pki.Minter(time.Hour).Mint(id)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// agent is a running agent.
type agent struct {
	*link.Agent
	runner *runner.Runner
	stop   func()
	ups    chan proto.HelloAck
}

type agentOpt func(*link.Config)

// startAgent runs an agent that enrolls with a fresh token for id.
func (e *env) startAgent(id string, opts ...agentOpt) *agent {
	t := e.t
	t.Helper()
	r := runner.New(runner.Config{Log: testLog(t)})
	a := &agent{runner: r, ups: make(chan proto.HelloAck, 16)}
	cfg := link.Config{Controller: e.addr, Fingerprint: e.pki.Fingerprint(), Token: e.token(id), Runner: r,
		AgentVersion: "test", MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		DialTimeout: 5 * time.Second, Log: testLog(t).With().Str("side", "agent").Logger(),
		OnConnect: func(ack proto.HelloAck) {
			select {
			case a.ups <- ack:
			default:
			}
		}}
	for _, o := range opts {
		o(&cfg)
	}
	la, err := link.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.Agent = la
	diag.Register(r, diag.Info{AgentVersion: "test", BootID: la.BootID(), Started: time.Now(), Running: r.Running}, diag.NewRing(1<<16))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { la.Run(ctx); close(done) }()
	var once sync.Once
	a.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Error("agent Run did not return 15s after its context ended")
			}
			r.Close()
		})
	}
	t.Cleanup(a.stop)
	return a
}

// waitUp waits for the agent's next hello.
func (a *agent) waitUp(t *testing.T) proto.HelloAck {
	t.Helper()
	select {
	case ack := <-a.ups:
		return ack
	case <-time.After(15 * time.Second):
		t.Fatal("agent did not connect within 15s")
		return proto.HelloAck{}
	}
}

// waitFor polls cond for up to 15s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leafOpts describes a hand-made agent certificate.
type leafOpts struct {
	cn       string
	uris     []string
	eku      []x509.ExtKeyUsage
	nbf, naf time.Time
}

// issue signs a certificate with the PKI's intermediate directly (for the cases the
// authority would never produce).
func issue(t *testing.T, p *certs.PKI, o leafOpts) *tls.Certificate {
	t.Helper()
	key, err := keyutil.GenerateDefaultSigner()
	if err != nil {
		t.Fatal(err)
	}
	var us []*url.URL
	for _, s := range o.uris {
		u, _ := url.Parse(s)
		us = append(us, u)
	}
	if o.nbf.IsZero() {
		o.nbf, o.naf = time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	}
	if o.eku == nil {
		o.eku = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	sn, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tpl := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: o.cn}, URIs: us,
		NotBefore: o.nbf, NotAfter: o.naf, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: o.eku}
	der, err := x509.CreateCertificate(rand.Reader, tpl, p.Intermediate, key.Public(), p.IntermediateKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der, p.Intermediate.Raw}, PrivateKey: key, Leaf: leaf}
}

func agentCert(t *testing.T, p *certs.PKI, id string) *tls.Certificate {
	return issue(t, p, leafOpts{cn: id, uris: []string{mtls.NodeURI(id)}})
}

// tryTunnel opens a tunnel the way an agent does (TLS with ALPN, yamux, hello) and returns nil
// only if the controller accepted it.
func tryTunnel(addr, fingerprint string, cert *tls.Certificate) error {
	cfg := mtls.NewAgentTLS(mtls.AgentConfig{Fingerprint: fingerprint, GetCertificate: func() (*tls.Certificate, error) {
		if cert == nil {
			return &tls.Certificate{}, nil
		}
		return cert, nil
	}})
	d := tls.Dialer{Config: cfg, NetDialer: &net.Dialer{Timeout: 5 * time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	ys, err := tunnel.Client(conn, tunnel.Config{Log: io.Discard})
	if err != nil {
		return err
	}
	defer ys.Close()
	_, err = tunnel.Hello(ctx, ys, proto.Hello{Version: proto.Version, MinVersion: proto.MinVersion, Features: proto.Features(proto.Version)})
	return err
}

// proxy forwards TCP to target and can sever every connection it carries.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); io.Copy(u, c); u.Close() }()
			go func() { defer p.wg.Done(); io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.sever(); p.wg.Wait() })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// sever cuts every connection (both ways), like a pulled cable the peers notice.
func (p *proxy) sever() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

type tlsCert = tls.Certificate

type issueFn struct{ f func() *tlsCert }

var serverOnly = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}

var _ conductor.Agents = (*agentlink.Server)(nil)
