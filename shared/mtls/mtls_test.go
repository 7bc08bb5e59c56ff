package mtls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	nodeA = "7d0d3b3e-5a36-4a47-9d7e-3d1a3f5b9c10"
	nodeB = "11111111-2222-3333-4444-555555555555"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial int64 = 10

func newCA(t *testing.T) *testCA {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{c, k}
}

type leaf struct {
	cn       string
	uris     []string
	dns      []string
	eku      []x509.ExtKeyUsage
	nbf, naf time.Time
}

func (ca *testCA) issue(t *testing.T, l leaf) tls.Certificate {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var us []*url.URL
	for _, s := range l.uris {
		u, _ := url.Parse(s)
		us = append(us, u)
	}
	if l.nbf.IsZero() {
		l.nbf, l.naf = time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	}
	serial++
	tpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: l.cn}, URIs: us,
		DNSNames: l.dns, NotBefore: l.nbf, NotAfter: l.naf, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: l.eku}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.cert, k.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: k, Leaf: c}
}

var (
	client = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	server = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
)

func TestNodeID(t *testing.T) {
	ca := newCA(t)
	tests := []struct {
		name string
		l    leaf
		want string
	}{
		{"agent/ok", leaf{cn: nodeA, uris: []string{NodeURI(nodeA)}, eku: client}, nodeA},
		{"no-uri", leaf{cn: nodeA, eku: client}, ""},
		{"two-node-uris", leaf{cn: nodeA, uris: []string{NodeURI(nodeA), NodeURI(nodeB)}, eku: client}, ""},
		{"extra-uri", leaf{cn: nodeA, uris: []string{NodeURI(nodeA), ControllerURI}, eku: client}, ""},
		{"cn-differs", leaf{cn: nodeB, uris: []string{NodeURI(nodeA)}, eku: client}, ""},
		{"not-a-uuid", leaf{cn: "node-a", uris: []string{NodeURI("node-a")}, eku: client}, ""},
		{"upper-case-uuid", leaf{cn: strings.ToUpper(nodeA), uris: []string{NodeURI(strings.ToUpper(nodeA))}, eku: client}, ""},
		{"dns-san", leaf{cn: nodeA, uris: []string{NodeURI(nodeA)}, dns: []string{"x"}, eku: client}, ""},
		{"server-usage", leaf{cn: nodeA, uris: []string{NodeURI(nodeA)}, eku: append(client, server...)}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NodeID(ca.issue(t, tc.l).Leaf)
			if got != tc.want || (err == nil) != (tc.want != "") {
				t.Errorf("NodeID = %q, %v; want %q", got, err, tc.want)
			}
			if err != nil && !errors.Is(err, ErrIdentity) {
				t.Errorf("error %v does not wrap ErrIdentity", err)
			}
		})
	}
}

// handshake runs one TLS 1.3 handshake over loopback; it returns each side's error, the
// client's including its first read (where TLS 1.3 reports a refused client certificate).
func handshake(t *testing.T, srv, cli *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, srv)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			done <- err
			return
		}
		_, err = tc.Write([]byte("ok"))
		done <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), cli)
	if err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadFull(c, make([]byte, 2))
		c.Close()
	}
	return <-done, err
}

func TestServerAndAgentTLS(t *testing.T) {
	ca, rogue := newCA(t), newCA(t)
	ctrl := ca.issue(t, leaf{cn: "controller", uris: []string{ControllerURI}, eku: server})
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	refused := map[string]bool{}
	srv := NewServerTLS(ServerConfig{Certificate: ctrl, ClientCAs: pool, Verify: func(node string, leaf *x509.Certificate) error {
		if refused[leaf.SerialNumber.String()] {
			return errors.New("revoked")
		}
		if node != nodeA {
			return errors.New("unknown node")
		}
		return nil
	}})
	good := ca.issue(t, leaf{cn: nodeA, uris: []string{NodeURI(nodeA)}, eku: client})
	fp := Fingerprint(ca.cert)
	agent := func(c tls.Certificate, fingerprint string) *tls.Config {
		return NewAgentTLS(AgentConfig{Fingerprint: fingerprint, GetCertificate: func() (*tls.Certificate, error) { return &c, nil }})
	}
	tests := []struct {
		name     string
		srv, cli *tls.Config
		ok       bool
	}{
		{"good", srv, agent(good, fp), true},
		{"pinned-by-pool", srv, NewAgentTLS(AgentConfig{Roots: pool, GetCertificate: func() (*tls.Certificate, error) { return &good, nil }}), true},
		{"no-client-cert", srv, NewAgentTLS(AgentConfig{Fingerprint: fp, GetCertificate: func() (*tls.Certificate, error) { return &tls.Certificate{}, nil }}), false},
		{"rogue-ca", srv, agent(rogue.issue(t, leaf{cn: nodeA, uris: []string{NodeURI(nodeA)}, eku: client}), fp), false},
		{"other-node", srv, agent(ca.issue(t, leaf{cn: nodeB, uris: []string{NodeURI(nodeB)}, eku: client}), fp), false},
		{"server-usage-only", srv, agent(ca.issue(t, leaf{cn: nodeA, uris: []string{NodeURI(nodeA)}, eku: server}), fp), false},
		{"expired", srv, agent(ca.issue(t, leaf{cn: nodeA, uris: []string{NodeURI(nodeA)}, eku: client,
			nbf: time.Now().Add(-2 * time.Hour), naf: time.Now().Add(-time.Hour)}), fp), false},
		{"wrong-fingerprint", srv, agent(good, Fingerprint(rogue.cert)), false},
		{"impostor-controller-without-marker", NewServerTLS(ServerConfig{ClientCAs: pool,
			Certificate: ca.issue(t, leaf{cn: "controller", dns: []string{"controller"}, eku: append(server, client...)})}),
			agent(good, fp), false},
		{"agent-cert-as-server", NewServerTLS(ServerConfig{ClientCAs: pool, Certificate: good}), agent(good, fp), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			serr, cerr := handshake(t, tc.srv, tc.cli)
			if ok := serr == nil && cerr == nil; ok != tc.ok {
				t.Errorf("connection accepted = %v (server: %v, client: %v), want %v", ok, serr, cerr, tc.ok)
			}
		})
	}

	// Revocation is checked in VerifyConnection, so a resumed TLS 1.3 session is refused too.
	cli := agent(good, fp)
	cli.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	if serr, cerr := handshake(t, srv, cli); serr != nil || cerr != nil {
		t.Fatalf("first handshake: %v / %v", serr, cerr)
	}
	refused[good.Leaf.SerialNumber.String()] = true
	if serr, cerr := handshake(t, srv, cli); serr == nil && cerr == nil {
		t.Error("resumed session with a revoked certificate was accepted")
	}
}

func TestIsUUID(t *testing.T) {
	for s, want := range map[string]bool{nodeA: true, "": false, strings.ToUpper(nodeA): false,
		"7d0d3b3e-5a36-4a47-9d7e-3d1a3f5b9c1": false, "7d0d3b3e05a36-4a47-9d7e-3d1a3f5b9c10": false} {
		if got := IsUUID(s); got != want {
			t.Errorf("IsUUID(%q) = %v, want %v", s, got, want)
		}
	}
}
