package certs

import (
	"errors"
	"fmt"
	"time"

	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/randutil"

	"github.com/ferrumhq/ferrum/shared/mtls"
)

// Minter mints one-time enrollment tokens (step-ca JWK provisioner tokens) bound to a node.
type Minter struct {
	// Key is the JWK provisioner's private key.
	Key *jose.JSONWebKey
	// Issuer is the provisioner's name.
	Issuer string
	// Audience is the sign URL the authority accepts, https://<ca-host>/1.0/sign.
	Audience string
	// RootFingerprint goes in the "sha" claim (step clients pin the root with it).
	RootFingerprint string
	// TTL is a token's lifetime [2h]: long enough for the machine to boot into the ramdisk.
	TTL time.Duration
	Now func() time.Time
}

// Minter returns the minter of the embedded authority's tokens.
func (p *PKI) Minter(ttl time.Duration) *Minter {
	return &Minter{Key: p.Provisioner, Issuer: p.Meta.Provisioner, Audience: p.Meta.Audience(),
		RootFingerprint: p.Fingerprint(), TTL: ttl}
}

// Mint returns a token for node: subject the node UUID, one SAN urn:node:<uuid>, a random jti
// (the authority refuses it a second time). The token is a secret: never log it.
func (m *Minter) Mint(node string) (string, error) {
	return m.mint(node, m.Audience)
}

func (m *Minter) mint(node, audience string) (string, error) {
	if !mtls.IsUUID(node) {
		return "", fmt.Errorf("certs: token: %q is not a node UUID", node)
	}
	if m.Key == nil || m.Key.IsPublic() {
		return "", errors.New("certs: token: no private provisioner key")
	}
	ttl := m.TTL
	if ttl <= 0 {
		ttl = 2 * time.Hour
	}
	now := time.Now()
	if m.Now != nil {
		now = m.Now()
	}
	jti, err := randutil.Hex(32)
	if err != nil {
		return "", fmt.Errorf("certs: token: %w", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(m.Key.Algorithm), Key: m.Key.Key},
		new(jose.SignerOptions).WithType("JWT").WithHeader("kid", m.Key.KeyID))
	if err != nil {
		return "", fmt.Errorf("certs: token: %w", err)
	}
	// The claims of a step token (cli-utils/token); the times are set here because cli-utils
	// caps validity at 1h and a machine may take longer to boot into the ramdisk.
	claims := struct {
		jose.Claims
		SHA  string   `json:"sha"`
		SANs []string `json:"sans"`
	}{
		Claims: jose.Claims{ID: jti, Issuer: m.Issuer, Subject: node, Audience: jose.Audience{audience},
			IssuedAt: jose.NewNumericDate(now), NotBefore: jose.NewNumericDate(now), Expiry: jose.NewNumericDate(now.Add(ttl))},
		SHA:  m.RootFingerprint,
		SANs: []string{mtls.NodeURI(node)},
	}
	s, err := jose.Signed(signer).Claims(claims).CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("certs: token: %w", err)
	}
	return s, nil
}

// Claims are the parts of a token the controller reads before the authority verifies it.
type Claims struct {
	Subject string
	ID      string
	Expiry  time.Time
}

// PeekClaims reads a token's claims WITHOUT verifying its signature: only for decisions the
// authority's verification makes safe afterwards (which node to check, when a used token
// can be forgotten).
func PeekClaims(ott string) (Claims, error) {
	tok, err := jose.ParseSigned(ott)
	if err != nil {
		return Claims{}, fmt.Errorf("certs: parse token: %w", err)
	}
	var c jose.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		return Claims{}, fmt.Errorf("certs: parse token: %w", err)
	}
	out := Claims{Subject: c.Subject, ID: c.ID}
	if c.Expiry != nil {
		out.Expiry = c.Expiry.Time()
	}
	return out, nil
}
