// Package certstest has what tests around the PKI share: an in-memory TokenStore and helpers
// that build CSRs the way the agent does. Import it from tests only.
package certstest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Store is an in-memory certs.TokenStore.
type Store struct {
	mu      sync.Mutex
	used    map[string]time.Time
	revoked map[string]string
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{used: map[string]time.Time{}, revoked: map[string]string{}}
}

// UseToken implements certs.TokenStore.
func (s *Store) UseToken(_ context.Context, id string, expires time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.used[id]; ok {
		return false, nil
	}
	s.used[id] = expires
	return true, nil
}

// IsRevoked implements certs.TokenStore.
func (s *Store) IsRevoked(_ context.Context, serial string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.revoked[serial]
	return ok, nil
}

// RevokeCertificate implements certs.TokenStore.
func (s *Store) RevokeCertificate(_ context.Context, serial, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[serial] = reason
	return nil
}

// CSR returns a CSR with common name cn and the given URI SANs, and its key.
func CSR(t testing.TB, cn string, uris ...string) (*x509.CertificateRequest, crypto.Signer) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var us []*url.URL
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, URIs: us}, k)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr, k
}
