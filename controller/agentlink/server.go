// Package agentlink is the controller's end of the agents' tunnels: a mutual-TLS listener
// (--agent-addr) that checks each agent's identity on every handshake, one yamux session per
// node in a registry, and Run, which sends a command to a node's agent and streams back its
// progress and result — also across a dropped and re-established link. The same port serves
// enrollment (step-ca's /1.0/sign) to clients that do not ask for the tunnel protocol.
//
// It is an adapter: it imports controller/node and shared/*, implements conductor.Agents, and
// is wired by controller/cmd only. It never imports the conductor, the API or a store.
package agentlink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/shared/mtls"
	"github.com/ferrumhq/ferrum/shared/proto"
	"github.com/ferrumhq/ferrum/shared/tunnel"
)

// Nodes looks nodes up. The conductor and the stores implement it.
type Nodes interface {
	GetNode(ctx context.Context, ident string) (*node.Node, error)
}

// Revocations answers whether a certificate serial is revoked.
type Revocations interface {
	IsRevoked(ctx context.Context, serial string) (bool, error)
}

// Recorder persists what is known of agent links. Updates are merged (node.AgentLink.Merge).
type Recorder interface {
	UpdateAgentLinks(ctx context.Context, links []node.AgentLink) error
	// CloseAgentLinks sets disconnected_at = at on every link whose session is open in the
	// records (a previous run of the controller ended without closing them).
	CloseAgentLinks(ctx context.Context, at time.Time) error
}

// Renewer issues a new certificate for an agent authenticated on its tunnel.
type Renewer interface {
	Renew(ctx context.Context, node string, csr *x509.CertificateRequest) ([]*x509.Certificate, error)
}

// Config configures a Server. Zero durations take the defaults in brackets.
type Config struct {
	// Listener to serve on; or Addr to listen on.
	Listener net.Listener
	Addr     string
	// AdvertiseAddr is the address agents are told (kernel parameters) [the listener's].
	AdvertiseAddr string

	// Certificate is the controller's chain (leaf with the controller marker, intermediate,
	// root); ClientCAs verifies agent certificates and must hold the CA's intermediates too
	// (agents send only their leaf); Fingerprint is the root's, for agents.
	Certificate tls.Certificate
	ClientCAs   *x509.CertPool
	Fingerprint string
	// TicketKey encrypts TLS session tickets. Kept across restarts, it lets agents resume
	// their TLS sessions after a controller restart — a reconnect storm then costs far less
	// CPU on both ends. Identity is still checked on every resumption. Nil: a key per process.
	TicketKey *[32]byte

	Nodes       Nodes
	Revocations Revocations
	Recorder    Recorder // nil: nothing is recorded
	// Enroll serves clients that do not offer the tunnel's ALPN (enrollment); nil refuses them.
	Enroll http.Handler
	// Renewer renews agent certificates over the tunnel; nil refuses renewals.
	Renewer Renewer
	// MintToken mints a node's enrollment token, for BootParams; nil disables BootParams.
	MintToken func(node string) (string, error)
	// OnConnect is called (in a goroutine the Server owns) after each agent's hello; what it
	// returns, if anything, is recorded as the link's status (node.AgentLink.Status) with the
	// other batched link records.
	OnConnect func(ctx context.Context, node string) json.RawMessage

	// ProtocolVersion is the highest protocol version spoken [proto.Version].
	ProtocolVersion int
	Tunnel          tunnel.Config
	// HeartbeatInterval is what agents are told to use [30s].
	HeartbeatInterval time.Duration
	// HandshakeTimeout bounds TLS plus hello of a new connection, waiting for a handshake
	// slot included [20s].
	HandshakeTimeout time.Duration
	// MaxHandshakes bounds the TLS handshakes in progress [256]. In a reconnect storm the rest
	// wait their turn instead of all slowing down together past their timeouts.
	MaxHandshakes int
	// ResumeTimeout is how long a mutating command whose link dropped waits for the agent to
	// come back and report [60s]; after it the command fails with proto.CodeLinkLost.
	ResumeTimeout time.Duration
	// SweepInterval is how often open sessions are checked again (node state, revocation) [1m].
	SweepInterval time.Duration
	// FlushInterval is how often link records are written [2s].
	FlushInterval time.Duration

	Log zerolog.Logger
	Now func() time.Time
}

func (c *Config) checkAndSetDefaults() error {
	switch {
	case c.Listener == nil && c.Addr == "":
		return errors.New("agentlink: Listener or Addr is required")
	case c.Certificate.Leaf == nil:
		return errors.New("agentlink: Certificate (with Leaf) is required")
	case !mtls.IsController(c.Certificate.Leaf):
		return errors.New("agentlink: Certificate is not a controller certificate")
	case c.ClientCAs == nil:
		return errors.New("agentlink: ClientCAs is required")
	case c.Nodes == nil:
		return errors.New("agentlink: Nodes is required")
	case c.Revocations == nil:
		return errors.New("agentlink: Revocations is required")
	}
	if c.ProtocolVersion == 0 {
		c.ProtocolVersion = proto.Version
	}
	if c.ProtocolVersion < proto.MinVersion || c.ProtocolVersion > proto.Version {
		return fmt.Errorf("agentlink: ProtocolVersion %d outside %d..%d", c.ProtocolVersion, proto.MinVersion, proto.Version)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HeartbeatInterval, 30*time.Second)
	def(&c.HandshakeTimeout, 20*time.Second)
	if c.MaxHandshakes <= 0 {
		c.MaxHandshakes = 256
	}
	def(&c.ResumeTimeout, 60*time.Second)
	def(&c.SweepInterval, time.Minute)
	def(&c.FlushInterval, 2*time.Second)
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Server is the agent listener and session registry.
type Server struct {
	cfg    Config
	log    zerolog.Logger
	ln     net.Listener
	tlsCfg *tls.Config
	status *recorder

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions map[string]*session // by node UUID
	changed  chan struct{}       // closed and replaced when sessions change
	calls    map[string]*call    // commands in flight, by command ID
	closed   bool

	featureSets map[string][]string // negotiated feature lists, shared by sessions

	enroll *chanListener
	httpS  *http.Server
	slots  chan struct{} // handshakes in progress
}

// New validates cfg and starts listening (the address is known once New returns).
func New(cfg Config) (*Server, error) {
	if err := cfg.checkAndSetDefaults(); err != nil {
		return nil, err
	}
	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return nil, fmt.Errorf("agentlink: listen: %w", err)
		}
	}
	if cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr = ln.Addr().String()
	}
	s := &Server{cfg: cfg, log: cfg.Log.With().Str("component", "agentlink").Logger(), ln: ln,
		sessions: map[string]*session{}, changed: make(chan struct{}), calls: map[string]*call{},
		slots: make(chan struct{}, cfg.MaxHandshakes)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.status = newRecorder(cfg.Recorder, cfg.FlushInterval, s.log)

	tunnelTLS := mtls.NewServerTLS(mtls.ServerConfig{Certificate: cfg.Certificate, ClientCAs: cfg.ClientCAs,
		Verify: s.verify, Now: cfg.Now})
	if cfg.TicketKey != nil {
		tunnelTLS.SetSessionTicketKeys([][32]byte{*cfg.TicketKey})
	}
	enrollTLS := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cfg.Certificate},
		NextProtos: []string{mtls.ALPNHTTP}}
	s.tlsCfg = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cfg.Certificate},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			if slices.Contains(h.SupportedProtos, mtls.ALPNTunnel) {
				return tunnelTLS, nil
			}
			return enrollTLS, nil
		}}
	if cfg.Enroll != nil {
		s.enroll = newChanListener(ln.Addr())
		s.httpS = &http.Server{Handler: cfg.Enroll, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second, ErrorLog: stdLogger(s.log, "enroll-http")}
	}
	return s, nil
}

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts agents until ctx ends or Close is called, then closes every session, waits for
// everything it started and writes the last link records.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	if s.httpS != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.httpS.Serve(s.enroll); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error().Err(err).Msg("enrollment server failed")
			}
		}()
	}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.status.run(s.ctx) }()
	go func() { defer s.wg.Done(); s.sweep() }()
	s.markAllDisconnected()
	s.log.Info().Str("addr", s.ln.Addr().String()).Int("protocol", s.cfg.ProtocolVersion).Msg("agent listener serving")

	var err error
	for {
		conn, aerr := s.ln.Accept()
		if aerr != nil {
			if s.ctx.Err() == nil {
				var ne net.Error
				if errors.As(aerr, &ne) && ne.Timeout() {
					continue
				}
				err = fmt.Errorf("agentlink: accept: %w", aerr)
			}
			break
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(conn)
		}()
	}
	s.Close()
	s.wg.Wait()
	return err
}

// Close stops the listener and closes every session. Serve returns after its goroutines end.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	sessions := make([]*session, 0, len(s.sessions))
	for _, se := range s.sessions {
		sessions = append(sessions, se)
	}
	s.mu.Unlock()
	s.cancel()
	err := s.ln.Close()
	if s.httpS != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.httpS.Shutdown(sctx)
		cancel()
		s.enroll.Close()
	}
	for _, se := range sessions {
		se.ys.Close()
	}
	return err
}

// verify is the identity check of every handshake (resumed ones too): the node exists, its
// state expects an agent, the certificate is not revoked.
func (s *Server) verify(nodeID string, leaf *x509.Certificate) error {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	n, err := s.cfg.Nodes.GetNode(ctx, nodeID)
	if errors.Is(err, node.ErrNotFound) {
		return errors.New("unknown node")
	}
	if err != nil {
		return fmt.Errorf("looking the node up: %w", err)
	}
	if !n.ProvisionState.ExpectsAgent() {
		return fmt.Errorf("provision state %q does not expect an agent", n.ProvisionState)
	}
	revoked, err := s.cfg.Revocations.IsRevoked(ctx, leaf.SerialNumber.String())
	if err != nil {
		return fmt.Errorf("checking revocation: %w", err)
	}
	if revoked {
		return fmt.Errorf("certificate %s is revoked", leaf.SerialNumber)
	}
	return nil
}

// handle runs one connection: TLS handshake, then enrollment HTTP or an agent session.
func (s *Server) handle(conn net.Conn) {
	deadline := s.cfg.Now().Add(s.cfg.HandshakeTimeout)
	conn.SetDeadline(deadline)
	wait := time.NewTimer(time.Until(deadline))
	select {
	case s.slots <- struct{}{}:
		wait.Stop()
	case <-wait.C:
		s.log.Warn().Str("remote", conn.RemoteAddr().String()).Msg("agent connection dropped: no handshake slot in time")
		conn.Close()
		return
	case <-s.ctx.Done():
		wait.Stop()
		conn.Close()
		return
	}
	tc := tls.Server(conn, s.tlsCfg)
	err := tc.HandshakeContext(s.ctx)
	<-s.slots
	if err != nil {
		s.log.Warn().Err(err).Str("remote", conn.RemoteAddr().String()).Msg("agent connection refused")
		conn.Close()
		return
	}
	cs := tc.ConnectionState()
	if cs.NegotiatedProtocol != mtls.ALPNTunnel {
		if s.enroll == nil || !s.enroll.push(tc) {
			tc.Close()
			return
		}
		conn.SetDeadline(time.Time{})
		return
	}
	conn.SetDeadline(time.Time{})
	s.serveSession(tc, cs)
}

// BootParams mints an enrollment token for node and returns the kernel command-line
// parameters of its agent: ferrum.controller, ferrum.fingerprint, ferrum.token. The result
// holds a secret: do not log it.
func (s *Server) BootParams(ctx context.Context, nodeID string) (string, error) {
	if s.cfg.MintToken == nil {
		return "", errors.New("agentlink: no token minter configured")
	}
	tok, err := s.cfg.MintToken(nodeID)
	if err != nil {
		return "", err
	}
	s.status.update(node.AgentLink{NodeUUID: nodeID, TokenIssuedAt: s.cfg.Now().UTC()})
	return fmt.Sprintf("ferrum.controller=%s ferrum.fingerprint=%s ferrum.token=%s", s.cfg.AdvertiseAddr, s.cfg.Fingerprint, tok), nil
}

// RecordEnrolled records a certificate issued to node (the enrollment handler's hook).
func (s *Server) RecordEnrolled(nodeID string, leaf *x509.Certificate) {
	s.status.update(node.AgentLink{NodeUUID: nodeID, EnrolledAt: s.cfg.Now().UTC(),
		CertSerial: leaf.SerialNumber.String(), CertNotAfter: leaf.NotAfter.UTC()})
}

// sweep checks open sessions again every SweepInterval: a node that left the agent states or
// a certificate revoked since the handshake closes its session.
func (s *Server) sweep() {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		for _, se := range s.list() {
			if err := s.verify(se.Node, se.leaf); err != nil && s.ctx.Err() == nil {
				s.log.Warn().Err(err).Str("node_id", se.Node).Msg("closing agent session")
				se.ys.Close()
			}
		}
	}
}

// markAllDisconnected closes, in the records, the sessions a previous run left open.
func (s *Server) markAllDisconnected() {
	if s.cfg.Recorder == nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if err := s.cfg.Recorder.CloseAgentLinks(ctx, s.cfg.Now().UTC()); err != nil {
		s.log.Warn().Err(err).Msg("closing stale agent link records failed")
	}
}
