// Package conductor is the controller's engine: exclusive node locks, a bounded worker pool
// running async tasks, the provision state machine applied to stored nodes, crash recovery and
// the periodic guards (wait-state timeouts, lock renewal, conductor heartbeat, power sync and
// power failure recovery), and, with several controllers on one database, membership, the
// hash ring that decides which conductor runs a node's periodic work, and take-over of a dead
// conductor's nodes (cluster.go).
//
// It imports controller/node and declares the ports it needs (Store, HardwareType, Notifier)
// in ports.go. controller/api drives it; adapters implement its ports. It never imports api,
// store/* or drivers.
package conductor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/node"
)

// Config configures a Conductor. Zero durations and counts take the defaults in brackets.
type Config struct {
	Store          Store
	Hostname       string // the lock owner and conductor name
	ConductorGroup string
	HardwareTypes  []HardwareType
	Notifier       Notifier // nil: power changes are not published
	Agents         Agents   // nil: no agent tunnels
	Log            zerolog.Logger

	// PowerEvents records every power change of a node with an instance in the store's
	// outbox (Store.SaveNodeWithEvent), in the transaction that saves the new state, for the
	// Notifier to deliver (Nova's power-update). Off: nothing is recorded.
	PowerEvents bool

	Workers           int           // [100] concurrent async tasks
	LockTimeout       time.Duration // [60s] a reservation's lifetime; renewed every third of it
	LockRetries       int           // extra attempts on a locked node (Ironic's API-side retries; it uses 3)
	LockRetryInterval time.Duration // [1s]

	CheckInterval          time.Duration // [60s] wait-state timeout checks
	DeployCallbackTimeout  time.Duration // [30m]
	CleanCallbackTimeout   time.Duration // [30m]
	InspectWaitTimeout     time.Duration // [30m]
	RescueCallbackTimeout  time.Duration // [30m]
	ServiceCallbackTimeout time.Duration // [30m]
	HeartbeatInterval      time.Duration // [10s] conductor row refresh
	ShutdownTimeout        time.Duration // [30s] Close waits this long for tasks, then cancels them

	// HeartbeatTimeout [60s; more than HeartbeatInterval]: a conductor whose row is older is
	// dead, and the others take its nodes over (see cluster.go).
	HeartbeatTimeout time.Duration

	// Power sync (Ironic's _sync_power_states): every PowerSyncInterval [60s; negative: off]
	// the reads of one pass are spread over half the interval, PowerSyncWorkers [64] at a time,
	// nodes whose last sync failed in a slow lane of PowerSyncSlowWorkers [64] (they mostly wait
	// out timeouts, which costs no CPU). After PowerSyncMaxRetries [3; negative: 0] failed reads
	// or mismatches in a row a node goes into maintenance with fault "power failure". On a
	// mismatch the hardware is driven back to the recorded state (Ironic's
	// force_power_state_during_sync) unless PowerSyncAcceptHardwareState, which records the
	// hardware's state instead.
	PowerSyncInterval            time.Duration
	PowerSyncWorkers             int
	PowerSyncSlowWorkers         int
	PowerSyncMaxRetries          int
	PowerSyncAcceptHardwareState bool
	// A read still running after PowerSyncDetachAfter [100ms; negative: never] no longer holds
	// its worker: it finishes on its own, at most PowerSyncMaxDetached [1024] at a time.
	PowerSyncDetachAfter time.Duration
	PowerSyncMaxDetached int
	// PowerFailureRecoveryInterval [300s; negative: off]: how often nodes in maintenance for a
	// power failure are checked and, if their BMC answers, taken out of maintenance.
	PowerFailureRecoveryInterval time.Duration

	DisableAutomatedClean  bool   // nodes without automated_clean skip cleaning on provide/undeploy
	AllowDeletingAvailable bool   // Ironic's [conductor]allow_deleting_available_nodes
	DefaultResourceClass   string // given to nodes created without one

	Now func() time.Time // [time.Now]
}

func (c *Config) validate() error {
	if c.Store == nil {
		return errors.New("conductor: config: Store is required")
	}
	if c.Hostname == "" {
		return errors.New("conductor: config: Hostname is required")
	}
	if len(c.HardwareTypes) == 0 {
		return errors.New("conductor: config: at least one hardware type is required")
	}
	seen := map[string]bool{}
	for _, h := range c.HardwareTypes {
		if seen[h.Name()] {
			return fmt.Errorf("conductor: config: hardware type %q registered twice", h.Name())
		}
		seen[h.Name()] = true
		for _, t := range node.InterfaceTypes {
			if len(h.Supported()[t]) == 0 {
				return fmt.Errorf("conductor: config: hardware type %q has no %s interface", h.Name(), t)
			}
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Workers <= 0 {
		c.Workers = 100
	}
	if c.LockRetries < 0 {
		c.LockRetries = 0
	}
	def(&c.LockTimeout, 60*time.Second)
	def(&c.LockRetryInterval, time.Second)
	def(&c.CheckInterval, 60*time.Second)
	def(&c.DeployCallbackTimeout, 30*time.Minute)
	def(&c.CleanCallbackTimeout, 30*time.Minute)
	def(&c.InspectWaitTimeout, 30*time.Minute)
	def(&c.RescueCallbackTimeout, 30*time.Minute)
	def(&c.ServiceCallbackTimeout, 30*time.Minute)
	def(&c.HeartbeatInterval, 10*time.Second)
	def(&c.ShutdownTimeout, 30*time.Second)
	def(&c.HeartbeatTimeout, max(60*time.Second, 3*c.HeartbeatInterval))
	if c.HeartbeatTimeout <= c.HeartbeatInterval {
		return fmt.Errorf("conductor: config: HeartbeatTimeout %s must be longer than HeartbeatInterval %s", c.HeartbeatTimeout, c.HeartbeatInterval)
	}
	if c.PowerSyncInterval == 0 {
		c.PowerSyncInterval = 60 * time.Second
	}
	if c.PowerFailureRecoveryInterval == 0 {
		c.PowerFailureRecoveryInterval = 300 * time.Second
	}
	if c.PowerSyncWorkers <= 0 {
		c.PowerSyncWorkers = 64
	}
	if c.PowerSyncSlowWorkers <= 0 {
		c.PowerSyncSlowWorkers = 64
	}
	if c.PowerSyncDetachAfter == 0 {
		c.PowerSyncDetachAfter = 100 * time.Millisecond
	}
	if c.PowerSyncMaxDetached <= 0 {
		c.PowerSyncMaxDetached = 1024
	}
	switch {
	case c.PowerSyncMaxRetries == 0:
		c.PowerSyncMaxRetries = 3
	case c.PowerSyncMaxRetries < 0:
		c.PowerSyncMaxRetries = 0
	}
	if c.Notifier == nil {
		c.Notifier = nopNotifier{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Conductor runs tasks on nodes. Create with New, then Start; Close stops it.
type Conductor struct {
	cfg   Config
	store Store
	host  string
	log   zerolog.Logger
	hw    map[string]HardwareType

	// The worker pool: sem bounds concurrent tasks, tasks tracks them for Close.
	sem       chan struct{}
	tasks     sync.WaitGroup
	taskCtx   context.Context
	cancelAll context.CancelFunc
	mu        sync.Mutex // guards closed
	closed    bool

	periodics sync.WaitGroup
	stopCtx   context.Context
	stop      context.CancelFunc

	stats struct{ started, failed, rejected atomic.Int64 }

	members        atomic.Pointer[members] // the live conductors and hash rings, from the last heartbeat
	lastOrphanScan time.Time               // owned by the heartbeat periodic
	beatMu         sync.Mutex
	beat           time.Time // the last successful heartbeat (monotonic clock)

	syncMu      sync.Mutex // one power sync pass at a time
	syncCountMu sync.Mutex
	syncCount   map[string]int // consecutive failed syncs per node UUID (Ironic keeps it in memory too)
	detached    chan struct{}  // slots for sync reads left to finish on their own
}

// New validates cfg and returns a Conductor that has not started its periodic tasks yet.
func New(cfg Config) (*Conductor, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Conductor{
		cfg:   cfg,
		store: cfg.Store,
		host:  cfg.Hostname,
		log:   cfg.Log.With().Str("component", "conductor").Logger(),
		hw:    map[string]HardwareType{},
		sem:   make(chan struct{}, cfg.Workers),

		syncCount: map[string]int{},
		detached:  make(chan struct{}, cfg.PowerSyncMaxDetached),
	}
	for _, h := range cfg.HardwareTypes {
		c.hw[h.Name()] = h
	}
	c.taskCtx, c.cancelAll = context.WithCancel(context.Background())
	c.stopCtx, c.stop = context.WithCancel(context.Background())
	return c, nil
}

// Hostname is the name this conductor registers and locks nodes with.
func (c *Conductor) Hostname() string { return c.host }

// Start recovers from a previous crash of this host (stale locks released, nodes left in
// transient states failed), registers the conductor and starts the periodic tasks.
func (c *Conductor) Start(ctx context.Context) error {
	if err := c.recover(ctx); err != nil {
		return fmt.Errorf("conductor: recover: %w", err)
	}
	if err := c.register(ctx); err != nil {
		return fmt.Errorf("conductor: register: %w", err)
	}
	m, dead, err := c.refreshMembership(ctx)
	if err != nil {
		return fmt.Errorf("conductor: %w", err)
	}
	if len(m.hosts) > 1 || len(dead) > 0 {
		c.log.Info().Strs("alive", m.hosts).Strs("dead", dead).Msg("joined the conductors; nodes rebalanced")
		c.takeOver(ctx, dead)
	}
	c.every(c.cfg.LockTimeout/3, c.renewLocks)
	c.every(c.cfg.HeartbeatInterval, c.heartbeat)
	c.every(c.cfg.CheckInterval, c.checkWaitTimeouts)
	if c.cfg.PowerSyncInterval > 0 {
		c.every(c.cfg.PowerSyncInterval, func(ctx context.Context) {
			st, err := c.syncPowerStates(ctx, c.cfg.PowerSyncInterval/2)
			if err != nil && ctx.Err() == nil {
				c.log.Error().Err(err).Msg("power sync failed")
			}
			c.log.Debug().Int("nodes", st.Nodes).Int("failed", st.Failed).Int("forced", st.Forced).
				Int("recorded", st.Recorded).Int("maintenance", st.Maintenance).Dur("took", st.Duration).Msg("power sync pass")
		})
	}
	if c.cfg.PowerFailureRecoveryInterval > 0 {
		c.every(c.cfg.PowerFailureRecoveryInterval, c.RecoverPowerFailures)
	}
	c.log.Info().Str("host", c.host).Int("workers", c.cfg.Workers).Msg("conductor started")
	return nil
}

// Close refuses new tasks, waits up to ShutdownTimeout for running ones (then cancels them),
// stops the periodic tasks, and marks the conductor offline. Locks are released by the tasks.
func (c *Conductor) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()

	done := make(chan struct{})
	go func() { c.tasks.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(c.cfg.ShutdownTimeout):
		c.log.Warn().Msg("tasks still running at shutdown; cancelling them")
		c.cancelAll()
		<-done
	}
	c.stop()
	c.periodics.Wait()
	c.cancelAll()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.store.UnregisterConductor(ctx, c.host); err != nil && !errors.Is(err, node.ErrNotFound) {
		return fmt.Errorf("conductor: unregister: %w", err)
	}
	c.log.Info().Msg("conductor stopped")
	return nil
}

// Stats are counters for /metrics.
type Stats struct {
	Workers, Busy             int
	Started, Failed, Rejected int64
}

// Stats returns the worker pool's current figures.
func (c *Conductor) Stats() Stats {
	return Stats{Workers: cap(c.sem), Busy: len(c.sem), Started: c.stats.started.Load(),
		Failed: c.stats.failed.Load(), Rejected: c.stats.rejected.Load()}
}

func (c *Conductor) register(ctx context.Context) error {
	names := make([]string, 0, len(c.hw))
	for n := range c.hw {
		names = append(names, n)
	}
	slices.Sort(names)
	start := time.Now()
	err := c.store.RegisterConductor(ctx, &node.Conductor{Hostname: c.host,
		ConductorGroup: c.cfg.ConductorGroup, Drivers: names, Online: true})
	if err == nil {
		c.beatMu.Lock()
		c.beat = start
		c.beatMu.Unlock()
	}
	return err
}

// every runs f every d until Close; runs are never concurrent with each other.
func (c *Conductor) every(d time.Duration, f func(ctx context.Context)) {
	c.periodics.Add(1)
	go func() {
		defer c.periodics.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-c.stopCtx.Done():
				return
			case <-t.C:
				f(c.stopCtx)
			}
		}
	}()
}

func (c *Conductor) renewLocks(ctx context.Context) {
	if _, err := c.store.RenewReservations(ctx, c.host, c.cfg.Now().Add(c.cfg.LockTimeout)); err != nil {
		c.log.Error().Err(err).Msg("renewing node reservations failed")
	}
}

// spawn runs job in the pool if a worker is free. The job receives a context cancelled only
// when shutdown gives up waiting. It reports false when the pool is full or closing.
func (c *Conductor) spawn(job func(ctx context.Context)) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	select {
	case c.sem <- struct{}{}:
	default:
		c.stats.rejected.Add(1)
		return false
	}
	c.tasks.Add(1)
	c.stats.started.Add(1)
	go func() {
		defer c.tasks.Done()
		defer func() { <-c.sem }()
		job(c.taskCtx)
	}()
	return true
}

// lock takes the node's exclusive reservation, retrying like Ironic's API does on NodeLocked.
func (c *Conductor) lock(ctx context.Context, ident string) (*node.Node, error) {
	for attempt := 0; ; attempt++ {
		n, err := c.store.ReserveNode(ctx, ident, c.host, c.cfg.Now().Add(c.cfg.LockTimeout))
		if err == nil {
			n.Normalize()
			return n, nil
		}
		var le *node.LockedError
		if !errors.As(err, &le) || attempt >= c.cfg.LockRetries {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(c.cfg.LockRetryInterval):
		}
	}
}

// unlock releases the reservation; it never fails the caller (an expired lock is harmless).
func (c *Conductor) unlock(uuid string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.store.ReleaseNode(ctx, uuid, c.host); err != nil {
		c.log.Error().Err(err).Str("node_id", uuid).Msg("releasing node reservation failed")
	}
}

// save writes n under this conductor's reservation.
func (c *Conductor) save(ctx context.Context, n *node.Node) error {
	if err := c.store.SaveNode(ctx, n, c.host); err != nil {
		return fmt.Errorf("save node %s: %w", n.UUID, err)
	}
	return nil
}

// savePowerChange saves a locked node whose power state became state and publishes the
// change: Ironic sends Nova power on and power off, and only for nodes with an instance. The
// outbox row is written with the node, so a crash never loses it.
func (c *Conductor) savePowerChange(ctx context.Context, n *node.Node, state string) error {
	if !c.cfg.PowerEvents || n.InstanceUUID == "" || (state != node.PowerOn && state != node.PowerOff) {
		if err := c.save(ctx, n); err != nil {
			return err
		}
	} else {
		ev := &node.PowerEvent{NodeUUID: n.UUID, InstanceUUID: n.InstanceUUID, PowerState: state}
		if err := c.store.SaveNodeWithEvent(ctx, n, c.host, ev); err != nil {
			return fmt.Errorf("save node %s: %w", n.UUID, err)
		}
	}
	c.cfg.Notifier.PowerChanged(ctx, n, state)
	return nil
}

// driver builds the interfaces of n's hardware type.
func (c *Conductor) driver(n *node.Node) (*Driver, error) {
	h, ok := c.hw[n.Driver]
	if !ok {
		return nil, noHostForDriver(n.Driver, n.ConductorGroup)
	}
	d, err := h.Driver(n)
	if err != nil {
		return nil, fmt.Errorf("driver %s for node %s: %w", n.Driver, n.UUID, err)
	}
	return d, nil
}

func noHostForDriver(driver, group string) error {
	return node.Errorf(node.ErrInvalid, "No valid host was found. Reason: No conductor service registered which supports driver %s for conductor group %q.", driver, group)
}
