package certs_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/certs"
	"github.com/ferrumhq/ferrum/certs/certstest"
	"github.com/ferrumhq/ferrum/shared/mtls"
)

const (
	nodeA = "7d0d3b3e-5a36-4a47-9d7e-3d1a3f5b9c10"
	nodeB = "11111111-2222-3333-4444-555555555555"
)

func newPKI(t *testing.T) *certs.PKI {
	t.Helper()
	p, err := certs.Init(filepath.Join(t.TempDir(), "pki"), certs.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newAuthority(t *testing.T, p *certs.PKI, store certs.TokenStore, ttl time.Duration) *certs.Authority {
	t.Helper()
	a, err := certs.NewAuthority(certs.AuthorityConfig{PKI: p, CertTTL: ttl, Store: store, Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestInitLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	p, err := certs.Init(dir, certs.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := certs.Init(dir, certs.InitOptions{}); !errors.Is(err, certs.ErrExists) {
		t.Errorf("Init twice = %v, want ErrExists", err)
	}
	for _, f := range []string{certs.RootKeyFile, certs.IntermediateKeyFile, certs.ProvisionerFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	l, err := certs.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.Fingerprint() != p.Fingerprint() || len(l.Fingerprint()) != 64 {
		t.Errorf("fingerprint after load %q, want %q", l.Fingerprint(), p.Fingerprint())
	}
	if l.Meta != p.Meta || l.Meta.Audience() != "https://ferrum-ca/1.0/sign" {
		t.Errorf("meta %+v, want %+v", l.Meta, p.Meta)
	}
	if !p.Root.IsCA || p.Root.NotAfter.Sub(p.Root.NotBefore) < 9*365*24*time.Hour {
		t.Errorf("root: CA %v, lifetime %v; want a CA for 10 years", p.Root.IsCA, p.Root.NotAfter.Sub(p.Root.NotBefore))
	}
	if err := p.Intermediate.CheckSignatureFrom(p.Root); err != nil {
		t.Errorf("intermediate not signed by root: %v", err)
	}
	_, created, err := certs.Ensure(dir, certs.InitOptions{})
	if err != nil || created {
		t.Errorf("Ensure(existing) = created %v, %v", created, err)
	}
	_, created, err = certs.Ensure(filepath.Join(t.TempDir(), "new"), certs.InitOptions{})
	if err != nil || !created {
		t.Errorf("Ensure(empty) = created %v, %v", created, err)
	}
}

func TestControllerCertificate(t *testing.T) {
	p := newPKI(t)
	c, err := p.IssueController(certs.ControllerOptions{DNSNames: []string{"ctl.example", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if !mtls.IsController(c.Leaf) {
		t.Error("leaf lacks the controller marker")
	}
	if !slices.Equal(c.Leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("EKU %v, want serverAuth only", c.Leaf.ExtKeyUsage)
	}
	if len(c.Certificate) != 3 {
		t.Errorf("chain of %d certificates, want leaf+intermediate+root", len(c.Certificate))
	}
	if !slices.Contains(c.Leaf.DNSNames, "ctl.example") || len(c.Leaf.IPAddresses) != 1 {
		t.Errorf("SANs %v %v", c.Leaf.DNSNames, c.Leaf.IPAddresses)
	}
	if _, err := mtls.NodeID(c.Leaf); err == nil {
		t.Error("controller certificate passes as an agent certificate")
	}
	l, err := p.LoadController()
	if err != nil {
		t.Fatal(err)
	}
	if !l.Leaf.Equal(c.Leaf) {
		t.Error("LoadController returned another certificate")
	}
}

func TestAuthoritySign(t *testing.T) {
	p := newPKI(t)
	store := certstest.NewStore()
	a := newAuthority(t, p, store, 10*time.Minute)
	m := p.Minter(time.Hour)
	ctx := context.Background()

	tok, err := m.Mint(nodeA)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) > 1000 {
		t.Errorf("token of %d bytes: too long for a kernel command line", len(tok))
	}
	csr, _ := certstest.CSR(t, nodeA, mtls.NodeURI(nodeA))
	chain, err := a.Sign(ctx, csr, tok)
	if err != nil {
		t.Fatal(err)
	}
	leaf := chain[0]
	if id, err := mtls.NodeID(leaf); err != nil || id != nodeA {
		t.Errorf("NodeID(issued) = %q, %v", id, err)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("EKU %v, want clientAuth only", leaf.ExtKeyUsage)
	}
	if life := time.Until(leaf.NotAfter); life < 9*time.Minute || life > 11*time.Minute {
		t.Errorf("lifetime %v, want 10m", life)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.RootPool(), Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("issued certificate does not verify: %v", err)
	}

	// A token works once, also after the authority restarts on the same store.
	if _, err := a.Sign(ctx, csr, tok); !errors.Is(err, certs.ErrTokenRefused) {
		t.Errorf("replay = %v, want ErrTokenRefused", err)
	}
	outstanding, err := m.Mint(nodeA)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	time.Sleep(1100 * time.Millisecond) // the restarted authority starts after the token's iat
	a2 := newAuthority(t, p, store, 10*time.Minute)
	if _, err := a2.Sign(ctx, csr, tok); !errors.Is(err, certs.ErrTokenRefused) {
		t.Errorf("replay after restart = %v, want ErrTokenRefused", err)
	}
	if _, err := a2.Sign(ctx, csr, outstanding); err != nil {
		t.Errorf("token minted before the restart = %v, want it accepted", err)
	}
}

func TestAuthorityRefuses(t *testing.T) {
	p := newPKI(t)
	a := newAuthority(t, p, certstest.NewStore(), time.Hour)
	other := newPKI(t)
	ctx := context.Background()
	mint := func(m *certs.Minter, node string) string {
		tok, err := m.Mint(node)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	wrongAud := p.Minter(time.Hour)
	wrongAud.Audience = "https://elsewhere/1.0/sign"
	expired := p.Minter(time.Minute)
	expired.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	csrA, _ := certstest.CSR(t, nodeA, mtls.NodeURI(nodeA))
	csrB, _ := certstest.CSR(t, nodeA, mtls.NodeURI(nodeB))
	csrNone, _ := certstest.CSR(t, nodeA)
	tests := []struct {
		name string
		csr  *x509.CertificateRequest
		tok  string
		want error
	}{
		{"audience/other", csrA, mint(wrongAud, nodeA), certs.ErrTokenRefused},
		{"token/expired", csrA, mint(expired, nodeA), certs.ErrTokenRefused},
		{"token/other-provisioner-key", csrA, mint(other.Minter(time.Hour), nodeA), certs.ErrTokenRefused},
		{"token/garbage", csrA, "not.a.token", certs.ErrTokenRefused},
		{"csr/other-node-uri", csrB, mint(p.Minter(time.Hour), nodeA), certs.ErrRequestRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := a.Sign(ctx, tc.csr, tc.tok); !errors.Is(err, tc.want) {
				t.Errorf("Sign = %v, want %v", err, tc.want)
			}
		})
	}
	// A CSR without SANs still gets the node's URI: the template forces it.
	chain, err := a.Sign(ctx, csrNone, mint(p.Minter(time.Hour), nodeA))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := mtls.NodeID(chain[0]); id != nodeA {
		t.Errorf("CSR without SANs: NodeID = %q, %v", id, err)
	}
	if _, err := p.Minter(time.Hour).Mint("node-a"); err == nil {
		t.Error("Mint(not a UUID) succeeded")
	}
}

func TestRenewer(t *testing.T) {
	p := newPKI(t)
	a := newAuthority(t, p, certstest.NewStore(), time.Hour)
	r := &certs.Renewer{Signer: a, Minter: p.Minter(time.Hour)}
	good, _ := certstest.CSR(t, nodeA, mtls.NodeURI(nodeA))
	chain, err := r.Renew(context.Background(), nodeA, good)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := mtls.NodeID(chain[0]); id != nodeA {
		t.Errorf("renewed for %q", id)
	}
	if _, err := r.Renew(context.Background(), nodeB, good); !errors.Is(err, certs.ErrRequestRefused) {
		t.Errorf("Renew(CSR of another node) = %v, want ErrRequestRefused", err)
	}
}

func TestEnrollHandler(t *testing.T) {
	p := newPKI(t)
	a := newAuthority(t, p, certstest.NewStore(), time.Hour)
	var issued []string
	h, err := certs.EnrollHandler(certs.EnrollConfig{Signer: a, Roots: []*x509.Certificate{p.Root},
		Admit: func(_ context.Context, node string) error {
			if node != nodeA {
				return errors.New("no such node")
			}
			return nil
		},
		Issued:   func(_ context.Context, node string, _ *x509.Certificate) { issued = append(issued, node) },
		TokenKey: p.Provisioner,
		Log:      zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(csr *x509.CertificateRequest, tok string) (int, []byte) {
		body, _ := json.Marshal(certs.SignRequest{CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw})), OTT: tok})
		resp, err := http.Post(srv.URL+"/1.0/sign", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.Bytes()
	}
	m := p.Minter(time.Hour)
	tok, _ := m.Mint(nodeA)
	csr, _ := certstest.CSR(t, nodeA, mtls.NodeURI(nodeA))
	code, body := post(csr, tok)
	if code != http.StatusCreated {
		t.Fatalf("sign = %d %s", code, body)
	}
	var sr certs.SignResponse
	if err := json.Unmarshal(body, &sr); err != nil {
		t.Fatal(err)
	}
	chain, err := sr.Chain()
	if err != nil || len(chain) < 2 {
		t.Fatalf("chain: %v (%d)", err, len(chain))
	}
	if strings.Contains(string(body), tok) {
		t.Error("answer echoes the token")
	}
	if code, _ := post(csr, tok); code != http.StatusUnauthorized {
		t.Errorf("replayed token = %d, want 401", code)
	}
	tokB, _ := m.Mint(nodeB)
	csrB, _ := certstest.CSR(t, nodeB, mtls.NodeURI(nodeB))
	if code, _ := post(csrB, tokB); code != http.StatusForbidden {
		t.Errorf("node not admitted = %d, want 403", code)
	}
	// A token signed by another key is refused before anything is looked up.
	forged, _ := newPKI(t).Minter(time.Hour).Mint(nodeB)
	if code, _ := post(csrB, forged); code != http.StatusUnauthorized {
		t.Errorf("forged token = %d, want 401 (not 403: no probing of nodes)", code)
	}
	if !slices.Equal(issued, []string{nodeA}) {
		t.Errorf("Issued calls %v", issued)
	}
	resp, err := http.Get(srv.URL + "/root/" + p.Fingerprint())
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("GET /root/{sha} = %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
}
