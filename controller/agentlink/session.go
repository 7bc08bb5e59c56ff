package agentlink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/shared/mtls"
	"github.com/ferrumhq/ferrum/shared/proto"
	"github.com/ferrumhq/ferrum/shared/tunnel"
)

// session is one agent's open yamux session.
type session struct {
	Node        string
	ys          *yamux.Session
	leaf        *x509.Certificate
	hello       proto.Hello
	version     int
	features    []string
	connectedAt time.Time
	remote      string
	lastSeen    atomic.Int64 // Unix nanoseconds
}

func (se *session) has(feature string) bool { return slices.Contains(se.features, feature) }

func (se *session) pending(id string) bool {
	return slices.ContainsFunc(se.hello.Pending, func(p proto.Pending) bool { return p.ID == id })
}

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
		AgentVersion: se.hello.AgentVersion, BootID: se.hello.BootID, CertSerial: se.leaf.SerialNumber.String(),
		CertNotAfter: se.leaf.NotAfter, ConnectedAt: se.connectedAt, LastSeen: time.Unix(0, se.lastSeen.Load())}
}

// Connected reports whether node has an open session.
func (s *Server) Connected(nodeID string) bool { return s.current(nodeID) != nil }

func (s *Server) current(nodeID string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[nodeID]
}

// serveSession runs an authenticated tunnel connection: hello, registration (replacing the
// node's previous session), then the streams the agent opens, until the session ends.
func (s *Server) serveSession(tc *tls.Conn, cs tls.ConnectionState) {
	leaf := cs.PeerCertificates[0]
	nodeID, err := mtls.NodeID(leaf) // verified by VerifyConnection already
	if err != nil {
		tc.Close()
		return
	}
	log := s.log.With().Str("node_id", nodeID).Logger()
	ys, err := tunnel.Server(tc, s.tunnelConfig())
	if err != nil {
		tc.Close()
		return
	}
	defer ys.Close()
	hctx, cancel := context.WithTimeout(s.ctx, s.cfg.HandshakeTimeout)
	st, hello, err := tunnel.AcceptHello(hctx, ys)
	if err != nil {
		cancel()
		log.Warn().Err(err).Msg("agent sent no hello")
		return
	}
	ack := tunnel.Negotiate(hello, s.cfg.ProtocolVersion)
	ack.Node, ack.HeartbeatMs = nodeID, s.cfg.HeartbeatInterval.Milliseconds()
	st.SetWriteDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	defer cancel()
	if ack.Error != nil {
		proto.Write(st, ack)
		st.Close()
		log.Warn().Str("code", string(ack.Error.Code)).Str("error", ack.Error.Message).Msg("agent hello refused")
		return
	}
	// Register before answering: once the agent hears the ack, commands can reach it.
	now := s.cfg.Now()
	se := &session{Node: nodeID, ys: ys, leaf: leaf, hello: hello, version: ack.Version, features: ack.Features,
		connectedAt: now, remote: tc.RemoteAddr().String()}
	se.lastSeen.Store(now.UnixNano())
	if !s.register(se) {
		return
	}
	werr := proto.Write(st, ack)
	st.Close()
	if werr != nil {
		s.unregister(se)
		log.Warn().Err(werr).Msg("agent hello failed")
		return
	}
	// The certificate's expiry ends the session: TLS checked it only at the handshake.
	expiry := time.AfterFunc(leaf.NotAfter.Sub(now), func() {
		log.Info().Str("serial", leaf.SerialNumber.String()).Msg("agent certificate expired; closing its session")
		ys.Close()
	})
	defer expiry.Stop()
	s.status.update(node.AgentLink{NodeUUID: nodeID, ConnectedAt: now.UTC(), LastSeenAt: now.UTC(),
		CertSerial: leaf.SerialNumber.String(), CertNotAfter: leaf.NotAfter.UTC(), AgentVersion: hello.AgentVersion,
		BootID: hello.BootID, ProtocolVersion: ack.Version})
	log.Info().Int("protocol", ack.Version).Str("boot_id", hello.BootID).Str("remote", se.remote).
		Int("pending", len(hello.Pending)).Msg("agent connected")
	if s.cfg.OnConnect != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.cfg.OnConnect(s.ctx, nodeID)
		}()
	}

	for {
		st, err := ys.AcceptStream()
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
		s.status.update(node.AgentLink{NodeUUID: nodeID, DisconnectedAt: s.cfg.Now().UTC(),
			LastSeenAt: time.Unix(0, se.lastSeen.Load()).UTC()})
		log.Info().Msg("agent disconnected")
	}
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
