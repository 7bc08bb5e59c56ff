// Package mtls holds the TLS rules of the agent tunnel, for both ends: how a node's identity is
// written in an agent certificate (URI SAN urn:node:<uuid>) and read back, how the controller
// is told from an agent (the controller marker URI), and the tls.Config each side uses.
//
// Imported by agent/link and controller/agentlink (and certs, which issues what it checks). It
// imports only the standard library.
package mtls

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

const (
	// NodeURIPrefix starts the one URI SAN of an agent certificate: urn:node:<uuid>.
	NodeURIPrefix = "urn:node:"
	// ControllerURI marks the controller's certificate. Agents refuse a server without it, so a
	// leaked agent certificate can never pose as the controller (agent certificates carry only
	// their node URI and clientAuth).
	ControllerURI = "urn:ferrum:controller"
	// ALPNTunnel is the ALPN protocol of the tunnel. A client that does not offer it gets the
	// enrollment HTTPS endpoint on the same port, without client authentication.
	ALPNTunnel = "ferrum-tunnel/1"
	// ALPNHTTP is offered for enrollment.
	ALPNHTTP = "http/1.1"
)

// NodeURI returns the URI SAN of node uuid.
func NodeURI(uuid string) string { return NodeURIPrefix + uuid }

// Fingerprint is the lower-case hex SHA-256 of a certificate's DER, as step prints it.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// IsUUID reports whether s is a UUID in canonical lower-case form.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
				return false
			}
		}
	}
	return true
}

// ErrIdentity is wrapped by NodeID for a certificate that is not a valid agent certificate.
var ErrIdentity = errors.New("not an agent certificate")

// NodeID returns the node bound to an agent certificate: exactly one urn:node:<uuid> URI SAN,
// the same UUID as common name, no other URI, no DNS or IP SAN, no serverAuth usage.
func NodeID(c *x509.Certificate) (string, error) {
	var ids []string
	for _, u := range c.URIs {
		s := u.String()
		if !strings.HasPrefix(s, NodeURIPrefix) {
			return "", fmt.Errorf("%w: unexpected URI SAN %q", ErrIdentity, s)
		}
		ids = append(ids, strings.TrimPrefix(s, NodeURIPrefix))
	}
	if len(ids) != 1 {
		return "", fmt.Errorf("%w: want exactly one %s URI SAN, got %d", ErrIdentity, NodeURIPrefix, len(ids))
	}
	id := ids[0]
	switch {
	case !IsUUID(id):
		return "", fmt.Errorf("%w: %q is not a node UUID", ErrIdentity, id)
	case c.Subject.CommonName != id:
		return "", fmt.Errorf("%w: common name %q differs from the node URI", ErrIdentity, c.Subject.CommonName)
	case len(c.DNSNames)+len(c.IPAddresses)+len(c.EmailAddresses) > 0:
		return "", fmt.Errorf("%w: DNS, IP or e-mail SANs present", ErrIdentity)
	case slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny):
		return "", fmt.Errorf("%w: server usage present", ErrIdentity)
	}
	return id, nil
}

// IsController reports whether c carries the controller marker and server usage.
func IsController(c *x509.Certificate) bool {
	marked := false
	for _, u := range c.URIs {
		if u.String() == ControllerURI {
			marked = true
		}
	}
	return marked && slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
}

// ServerConfig configures the controller's tunnel TLS.
type ServerConfig struct {
	// Certificate is the controller's chain (leaf with ControllerURI, intermediates, and the
	// root, so that agents holding only its fingerprint can verify it).
	Certificate tls.Certificate
	// ClientCAs verifies agent certificates (chain, validity, clientAuth).
	ClientCAs *x509.CertPool
	// Verify is called on every handshake, resumed ones included, with the node the
	// certificate names. A non-nil error refuses the connection.
	Verify func(node string, leaf *x509.Certificate) error
	// Now is the clock for the validity check ([time.Now]).
	Now func() time.Time
}

// NewServerTLS returns the controller's tunnel tls.Config: TLS 1.3, a verified client
// certificate required, identity checked in VerifyConnection (which, unlike
// VerifyPeerCertificate, also runs when a session is resumed).
func NewServerTLS(c ServerConfig) *tls.Config {
	now := c.Now
	if now == nil {
		now = time.Now
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.Certificate},
		ClientCAs:    c.ClientCAs,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		NextProtos:   []string{ALPNTunnel},
		Time:         now,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("mtls: no client certificate")
			}
			leaf := cs.PeerCertificates[0]
			if t := now(); t.Before(leaf.NotBefore) || t.After(leaf.NotAfter) {
				return fmt.Errorf("mtls: client certificate %s is not valid now", leaf.SerialNumber)
			}
			node, err := NodeID(leaf)
			if err != nil {
				return fmt.Errorf("mtls: %w", err)
			}
			if c.Verify != nil {
				if err := c.Verify(node, leaf); err != nil {
					return fmt.Errorf("mtls: node %s: %w", node, err)
				}
			}
			return nil
		},
	}
}

// VerifyController returns a VerifyConnection for agents: the server's chain must lead to a
// root in roots or, when fingerprint is set, to the certificate of the chain with that
// fingerprint; the leaf must have serverAuth and ControllerURI. Host names are not checked:
// the pinned root and the marker identify the controller, whatever address reached it.
func VerifyController(roots *x509.CertPool, fingerprint string, now func() time.Time) func(tls.ConnectionState) error {
	if now == nil {
		now = time.Now
	}
	fingerprint = strings.ToLower(strings.ReplaceAll(fingerprint, ":", ""))
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("mtls: controller sent no certificate")
		}
		leaf := cs.PeerCertificates[0]
		if cs.DidResume {
			// The chain was verified when the session was established, and only a server
			// that knows that session's secret can resume it; the time is all that changed.
			// (Skipping the signatures halves an agent's reconnect cost.)
			if t := now(); t.Before(leaf.NotBefore) || t.After(leaf.NotAfter) {
				return errors.New("mtls: resumed session's controller certificate is not valid now")
			}
			if !IsController(leaf) {
				return fmt.Errorf("mtls: peer is not a controller (no %s)", ControllerURI)
			}
			return nil
		}
		pool := roots
		if fingerprint != "" {
			pool = nil
			for _, c := range cs.PeerCertificates {
				if Fingerprint(c) == fingerprint {
					pool = x509.NewCertPool()
					pool.AddCert(c)
				}
			}
			if pool == nil {
				return errors.New("mtls: controller's chain has no certificate with the pinned root fingerprint")
			}
		}
		if pool == nil {
			return errors.New("mtls: no roots to verify the controller with")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return fmt.Errorf("mtls: controller certificate: %w", err)
		}
		if !IsController(leaf) {
			return fmt.Errorf("mtls: peer is not a controller (no %s)", ControllerURI)
		}
		return nil
	}
}

// AgentConfig configures an agent's TLS towards the controller.
type AgentConfig struct {
	// Roots and/or Fingerprint pin the controller's root (see VerifyController).
	Roots       *x509.CertPool
	Fingerprint string
	// GetCertificate returns the agent's current client certificate; nil for enrollment.
	GetCertificate func() (*tls.Certificate, error)
	Now            func() time.Time
}

// NewAgentTLS returns the agent's tls.Config for the tunnel (with a certificate) or for
// enrollment (without). Go's own server verification is off because VerifyController does it
// against the pinned root.
func NewAgentTLS(c AgentConfig) *tls.Config {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // verified by VerifyConnection against the pinned root
		VerifyConnection:   VerifyController(c.Roots, c.Fingerprint, c.Now),
		NextProtos:         []string{ALPNHTTP},
	}
	if c.GetCertificate != nil {
		cfg.NextProtos = []string{ALPNTunnel}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return c.GetCertificate()
		}
	}
	return cfg
}
