package link

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/ferrumhq/ferrum/shared/mtls"
)

// TokenClaims are the parts of the enrollment token the agent reads. The agent cannot verify
// the token (the controller does); it only learns which node it is and which SANs to request.
type TokenClaims struct {
	Subject string   `json:"sub"`
	SANs    []string `json:"sans"`
	SHA     string   `json:"sha"`
}

// ParseToken reads a token's claims without verifying it.
func ParseToken(tok string) (TokenClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return TokenClaims{}, errors.New("link: token is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return TokenClaims{}, fmt.Errorf("link: token payload: %w", err)
	}
	var c TokenClaims
	if err := json.Unmarshal(b, &c); err != nil {
		return TokenClaims{}, fmt.Errorf("link: token payload: %w", err)
	}
	if !mtls.IsUUID(c.Subject) {
		return TokenClaims{}, fmt.Errorf("link: token subject %q is not a node UUID", c.Subject)
	}
	return c, nil
}

// EnrollError is the controller's refusal of an enrollment, with step-ca's HTTP status.
type EnrollError struct {
	Status  int
	Message string
}

func (e *EnrollError) Error() string {
	return fmt.Sprintf("link: enrollment refused (%d): %s", e.Status, e.Message)
}

// newKeyAndCSR makes a fresh key (kept in memory only) and a CSR for node.
func newKeyAndCSR(node string) (crypto.Signer, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("link: key: %w", err)
	}
	u, err := url.Parse(mtls.NodeURI(node))
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: node}, URIs: []*url.URL{u}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("link: certificate request: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// keyPair checks that chain (PEM blocks, leaf first) is a certificate for key naming node.
func keyPair(key crypto.Signer, node string, pems []string) (*tls.Certificate, error) {
	c := &tls.Certificate{PrivateKey: key}
	for _, p := range pems {
		rest := []byte(p)
		for {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			if blk.Type == "CERTIFICATE" {
				c.Certificate = append(c.Certificate, blk.Bytes)
			}
		}
	}
	if len(c.Certificate) == 0 {
		return nil, errors.New("link: no certificate in the answer")
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("link: certificate: %w", err)
	}
	if !reflect.DeepEqual(leaf.PublicKey, key.Public()) {
		return nil, errors.New("link: issued certificate is not for our key")
	}
	if id, err := mtls.NodeID(leaf); err != nil || id != node {
		return nil, fmt.Errorf("link: issued certificate names %q, not node %s: %v", id, node, err)
	}
	c.Leaf = leaf
	return c, nil
}

// signRequest and signResponse are step-ca's /1.0/sign shapes.
type signRequest struct {
	CSR string `json:"csr"`
	OTT string `json:"ott"`
}

type signResponse struct {
	Certificate string   `json:"crt"`
	CA          string   `json:"ca"`
	CertChain   []string `json:"certChain"`
}

// EnrollConfig configures Enroll.
type EnrollConfig struct {
	Controller  string // HOST:PORT
	Fingerprint string // the pinned root
	Token       string
	Timeout     time.Duration // [15s]
	Now         func() time.Time
}

// Enroll generates a key in memory and sends a CSR for it with the token to the controller's
// /1.0/sign (step-ca's request), verifying the controller by the pinned root fingerprint. It
// returns the client certificate; a refusal is an *EnrollError.
func Enroll(ctx context.Context, c EnrollConfig) (*tls.Certificate, error) {
	claims, err := ParseToken(c.Token)
	if err != nil {
		return nil, err
	}
	if c.Timeout <= 0 {
		c.Timeout = 15 * time.Second
	}
	node := claims.Subject
	key, csr, err := newKeyAndCSR(node)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(signRequest{CSR: string(csr), OTT: c.Token})
	client := &http.Client{Timeout: c.Timeout, Transport: &http.Transport{
		TLSClientConfig: mtls.NewAgentTLS(mtls.AgentConfig{Fingerprint: c.Fingerprint, Now: c.Now}),
		Proxy:           nil,
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+c.Controller+"/1.0/sign", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("link: enroll: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("link: enroll: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("link: enroll: %w", err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(b, &e)
		return nil, &EnrollError{Status: resp.StatusCode, Message: e.Message}
	}
	var sr signResponse
	if err := json.Unmarshal(b, &sr); err != nil {
		return nil, fmt.Errorf("link: enroll: decode answer: %w", err)
	}
	pems := sr.CertChain
	if len(pems) == 0 {
		pems = []string{sr.Certificate, sr.CA}
	}
	return keyPair(key, node, pems)
}
