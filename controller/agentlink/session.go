package agentlink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/shared/mtls"
	"github.com/ferrumhq/ferrum/shared/proto"
	"github.com/ferrumhq/ferrum/shared/tunnel"
)

// session is one agent's open yamux session: what the controller keeps per idle agent, so
// kept small.
type session struct {
	Node         string
	ys           *yamux.Session
	leaf         *x509.Certificate
	version      int
	features     []string // shared between sessions
	pendingIDs   []string // commands the agent listed in its hello
	bootID       string
	agentVersion string
	connectedAt  time.Time
	remote       string
	resumed      bool         // the TLS session was resumed
	lastSeen     atomic.Int64 // Unix nanoseconds
}

func (se *session) has(feature string) bool { return slices.Contains(se.features, feature) }

func (se *session) pending(id string) bool { return slices.Contains(se.pendingIDs, id) }

// SessionInfo describes an open session.
type SessionInfo struct {
	Node            string
	Remote          string
	ProtocolVersion int
	Features        []string
	AgentVersion    string
	BootID          string
	CertSerial      string
	CertNotAfter    time.Time
	ConnectedAt     time.Time
	LastSeen        time.Time
	// Resumed: the session's TLS handshake resumed an earlier one (identity still checked).
	Resumed bool
}

// Sessions lists the open sessions.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SessionInfo, 0, len(s.sessions))
	for _, se := range s.sessions {
		out = append(out, se.info())
	}
	slices.SortFunc(out, func(a, b SessionInfo) int {
		if a.Node < b.Node {
			return -1
		}
		return 1
	})
	return out
}

func (s *Server) list() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*session, 0, len(s.sessions))
	for _, se := range s.sessions {
		out = append(out, se)
	}
	return out
}

func (se *session) info() SessionInfo {
	return SessionInfo{Node: se.Node, Remote: se.remote, ProtocolVersion: se.version, Features: se.features,
		AgentVersion: se.agentVersion, BootID: se.bootID, CertSerial: se.leaf.SerialNumber.String(),
		CertNotAfter: se.leaf.NotAfter, ConnectedAt: se.connectedAt, LastSeen: time.Unix(0, se.lastSeen.Load()),
		Resumed: se.resumed}
}

// Count is the number of open sessions.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Connected reports whether node has an open session.
func (s *Server) Connected(nodeID string) bool { return s.current(nodeID) != nil }

func (s *Server) current(nodeID string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[nodeID]
}

// serveSession runs an authenticated tunnel connection: hello and registration (replacing
// the node's previous session), then serve runs the session in a goroutine of its own, so the
// stack the handshake grew is not kept for the life of an idle session.
func (s *Server) serveSession(tc *tls.Conn, cs tls.ConnectionState) {
	leaf := cs.PeerCertificates[0]
	nodeID, err := mtls.NodeID(leaf) // verified by VerifyConnection already
	if err != nil {
		tc.Close()
		return
	}
	ys, err := tunnel.Server(tc, s.tunnelConfig())
	if err != nil {
		tc.Close()
		return
	}
	se, ok := s.hello(ys, nodeID, leaf, tc.RemoteAddr().String(), cs.DidResume)
	if !ok {
		ys.Close()
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.serve(se)
	}()
}

// hello answers the agent's hello and registers the session.
func (s *Server) hello(ys *yamux.Session, nodeID string, leaf *x509.Certificate, remote string, resumed bool) (*session, bool) {
	hctx, cancel := context.WithTimeout(s.ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	st, hello, err := tunnel.AcceptHello(hctx, ys)
	if err != nil {
		s.log.Warn().Err(err).Str("node_id", nodeID).Msg("agent sent no hello")
		return nil, false
	}
	defer st.Close()
	ack := tunnel.Negotiate(hello, s.cfg.ProtocolVersion)
	ack.Node, ack.HeartbeatMs = nodeID, s.cfg.HeartbeatInterval.Milliseconds()
	st.SetWriteDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	if ack.Error != nil {
		proto.Write(st, ack)
		s.log.Warn().Str("node_id", nodeID).Str("code", string(ack.Error.Code)).Str("error", ack.Error.Message).Msg("agent hello refused")
		return nil, false
	}
	// Register before answering: once the agent hears the ack, commands can reach it.
	now := s.cfg.Now()
	se := &session{Node: nodeID, ys: ys, leaf: leaf, version: ack.Version, features: s.features(ack.Features),
		pendingIDs: pendingIDs(hello.Pending), bootID: hello.BootID, agentVersion: hello.AgentVersion,
		connectedAt: now, remote: remote, resumed: resumed}
	se.lastSeen.Store(now.UnixNano())
	if !s.register(se) {
		return nil, false
	}
	if err := proto.Write(st, ack); err != nil {
		s.unregister(se)
		s.log.Warn().Err(err).Str("node_id", nodeID).Msg("agent hello failed")
		return nil, false
	}
	s.status.update(node.AgentLink{NodeUUID: nodeID, ConnectedAt: now.UTC(), LastSeenAt: now.UTC(),
		CertSerial: leaf.SerialNumber.String(), CertNotAfter: leaf.NotAfter.UTC(), AgentVersion: hello.AgentVersion,
		BootID: hello.BootID, ProtocolVersion: ack.Version})
	s.log.Info().Str("node_id", nodeID).Int("protocol", ack.Version).Str("boot_id", hello.BootID).Str("remote", remote).
		Int("pending", len(hello.Pending)).Bool("resumed", resumed).Msg("agent connected")
	return se, true
}

// serve accepts the streams the agent opens until the session ends.
func (s *Server) serve(se *session) {
	defer se.ys.Close()
	// The certificate's expiry ends the session: TLS checked it only at the handshake.
	expiry := time.AfterFunc(se.leaf.NotAfter.Sub(s.cfg.Now()), func() {
		s.log.Info().Str("node_id", se.Node).Str("serial", se.leaf.SerialNumber.String()).
			Msg("agent certificate expired; closing its session")
		se.ys.Close()
	})
	defer expiry.Stop()
	if s.cfg.OnConnect != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if st := s.cfg.OnConnect(s.ctx, se.Node); len(st) > 0 {
				s.status.update(node.AgentLink{NodeUUID: se.Node, Status: st})
			}
		}()
	}
	for {
		st, err := se.ys.AcceptStream()
		if err != nil {
			break
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer st.Close()
			s.serveStream(se, st)
		}()
	}
	if s.unregister(se) {
		s.status.update(node.AgentLink{NodeUUID: se.Node, DisconnectedAt: s.cfg.Now().UTC(),
			LastSeenAt: time.Unix(0, se.lastSeen.Load()).UTC()})
		s.log.Info().Str("node_id", se.Node).Msg("agent disconnected")
	}
}

// features returns a shared copy of a feature list (sessions of one version share it).
func (s *Server) features(fs []string) []string {
	key := strings.Join(fs, ",")
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.featureSets[key]; ok {
		return f
	}
	if s.featureSets == nil {
		s.featureSets = map[string][]string{}
	}
	s.featureSets[key] = fs
	return fs
}

func pendingIDs(ps []proto.Pending) []string {
	if len(ps) == 0 {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

func (s *Server) tunnelConfig() tunnel.Config {
	c := s.cfg.Tunnel
	if c.Log == nil {
		c.Log = zlWriter{s.log.With().Str("component", "yamux").Logger()}
	}
	return c
}

// register makes se the node's session, closing the one it replaces; false when the server
// is closing.
func (s *Server) register(se *session) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	old := s.sessions[se.Node]
	s.sessions[se.Node] = se
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if old != nil {
		s.log.Info().Str("node_id", se.Node).Msg("new agent session replaces the open one")
		old.ys.Close()
	}
	return true
}

// unregister removes se if it is still the node's session.
func (s *Server) unregister(se *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[se.Node] != se {
		return false
	}
	delete(s.sessions, se.Node)
	close(s.changed)
	s.changed = make(chan struct{})
	return true
}

// waitSession waits for node to have an open session other than old.
func (s *Server) waitSession(ctx context.Context, nodeID string, old *session) *session {
	for {
		s.mu.Lock()
		se, ch := s.sessions[nodeID], s.changed
		s.mu.Unlock()
		if se != nil && se != old {
			return se
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
		}
	}
}
