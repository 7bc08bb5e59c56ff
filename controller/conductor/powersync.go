package conductor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrumhq/ferrum/controller/node"
)

// syncExcluded are the provision states the power sync leaves alone (Ironic's
// SYNC_EXCLUDED_STATES): an agent may be calling back, or the BMC is not set up yet.
var syncExcluded = []node.State{node.DeployWait, node.CleanWait, node.Enroll, node.AdoptFail}

// syncErrPrefix starts the last_error a failed sync read writes; a later good read clears it.
const syncErrPrefix = "During sync_power_state, "

// PowerSyncStats describes one power sync pass.
type PowerSyncStats struct {
	Nodes       int           // nodes read
	SlowLane    int           // of which in the slow lane (their previous read or sync failed)
	Matched     int           // hardware agreed with the record
	Recorded    int           // record updated from the hardware (unknown before, or not forced)
	Forced      int           // hardware driven back to the recorded state
	Failed      int           // reads that failed
	Maintenance int           // nodes put into maintenance with fault "power failure"
	Skipped     int           // locked by someone else or changed since listed
	Detached    int           // workers replaced because their read outlasted PowerSyncDetachAfter
	Listing     time.Duration // listing the nodes
	Duration    time.Duration // the whole pass
}

type syncCounters struct {
	matched, recorded, forced, failed, maintenance, skipped, detached atomic.Int64
}

// SyncPowerStates runs one power sync pass now, without spreading it over the interval, and
// reports it. Passes never overlap: a call waits for a running one.
func (c *Conductor) SyncPowerStates(ctx context.Context) (PowerSyncStats, error) {
	return c.syncPowerStates(ctx, 0)
}

// syncPowerStates is Ironic's _sync_power_states: every node this conductor serves that is
// not in maintenance, not in an excluded state, not locked and without a power action
// pending has its power state read and compared with the record. Nodes whose last sync
// failed go to a slow lane with its own workers, most failing first, so that dead BMCs cannot
// hold the main lane. With spread > 0 the reads start evenly over that long, with jitter.
func (c *Conductor) syncPowerStates(ctx context.Context, spread time.Duration) (PowerSyncStats, error) {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	start := time.Now()
	var st PowerSyncStats
	var fast, slow []*node.Node
	off := false
	err := c.forEachNode(ctx, node.NodeQuery{Maintenance: &off}, func(n *node.Node) error {
		if !c.syncEligible(n) {
			return nil
		}
		if c.syncFailures(n.UUID) > 0 {
			slow = append(slow, n)
		} else {
			fast = append(fast, n)
		}
		return nil
	})
	st.Listing = time.Since(start)
	if err != nil {
		return st, fmt.Errorf("power sync: list nodes: %w", err)
	}
	slices.SortStableFunc(slow, func(a, b *node.Node) int {
		return cmp.Compare(c.syncFailures(b.UUID), c.syncFailures(a.UUID))
	})
	var cnt syncCounters
	var wg sync.WaitGroup
	c.lanes(ctx, &wg, fast, c.cfg.PowerSyncWorkers, spread, &cnt.detached, func(n *node.Node) { c.syncNode(ctx, n, &cnt) })
	c.lanes(ctx, &wg, slow, c.cfg.PowerSyncSlowWorkers, spread, &cnt.detached, func(n *node.Node) { c.syncNode(ctx, n, &cnt) })
	wg.Wait()
	st.Nodes, st.SlowLane = len(fast)+len(slow), len(slow)
	st.Matched, st.Recorded, st.Forced = int(cnt.matched.Load()), int(cnt.recorded.Load()), int(cnt.forced.Load())
	st.Failed, st.Maintenance, st.Skipped = int(cnt.failed.Load()), int(cnt.maintenance.Load()), int(cnt.skipped.Load())
	st.Detached = int(cnt.detached.Load())
	st.Duration = time.Since(start)
	return st, ctx.Err()
}

// lanes runs f over nodes with workers goroutines (all tracked by wg), starting node i of N
// no earlier than i×spread/N (plus jitter of up to one slot) after now. A worker still busy
// with one node after PowerSyncDetachAfter is replaced by a new one (at most
// PowerSyncMaxDetached replaced workers at a time, across lanes) and exits when its node is
// done: a dead or slow BMC holds a worker that long, not for its whole timeout, and the
// common case keeps its workers (and their grown stacks).
func (c *Conductor) lanes(ctx context.Context, wg *sync.WaitGroup, nodes []*node.Node, workers int, spread time.Duration, detached *atomic.Int64, f func(*node.Node)) {
	if len(nodes) == 0 {
		return
	}
	start := time.Now()
	slot := spread / time.Duration(len(nodes))
	var next atomic.Int64
	// A worker's state: active, replaced (a detached slot was taken for its replacement; it
	// frees it on exit) or exited. CAS keeps the slot accounting right whichever comes first.
	const (
		active int32 = iota
		replaced
		exited
	)
	type worker struct {
		busySince atomic.Int64 // unix ns when its current node started; 0 when between nodes
		state     atomic.Int32
	}
	var mu sync.Mutex // guards all
	var all []*worker
	var running sync.WaitGroup
	spawn := func() {
		w := &worker{}
		mu.Lock()
		all = append(all, w)
		mu.Unlock()
		running.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer running.Done()
			defer func() {
				if !w.state.CompareAndSwap(active, exited) {
					<-c.detached // replaced: free the slot taken for the replacement
				}
			}()
			for ctx.Err() == nil && w.state.Load() == active {
				i := int(next.Add(1) - 1)
				if i >= len(nodes) {
					return
				}
				if slot > 0 {
					at := start.Add(time.Duration(i)*slot + time.Duration(rand.Int64N(int64(slot))))
					if !sleepUntil(ctx, at) {
						return
					}
				}
				w.busySince.Store(time.Now().UnixNano())
				f(nodes[i])
				w.busySince.Store(0)
			}
		}()
	}
	for range min(workers, len(nodes)) {
		spawn()
	}
	if c.cfg.PowerSyncDetachAfter < 0 {
		return
	}
	done := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		running.Wait()
		close(done)
	}()
	go func() { // the watchdog
		defer wg.Done()
		tick := time.NewTicker(max(c.cfg.PowerSyncDetachAfter/2, time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if next.Load() >= int64(len(nodes)) {
				continue // nothing left to hand to a replacement
			}
			limit := time.Now().Add(-c.cfg.PowerSyncDetachAfter).UnixNano()
			mu.Lock()
			stuck := make([]*worker, 0, 4)
			for _, w := range all {
				if b := w.busySince.Load(); b != 0 && b < limit && w.state.Load() == active {
					stuck = append(stuck, w)
				}
			}
			mu.Unlock()
			for _, w := range stuck {
				select {
				case c.detached <- struct{}{}:
				default:
					continue // every slot taken: it keeps its worker
				}
				if !w.state.CompareAndSwap(active, replaced) {
					<-c.detached // it exited meanwhile
					continue
				}
				detached.Add(1)
				spawn()
			}
		}
	}()
}

// sleepUntil waits for t; false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

// syncEligible is Ironic's pre-lock check: the node is ours and nothing else is under way.
func (c *Conductor) syncEligible(n *node.Node) bool {
	if n.Maintenance || n.TargetPowerState != "" || slices.Contains(syncExcluded, n.ProvisionState) {
		return false
	}
	if n.Reservation != "" && n.ReservationExpires.After(c.cfg.Now()) {
		return false
	}
	if _, ok := c.hw[n.Driver]; !ok {
		return false
	}
	return strings.EqualFold(n.ConductorGroup, c.cfg.ConductorGroup) && c.owns(n)
}

func (c *Conductor) syncFailures(uuid string) int {
	c.syncCountMu.Lock()
	defer c.syncCountMu.Unlock()
	return c.syncCount[uuid]
}

func (c *Conductor) setSyncFailures(uuid string, n int) {
	c.syncCountMu.Lock()
	defer c.syncCountMu.Unlock()
	if n == 0 {
		delete(c.syncCount, uuid) // don't keep healthy nodes
	} else {
		c.syncCount[uuid] = n
	}
}

// syncNode is Ironic's do_sync_power_state for one listed node: read without the lock,
// lock only to write. The failure counter grows on each failed read or mismatch and resets
// on a match; past PowerSyncMaxRetries the node goes into maintenance.
func (c *Conductor) syncNode(ctx context.Context, n *node.Node, cnt *syncCounters) {
	n.Normalize()
	d, err := c.driver(n)
	if err != nil || d.Power == nil {
		cnt.skipped.Add(1)
		return
	}
	if n.PowerState == "" && d.Power.Validate(ctx, n) != nil {
		cnt.skipped.Add(1) // no state recorded and no usable BMC details: nothing to sync
		c.setSyncFailures(n.UUID, 0)
		return
	}
	count := c.syncFailures(n.UUID) + 1
	max := c.cfg.PowerSyncMaxRetries
	state, err := d.Power.PowerState(ctx, n)
	if err == nil && state == node.PowerError {
		err = errors.New("Power driver returned ERROR state while trying to sync power state.")
	}
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: says nothing about the node
		}
		cnt.failed.Add(1)
		c.setSyncFailures(n.UUID, count)
		c.log.Warn().Str("node_id", n.UUID).Int("attempt", count).Int("retries", max).Err(err).Msg("power sync could not read the power state")
		// last_error records the first failure of a run (the attempts are in the log): a
		// write per failing node per pass would queue on the store behind every other one.
		if count <= max && strings.HasPrefix(n.LastError, syncErrPrefix) {
			return
		}
		c.syncWrite(ctx, n.UUID, cnt, func(n *node.Node) error {
			if count > max {
				c.maxRetriesExceeded(ctx, n, "", err)
				cnt.maintenance.Add(1)
				return nil
			}
			n.LastError = fmt.Sprintf("%scould not get power state for node %s. Error: %v.", syncErrPrefix, n.UUID, err)
			return c.save(ctx, n)
		})
		return
	}
	if state == n.PowerState {
		cnt.matched.Add(1)
		c.setSyncFailures(n.UUID, 0)
		if strings.HasPrefix(n.LastError, syncErrPrefix) && !n.Maintenance {
			c.syncWrite(ctx, n.UUID, cnt, func(n *node.Node) error {
				if !strings.HasPrefix(n.LastError, syncErrPrefix) {
					return nil
				}
				n.LastError = ""
				return c.save(ctx, n)
			})
		}
		return
	}
	c.syncWrite(ctx, n.UUID, cnt, func(n *node.Node) error {
		switch {
		case n.PowerState == state:
			cnt.matched.Add(1)
			c.setSyncFailures(n.UUID, 0)
			return nil
		case n.PowerState == "":
			c.log.Info().Str("node_id", n.UUID).Str("power_state", state).Msg("power sync recorded the state of a node that had none")
			n.PowerState = state
			clearSyncError(n)
			cnt.recorded.Add(1)
			c.setSyncFailures(n.UUID, 0)
			return c.savePowerChange(ctx, n, state)
		}
		c.setSyncFailures(n.UUID, count)
		if count > max {
			c.maxRetriesExceeded(ctx, n, state, nil)
			cnt.maintenance.Add(1)
			return nil
		}
		if !c.cfg.PowerSyncAcceptHardwareState {
			c.log.Warn().Str("node_id", n.UUID).Str("actual", state).Str("recorded", n.PowerState).
				Msg("power sync: hardware does not match the recorded state; changing the hardware")
			cnt.forced.Add(1)
			if err := c.powerAction(ctx, n, d, n.PowerState, 0); err != nil {
				c.log.Error().Str("node_id", n.UUID).Str("state", n.PowerState).Int("attempt", count).Int("retries", max).Err(err).
					Msg("power sync failed to change the power state")
			}
			return nil
		}
		c.log.Warn().Str("node_id", n.UUID).Str("actual", state).Str("recorded", n.PowerState).
			Msg("power sync: hardware does not match the recorded state; recording the hardware's")
		n.PowerState = state
		clearSyncError(n)
		cnt.recorded.Add(1)
		return c.savePowerChange(ctx, n, state)
	})
}

func clearSyncError(n *node.Node) {
	if strings.HasPrefix(n.LastError, syncErrPrefix) {
		n.LastError = ""
	}
}

// syncWrite locks the node and, if it is still eligible, applies f; a node locked by someone
// else or changed meanwhile is skipped (Ironic: NodeLocked → skip this round).
func (c *Conductor) syncWrite(ctx context.Context, uuid string, cnt *syncCounters, f func(*node.Node) error) {
	err := c.withLock(ctx, uuid, func(n *node.Node) error {
		if n.Maintenance || n.TargetPowerState != "" || slices.Contains(syncExcluded, n.ProvisionState) {
			cnt.skipped.Add(1)
			c.setSyncFailures(n.UUID, 0)
			return nil
		}
		return f(n)
	})
	if err != nil && ctx.Err() == nil {
		c.log.Error().Str("node_id", uuid).Err(err).Msg("power sync could not save the node")
	}
}

// maxRetriesExceeded is Ironic's handle_sync_power_state_max_retries_exceeded: record the
// actual state (unknown after read failures), put the node into maintenance with fault
// "power failure", and publish the change.
func (c *Conductor) maxRetriesExceeded(ctx context.Context, n *node.Node, actual string, cause error) {
	msg := fmt.Sprintf("%smax retries exceeded for node %s, node state %s does not match expected state '%s'. Updating DB state to '%s' Switching node to maintenance mode.",
		syncErrPrefix, n.UUID, pyNone(actual), pyNone(n.PowerState), pyNone(actual))
	if cause != nil {
		msg += " Error: " + cause.Error()
	}
	old := n.PowerState
	n.PowerState = actual
	n.Maintenance, n.MaintenanceReason, n.Fault = true, msg, node.FaultPowerFailure
	n.LastError = msg
	save := c.save
	if actual != old && actual != "" {
		save = func(ctx context.Context, n *node.Node) error { return c.savePowerChange(ctx, n, actual) }
	}
	if err := save(ctx, n); err != nil {
		c.log.Error().Str("node_id", n.UUID).Err(err).Msg("power sync could not put the node into maintenance")
		return
	}
	c.setSyncFailures(n.UUID, 0)
	c.log.Error().Str("node_id", n.UUID).Str("reason", msg).Msg("power sync put the node into maintenance")
}

// pyNone prints an unknown state as Python's None, like Ironic's messages.
func pyNone(s string) string {
	if s == "" {
		return "None"
	}
	return s
}

// RecoverPowerFailures is Ironic's _power_failure_recovery, run now: nodes in maintenance
// with fault "power failure" whose BMC answers again leave maintenance with the state read.
// The periodic task calls it every PowerFailureRecoveryInterval.
func (c *Conductor) RecoverPowerFailures(ctx context.Context) {
	on := true
	var nodes []*node.Node
	err := c.forEachNode(ctx, node.NodeQuery{Maintenance: &on, Fault: node.FaultPowerFailure}, func(n *node.Node) error {
		if n.ProvisionState == node.Enroll || n.TargetPowerState != "" || n.Fault != node.FaultPowerFailure {
			return nil
		}
		if n.Reservation != "" && n.ReservationExpires.After(c.cfg.Now()) {
			return nil
		}
		if _, ok := c.hw[n.Driver]; ok && strings.EqualFold(n.ConductorGroup, c.cfg.ConductorGroup) && c.owns(n) {
			nodes = append(nodes, n)
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			c.log.Error().Err(err).Msg("power failure recovery: listing nodes failed")
		}
		return
	}
	var wg sync.WaitGroup
	var detached atomic.Int64
	c.lanes(ctx, &wg, nodes, c.cfg.PowerSyncSlowWorkers, 0, &detached, func(n *node.Node) {
		n.Normalize()
		d, err := c.driver(n)
		if err != nil || d.Power == nil {
			return
		}
		if err := d.Power.Validate(ctx, n); err != nil {
			c.log.Debug().Str("node_id", n.UUID).Err(err).Msg("power failure recovery: driver_info still invalid")
			return
		}
		state, err := d.Power.PowerState(ctx, n)
		if err == nil && state == node.PowerError {
			err = errors.New("Power driver returned ERROR state while trying to get power state.")
		}
		if err != nil {
			c.log.Debug().Str("node_id", n.UUID).Err(err).Msg("power failure recovery: still no power state")
			return
		}
		werr := c.withLock(ctx, n.UUID, func(n *node.Node) error {
			if !n.Maintenance || n.Fault != node.FaultPowerFailure || n.TargetPowerState != "" || n.ProvisionState == node.Enroll {
				return nil
			}
			old := n.PowerState
			n.PowerState = state
			n.Maintenance, n.MaintenanceReason, n.Fault = false, "", ""
			clearSyncError(n)
			save := c.save
			if old != state {
				save = func(ctx context.Context, n *node.Node) error { return c.savePowerChange(ctx, n, state) }
			}
			if err := save(ctx, n); err != nil {
				return err
			}
			c.setSyncFailures(n.UUID, 0)
			c.log.Info().Str("node_id", n.UUID).Str("power_state", state).Msg("node recovered from power failure")
			return nil
		})
		if werr != nil && ctx.Err() == nil {
			c.log.Error().Str("node_id", n.UUID).Err(werr).Msg("power failure recovery could not save the node")
		}
	})
	wg.Wait()
}
