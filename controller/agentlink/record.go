package agentlink

import (
	"bytes"
	"context"
	stdlog "log"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/node"
)

// recorder batches agent link updates and writes them every interval: heartbeats of thousands
// of agents become one transaction, not one each.
type recorder struct {
	r        Recorder
	interval time.Duration
	log      zerolog.Logger

	mu      sync.Mutex
	pending map[string]*node.AgentLink
}

func newRecorder(r Recorder, interval time.Duration, log zerolog.Logger) *recorder {
	return &recorder{r: r, interval: interval, log: log, pending: map[string]*node.AgentLink{}}
}

// update queues u, merged with what is queued for the same node.
func (r *recorder) update(u node.AgentLink) {
	if r.r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pending[u.NodeUUID]
	if p == nil {
		p = &node.AgentLink{NodeUUID: u.NodeUUID}
		r.pending[u.NodeUUID] = p
	}
	p.Merge(u)
}

func (r *recorder) seen(nodeID string, at time.Time) {
	r.update(node.AgentLink{NodeUUID: nodeID, LastSeenAt: at})
}

// run flushes every interval until ctx ends, then once more.
func (r *recorder) run(ctx context.Context) {
	if r.r == nil {
		return
	}
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.flush()
			return
		case <-t.C:
			r.flush()
		}
	}
}

func (r *recorder) flush() {
	r.mu.Lock()
	if len(r.pending) == 0 {
		r.mu.Unlock()
		return
	}
	batch := make([]node.AgentLink, 0, len(r.pending))
	for _, p := range r.pending {
		batch = append(batch, *p)
	}
	r.pending = map[string]*node.AgentLink{}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.r.UpdateAgentLinks(ctx, batch); err != nil {
		r.log.Error().Err(err).Int("links", len(batch)).Msg("recording agent links failed")
	}
}

// chanListener hands TLS connections that chose enrollment to the HTTP server.
type chanListener struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// zlWriter turns log lines of other libraries (yamux, net/http) into zerolog warnings.
type zlWriter struct{ l zerolog.Logger }

func (w zlWriter) Write(p []byte) (int, error) {
	w.l.Warn().Msg(string(bytes.TrimSpace(p)))
	return len(p), nil
}

func stdLogger(l zerolog.Logger, component string) *stdlog.Logger {
	return stdlog.New(zlWriter{l.With().Str("component", component).Logger()}, "", 0)
}
