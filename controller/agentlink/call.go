package agentlink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/ferrumhq/ferrum/shared/proto"
)

// call is a command in flight.
type call struct {
	id, node, name string
	progress       func(proto.Progress)
	result         chan proto.Result // buffered: the report stream never blocks on it
}

// Run sends cmd to the agent of node and waits for its result, calling progress (if not nil)
// for each progress report. The error is nil when the agent answered — the answer may itself
// be a failure (Result.Error) — and otherwise a *proto.Error (wrapped) with one of:
//
//   - CodeNotConnected: the node has no session;
//   - CodeUnsupported: the agent's protocol lacks the command's feature;
//   - CodeLinkLost: the link dropped and the outcome is unknown (the agent did not come back
//     within ResumeTimeout, or cannot resume commands);
//   - CodeLost: the agent came back without the command (it restarted);
//   - CodeCancelled: ctx ended; a running command is cancelled on the agent (best effort).
//
// An empty cmd.ID is filled with a random one.
func (s *Server) Run(ctx context.Context, nodeID string, cmd proto.Command, progress func(proto.Progress)) (proto.Result, error) {
	if cmd.ID == "" {
		var b [12]byte
		rand.Read(b[:])
		cmd.ID = hex.EncodeToString(b[:])
	}
	if err := cmd.Validate(); err != nil {
		return proto.Result{}, fmt.Errorf("agentlink: %w", proto.Errorf(proto.CodeBadRequest, "%v", err))
	}
	se := s.current(nodeID)
	if se == nil {
		return proto.Result{}, fmt.Errorf("agentlink: %w", proto.Errorf(proto.CodeNotConnected, "node %s has no agent connected", nodeID))
	}
	if f := proto.CommandFeature(cmd.Name); f != "" && !se.has(f) {
		return proto.Result{}, fmt.Errorf("agentlink: %w", proto.Errorf(proto.CodeUnsupported,
			"the agent of node %s (protocol %d) lacks %q for %s", nodeID, se.version, f, cmd.Name))
	}
	if progress == nil {
		progress = func(proto.Progress) {}
	}
	c := &call{id: cmd.ID, node: nodeID, name: cmd.Name, progress: progress, result: make(chan proto.Result, 1)}
	s.mu.Lock()
	if _, dup := s.calls[cmd.ID]; dup {
		s.mu.Unlock()
		return proto.Result{}, fmt.Errorf("agentlink: %w", proto.Errorf(proto.CodeBadRequest, "command %s already in flight", cmd.ID))
	}
	s.calls[cmd.ID] = c
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.calls, cmd.ID)
		s.mu.Unlock()
	}()
	log := s.log.With().Str("node_id", nodeID).Str("command_id", cmd.ID).Str("command", cmd.Name).Logger()

	res, accepted, err := s.send(ctx, se, cmd)
	switch {
	case err == nil && !accepted:
		return res, nil
	case ctx.Err() != nil:
		s.cancelOnAgent(nodeID, cmd.ID)
		return proto.Result{}, fmt.Errorf("agentlink: %w", proto.Errorf(proto.CodeCancelled, "%v", ctx.Err()))
	case err != nil:
		// No answer. If the session is still up the stream itself failed; otherwise the link
		// dropped and the agent may or may not have the command: only its next hello tells.
		t := time.NewTimer(time.Second) // the session notices a dropped link a little later
		select {
		case <-se.ys.CloseChan():
			t.Stop()
		case <-t.C:
			return proto.Result{}, fmt.Errorf("agentlink: %w", proto.Errorf(proto.CodeInternal, "command stream to node %s failed: %v", nodeID, err))
		}
		log.Warn().Err(err).Msg("link dropped before the agent answered")
	}
	for {
		if accepted {
			select {
			case r := <-c.result:
				return r, nil
			case <-ctx.Done():
				s.cancelOnAgent(nodeID, cmd.ID)
				return proto.Result{}, fmt.Errorf("agentlink: %w", proto.Errorf(proto.CodeCancelled, "%v", ctx.Err()))
			case <-se.ys.CloseChan():
			}
		}
		// The link is gone (or never answered). Resume when the agent can list its commands.
		select {
		case r := <-c.result:
			return r, nil
		default:
		}
		if !se.has(proto.FeatureResume) {
			return proto.Result{}, fmt.Errorf("agentlink: %w", proto.Errorf(proto.CodeLinkLost,
				"link to node %s dropped during %s; the agent cannot resume commands", nodeID, cmd.Name))
		}
		log.Info().Dur("timeout", s.cfg.ResumeTimeout).Msg("link dropped during a command; waiting for the agent")
		wctx, cancel := context.WithTimeout(ctx, s.cfg.ResumeTimeout)
		next := s.waitSession(wctx, nodeID, se)
		cancel()
		select {
		case r := <-c.result:
			return r, nil
		default:
		}
		switch {
		case next == nil && ctx.Err() != nil:
			return proto.Result{}, fmt.Errorf("agentlink: %w", proto.Errorf(proto.CodeCancelled, "%v", ctx.Err()))
		case next == nil:
			return proto.Result{}, fmt.Errorf("agentlink: %w", proto.Errorf(proto.CodeLinkLost,
				"the agent of node %s did not come back within %s", nodeID, s.cfg.ResumeTimeout))
		case !next.pending(cmd.ID) && accepted:
			return proto.Result{}, fmt.Errorf("agentlink: %w", proto.Errorf(proto.CodeLost,
				"the agent of node %s came back (boot %s) without command %s", nodeID, next.bootID, cmd.ID))
		case !next.pending(cmd.ID):
			return proto.Result{}, fmt.Errorf("agentlink: %w", proto.Errorf(proto.CodeLinkLost,
				"link to node %s dropped before the agent took command %s", nodeID, cmd.ID))
		}
		log.Info().Msg("agent came back with the command; waiting for its result")
		se, accepted = next, true
	}
}

// send opens a command stream and reads the agent's first answer: a result (done or refused)
// or an ack (a mutating command runs; its report comes on a stream the agent opens).
func (s *Server) send(ctx context.Context, se *session, cmd proto.Command) (res proto.Result, accepted bool, err error) {
	st, err := se.ys.OpenStream()
	if err != nil {
		return proto.Result{}, false, err
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Now()) })
	defer stop()
	if err := proto.Write(st, cmd); err != nil {
		return proto.Result{}, false, err
	}
	env, err := proto.Read(st)
	if err != nil {
		return proto.Result{}, false, err
	}
	switch env.Type {
	case proto.TypeAck:
		var a proto.Ack
		return proto.Result{}, true, env.Decode(&a)
	case proto.TypeResult:
		err := env.Decode(&res)
		return res, false, err
	}
	return proto.Result{}, false, fmt.Errorf("agentlink: %w: %q answering a command", proto.ErrUnexpected, env.Type)
}

// cancelOnAgent asks the agent to cancel a command, without waiting long.
func (s *Server) cancelOnAgent(nodeID, id string) {
	se := s.current(nodeID)
	if se == nil {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1) // under mu and before closed: never concurrent with Serve's final Wait
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		st, err := se.ys.OpenStream()
		if err != nil {
			return
		}
		defer st.Close()
		st.SetDeadline(time.Now().Add(5 * time.Second))
		if err := proto.Write(st, proto.Cancel{ID: id}); err != nil {
			return
		}
		var a proto.Ack
		_ = proto.ReadAs(st, &a)
	}()
}

// serveStream handles a stream the agent opened.
func (s *Server) serveStream(se *session, st *yamux.Stream) {
	st.SetReadDeadline(time.Now().Add(30 * time.Second))
	env, err := proto.Read(st)
	if err != nil {
		return
	}
	se.lastSeen.Store(s.cfg.Now().UnixNano())
	switch env.Type {
	case proto.TypeHeartbeat:
		var hb proto.Heartbeat
		if env.Decode(&hb) == nil {
			s.status.seen(se.Node, s.cfg.Now().UTC())
		}
	case proto.TypeEvent:
		var ev proto.Event
		if env.Decode(&ev) == nil {
			s.log.Info().Str("node_id", se.Node).Str("kind", ev.Kind).Str("message", ev.Message).Msg("agent event")
		}
	case proto.TypeProgress, proto.TypeResult:
		st.SetReadDeadline(time.Time{})
		s.report(se, st, env)
	case proto.TypeRenewRequest:
		var req proto.RenewRequest
		if err := env.Decode(&req); err != nil {
			return
		}
		resp := s.renew(se, req)
		st.SetWriteDeadline(time.Now().Add(30 * time.Second))
		proto.Write(st, resp)
	default:
		s.log.Warn().Str("node_id", se.Node).Str("type", env.Type).Msg("unexpected stream from an agent")
	}
}

// report reads a command's report stream: progress frames, then the result, which is
// acknowledged (also for a command nobody waits for any more, so the agent forgets it).
func (s *Server) report(se *session, st *yamux.Stream, env proto.Envelope) {
	for {
		switch env.Type {
		case proto.TypeProgress:
			var p proto.Progress
			if err := env.Decode(&p); err != nil {
				return
			}
			if c := s.lookup(se.Node, p.ID); c != nil {
				c.progress(p)
			}
		case proto.TypeResult:
			var r proto.Result
			if err := env.Decode(&r); err != nil {
				return
			}
			if c := s.lookup(se.Node, r.ID); c != nil {
				select {
				case c.result <- r:
				default:
				}
			} else {
				s.log.Info().Str("node_id", se.Node).Str("command_id", r.ID).Msg("result of a command nobody waits for")
			}
			st.SetWriteDeadline(time.Now().Add(30 * time.Second))
			proto.Write(st, proto.Ack{ID: r.ID})
			return
		default:
			return
		}
		var err error
		if env, err = proto.Read(st); err != nil {
			if !errors.Is(err, yamux.ErrStreamClosed) {
				s.log.Debug().Err(err).Str("node_id", se.Node).Msg("report stream ended")
			}
			return
		}
	}
}

// lookup finds a call of node (an agent reports only its own node's commands).
func (s *Server) lookup(nodeID, id string) *call {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.calls[id]; c != nil && c.node == nodeID {
		return c
	}
	return nil
}
