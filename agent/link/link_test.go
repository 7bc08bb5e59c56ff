package link

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/ferrumhq/ferrum/agent/runner"
	"github.com/ferrumhq/ferrum/shared/mtls"
)

const node = "7d0d3b3e-5a36-4a47-9d7e-3d1a3f5b9c10"

func jwt(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"ES256"}`)) + "." + enc([]byte(payload)) + ".sig"
}

func TestParseToken(t *testing.T) {
	tests := []struct {
		name string
		tok  string
		want string
	}{
		{"ok", jwt(`{"sub":"` + node + `","sans":["urn:node:` + node + `"]}`), node},
		{"not-a-jwt", "abc", ""},
		{"bad-base64", "a.!!!.c", ""},
		{"not-json", jwt(`nope`), ""},
		{"subject-not-a-uuid", jwt(`{"sub":"node-a"}`), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseToken(tc.tok)
			if c.Subject != tc.want || (err == nil) != (tc.want != "") {
				t.Errorf("ParseToken = %+v, %v; want subject %q", c, err, tc.want)
			}
		})
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add(jwt(`{"sub":"` + node + `"}`))
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		if c, err := ParseToken(tok); err == nil && !mtls.IsUUID(c.Subject) {
			t.Fatalf("accepted subject %q", c.Subject)
		}
	})
}

func TestBackoff(t *testing.T) {
	a, err := New(Config{Controller: "127.0.0.1:1", Fingerprint: "x", Token: jwt(`{"sub":"` + node + `"}`),
		Runner: runner.New(runner.Config{}), MinBackoff: time.Second, MaxBackoff: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for attempt, limit := range map[int]time.Duration{0: time.Second, 1: 2 * time.Second, 3: 8 * time.Second, 10: 30 * time.Second, 100: 30 * time.Second} {
		var maxSeen time.Duration
		for range 200 {
			d := a.backoff(attempt)
			if d <= 0 || d > limit+time.Millisecond {
				t.Fatalf("backoff(%d) = %v, want in (0, %v]", attempt, d, limit)
			}
			maxSeen = max(maxSeen, d)
		}
		if maxSeen < limit/2 {
			t.Errorf("backoff(%d) never above %v in 200 draws: no jitter over the whole range", attempt, maxSeen)
		}
	}
}

func TestConfigChecks(t *testing.T) {
	tok := jwt(`{"sub":"` + node + `"}`)
	r := runner.New(runner.Config{})
	for _, c := range []Config{
		{Fingerprint: "x", Token: tok, Runner: r},
		{Controller: "host", Fingerprint: "x", Token: tok, Runner: r},
		{Controller: "h:1", Token: tok, Runner: r},
		{Controller: "h:1", Fingerprint: "x", Runner: r},
		{Controller: "h:1", Fingerprint: "x", Token: tok},
		{Controller: "h:1", Fingerprint: "x", Token: tok, Runner: r, ProtocolVersion: 99},
		{Controller: "h:1", Fingerprint: "x", Token: "junk", Runner: r},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

// TestKeyPair: an issued chain is accepted only for our key and our node.
func TestKeyPair(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, IsCA: true,
		BasicConstraintsValid: true, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTpl, caTpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(id string, pub any) string {
		u, _ := url.Parse(mtls.NodeURI(id))
		tpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: id}, URIs: []*url.URL{u},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tpl, ca, pub, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	key, _, err := newKeyAndCSR(node)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	if c, err := keyPair(key, node, []string{issue(node, key.Public()), caPEM}); err != nil || len(c.Certificate) != 2 {
		t.Errorf("keyPair(good) = %v, %v", c, err)
	}
	if _, err := keyPair(key, node, []string{issue(node, other.Public())}); err == nil {
		t.Error("certificate for another key accepted")
	}
	if _, err := keyPair(key, node, []string{issue("11111111-2222-3333-4444-555555555555", key.Public())}); err == nil {
		t.Error("certificate for another node accepted")
	}
	if _, err := keyPair(key, node, nil); err == nil {
		t.Error("empty chain accepted")
	}
}
