package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/rs/zerolog"
	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/db"
	"golang.org/x/crypto/ssh"
)

// AgentTemplate is the X.509 template of agent certificates, for the embedded authority and
// for an external step-ca's agent provisioner (`step ca provisioner update agents
// --x509-template`). The token's subject must be a node UUID; the certificate gets that UUID
// as common name, exactly one URI SAN urn:node:<uuid>, and client usage only.
const AgentTemplate = `{{- if not (regexMatch "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$" .Subject.CommonName) }}{{ fail "token subject must be a node UUID" }}{{ end -}}
{
  "subject": {"commonName": {{ toJson .Subject.CommonName }}},
  "uris": [{{ toJson (print "urn:node:" .Subject.CommonName) }}],
  "keyUsage": ["digitalSignature"],
  "extKeyUsage": ["clientAuth"]
}`

// Errors of Signer.Sign, for the HTTP status and the agent's decision to retry.
var (
	// ErrTokenRefused: the token is invalid, expired, already used, or for another audience.
	ErrTokenRefused = errors.New("certs: token refused")
	// ErrRequestRefused: the CSR does not match the token.
	ErrRequestRefused = errors.New("certs: certificate request refused")
)

// Signer turns a one-time token and a CSR into a certificate chain (leaf first).
type Signer interface {
	Sign(ctx context.Context, csr *x509.CertificateRequest, ott string) ([]*x509.Certificate, error)
}

// TokenStore is the persistence the embedded authority needs: used token IDs (so a token works
// once, also across restarts) and revoked serials. controller/store/sqlite implements it.
type TokenStore interface {
	// UseToken records token id until expires; false when it was recorded before.
	UseToken(ctx context.Context, id string, expires time.Time) (bool, error)
	IsRevoked(ctx context.Context, serial string) (bool, error)
	RevokeCertificate(ctx context.Context, serial, reason string) error
}

// AuthorityConfig configures the embedded authority.
type AuthorityConfig struct {
	PKI *PKI
	// CertTTL is the lifetime of agent certificates [1h].
	CertTTL time.Duration
	Store   TokenStore
	Log     zerolog.Logger
}

// Authority is smallstep's authority embedded in the controller, with one JWK provisioner whose
// tokens are node-bound and whose certificates follow AgentTemplate.
type Authority struct {
	a   *authority.Authority
	log zerolog.Logger
}

var _ Signer = (*Authority)(nil)

// NewAuthority starts the embedded authority.
func NewAuthority(cfg AuthorityConfig) (*Authority, error) {
	switch {
	case cfg.PKI == nil:
		return nil, errors.New("certs: authority: PKI is required")
	case cfg.Store == nil:
		return nil, errors.New("certs: authority: Store is required")
	}
	if cfg.CertTTL <= 0 {
		cfg.CertTTL = time.Hour
	}
	pub := cfg.PKI.Provisioner.Public()
	prov := &provisioner.JWK{
		Type: "JWK", Name: cfg.PKI.Meta.Provisioner, Key: &pub,
		Claims: &provisioner.Claims{
			MinTLSDur:     &provisioner.Duration{Duration: min(cfg.CertTTL, 5*time.Second)},
			MaxTLSDur:     &provisioner.Duration{Duration: max(cfg.CertTTL, 24*time.Hour)},
			DefaultTLSDur: &provisioner.Duration{Duration: cfg.CertTTL},
		},
		Options: &provisioner.Options{X509: &provisioner.X509Options{Template: AgentTemplate}},
	}
	a, err := authority.NewEmbedded(
		authority.WithX509RootCerts(cfg.PKI.Root),
		authority.WithX509Signer(cfg.PKI.Intermediate, cfg.PKI.IntermediateKey),
		authority.WithDatabase(&authDB{s: cfg.Store}),
		authority.WithQuietInit(),
		authority.WithConfig(&config.Config{
			DNSNames: []string{cfg.PKI.Meta.CAHost},
			AuthorityConfig: &config.AuthConfig{
				Provisioners: provisioner.List{prov},
				// Tokens minted before a controller restart must still work: they sit on the
				// kernel command line of machines that are booting.
				DisableIssuedAtCheck: true,
			},
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("certs: start authority: %w", err)
	}
	return &Authority{a: a, log: cfg.Log.With().Str("component", "authority").Logger()}, nil
}

// Sign verifies the token (signature, issuer, audience, validity, not used before, CSR SANs
// equal to the token's) and issues the agent certificate.
func (a *Authority) Sign(ctx context.Context, csr *x509.CertificateRequest, ott string) ([]*x509.Certificate, error) {
	ctx = provisioner.NewContextWithMethod(ctx, provisioner.SignMethod)
	opts, err := a.a.Authorize(ctx, ott)
	if err != nil {
		return nil, classify(err)
	}
	chain, err := a.a.SignWithContext(ctx, csr, provisioner.SignOptions{}, opts...)
	if err != nil {
		return nil, classify(err)
	}
	return chain, nil
}

// Close stops the authority.
func (a *Authority) Close() error { return a.a.Shutdown() }

// classify maps the authority's HTTP-flavoured errors to ours.
func classify(err error) error {
	var sc interface{ StatusCode() int }
	if errors.As(err, &sc) {
		switch sc.StatusCode() {
		case http.StatusUnauthorized:
			return fmt.Errorf("%w: %v", ErrTokenRefused, err)
		case http.StatusForbidden, http.StatusBadRequest:
			return fmt.Errorf("%w: %v", ErrRequestRefused, err)
		}
	}
	return fmt.Errorf("certs: sign: %w", err)
}

// authDB adapts a TokenStore to smallstep's db.AuthDB. Only the token and revocation calls
// are used by a JWK-only X.509 authority; SSH is off.
type authDB struct{ s TokenStore }

var (
	_ db.AuthDB            = (*authDB)(nil)
	_ db.CertificateStorer = (*authDB)(nil)
)

func dbCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// UseToken records the token's ID (never the token) until it expires.
func (d *authDB) UseToken(id, tok string) (bool, error) {
	ctx, cancel := dbCtx()
	defer cancel()
	exp := time.Now().Add(24 * time.Hour)
	if c, err := PeekClaims(tok); err == nil && !c.Expiry.IsZero() {
		exp = c.Expiry.Add(time.Minute) // the authority's leeway
	}
	return d.s.UseToken(ctx, id, exp)
}

func (d *authDB) IsRevoked(sn string) (bool, error) {
	ctx, cancel := dbCtx()
	defer cancel()
	return d.s.IsRevoked(ctx, sn)
}

func (d *authDB) Revoke(rci *db.RevokedCertificateInfo) error {
	ctx, cancel := dbCtx()
	defer cancel()
	return d.s.RevokeCertificate(ctx, rci.Serial, rci.Reason)
}

func (d *authDB) GetCertificate(string) (*x509.Certificate, error) {
	return nil, errors.New("certs: certificates are not stored")
}

// StoreCertificate is a no-op: agent certificates are short-lived and identified by node.
func (d *authDB) StoreCertificate(*x509.Certificate) error   { return nil }
func (d *authDB) StoreSSHCertificate(*ssh.Certificate) error { return nil }
func (d *authDB) IsSSHRevoked(string) (bool, error)          { return false, nil }
func (d *authDB) RevokeSSH(*db.RevokedCertificateInfo) error { return errors.New("certs: no SSH") }
func (d *authDB) IsSSHHost(string) (bool, error)             { return false, nil }
func (d *authDB) GetSSHHostPrincipals() ([]string, error)    { return nil, nil }
func (d *authDB) Shutdown() error                            { return nil }
