package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.step.sm/crypto/jose"

	"github.com/ferrumhq/ferrum/certs"
	"github.com/ferrumhq/ferrum/controller/agentlink"
	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/config"
	"github.com/ferrumhq/ferrum/shared/mtls"
)

// agentSide is the PKI, the certificate authority and the agent listener.
type agentSide struct {
	srv       *agentlink.Server
	authority *certs.Authority
	log       zerolog.Logger
	onConnect func(ctx context.Context, node string) json.RawMessage

	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex
}

// newAgentSide initialises the PKI in its directory when there is none (also when agents are
// off), and, with agent_addr set, starts the authority and opens the agent listener.
func newAgentSide(cfg *config.Config, st store, log zerolog.Logger) (*agentSide, error) {
	a := &agentSide{log: log}
	var pki *certs.PKI
	if cfg.CAURL == "" {
		p, created, err := certs.Ensure(cfg.PKIDir, certs.InitOptions{})
		if err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
		if created {
			log.Info().Str("dir", cfg.PKIDir).Str("fingerprint", p.Fingerprint()).
				Msg("PKI created; move " + certs.RootKeyFile + " offline, the controller does not need it")
		}
		pki = p
	}
	if cfg.AgentAddr == "" {
		return a, nil
	}

	var (
		signer certs.Signer
		minter *certs.Minter
		roots  *x509.CertPool
		fp     string
	)
	if pki != nil {
		auth, err := certs.NewAuthority(certs.AuthorityConfig{PKI: pki, CertTTL: cfg.AgentCertTTL, Store: st, Log: log})
		if err != nil {
			return nil, err
		}
		a.authority = auth
		signer, minter, roots, fp = auth, pki.Minter(cfg.AgentTokenTTL), pki.ClientCAs(), pki.Fingerprint()
	} else {
		chain, remote, m, err := externalCA(cfg)
		if err != nil {
			return nil, err
		}
		roots = x509.NewCertPool()
		for _, c := range chain {
			roots.AddCert(c)
		}
		signer, minter, fp = remote, m, mtls.Fingerprint(chain[0])
	}
	cert, err := controllerCert(cfg, pki)
	if err != nil {
		a.Close()
		return nil, err
	}
	ticketKey, err := loadTicketKey(filepath.Join(cfg.DataDir, "agent_ticket.key"))
	if err != nil {
		a.Close()
		return nil, err
	}
	var srv *agentlink.Server
	enroll, err := certs.EnrollHandler(certs.EnrollConfig{Signer: signer, Roots: rootList(pki),
		Admit: func(ctx context.Context, id string) error {
			n, err := st.GetNode(ctx, id)
			if err != nil {
				return err
			}
			if !n.ProvisionState.ExpectsAgent() {
				return fmt.Errorf("provision state %q does not expect an agent", n.ProvisionState)
			}
			return nil
		},
		Issued:   func(_ context.Context, id string, leaf *x509.Certificate) { srv.RecordEnrolled(id, leaf) },
		TokenKey: minter.Key,
		Log:      log})
	if err != nil {
		a.Close()
		return nil, err
	}
	srv, err = agentlink.New(agentlink.Config{
		Addr: cfg.AgentAddr, AdvertiseAddr: cfg.AgentAdvertiseAddr,
		Certificate: cert, ClientCAs: roots, Fingerprint: fp, TicketKey: ticketKey,
		Nodes: st, Revocations: st, Recorder: st, Enroll: enroll,
		Renewer: &certs.Renewer{Signer: signer, Minter: minter}, MintToken: minter.Mint,
		OnConnect:         a.connected,
		HeartbeatInterval: cfg.AgentHeartbeatInterval, ResumeTimeout: cfg.AgentResumeTimeout,
		Log: log,
	})
	if err != nil {
		a.Close()
		return nil, err
	}
	a.srv = srv
	return a, nil
}

// agents is the conductor's port, or nil when agents are off.
func (a *agentSide) agents() conductor.Agents {
	if a.srv == nil {
		return nil
	}
	return a.srv
}

func (a *agentSide) connected(ctx context.Context, id string) json.RawMessage {
	a.mu.Lock()
	f := a.onConnect
	a.mu.Unlock()
	if f == nil {
		return nil
	}
	return f(ctx, id)
}

// start serves agents; the conductor hears of each new session.
func (a *agentSide) start(cond *conductor.Conductor) {
	if a.srv == nil {
		return
	}
	a.mu.Lock()
	a.onConnect = cond.AgentConnected
	a.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan error, 1)
	go func() { a.done <- a.srv.Serve(ctx) }()
	a.log.Info().Str("agent_addr", a.srv.Addr().String()).Msg("serving agents")
}

// Close stops the listener and its sessions, then the authority.
func (a *agentSide) Close() {
	if a.cancel != nil {
		a.cancel()
		if err := <-a.done; err != nil {
			a.log.Error().Err(err).Msg("agent listener failed")
		}
	} else if a.srv != nil {
		a.srv.Close()
	}
	if a.authority != nil {
		a.authority.Close()
	}
}

func rootList(p *certs.PKI) []*x509.Certificate {
	if p == nil {
		return nil
	}
	return []*x509.Certificate{p.Root}
}

// controllerCert loads agent_tls_cert_file, or the PKI's controller certificate, issuing a new
// one when it is missing or expires within 30 days.
func controllerCert(cfg *config.Config, p *certs.PKI) (tls.Certificate, error) {
	if cfg.AgentTLSCertFile != "" {
		c, err := tls.LoadX509KeyPair(cfg.AgentTLSCertFile, cfg.AgentTLSKeyFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("agent tls: %w", err)
		}
		if !mtls.IsController(c.Leaf) {
			return tls.Certificate{}, fmt.Errorf("agent tls: %s lacks server usage or the controller marker %s", cfg.AgentTLSCertFile, mtls.ControllerURI)
		}
		return c, nil
	}
	if c, err := p.LoadController(); err == nil && time.Until(c.Leaf.NotAfter) > 30*24*time.Hour {
		return c, nil
	}
	names := []string{cfg.Hostname}
	for _, addr := range []string{cfg.AgentAdvertiseAddr, cfg.AgentAddr} {
		if h, _, err := net.SplitHostPort(addr); err == nil && h != "" {
			if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
				names = append(names, h)
			}
		}
	}
	return p.IssueController(certs.ControllerOptions{DNSNames: names})
}

// externalCA reads the external step-ca's root (first) and intermediates, and the agents
// provisioner's key.
func externalCA(cfg *config.Config) ([]*x509.Certificate, *certs.Remote, *certs.Minter, error) {
	b, err := os.ReadFile(cfg.CARootFile)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("ca_root_file: %w", err)
	}
	rs, err := certs.ParsePEMCertificates(b)
	if err != nil || len(rs) == 0 {
		return nil, nil, nil, fmt.Errorf("ca_root_file %s: no certificate (%v)", cfg.CARootFile, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(rs[0])
	remote, err := certs.NewRemote(certs.RemoteConfig{URL: cfg.CAURL, Roots: pool})
	if err != nil {
		return nil, nil, nil, err
	}
	kb, err := os.ReadFile(cfg.CAProvisionerKeyFile)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("ca_provisioner_key_file: %w", err)
	}
	jwk := new(jose.JSONWebKey)
	if err := json.Unmarshal(kb, jwk); err != nil || jwk.IsPublic() {
		return nil, nil, nil, errors.New("ca_provisioner_key_file: not a private JWK (decrypt it with step crypto jwe decrypt)")
	}
	m := &certs.Minter{Key: jwk, Issuer: cfg.CAProvisioner, Audience: strings.TrimSuffix(cfg.CAURL, "/") + "/1.0/sign",
		RootFingerprint: mtls.Fingerprint(rs[0]), TTL: cfg.AgentTokenTTL}
	return rs, remote, m, nil
}

// loadTicketKey reads the key that encrypts the tunnel's TLS session tickets, creating it on
// first start. Keeping it across restarts lets agents resume their sessions after one.
func loadTicketKey(path string) (*[32]byte, error) {
	var k [32]byte
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := rand.Read(k[:]); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, k[:], 0o600); err != nil {
			return nil, fmt.Errorf("agent ticket key: %w", err)
		}
		return &k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent ticket key: %w", err)
	}
	if len(b) != len(k) {
		return nil, fmt.Errorf("agent ticket key %s: %d bytes, want %d", path, len(b), len(k))
	}
	copy(k[:], b)
	return &k, nil
}
