package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Remote is an external step-ca: Sign posts to its /1.0/sign. Its agent provisioner must use
// AgentTemplate; the controller holds that provisioner's private key to mint tokens.
type Remote struct {
	url    string
	client *http.Client
}

var _ Signer = (*Remote)(nil)

// RemoteConfig configures Remote.
type RemoteConfig struct {
	// URL is the CA's base URL, https://host:port.
	URL string
	// Roots verifies the CA's server certificate (its root).
	Roots   *x509.CertPool
	Timeout time.Duration // [15s]
}

// NewRemote returns a client of an external step-ca.
func NewRemote(cfg RemoteConfig) (*Remote, error) {
	if !strings.HasPrefix(cfg.URL, "https://") {
		return nil, fmt.Errorf("certs: CA URL %q must be https", cfg.URL)
	}
	if cfg.Roots == nil {
		return nil, errors.New("certs: the external CA's root is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cfg.Roots, MinVersion: tls.VersionTLS12}}
	return &Remote{url: strings.TrimSuffix(cfg.URL, "/"), client: &http.Client{Transport: tr, Timeout: cfg.Timeout}}, nil
}

// SignRequest is step-ca's POST /1.0/sign body (the fields Ferrum uses).
type SignRequest struct {
	CSR string `json:"csr"` // PEM
	OTT string `json:"ott"`
}

// SignResponse is step-ca's answer to /1.0/sign.
type SignResponse struct {
	Certificate string   `json:"crt"`       // leaf, PEM
	CA          string   `json:"ca"`        // issuer, PEM
	CertChain   []string `json:"certChain"` // leaf first, PEM
}

// ErrorResponse is step-ca's error body.
type ErrorResponse struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

// Sign implements Signer.
func (r *Remote) Sign(ctx context.Context, csr *x509.CertificateRequest, ott string) ([]*x509.Certificate, error) {
	body, err := json.Marshal(SignRequest{CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw})), OTT: ott})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url+"/1.0/sign", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("certs: sign: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("certs: sign: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("certs: sign: %w", err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		var e ErrorResponse
		_ = json.Unmarshal(b, &e)
		err := fmt.Errorf("external CA answered %d: %s", resp.StatusCode, e.Message)
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			return nil, fmt.Errorf("%w: %v", ErrTokenRefused, err)
		case http.StatusForbidden, http.StatusBadRequest:
			return nil, fmt.Errorf("%w: %v", ErrRequestRefused, err)
		}
		return nil, fmt.Errorf("certs: sign: %w", err)
	}
	var sr SignResponse
	if err := json.Unmarshal(b, &sr); err != nil {
		return nil, fmt.Errorf("certs: sign: decode answer: %w", err)
	}
	return sr.Chain()
}

// Chain parses the response's chain (certChain, or crt and ca).
func (sr SignResponse) Chain() ([]*x509.Certificate, error) {
	pems := sr.CertChain
	if len(pems) == 0 {
		pems = []string{sr.Certificate, sr.CA}
	}
	var chain []*x509.Certificate
	for _, p := range pems {
		cs, err := ParsePEMCertificates([]byte(p))
		if err != nil {
			return nil, err
		}
		chain = append(chain, cs...)
	}
	if len(chain) == 0 {
		return nil, errors.New("certs: sign answer has no certificate")
	}
	return chain, nil
}

// ParsePEMCertificates parses every CERTIFICATE block of b.
func ParsePEMCertificates(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out, nil
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certs: parse certificate: %w", err)
		}
		out = append(out, c)
	}
}
