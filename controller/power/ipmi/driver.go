// Package ipmi is Ferrum's IPMI power and management driver on github.com/bougou/go-ipmi, and
// the `ipmi` hardware type that uses it: Ironic's ipmitool driver_info fields and rules, power
// on/off/reboot/soft power off/soft reboot with polling until the state converges, and boot
// device set/get.
//
// One session per BMC is kept open between calls and reopened when the BMC drops it; calls to
// one BMC are serialised (a go-ipmi client is not goroutine-safe) and bounded by a timeout. A
// per-BMC circuit breaker answers at once for a BMC that keeps failing, and a background probe
// closes it again when the BMC answers, so a dead BMC never holds a caller.
//
// The driver knows BMCs, not nodes' states: the conductor decides what to do with what it
// reads. Passwords never reach a log line or an error message. Only controller/cmd wiring,
// benchmarks and tests import this package.
package ipmi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/node"
)

// Config tunes the driver. Zero values take the defaults in brackets.
type Config struct {
	Log zerolog.Logger

	// ExchangeTimeout is how long one request waits for its reply [1s]; Attempts is how many
	// times a request is sent before giving up [2].
	ExchangeTimeout time.Duration
	Attempts        int
	// CallTimeout bounds one operation (a status read, a control command, a boot device
	// change), waiting for the BMC's lock and reconnecting included [15s].
	CallTimeout time.Duration

	// FailureThreshold consecutive failed calls open a BMC's circuit [2]. While it is open calls
	// fail at once; a background probe tries the BMC after ProbeInterval [10s], doubling the
	// pause after each failed probe up to ProbeMax [5m]. ProbeWorkers bounds concurrent probes [16].
	FailureThreshold int
	ProbeInterval    time.Duration
	ProbeMax         time.Duration
	ProbeWorkers     int
	// IdleTimeout: a BMC no caller asked for that long has its session closed and is
	// forgotten [10m].
	IdleTimeout time.Duration

	// PowerTimeout is how long a power change may take to show in the BMC's status (Ironic's
	// power_state_change_timeout) [60s]; SoftPowerOffTimeout the same for soft power off and the
	// off half of a soft reboot (soft_power_off_timeout) [600s]. A timeout given with the
	// request replaces both.
	PowerTimeout        time.Duration
	SoftPowerOffTimeout time.Duration
	// PollInterval is the first pause between status reads while waiting; it doubles up to 5 s [1s].
	PollInterval time.Duration

	// DefaultBootMode is used when a node asks for none: "uefi" or "bios" [uefi].
	DefaultBootMode string

	Now func() time.Time // [time.Now]
}

func (c *Config) setDefaults() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ExchangeTimeout, time.Second)
	def(&c.CallTimeout, 15*time.Second)
	def(&c.ProbeInterval, 10*time.Second)
	def(&c.ProbeMax, 5*time.Minute)
	def(&c.IdleTimeout, 10*time.Minute)
	def(&c.PowerTimeout, 60*time.Second)
	def(&c.SoftPowerOffTimeout, 600*time.Second)
	def(&c.PollInterval, time.Second)
	if c.Attempts <= 0 {
		c.Attempts = 2
	}
	if c.FailureThreshold <= 0 {
		c.FailureThreshold = 2
	}
	if c.ProbeWorkers <= 0 {
		c.ProbeWorkers = 16
	}
	switch c.DefaultBootMode {
	case "":
		c.DefaultBootMode = "uefi"
	case "uefi", "bios":
	default:
		return fmt.Errorf("ipmi: config: default boot mode %q: want uefi or bios", c.DefaultBootMode)
	}
	if c.IdleTimeout < 2*c.CallTimeout {
		c.IdleTimeout = 2 * c.CallTimeout // a caller between get and acquire must not be swept
	}
	if c.ProbeMax < c.ProbeInterval {
		c.ProbeMax = c.ProbeInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Driver talks IPMI to BMCs. Create with New; Close ends every session.
type Driver struct {
	cfg Config
	log zerolog.Logger

	mu     sync.Mutex // guards bmcs and closed
	bmcs   map[sessionKey]*bmc
	closed bool

	stop context.CancelFunc
	bg   sync.WaitGroup // the maintenance loop and its probes
}

// New validates cfg and starts the background loop that probes failing BMCs and closes idle
// sessions.
func New(cfg Config) (*Driver, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	d := &Driver{cfg: cfg, log: cfg.Log.With().Str("component", "ipmi").Logger(), bmcs: map[sessionKey]*bmc{}}
	ctx, cancel := context.WithCancel(context.Background())
	d.stop = cancel
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		d.maintain(ctx)
	}()
	return d, nil
}

// Close stops the background work, then closes every session (politely, in parallel).
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	all := make([]*bmc, 0, len(d.bmcs))
	for _, b := range d.bmcs {
		all = append(all, b)
	}
	d.bmcs = map[sessionKey]*bmc{}
	d.mu.Unlock()

	d.stop()
	d.bg.Wait()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, b := range all {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), d.cfg.CallTimeout)
			defer cancel()
			if b.acquire(ctx) != nil {
				return
			}
			defer b.release()
			if b.cl != nil {
				d.closeClient(b.cl, !b.isOpen())
				b.cl = nil
			}
		}()
	}
	wg.Wait()
	return nil
}

func (b *bmc) isOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}

// Stats counts the BMCs the driver knows.
type Stats struct {
	BMCs, Sessions, Unreachable int
}

// Stats reports how many BMCs are known, have a session, and have an open circuit.
func (d *Driver) Stats() Stats {
	d.mu.Lock()
	all := make([]*bmc, 0, len(d.bmcs))
	for _, b := range d.bmcs {
		all = append(all, b)
	}
	d.mu.Unlock()
	s := Stats{BMCs: len(all)}
	for _, b := range all {
		if b.isOpen() {
			s.Unreachable++
		}
		if b.tryAcquire() {
			if b.cl != nil {
				s.Sessions++
			}
			b.release()
		} else {
			s.Sessions++ // in use: it has (or is opening) one
		}
	}
	return s
}

// get returns the BMC for info, creating it on first use.
func (d *Driver) get(info Info) (*bmc, error) {
	k := info.key()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	b := d.bmcs[k]
	if b == nil {
		b = newBMC(info)
		d.bmcs[k] = b
	}
	b.lastUse.Store(d.cfg.Now().UnixNano())
	return b, nil
}

// do runs one operation on the BMC described by info, under its lock and the call timeout,
// and feeds the outcome to its breaker.
func (d *Driver) do(ctx context.Context, info Info, what string, fn func(context.Context, *client.Client) error) error {
	b, err := d.get(info)
	if err != nil {
		return err
	}
	if err := b.blocked(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
	defer cancel()
	if err := b.acquire(ctx); err != nil {
		return err
	}
	defer b.release()
	if err := b.blocked(); err != nil { // it may have opened while we waited
		return err
	}
	err = d.runSafely(ctx, b, what, fn)
	if b.record(err, d.cfg.Now(), d.cfg.FailureThreshold, d.cfg.ProbeInterval) {
		d.log.Warn().Str("bmc", info.endpoint()).Err(err).Msg("BMC unreachable; failing calls fast until a probe succeeds")
	}
	return err
}

// runSafely is run with a panic in go-ipmi (say, on a reply it cannot parse) turned into an
// error: a broken BMC must not take the controller down. The session is dropped.
func (d *Driver) runSafely(ctx context.Context, b *bmc, what string, fn func(context.Context, *client.Client) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if b.cl != nil {
				d.closeClient(b.cl, false)
				b.cl = nil
			}
			err = &badReply{fmt.Errorf("BMC %s %s: the IPMI client failed on the BMC's reply: %v", b.info.endpoint(), what, r)}
			d.log.Error().Str("bmc", b.info.endpoint()).Str("op", what).Interface("panic", r).Msg("IPMI client panicked")
		}
	}()
	return d.run(ctx, b, what, fn)
}

// maintain probes BMCs with an open circuit when due and forgets idle ones, until ctx ends.
func (d *Driver) maintain(ctx context.Context) {
	tick := time.NewTicker(min(time.Second, d.cfg.ProbeInterval))
	defer tick.Stop()
	sem := make(chan struct{}, d.cfg.ProbeWorkers)
	var probes sync.WaitGroup
	defer probes.Wait()
	lastSweep := d.cfg.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := d.cfg.Now()
		sweep := now.Sub(lastSweep) >= d.cfg.IdleTimeout/4
		var due, idle []*bmc
		d.mu.Lock()
		for k, b := range d.bmcs {
			if b.probeDue(now) {
				due = append(due, b)
			}
			if sweep && now.UnixNano()-b.lastUse.Load() > int64(d.cfg.IdleTimeout) && b.tryAcquire() {
				delete(d.bmcs, k) // b stays locked: nobody uses it again
				idle = append(idle, b)
			}
		}
		d.mu.Unlock()
		if sweep {
			lastSweep = now
		}
		for _, b := range idle {
			if b.cl != nil {
				d.closeClient(b.cl, !b.isOpen())
				b.cl = nil
			}
			d.log.Debug().Str("bmc", b.info.endpoint()).Msg("idle BMC session closed")
		}
		for _, b := range due {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			probes.Add(1)
			go func() {
				defer probes.Done()
				defer func() { <-sem }()
				d.probe(ctx, b)
			}()
		}
	}
}

// probe tries a BMC whose circuit is open: a fresh session and a status read.
func (d *Driver) probe(ctx context.Context, b *bmc) {
	if !b.tryAcquire() {
		return
	}
	defer b.release()
	if !b.probeDue(d.cfg.Now()) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
	defer cancel()
	if b.cl != nil {
		d.closeClient(b.cl, false)
		b.cl = nil
	}
	err := d.runSafely(ctx, b, "power status", func(ctx context.Context, cl *client.Client) error {
		_, err := cl.GetChassisStatus(ctx)
		return err
	})
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return // shutting down
	}
	b.probed(err, d.cfg.Now(), d.cfg.ProbeInterval, d.cfg.ProbeMax)
	if err == nil {
		d.log.Info().Str("bmc", b.info.endpoint()).Msg("BMC answers again")
	} else {
		d.log.Debug().Str("bmc", b.info.endpoint()).Err(err).Msg("BMC probe failed")
	}
}

// jitter spreads d over [0.75d, 1.25d).
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
}

// status reads the chassis power state.
func (d *Driver) status(ctx context.Context, info Info) (string, error) {
	var on bool
	err := d.do(ctx, info, "power status", func(ctx context.Context, cl *client.Client) error {
		st, err := cl.GetChassisStatus(ctx)
		if err == nil {
			on = st.PowerIsOn
		}
		return err
	})
	if err != nil {
		return "", err
	}
	if on {
		return node.PowerOn, nil
	}
	return node.PowerOff, nil
}

// control sends one chassis control command.
func (d *Driver) control(ctx context.Context, info Info, c chassis.ChassisControl, what string) error {
	return d.do(ctx, info, what, func(ctx context.Context, cl *client.Client) error {
		_, err := cl.ChassisControl(ctx, c)
		return err
	})
}

// waitFor polls the power status until it is want or timeout passes (Ironic's
// node_wait_for_power_state, with a first read at once). Failed reads are retried until then.
func (d *Driver) waitFor(ctx context.Context, info Info, want string, timeout time.Duration) error {
	deadline := d.cfg.Now().Add(timeout)
	pause := d.cfg.PollInterval
	var last string
	var lastErr error
	for {
		st, err := d.status(ctx, info)
		if err == nil && st == want {
			return nil
		}
		last, lastErr = st, err
		if errors.Is(err, ErrClosed) || ctx.Err() != nil {
			break
		}
		if d.cfg.Now().Add(pause).After(deadline) {
			break
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for %s: %w", want, ctx.Err())
		case <-t.C:
		}
		pause = min(pause*2, 5*time.Second)
	}
	if lastErr != nil {
		return fmt.Errorf("Failed to set node power state to %s: no confirmation within %s: %w", want, timeout, lastErr)
	}
	return fmt.Errorf("Failed to set node power state to %s: the BMC still reports %s after %s", want, last, timeout)
}

// bootMode is Ironic's get_boot_mode for a node: instance_info capabilities (secure boot
// implies uefi), then properties capabilities, then driver_internal_info deploy_boot_mode,
// then the configured default.
func (d *Driver) bootMode(n *node.Node) string {
	inst := capabilities(n.InstanceInfo["capabilities"])
	if inst["secure_boot"] == "true" {
		return "uefi"
	}
	for _, m := range []string{inst["boot_mode"], pyStrOr(n.InstanceInfo["deploy_boot_mode"]),
		capabilities(n.Properties["capabilities"])["boot_mode"], pyStrOr(n.DriverInternalInfo["deploy_boot_mode"])} {
		if m == "uefi" || m == "bios" {
			return m
		}
	}
	return d.cfg.DefaultBootMode
}

func pyStrOr(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

// capabilities reads Ironic's capabilities: "k1:v1,k2:v2" or a JSON object.
func capabilities(v any) map[string]string {
	out := map[string]string{}
	switch c := v.(type) {
	case map[string]any:
		for k, v := range c {
			out[k] = pyStrOr(v)
		}
	case string:
		if strings.HasPrefix(strings.TrimSpace(c), "{") {
			var m map[string]any
			if json.Unmarshal([]byte(c), &m) == nil {
				return capabilities(m)
			}
		}
		for _, kv := range splitNonEmpty(c, ',') {
			k, v, ok := cut(kv, ':')
			if ok {
				out[k] = v
			}
		}
	}
	return out
}

func splitNonEmpty(s string, sep byte) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != sep {
			i++
		}
		if i > 0 {
			out = append(out, s[:i])
		}
		if i == len(s) {
			break
		}
		s = s[i+1:]
	}
	return out
}

func cut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// validDevice reports whether device is one the management interface sets.
func validDevice(device string) bool { return slices.Contains(SupportedBootDevices, device) }

// setBootFlags sends the boot flags, after disabling the 60 s boot flag timeout if asked
// (Ironic's raw "0x00 0x08 0x03 0x08").
func (d *Driver) setBootFlags(ctx context.Context, info Info, f bootFlags) error {
	return d.do(ctx, info, "set boot device", func(ctx context.Context, cl *client.Client) error {
		if info.DisableBootTimeout {
			if _, err := cl.SetSystemBootOptionsParam(ctx, &chassis.SetSystemBootOptionsParamRequest{
				ParamSelector: types.BootOptionParamSelector_BMCBootFlagValidBitClear, ParamData: []byte{0x08}}); err != nil {
				return fmt.Errorf("disable boot flag timeout: %w", err)
			}
		}
		_, err := cl.SetSystemBootOptionsParam(ctx, &chassis.SetSystemBootOptionsParamRequest{
			ParamSelector: types.BootOptionParamSelector_BootFlags, ParamData: f.encode()})
		return err
	})
}

// getBootFlags reads the boot flags parameter back.
func (d *Driver) getBootFlags(ctx context.Context, info Info) (bootFlags, error) {
	var f bootFlags
	err := d.do(ctx, info, "get boot device", func(ctx context.Context, cl *client.Client) error {
		r, err := cl.GetSystemBootOptionsParam(ctx, types.BootOptionParamSelector_BootFlags, 0, 0)
		if err != nil {
			return err
		}
		if f, err = decodeBootFlags(byte(r.ParamSelector), r.ParamData); err != nil {
			return &badReply{err}
		}
		return nil
	})
	return f, err
}
