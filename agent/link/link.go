// Package link is the agent's side of its tunnel to the controller: enroll with the boot
// token, dial home over mutual TLS with backoff and jitter, keep one yamux session up forever,
// answer the controller's commands through agent/runner, send heartbeats, renew the client
// certificate over the tunnel, and deliver the results of commands that outlived a dropped
// link once it is back.
//
// Imported by cmd/ferrum-agent only (and tests, benchmarks). It imports shared/* and
// agent/runner, never controller/ or certs/.
package link

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/agent/runner"
	"github.com/ferrumhq/ferrum/shared/mtls"
	"github.com/ferrumhq/ferrum/shared/proto"
	"github.com/ferrumhq/ferrum/shared/tunnel"
)

// Runner runs commands; *runner.Runner implements it.
type Runner interface {
	Start(cmd proto.Command, progress func(proto.Progress)) (*runner.Job, *proto.Error)
	Cancel(id string) bool
	Running() *proto.Running
}

// Config configures an Agent. Zero durations take the defaults in brackets.
type Config struct {
	// Controller is the controller's agent address, HOST:PORT (kernel parameter
	// ferrum.controller).
	Controller string
	// Fingerprint is the SHA-256 of the PKI's root (ferrum.fingerprint): the only trust anchor.
	Fingerprint string
	// Token is the one-time enrollment token (ferrum.token). A secret: never logged.
	Token string
	// Certificate skips enrollment (benchmarks and tests that issue certificates directly).
	Certificate *tls.Certificate

	Runner       Runner
	AgentVersion string
	BootID       string // [random]
	// ProtocolVersion is the highest protocol version spoken [proto.Version]; tests lower it
	// to play an older agent.
	ProtocolVersion int

	Tunnel      tunnel.Config
	MinBackoff  time.Duration // [1s] first reconnect waits a random time below this
	MaxBackoff  time.Duration // [30s]
	DialTimeout time.Duration // [30s] TCP, TLS and hello (a controller in a reconnect storm queues handshakes); also each enrollment request
	// RenewAt is the fraction of the certificate's lifetime after which it is renewed [2/3].
	RenewAt float64

	// OnConnect, if set, is called after each successful hello.
	OnConnect func(proto.HelloAck)
	Log       zerolog.Logger
	Now       func() time.Time
}

func (c *Config) checkAndSetDefaults() error {
	switch {
	case c.Controller == "":
		return errors.New("link: Controller is required")
	case c.Runner == nil:
		return errors.New("link: Runner is required")
	case c.Certificate == nil && c.Token == "":
		return errors.New("link: Token (or Certificate) is required")
	case c.Fingerprint == "":
		return errors.New("link: Fingerprint is required")
	}
	if _, _, err := net.SplitHostPort(c.Controller); err != nil {
		return fmt.Errorf("link: Controller %q: %w", c.Controller, err)
	}
	if c.ProtocolVersion == 0 {
		c.ProtocolVersion = proto.Version
	}
	if c.ProtocolVersion < proto.MinVersion || c.ProtocolVersion > proto.Version {
		return fmt.Errorf("link: ProtocolVersion %d outside %d..%d", c.ProtocolVersion, proto.MinVersion, proto.Version)
	}
	if c.BootID == "" {
		var b [8]byte
		for i := range b {
			b[i] = byte(rand.Uint32())
		}
		c.BootID = hex.EncodeToString(b[:])
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(30*time.Second, c.MinBackoff)
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 30 * time.Second
	}
	if c.RenewAt <= 0 || c.RenewAt >= 1 {
		c.RenewAt = 2.0 / 3
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Agent keeps the link to the controller. Create with New, then Run.
type Agent struct {
	cfg  Config
	log  zerolog.Logger
	node string

	cert   atomic.Pointer[tls.Certificate]
	certAt atomic.Int64 // when cert was obtained (Unix ns): issuers backdate NotBefore
	tlsCfg atomic.Pointer[tls.Config]
	redial atomic.Bool // reconnect at once (after a renewal)
	seq    atomic.Uint64

	mu      sync.Mutex
	sess    *session      // current session, nil between sessions
	changed chan struct{} // closed and replaced whenever sess changes
	outbox  map[string]*outJob

	runCtx     context.Context // Run's context: deliverers stop with it
	deliverers sync.WaitGroup
}

// session is one established yamux session and what its hello negotiated.
type session struct {
	ys       *yamux.Session
	version  int
	features []string
	ack      proto.HelloAck
}

func (s *session) has(feature string) bool { return slices.Contains(s.features, feature) }

// outJob is an accepted mutating command whose result the controller has not acknowledged.
type outJob struct {
	job      *runner.Job
	progress chan proto.Progress // newest report only
}

// New validates cfg. The node comes from the token (or the certificate).
func New(cfg Config) (*Agent, error) {
	if err := cfg.checkAndSetDefaults(); err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, changed: make(chan struct{}), outbox: map[string]*outJob{}}
	if cfg.Certificate != nil {
		leaf := cfg.Certificate.Leaf
		if leaf == nil {
			var err error
			if leaf, err = x509.ParseCertificate(cfg.Certificate.Certificate[0]); err != nil {
				return nil, fmt.Errorf("link: certificate: %w", err)
			}
			cfg.Certificate.Leaf = leaf
		}
		id, err := mtls.NodeID(leaf)
		if err != nil {
			return nil, fmt.Errorf("link: certificate: %w", err)
		}
		a.node = id
		a.setCert(cfg.Certificate)
	} else {
		claims, err := ParseToken(cfg.Token)
		if err != nil {
			return nil, err
		}
		a.node = claims.Subject
	}
	a.log = cfg.Log.With().Str("component", "link").Str("node_id", a.node).Logger()
	a.resetTLS()
	return a, nil
}

// Node is the node this agent runs on.
func (a *Agent) Node() string { return a.node }

// Certificate is the current client certificate, or nil before enrollment.
func (a *Agent) Certificate() *x509.Certificate {
	if c := a.cert.Load(); c != nil {
		return c.Leaf
	}
	return nil
}

// Connected reports whether a session is up.
func (a *Agent) Connected() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sess != nil
}

// resetTLS builds a fresh tunnel TLS configuration (and session cache: a resumed session would
// present the certificate of the handshake it resumes).
func (a *Agent) resetTLS() {
	c := mtls.NewAgentTLS(mtls.AgentConfig{Fingerprint: a.cfg.Fingerprint, Now: a.cfg.Now,
		GetCertificate: func() (*tls.Certificate, error) {
			if c := a.cert.Load(); c != nil {
				// Only the leaf: the controller knows the CA's intermediates, and every byte
				// of the handshake is kept per connection on its side.
				return &tls.Certificate{Certificate: c.Certificate[:1], PrivateKey: c.PrivateKey, Leaf: c.Leaf}, nil
			}
			return nil, errors.New("link: no client certificate yet")
		}})
	c.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	a.tlsCfg.Store(c)
}

// Run keeps the link up until ctx ends: enroll if needed, connect, serve, reconnect after a
// backoff with jitter, forever. It returns once every goroutine it started has ended.
func (a *Agent) Run(ctx context.Context) error {
	a.runCtx = ctx
	defer a.deliverers.Wait()
	attempt := 0
	for ctx.Err() == nil {
		err := a.ensureCert(ctx)
		if err == nil {
			var up bool
			up, err = a.connect(ctx)
			if up {
				attempt = 0
			}
		}
		if ctx.Err() != nil {
			break
		}
		if a.redial.Swap(false) {
			continue
		}
		d := a.backoff(attempt)
		attempt++
		ev := a.log.Warn()
		var ee *EnrollError
		if errors.As(err, &ee) {
			ev = a.log.Error() // the token is bad or spent: only a new boot helps
		}
		ev.Err(err).Dur("retry_in", d).Msg("link down")
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	return nil
}

// backoff is a random time in [0, min(MaxBackoff, MinBackoff·2^attempt)) ("full jitter"), so
// a fleet that lost its controller at once does not come back at once.
func (a *Agent) backoff(attempt int) time.Duration {
	d := a.cfg.MaxBackoff
	if attempt < 20 {
		d = min(d, a.cfg.MinBackoff<<attempt)
	}
	return time.Duration(rand.Int64N(int64(d))) + time.Millisecond
}

// ensureCert enrolls when there is no certificate or it has expired.
func (a *Agent) ensureCert(ctx context.Context) error {
	if c := a.cert.Load(); c != nil && a.cfg.Now().Before(c.Leaf.NotAfter) {
		return nil
	}
	if a.cfg.Token == "" {
		return errors.New("link: certificate expired and no token to enroll again")
	}
	a.log.Info().Str("controller", a.cfg.Controller).Msg("enrolling")
	c, err := Enroll(ctx, EnrollConfig{Controller: a.cfg.Controller, Fingerprint: a.cfg.Fingerprint,
		Token: a.cfg.Token, Timeout: a.cfg.DialTimeout, Now: a.cfg.Now})
	if err != nil {
		return err
	}
	a.setCert(c)
	a.log.Info().Str("serial", c.Leaf.SerialNumber.String()).Time("not_after", c.Leaf.NotAfter).Msg("enrolled")
	return nil
}

// connect dials, says hello and serves the session until it ends. up reports whether the
// hello succeeded.
func (a *Agent) connect(ctx context.Context) (up bool, err error) {
	dctx, cancel := context.WithTimeout(ctx, a.cfg.DialTimeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{KeepAlive: 30 * time.Second}, Config: a.tlsCfg.Load()}
	conn, err := d.DialContext(dctx, "tcp", a.cfg.Controller)
	if err != nil {
		return false, fmt.Errorf("link: dial %s: %w", a.cfg.Controller, err)
	}
	ys, err := tunnel.Client(conn, a.tunnelConfig())
	if err != nil {
		conn.Close()
		return false, err
	}
	defer ys.Close()
	v := a.cfg.ProtocolVersion
	hello := proto.Hello{Version: v, MinVersion: proto.MinVersion, Features: proto.Features(v),
		AgentVersion: a.cfg.AgentVersion, BootID: a.cfg.BootID}
	if slices.Contains(hello.Features, proto.FeatureResume) {
		hello.Pending = a.pending()
	}
	ack, err := tunnel.Hello(dctx, ys, hello)
	if err != nil {
		return false, err
	}
	s := &session{ys: ys, version: ack.Version, features: ack.Features, ack: ack}
	a.setSession(s)
	defer a.setSession(nil)
	a.log.Info().Int("protocol", ack.Version).Strs("features", ack.Features).Msg("connected")
	if a.cfg.OnConnect != nil {
		a.cfg.OnConnect(ack)
	}

	sctx, scancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.accept(sctx, s, &wg) }()
	go func() { defer wg.Done(); a.tick(sctx, s) }()
	select {
	case <-ys.CloseChan():
		err = errors.New("link: session closed")
	case <-ctx.Done():
	}
	scancel()
	ys.Close()
	wg.Wait()
	return true, err
}

func (a *Agent) tunnelConfig() tunnel.Config {
	c := a.cfg.Tunnel
	if c.Log == nil {
		c.Log = yamuxLog{a.log}
	}
	return c
}

// yamuxLog writes yamux's log lines into zerolog.
type yamuxLog struct{ l zerolog.Logger }

func (w yamuxLog) Write(p []byte) (int, error) {
	w.l.Warn().Str("component", "yamux").Msg(string(trimNL(p)))
	return len(p), nil
}

func trimNL(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

func (a *Agent) setSession(s *session) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sess = s
	close(a.changed)
	a.changed = make(chan struct{})
}

// waitSession returns the current session, waiting for one; nil when ctx ends.
func (a *Agent) waitSession(ctx context.Context, not *session) *session {
	for {
		a.mu.Lock()
		s, ch := a.sess, a.changed
		a.mu.Unlock()
		if s != nil && s != not {
			return s
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		}
	}
}

// pending lists the commands for the hello: running, or done and not acknowledged.
func (a *Agent) pending() []proto.Pending {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []proto.Pending
	for id, o := range a.outbox {
		done := false
		select {
		case <-o.job.Done():
			done = true
		default:
		}
		out = append(out, proto.Pending{ID: id, Name: o.job.Name, Done: done})
	}
	slices.SortFunc(out, func(x, y proto.Pending) int {
		if x.ID < y.ID {
			return -1
		}
		return 1
	})
	return out
}

// accept serves the streams the controller opens.
func (a *Agent) accept(ctx context.Context, s *session, wg *sync.WaitGroup) {
	for {
		st, err := s.ys.AcceptStreamWithContext(ctx)
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer st.Close()
			a.serve(ctx, s, st)
		}()
	}
}

const streamTimeout = 30 * time.Second

func (a *Agent) serve(ctx context.Context, s *session, st *yamux.Stream) {
	st.SetReadDeadline(time.Now().Add(streamTimeout))
	env, err := proto.Read(st)
	if err != nil {
		a.log.Debug().Err(err).Msg("reading a controller stream failed")
		return
	}
	st.SetReadDeadline(time.Time{})
	switch env.Type {
	case proto.TypeCommand:
		var cmd proto.Command
		if err := env.Decode(&cmd); err != nil {
			a.write(st, proto.Result{ID: "invalid", Error: proto.Errorf(proto.CodeBadRequest, "%v", err)})
			return
		}
		a.command(ctx, s, st, cmd)
	case proto.TypeCancel:
		var c proto.Cancel
		if err := env.Decode(&c); err != nil {
			return
		}
		found := a.cfg.Runner.Cancel(c.ID)
		a.log.Info().Str("command_id", c.ID).Bool("running", found).Msg("cancel requested")
		a.write(st, proto.Ack{ID: c.ID})
	default:
		a.log.Warn().Str("type", env.Type).Msg("unexpected stream from the controller")
	}
}

func (a *Agent) write(st *yamux.Stream, m proto.Message) bool {
	st.SetWriteDeadline(time.Now().Add(streamTimeout))
	if err := proto.Write(st, m); err != nil {
		a.log.Debug().Err(err).Str("type", m.MessageType()).Msg("write to the controller failed")
		return false
	}
	return true
}

// command runs cmd. A refusal or a non-mutating command's result goes back on the command's
// stream; a mutating command is acknowledged there and reported on a stream of its own,
// which survives reconnects (deliver).
func (a *Agent) command(ctx context.Context, s *session, st *yamux.Stream, cmd proto.Command) {
	if f := proto.CommandFeature(cmd.Name); f != "" && !s.has(f) {
		a.write(st, proto.Result{ID: cmd.ID, Error: proto.Errorf(proto.CodeUnsupported, "%s needs feature %q", cmd.Name, f)})
		return
	}
	o := &outJob{progress: make(chan proto.Progress, 1)}
	job, perr := a.cfg.Runner.Start(cmd, o.report)
	if perr != nil {
		a.write(st, proto.Result{ID: cmd.ID, Error: perr})
		return
	}
	if !job.Mutating {
		select {
		case <-job.Done():
			a.write(st, job.Result())
		case <-ctx.Done():
			a.cfg.Runner.Cancel(job.ID)
		}
		return
	}
	a.mu.Lock()
	_, known := a.outbox[job.ID]
	if !known {
		o.job = job
		a.outbox[job.ID] = o
	}
	a.mu.Unlock()
	if !known {
		a.deliverers.Add(1)
		go func() {
			defer a.deliverers.Done()
			a.deliver(o)
		}()
	}
	a.write(st, proto.Ack{ID: job.ID})
}

// report keeps only the newest progress report.
func (o *outJob) report(p proto.Progress) {
	for {
		select {
		case o.progress <- p:
			return
		default:
		}
		select {
		case <-o.progress:
		default:
		}
	}
}

// deliver sends a mutating command's progress and result on a stream it opens, on whatever
// session is up, until the controller acknowledges the result. It outlives sessions: this is
// how a command survives a dropped link. It gives up only when Run ends.
func (a *Agent) deliver(o *outJob) {
	defer func() {
		a.mu.Lock()
		delete(a.outbox, o.job.ID)
		a.mu.Unlock()
	}()
	ctx := a.runCtx
	for {
		s := a.waitSession(ctx, nil)
		if s == nil {
			return
		}
		if a.report(ctx, s, o) {
			return
		}
		// Try again on the next session, or on this one after a pause if it stays up.
		a.mu.Lock()
		ch := a.changed
		a.mu.Unlock()
		t := time.NewTimer(5 * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-ch:
		case <-s.ys.CloseChan():
		case <-t.C:
		}
		t.Stop()
	}
}

// report streams o on s; true once the controller acknowledged the result.
func (a *Agent) report(ctx context.Context, s *session, o *outJob) bool {
	st, err := s.ys.OpenStream()
	if err != nil {
		return false
	}
	defer st.Close()
	for {
		select {
		case p := <-o.progress:
			if !a.write(st, p) {
				return false
			}
		case <-o.job.Done():
			if !a.write(st, o.job.Result()) {
				return false
			}
			st.SetReadDeadline(time.Now().Add(streamTimeout))
			var ack proto.Ack
			if err := proto.ReadAs(st, &ack); err != nil || ack.ID != o.job.ID {
				return false
			}
			a.log.Info().Str("command_id", o.job.ID).Msg("result delivered")
			return true
		case <-s.ys.CloseChan():
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// tick sends heartbeats and renews the certificate when due.
func (a *Agent) tick(ctx context.Context, s *session) {
	every := time.Duration(s.ack.HeartbeatMs) * time.Millisecond
	if every <= 0 {
		every = 30 * time.Second
	}
	hb := time.NewTicker(every)
	defer hb.Stop()
	renew := time.NewTimer(a.renewIn())
	defer renew.Stop()
	if !s.has(proto.FeatureRenew) {
		renew.Stop()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hb.C:
			a.heartbeat(s)
		case <-renew.C:
			if err := a.renew(ctx, s); err != nil {
				a.log.Warn().Err(err).Msg("certificate renewal failed")
				renew.Reset(min(time.Minute, max(time.Second, a.renewIn())))
				continue
			}
			// Reconnect with the new certificate: the controller closes a session when the
			// certificate it was opened with expires. Commands in flight resume.
			a.redial.Store(true)
			s.ys.Close()
			return
		}
	}
}

// setCert makes c the client certificate for the next connections.
func (a *Agent) setCert(c *tls.Certificate) {
	a.cert.Store(c)
	a.certAt.Store(a.cfg.Now().UnixNano())
	a.resetTLS()
}

// renewIn is the time until the certificate is due: RenewAt of the time between obtaining it
// and its expiry.
func (a *Agent) renewIn() time.Duration {
	c := a.cert.Load().Leaf
	from := time.Unix(0, a.certAt.Load())
	if c.NotBefore.After(from) {
		from = c.NotBefore
	}
	life := c.NotAfter.Sub(from)
	at := from.Add(time.Duration(float64(life) * a.cfg.RenewAt))
	// Jitter of ±5% of the lifetime spreads a fleet enrolled at the same time.
	at = at.Add(time.Duration((rand.Float64() - 0.5) * 0.1 * float64(life)))
	return max(at.Sub(a.cfg.Now()), time.Millisecond)
}

func (a *Agent) heartbeat(s *session) {
	st, err := s.ys.OpenStream()
	if err != nil {
		return
	}
	defer st.Close()
	hb := proto.Heartbeat{Time: a.cfg.Now().UTC(), Seq: a.seq.Add(1)}
	if r := a.cfg.Runner.Running(); r != nil {
		hb.Running = r.ID
	}
	a.write(st, hb)
}

// renew gets a certificate for a fresh key over the tunnel.
func (a *Agent) renew(ctx context.Context, s *session) error {
	key, csr, err := newKeyAndCSR(a.node)
	if err != nil {
		return err
	}
	st, err := s.ys.OpenStream()
	if err != nil {
		return fmt.Errorf("link: renew: %w", err)
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Now()) })
	defer stop()
	st.SetDeadline(time.Now().Add(streamTimeout))
	if err := proto.Write(st, proto.RenewRequest{CSR: string(csr)}); err != nil {
		return fmt.Errorf("link: renew: %w", err)
	}
	var resp proto.RenewResponse
	if err := proto.ReadAs(st, &resp); err != nil {
		return fmt.Errorf("link: renew: %w", err)
	}
	if resp.Error != nil {
		return fmt.Errorf("link: renew: %w", resp.Error)
	}
	c, err := keyPair(key, a.node, resp.Chain)
	if err != nil {
		return err
	}
	a.setCert(c)
	a.log.Info().Str("serial", c.Leaf.SerialNumber.String()).Time("not_after", c.Leaf.NotAfter).Msg("certificate renewed")
	return nil
}

// BootID is the random ID of this agent process, sent in the hello.
func (a *Agent) BootID() string { return a.cfg.BootID }
