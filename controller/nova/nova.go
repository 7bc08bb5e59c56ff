// Package nova tells Nova of node power changes: it delivers the power event outbox that the
// conductor fills (node.PowerEvent rows, written with the node's new power state) as
// power-update external events (POST /v2.1/os-server-external-events, compute 2.76),
// authenticating with Keystone v3 through gophercloud and a clouds.yaml cloud.
//
// Unlike Ironic, which sends one event per call and only logs a failure, a Sender never loses
// an event: it retries with backoff on connection errors, 5xx, 401 (re-authenticating) and
// other transient answers; it batches the events of many nodes into one request and keeps
// each node's events in order (a node's next event waits until its previous one is final);
// Nova's per-event 404 (instance gone) and 422 (instance has no host) are final and recorded;
// a per-event 400 is recorded and logged with Nova's answer, as a bug.
//
// Only the controller's wiring (controller/cmd) imports this package; *Sender is the
// conductor's Notifier.
package nova

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/node"
)

// Outbox is the store's power event outbox (store/sqlite implements it).
type Outbox interface {
	// DuePowerEvents returns up to limit pending events due at now that are the oldest
	// pending event of their node, oldest first.
	DuePowerEvents(ctx context.Context, now time.Time, limit int) ([]*node.PowerEvent, error)
	// UpdatePowerEvents records outcomes: a pending event's retry (attempts, next_attempt,
	// code, last_error) or a final status.
	UpdatePowerEvents(ctx context.Context, evs []*node.PowerEvent) error
	PowerEventStats(ctx context.Context) (node.PowerEventStats, error)
	// PrunePowerEvents deletes final events finished before the given time.
	PrunePowerEvents(ctx context.Context, before time.Time) (int, error)
}

// Leaser is an optional Outbox ability of databases that several controllers share
// (store/postgres): only the holder of the lease delivers, so a node's events still go out
// one at a time and in order. The lease ends with ReleaseOutboxLease or the holder's death.
type Leaser interface {
	HoldOutboxLease(ctx context.Context) (bool, error)
	ReleaseOutboxLease(ctx context.Context) error
}

// Config configures a Sender. Zero values take the defaults in brackets.
type Config struct {
	Outbox Outbox
	Log    zerolog.Logger
	// Client sends the events; nil builds one from Cloud (see ClientConfig).
	Client EventSender
	Cloud  ClientConfig

	BatchSize    int           // [100] events (of as many nodes) per request
	MinBackoff   time.Duration // [1s] first retry delay; doubles per attempt, ±20 % jitter
	MaxBackoff   time.Duration // [5m] longest retry delay
	GiveUpAfter  time.Duration // [24h] a pending event older than this fails for good
	PollInterval time.Duration // [2s] how often due events are looked for without a wake-up
	Retention    time.Duration // [168h] final events are kept this long (visible in the API)

	Registerer prometheus.Registerer // nil: no metrics
	Now        func() time.Time      // [time.Now]
}

func (c *Config) checkAndSetDefaults() error {
	if c.Outbox == nil {
		return errors.New("nova: Config.Outbox is required")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"MinBackoff", &c.MinBackoff, time.Second},
		{"MaxBackoff", &c.MaxBackoff, 5 * time.Minute},
		{"GiveUpAfter", &c.GiveUpAfter, 24 * time.Hour},
		{"PollInterval", &c.PollInterval, 2 * time.Second},
		{"Retention", &c.Retention, 7 * 24 * time.Hour},
	} {
		switch {
		case *d.v < 0:
			return fmt.Errorf("nova: Config.%s must not be negative, got %s", d.name, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if c.MaxBackoff < c.MinBackoff {
		return fmt.Errorf("nova: Config.MaxBackoff (%s) is below MinBackoff (%s)", c.MaxBackoff, c.MinBackoff)
	}
	switch {
	case c.BatchSize < 0:
		return fmt.Errorf("nova: Config.BatchSize must not be negative, got %d", c.BatchSize)
	case c.BatchSize == 0:
		c.BatchSize = 100
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Client == nil {
		cl, err := NewClient(c.Cloud, c.Log)
		if err != nil {
			return err
		}
		c.Client = cl
	}
	return nil
}

// Sender delivers the outbox in the background from New until Close.
type Sender struct {
	cfg     Config
	log     zerolog.Logger
	wake    chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	metrics *metrics
}

// New validates cfg and starts delivering.
func New(cfg Config) (*Sender, error) {
	if err := cfg.checkAndSetDefaults(); err != nil {
		return nil, err
	}
	s := &Sender{cfg: cfg, log: cfg.Log.With().Str("component", "nova").Logger(), wake: make(chan struct{}, 1)}
	if cfg.Registerer != nil {
		m, err := newMetrics(cfg.Registerer, cfg.Outbox, s.log)
		if err != nil {
			return nil, err
		}
		s.metrics = m
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.loop(ctx)
	}()
	return s, nil
}

// Close stops delivering and waits for a request in flight; pending events stay in the
// outbox for the next start.
func (s *Sender) Close() error {
	s.cancel()
	s.wg.Wait()
	if l, ok := s.cfg.Outbox.(Leaser); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := l.ReleaseOutboxLease(ctx); err != nil {
			s.log.Warn().Err(err).Msg("releasing the outbox lease failed (it ends with the connection)")
		}
	}
	if s.metrics != nil {
		s.metrics.unregister()
	}
	return nil
}

// PowerChanged implements the conductor's Notifier: the change is already in the outbox, so
// this only wakes the delivery loop.
func (s *Sender) PowerChanged(context.Context, *node.Node, string) {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Sender) loop(ctx context.Context) {
	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	s.prune(ctx)
	for {
		// Deliver everything due, one request at a time, until a round makes no progress.
		for ctx.Err() == nil && s.round(ctx) {
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-poll.C:
		case <-prune.C:
			s.prune(ctx)
		}
	}
}

func (s *Sender) prune(ctx context.Context) {
	n, err := s.cfg.Outbox.PrunePowerEvents(ctx, s.cfg.Now().Add(-s.cfg.Retention))
	if err != nil && ctx.Err() == nil {
		s.log.Error().Err(err).Msg("pruning delivered power events failed")
	} else if n > 0 {
		s.log.Debug().Int("events", n).Msg("pruned final power events")
	}
}

// round sends one batch of due events and records the outcomes. It reports whether to go
// on at once: the batch was full and Nova answered.
func (s *Sender) round(ctx context.Context) bool {
	if l, ok := s.cfg.Outbox.(Leaser); ok {
		held, err := l.HoldOutboxLease(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error().Err(err).Msg("taking the outbox lease failed")
		}
		if !held {
			return false // another controller delivers
		}
	}
	evs, err := s.cfg.Outbox.DuePowerEvents(ctx, s.cfg.Now(), s.cfg.BatchSize)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error().Err(err).Msg("reading the power event outbox failed")
		}
		return false
	}
	if len(evs) == 0 {
		return false
	}
	answered := s.deliver(ctx, evs)
	if err := s.cfg.Outbox.UpdatePowerEvents(ctx, evs); err != nil {
		// The events stay pending and are sent again: Nova's power-update is idempotent.
		if ctx.Err() == nil {
			s.log.Error().Err(err).Msg("recording power event outcomes failed")
		}
		return false
	}
	return answered && len(evs) == s.cfg.BatchSize
}

// deliver sends evs and sets each one's outcome. It reports whether Nova answered.
func (s *Sender) deliver(ctx context.Context, evs []*node.PowerEvent) bool {
	now := s.cfg.Now()
	req := make([]Event, len(evs))
	for i, ev := range evs {
		req[i] = Event{Name: "power-update", ServerUUID: ev.InstanceUUID, Tag: tag(ev.PowerState)}
	}
	res, err := s.cfg.Client.Send(ctx, req)
	if ctx.Err() != nil {
		// Shutting down: leave the events as they were; they are sent after the restart.
		for _, ev := range evs {
			ev.Status = node.EventPending
		}
		return false
	}
	var bad *BadRequestError
	if errors.As(err, &bad) && len(evs) > 1 {
		// One malformed event fails the whole request: send each alone to find it.
		s.log.Warn().Int("events", len(evs)).Msg("Nova refused a batch as malformed; sending its events one by one")
		ok := true
		for _, ev := range evs {
			ok = s.deliver(ctx, []*node.PowerEvent{ev}) && ok
		}
		return ok
	}
	if err != nil {
		code := 0
		var he *HTTPError
		if errors.As(err, &he) {
			code = he.Code
		}
		if errors.As(err, &bad) {
			// A single event Nova refuses as malformed can never succeed.
			s.log.Error().Err(err).Str("node_id", evs[0].NodeUUID).Str("instance_uuid", evs[0].InstanceUUID).
				Msg("Nova refused a power-update event as malformed (a bug): it is dropped")
			s.finish(evs[0], node.EventFailed, bad.Code, err.Error())
			return true
		}
		s.metrics.request("error")
		for _, ev := range evs {
			s.retry(ev, now, code, err.Error())
		}
		s.log.Warn().Err(err).Int("events", len(evs)).Time("next_attempt", evs[0].NextAttempt).
			Msg("delivering power events to Nova failed; will retry")
		return false
	}
	partial := false
	for i, ev := range evs {
		r := res[i]
		switch {
		case r.Code == 200:
			s.finish(ev, node.EventDelivered, r.Code, "")
			s.log.Info().Str("node_id", ev.NodeUUID).Str("instance_uuid", ev.InstanceUUID).Str("tag", req[i].Tag).
				Int("attempts", ev.Attempts).Msg("Nova power-update delivered")
		case r.Code == 404 || r.Code == 422:
			partial = true
			msg := fmt.Sprintf("Nova answered %d (%s) for instance %s", r.Code, r.Status, ev.InstanceUUID)
			if r.Code == 404 {
				msg += ": no such instance"
			} else {
				msg += ": the instance has no host"
			}
			s.finish(ev, node.EventFailed, r.Code, msg)
			s.log.Warn().Str("node_id", ev.NodeUUID).Str("instance_uuid", ev.InstanceUUID).Int("code", r.Code).Msg(msg)
		case r.Code == 400:
			partial = true
			msg := fmt.Sprintf("Nova refused the event (400): %s", r.Raw)
			s.finish(ev, node.EventFailed, r.Code, msg)
			s.log.Error().Str("node_id", ev.NodeUUID).Str("instance_uuid", ev.InstanceUUID).Str("answer", r.Raw).
				Msg("Nova refused a power-update event (a bug): it is dropped")
		default:
			partial = true
			s.retry(ev, now, r.Code, fmt.Sprintf("Nova answered %d for the event: %s", r.Code, r.Raw))
		}
	}
	if partial {
		s.metrics.request("partial")
	} else {
		s.metrics.request("ok")
	}
	return true
}

func (s *Sender) finish(ev *node.PowerEvent, status string, code int, msg string) {
	ev.Attempts++
	ev.Status, ev.Code, ev.LastError = status, code, msg
	s.metrics.event(status)
}

// retry schedules ev again with exponential backoff, or fails it once it is too old.
func (s *Sender) retry(ev *node.PowerEvent, now time.Time, code int, msg string) {
	ev.Attempts++
	ev.Code, ev.LastError = code, msg
	if now.Sub(ev.CreatedAt) > s.cfg.GiveUpAfter {
		ev.Status = node.EventFailed
		ev.LastError = fmt.Sprintf("gave up after %d attempts over %s: %s", ev.Attempts, s.cfg.GiveUpAfter, msg)
		s.metrics.event(node.EventFailed)
		return
	}
	ev.Status = node.EventPending
	ev.NextAttempt = now.Add(s.backoff(ev.Attempts))
	s.metrics.event("retried")
}

func (s *Sender) backoff(attempts int) time.Duration {
	d := s.cfg.MinBackoff
	for i := 1; i < attempts && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.cfg.MaxBackoff)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// tag maps a power state to Nova's power-update tag.
func tag(state string) string {
	if state == node.PowerOn {
		return "POWER_ON"
	}
	return "POWER_OFF"
}
