// Package certs is Ferrum's PKI, built on smallstep: an offline root and intermediate CA, the
// controller's server certificate (server usage plus the controller marker agents require),
// one-time enrollment tokens bound to a node UUID, and the authority that turns a token and a
// CSR into a short-lived agent client certificate — smallstep's authority embedded in the
// controller, or an external step-ca.
//
// Imported by controller/cmd (wiring) and certs/cmd/ferrum-certs. Never by the agent, which
// needs only the step-ca-compatible HTTP request it sends (agent/link).
package certs

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/keyutil"
	"go.step.sm/crypto/pemutil"
	"go.step.sm/crypto/x509util"

	"github.com/ferrumhq/ferrum/shared/mtls"
)

// Files of a PKI directory. Keys are PEM (PKCS #8), mode 0600.
const (
	RootCertFile         = "root_ca.crt"
	RootKeyFile          = "root_ca_key" // only `init` needs it: keep it offline afterwards
	IntermediateCertFile = "intermediate_ca.crt"
	IntermediateKeyFile  = "intermediate_ca_key"
	ProvisionerFile      = "provisioner.json" // the JWK provisioner's private key
	ControllerCertFile   = "controller.crt"   // leaf, intermediate, root
	ControllerKeyFile    = "controller_key"
	MetaFile             = "pki.json"
)

// Defaults of Init.
const (
	DefaultName        = "Ferrum"
	DefaultProvisioner = "agents"
	// DefaultCAHost is the host in the tokens' audience, https://<host>/1.0/sign. It names the
	// authority, not a machine: it need not resolve.
	DefaultCAHost = "ferrum-ca"
)

// ErrExists is returned by Init when the directory already holds a PKI.
var ErrExists = errors.New("certs: PKI already initialised")

// PKI is a loaded PKI directory: what the controller needs at run time (never the root key).
type PKI struct {
	Dir             string
	Meta            Meta
	Root            *x509.Certificate
	Intermediate    *x509.Certificate
	IntermediateKey crypto.Signer
	// Provisioner is the JWK provisioner's private key; it signs enrollment tokens.
	Provisioner *jose.JSONWebKey
}

// Meta is pki.json.
type Meta struct {
	Name        string `json:"name"`
	Provisioner string `json:"provisioner"`
	CAHost      string `json:"ca_host"`
}

// Audience is the audience of this PKI's tokens.
func (m Meta) Audience() string { return "https://" + m.CAHost + "/1.0/sign" }

// InitOptions configures Init. Zero fields take the defaults.
type InitOptions struct {
	Name        string
	Provisioner string
	CAHost      string
	RootTTL     time.Duration // [10 years]
	InterTTL    time.Duration // [5 years]
	Now         func() time.Time
}

// Init creates a root CA, an intermediate CA and a JWK provisioner key in dir (created with
// mode 0700). It refuses a directory that already has a root (ErrExists).
func Init(dir string, o InitOptions) (*PKI, error) {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Provisioner == "" {
		o.Provisioner = DefaultProvisioner
	}
	if o.CAHost == "" {
		o.CAHost = DefaultCAHost
	}
	if o.RootTTL <= 0 {
		o.RootTTL = 10 * 365 * 24 * time.Hour
	}
	if o.InterTTL <= 0 {
		o.InterTTL = 5 * 365 * 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if _, err := os.Stat(filepath.Join(dir, RootCertFile)); err == nil {
		return nil, fmt.Errorf("%w in %s", ErrExists, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: init: %w", err)
	}
	now := o.Now()

	rootKey, err := keyutil.GenerateDefaultSigner()
	if err != nil {
		return nil, fmt.Errorf("certs: root key: %w", err)
	}
	root, err := caCert(o.Name+" Root CA", x509util.DefaultRootTemplate, rootKey, nil, rootKey, now, o.RootTTL)
	if err != nil {
		return nil, fmt.Errorf("certs: root: %w", err)
	}
	interKey, err := keyutil.GenerateDefaultSigner()
	if err != nil {
		return nil, fmt.Errorf("certs: intermediate key: %w", err)
	}
	inter, err := caCert(o.Name+" Intermediate CA", x509util.DefaultIntermediateTemplate, interKey, root, rootKey, now, o.InterTTL)
	if err != nil {
		return nil, fmt.Errorf("certs: intermediate: %w", err)
	}
	jwk, err := jose.GenerateJWK("EC", "P-256", "ES256", "sig", "", 0)
	if err != nil {
		return nil, fmt.Errorf("certs: provisioner key: %w", err)
	}
	meta := Meta{Name: o.Name, Provisioner: o.Provisioner, CAHost: o.CAHost}

	jwkJSON, err := json.MarshalIndent(jwk, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("certs: provisioner key: %w", err)
	}
	metaJSON, _ := json.MarshalIndent(meta, "", "  ")
	// Write the root last: its presence marks a complete PKI.
	files := []struct {
		name string
		data func() ([]byte, error)
		mode os.FileMode
	}{
		{RootKeyFile, func() ([]byte, error) { return keyPEM(rootKey) }, 0o600},
		{IntermediateKeyFile, func() ([]byte, error) { return keyPEM(interKey) }, 0o600},
		{IntermediateCertFile, func() ([]byte, error) { return certPEM(inter), nil }, 0o644},
		{ProvisionerFile, func() ([]byte, error) { return jwkJSON, nil }, 0o600},
		{MetaFile, func() ([]byte, error) { return metaJSON, nil }, 0o644},
		{RootCertFile, func() ([]byte, error) { return certPEM(root), nil }, 0o644},
	}
	for _, f := range files {
		b, err := f.data()
		if err != nil {
			return nil, fmt.Errorf("certs: %s: %w", f.name, err)
		}
		if err := writeFile(filepath.Join(dir, f.name), b, f.mode); err != nil {
			return nil, err
		}
	}
	return &PKI{Dir: dir, Meta: meta, Root: root, Intermediate: inter, IntermediateKey: interKey, Provisioner: jwk}, nil
}

// caCert creates a CA certificate from one of x509util's templates.
func caCert(cn, tpl string, key crypto.Signer, parent *x509.Certificate, parentKey crypto.Signer, now time.Time, ttl time.Duration) (*x509.Certificate, error) {
	cr, err := x509util.CreateCertificateRequest(cn, nil, key)
	if err != nil {
		return nil, err
	}
	c, err := x509util.NewCertificate(cr, x509util.WithTemplate(tpl, x509util.CreateTemplateData(cn, nil)))
	if err != nil {
		return nil, err
	}
	t := c.GetCertificate()
	t.NotBefore, t.NotAfter = now.Add(-time.Minute), now.Add(ttl)
	if parent == nil {
		parent = t
	}
	return x509util.CreateCertificate(t, parent, key.Public(), parentKey)
}

// Load reads the run-time part of a PKI directory.
func Load(dir string) (*PKI, error) {
	p := &PKI{Dir: dir}
	var err error
	if p.Root, err = pemutil.ReadCertificate(filepath.Join(dir, RootCertFile)); err != nil {
		return nil, fmt.Errorf("certs: load: %w", err)
	}
	if p.Intermediate, err = pemutil.ReadCertificate(filepath.Join(dir, IntermediateCertFile)); err != nil {
		return nil, fmt.Errorf("certs: load: %w", err)
	}
	k, err := pemutil.Read(filepath.Join(dir, IntermediateKeyFile))
	if err != nil {
		return nil, fmt.Errorf("certs: load: %w", err)
	}
	var ok bool
	if p.IntermediateKey, ok = k.(crypto.Signer); !ok {
		return nil, fmt.Errorf("certs: load: %s is not a signing key", IntermediateKeyFile)
	}
	b, err := os.ReadFile(filepath.Join(dir, ProvisionerFile))
	if err != nil {
		return nil, fmt.Errorf("certs: load: %w", err)
	}
	p.Provisioner = new(jose.JSONWebKey)
	if err := json.Unmarshal(b, p.Provisioner); err != nil || p.Provisioner.IsPublic() {
		return nil, fmt.Errorf("certs: load: %s: not a private JWK", ProvisionerFile)
	}
	if b, err = os.ReadFile(filepath.Join(dir, MetaFile)); err != nil {
		return nil, fmt.Errorf("certs: load: %w", err)
	}
	if err := json.Unmarshal(b, &p.Meta); err != nil {
		return nil, fmt.Errorf("certs: load: %s: %w", MetaFile, err)
	}
	if _, err := p.Intermediate.Verify(x509.VerifyOptions{Roots: p.RootPool()}); err != nil {
		return nil, fmt.Errorf("certs: load: intermediate does not chain to the root: %w", err)
	}
	return p, nil
}

// Ensure loads the PKI in dir, initialising it first when dir has none. created tells which.
func Ensure(dir string, o InitOptions) (p *PKI, created bool, err error) {
	if _, err := os.Stat(filepath.Join(dir, RootCertFile)); errors.Is(err, os.ErrNotExist) {
		if _, err := Init(dir, o); err != nil {
			return nil, false, err
		}
		created = true
	}
	p, err = Load(dir)
	return p, created, err
}

// Fingerprint is the root's SHA-256 fingerprint, the value agents pin.
func (p *PKI) Fingerprint() string { return mtls.Fingerprint(p.Root) }

// RootPool is a pool holding the root.
func (p *PKI) RootPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.Root)
	return pool
}

// ClientCAs verifies agent certificates: the root and the intermediate (agents present only
// their leaf).
func (p *PKI) ClientCAs() *x509.CertPool {
	pool := p.RootPool()
	pool.AddCert(p.Intermediate)
	return pool
}

// ControllerOptions configures IssueController.
type ControllerOptions struct {
	CommonName string   // [ferrum-controller]
	DNSNames   []string // also accepts IP addresses
	TTL        time.Duration
	Now        func() time.Time
}

// IssueController issues the controller's tunnel certificate from the intermediate: serverAuth
// only, the controller marker URI, the given names. The chain holds the leaf, the intermediate
// and the root (agents know only the root's fingerprint). It writes controller.crt and
// controller_key to the PKI directory.
func (p *PKI) IssueController(o ControllerOptions) (tls.Certificate, error) {
	if o.CommonName == "" {
		o.CommonName = "ferrum-controller"
	}
	if o.TTL <= 0 {
		o.TTL = 365 * 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	key, err := keyutil.GenerateDefaultSigner()
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: controller key: %w", err)
	}
	data := x509util.CreateTemplateData(o.CommonName, append(o.DNSNames, mtls.ControllerURI))
	cr, err := x509util.CreateCertificateRequest(o.CommonName, nil, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: controller: %w", err)
	}
	c, err := x509util.NewCertificate(cr, x509util.WithTemplate(controllerTemplate, data))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: controller: %w", err)
	}
	t := c.GetCertificate()
	now := o.Now()
	t.NotBefore, t.NotAfter = now.Add(-time.Minute), now.Add(o.TTL)
	if t.NotAfter.After(p.Intermediate.NotAfter) {
		t.NotAfter = p.Intermediate.NotAfter
	}
	leaf, err := x509util.CreateCertificate(t, p.Intermediate, key.Public(), p.IntermediateKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: controller: %w", err)
	}
	chain := append(append(certPEM(leaf), certPEM(p.Intermediate)...), certPEM(p.Root)...)
	kp, err := keyPEM(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFile(filepath.Join(p.Dir, ControllerKeyFile), kp, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFile(filepath.Join(p.Dir, ControllerCertFile), chain, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(chain, kp)
}

// controllerTemplate is the controller's leaf: server usage only, the SANs given (DNS names,
// IPs and the marker URI).
const controllerTemplate = `{
	"subject": {{ toJson .Subject }},
	"sans": {{ toJson .SANs }},
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["serverAuth"]
}`

// LoadController reads the controller certificate from the PKI directory. It fails when the
// files are missing, the key does not match, or the leaf is not a controller certificate of
// this PKI.
func (p *PKI) LoadController() (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(p.Dir, ControllerCertFile), filepath.Join(p.Dir, ControllerKeyFile))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: controller certificate: %w", err)
	}
	if !mtls.IsController(cert.Leaf) {
		return tls.Certificate{}, errors.New("certs: controller certificate lacks the controller marker or server usage")
	}
	inter := x509.NewCertPool()
	inter.AddCert(p.Intermediate)
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: p.RootPool(), Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: controller certificate: %w", err)
	}
	return cert, nil
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("certs: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writeFile writes through a temporary file and a rename, so a crash leaves the old file or
// the new one.
func writeFile(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	return nil
}
