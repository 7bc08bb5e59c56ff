package ipmi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/types"
)

// Sentinel errors, for errors.Is on what a BMC call returned.
var (
	// ErrNoAnswer: the BMC did not reply in time (dead, unreachable, overloaded or too slow).
	ErrNoAnswer = errors.New("no answer from the BMC")
	// ErrAuth: the BMC refused the user name, password or privilege level.
	ErrAuth = errors.New("the BMC refused the credentials")
	// ErrUnreachable: the BMC's circuit is open after repeated failures; the call was not tried.
	ErrUnreachable = errors.New("BMC unreachable")
	// ErrClosed: the driver is shut down.
	ErrClosed = errors.New("ipmi driver closed")
)

// UnreachableError is returned without touching the network while a BMC's circuit is open.
type UnreachableError struct {
	Endpoint  string
	Failures  int       // consecutive failed calls and probes
	Since     time.Time // when the circuit opened
	NextProbe time.Time // when the background probe tries again
	Err       error     // the last failure
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("BMC %s unreachable since %s after %d consecutive failures (next check at %s); last error: %v",
		e.Endpoint, e.Since.UTC().Format(time.RFC3339), e.Failures, e.NextProbe.UTC().Format(time.RFC3339), e.Err)
}

func (e *UnreachableError) Unwrap() []error { return []error{ErrUnreachable, e.Err} }

// sessionKey identifies one BMC session: endpoint, credentials and session parameters.
type sessionKey struct {
	addr        string
	port        int
	user, pass  string
	priv, proto string
	suite       int
}

// bmc is one BMC: at most one open session, used by one caller at a time (a go-ipmi client is
// not goroutine-safe), and the circuit breaker that keeps callers away while it is dead.
type bmc struct {
	info Info
	// sem is the call lock; a channel so that waiting for it respects the caller's context.
	sem chan struct{}
	cl  *client.Client // guarded by sem; nil without a session
	// lastUse is when a caller last asked for this BMC (unix ns), for idle eviction.
	lastUse atomic.Int64

	mu         sync.Mutex // guards the breaker fields
	failures   int
	probeFails int
	open       bool
	openSince  time.Time
	nextProbe  time.Time
	lastErr    error
}

func newBMC(info Info) *bmc {
	return &bmc{info: info, sem: make(chan struct{}, 1)}
}

// acquire takes the call lock or gives up when ctx ends.
func (b *bmc) acquire(ctx context.Context) error {
	select {
	case b.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("BMC %s busy with another call: %w", b.info.endpoint(), ctx.Err())
	}
}

func (b *bmc) tryAcquire() bool {
	select {
	case b.sem <- struct{}{}:
		return true
	default:
		return false
	}
}

func (b *bmc) release() { <-b.sem }

// blocked returns an *UnreachableError while the circuit is open.
func (b *bmc) blocked() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return nil
	}
	return &UnreachableError{Endpoint: b.info.endpoint(), Failures: b.failures, Since: b.openSince,
		NextProbe: b.nextProbe, Err: b.lastErr}
}

// record updates the breaker after a call: a failure to talk to the BMC counts, an answer
// (even an IPMI error code) resets it. It reports whether the circuit just opened.
func (b *bmc) record(err error, now time.Time, threshold int, firstProbe time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil || answered(err) {
		b.failures, b.open, b.lastErr = 0, false, nil
		return false
	}
	if errors.Is(err, ErrClosed) || errors.Is(err, context.Canceled) {
		return false // our side gave up; says nothing about the BMC
	}
	b.failures++
	b.lastErr = err
	if b.open || b.failures < threshold {
		return false
	}
	b.open, b.openSince, b.probeFails = true, now, 0
	b.nextProbe = now.Add(jitter(firstProbe))
	return true
}

// probed updates an open breaker after a background probe: success closes it, failure
// doubles the pause before the next probe, up to max.
func (b *bmc) probed(err error, now time.Time, first, max time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		b.failures, b.probeFails, b.open, b.lastErr = 0, 0, false, nil
		return
	}
	b.failures++
	b.probeFails++
	b.lastErr = err
	wait := first << min(b.probeFails, 20)
	if wait <= 0 || wait > max {
		wait = max
	}
	b.nextProbe = now.Add(jitter(wait))
}

func (b *bmc) probeDue(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open && !now.Before(b.nextProbe)
}

// connect opens an RMCP+ (or IPMI 1.5) session.
func (d *Driver) connect(ctx context.Context, info Info) (*client.Client, error) {
	cl, err := client.NewClient(info.Address, info.Port, info.Username, info.Password)
	if err != nil {
		return nil, fmt.Errorf("BMC %s: %w", info.endpoint(), err)
	}
	intf := client.InterfaceLanplus
	if info.Protocol == "1.5" {
		intf = client.InterfaceLan
	}
	// Replies to the commands used here are under 100 bytes; go-ipmi allocates a receive
	// buffer of this size per exchange (4 KiB by default).
	cl.WithInterface(intf).WithTimeout(d.cfg.ExchangeTimeout).WithRetry(d.cfg.Attempts - 1).
		WithMaxPrivilegeLevel(privLevels[info.PrivLevel]).WithBufferSize(1024)
	if info.CipherSuite >= 0 {
		cl.WithCipherSuiteID(types.CipherSuiteID(info.CipherSuite))
	}
	if err := cl.Connect(ctx); err != nil {
		d.closeClient(cl, false) // a failed Connect leaves its socket open
		return nil, d.classify(info, "open session", err)
	}
	return cl, nil
}

// closeClient ends a session: politely (Close Session, bounded by a short timeout) when the
// BMC is answering, else only locally.
func (d *Driver) closeClient(cl *client.Client, polite bool) {
	ctx, cancel := context.WithTimeout(context.Background(), min(d.cfg.ExchangeTimeout, 500*time.Millisecond))
	if !polite {
		cancel() // go-ipmi then skips the exchange and only closes the socket
	}
	defer cancel()
	_ = cl.Close(ctx)
}

// run calls fn on the BMC's session, opening one if needed. A call that fails without an
// answer on a session opened earlier is retried once on a fresh session: BMCs drop idle
// sessions silently. Holds the call lock.
func (d *Driver) run(ctx context.Context, b *bmc, what string, fn func(context.Context, *client.Client) error) error {
	fresh := false
	if b.cl == nil {
		cl, err := d.connect(ctx, b.info)
		if err != nil {
			return err
		}
		b.cl, fresh = cl, true
	}
	err := fn(ctx, b.cl)
	if err == nil || answered(err) {
		return d.classify(b.info, what, err)
	}
	d.closeClient(b.cl, !isTimeout(err))
	b.cl = nil
	if fresh || ctx.Err() != nil {
		return d.classify(b.info, what, err)
	}
	d.log.Debug().Str("bmc", b.info.endpoint()).Err(err).Msg("kept session failed; reconnecting")
	cl, cerr := d.connect(ctx, b.info)
	if cerr != nil {
		return cerr
	}
	b.cl = cl
	if err = fn(ctx, cl); err != nil && !answered(err) {
		d.closeClient(cl, !isTimeout(err))
		b.cl = nil
	}
	return d.classify(b.info, what, err)
}

// answered reports whether err is the BMC's own reply (a completion code, or a reply we could
// not use): the BMC is alive and the session works.
func answered(err error) bool {
	var re *types.ResponseError
	var br *badReply
	return errors.As(err, &re) || errors.As(err, &br)
}

// badReply is a reply that arrived but made no sense.
type badReply struct{ err error }

func (e *badReply) Error() string { return e.err.Error() }
func (e *badReply) Unwrap() error { return e.err }

// isTimeout reports whether err means no reply came in time.
func isTimeout(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrNoAnswer) {
		return true
	}
	// go-ipmi's own "no datagram matched before deadline" is unexported.
	return strings.Contains(err.Error(), "before UDP read deadline") ||
		strings.Contains(err.Error(), "no datagram matched before deadline")
}

// classify turns a go-ipmi error into one that says what happened, wrapping ErrNoAnswer or
// ErrAuth where they apply (the original stays in the chain).
func (d *Driver) classify(info Info, what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNoAnswer) || errors.Is(err, ErrAuth) || errors.Is(err, ErrUnreachable) {
		return err
	}
	var rs *types.RmcpStatusError
	switch {
	case errors.Is(err, client.ErrRAKPAuthentication) || strings.Contains(err.Error(), client.ErrRAKPAuthentication.Error()):
		// go-ipmi's Connect formats the per-cipher-suite errors with %v: match the text too.
		return fmt.Errorf("BMC %s %s: %w (user %q: wrong password?)", info.endpoint(), what, ErrAuth, info.Username)
	case errors.As(err, &rs) && authStatus(rs.StatusCode()):
		return fmt.Errorf("BMC %s %s: %w (user %q, privilege %s: %v)", info.endpoint(), what, ErrAuth, info.Username, info.PrivLevel, rs)
	case authStatusText(err.Error()) != "":
		return fmt.Errorf("BMC %s %s: %w (user %q, privilege %s: %s)", info.endpoint(), what, ErrAuth, info.Username, info.PrivLevel, authStatusText(err.Error()))
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("BMC %s %s: %w", info.endpoint(), what, err)
	case isTimeout(err):
		return fmt.Errorf("BMC %s %s: %w within %s (%d attempts)", info.endpoint(), what, ErrNoAnswer,
			d.cfg.ExchangeTimeout, d.cfg.Attempts)
	case answered(err):
		return fmt.Errorf("BMC %s %s: %w", info.endpoint(), what, err)
	}
	return fmt.Errorf("BMC %s %s: %w", info.endpoint(), what, err)
}

// authStatus: RMCP+ status codes that mean the credentials or role were refused.
func authStatus(c types.RmcpStatusCode) bool {
	switch c {
	case types.RmcpStatusCodeInvalidRole, types.RmcpStatusCodeUnauthorizedRoleOfPriLevel,
		types.RmcpStatusCodeInvalidNameLength, types.RmcpStatusCodeUnauthorizedName,
		types.RmcpStatusCodeInvalidIntegrityCheckValue:
		return true
	}
	return false
}

// authStatusText finds an authentication RMCP+ status in an error's text ("RMCP+ status 0x0d:
// …"), for errors whose chain go-ipmi did not keep.
func authStatusText(msg string) string {
	for _, c := range []types.RmcpStatusCode{types.RmcpStatusCodeInvalidRole, types.RmcpStatusCodeUnauthorizedRoleOfPriLevel,
		types.RmcpStatusCodeInvalidNameLength, types.RmcpStatusCodeUnauthorizedName, types.RmcpStatusCodeInvalidIntegrityCheckValue} {
		if t := types.NewRmcpStatusError(c).Error(); strings.Contains(msg, t) {
			return t
		}
	}
	return ""
}
