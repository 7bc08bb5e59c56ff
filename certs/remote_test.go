package certs_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/ca"

	"github.com/ferrumhq/ferrum/certs"
	"github.com/ferrumhq/ferrum/certs/certstest"
	"github.com/ferrumhq/ferrum/shared/mtls"
)

// TestRemoteStepCA runs a real step-ca (smallstep's ca package, its HTTP API on loopback) with
// Ferrum's agent provisioner and template, and signs through Remote as the controller does
// when configured with an external CA.
func TestRemoteStepCA(t *testing.T) {
	p := newPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	pub := p.Provisioner.Public()
	cfg := &config.Config{
		Root:             []string{filepath.Join(p.Dir, certs.RootCertFile)},
		IntermediateCert: filepath.Join(p.Dir, certs.IntermediateCertFile),
		IntermediateKey:  filepath.Join(p.Dir, certs.IntermediateKeyFile),
		Address:          addr,
		DNSNames:         []string{"127.0.0.1"},
		Logger:           []byte(`{"format":"text"}`),
		AuthorityConfig: &config.AuthConfig{DisableIssuedAtCheck: true, Provisioners: provisioner.List{&provisioner.JWK{
			Type: "JWK", Name: "agents", Key: &pub,
			Options: &provisioner.Options{X509: &provisioner.X509Options{Template: certs.AgentTemplate}},
		}}},
	}
	srv, err := ca.New(cfg, ca.WithQuiet(true))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Run()
	t.Cleanup(func() { srv.Stop() })

	r, err := certs.NewRemote(certs.RemoteConfig{URL: "https://" + addr, Roots: p.RootPool()})
	if err != nil {
		t.Fatal(err)
	}
	m := &certs.Minter{Key: p.Provisioner, Issuer: "agents", Audience: "https://" + addr + "/1.0/sign", RootFingerprint: p.Fingerprint()}
	csr, _ := certstest.CSR(t, nodeA, mtls.NodeURI(nodeA))
	tok, err := m.Mint(nodeA)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr) // wait for the listener
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("step-ca not listening: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	got, err := r.Sign(ctx, csr, tok)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := mtls.NodeID(got[0]); id != nodeA {
		t.Errorf("external CA issued for %q: %v", id, err)
	}
	if _, err := r.Sign(ctx, csr, tok); !errors.Is(err, certs.ErrTokenRefused) {
		t.Errorf("replay at the external CA = %v, want ErrTokenRefused", err)
	}
	other := *m
	other.Audience = "https://elsewhere/1.0/sign"
	tok2, _ := other.Mint(nodeA)
	if _, err := r.Sign(ctx, csr, tok2); !errors.Is(err, certs.ErrTokenRefused) {
		t.Errorf("other audience at the external CA = %v, want ErrTokenRefused", err)
	}
}
