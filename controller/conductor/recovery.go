package conductor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ferrumhq/ferrum/controller/node"
)

var timeZero time.Time

// forEachNode pages through nodes matching q, 500 at a time.
func (c *Conductor) forEachNode(ctx context.Context, q node.NodeQuery, f func(*node.Node) error) error {
	q.Limit, q.Marker, q.SortKey, q.SortDir = 500, "", "id", "asc"
	for {
		page, err := c.store.ListNodes(ctx, q)
		if err != nil {
			return err
		}
		for _, n := range page {
			if err := f(n); err != nil {
				return err
			}
		}
		if len(page) < q.Limit {
			return nil
		}
		q.Marker = page[len(page)-1].UUID
	}
}

// recover undoes what a crash of this host left behind (Ironic's init_host): its locks are
// released, nodes in transient states a worker was driving move to their failed state with a
// last_error that says so, and pending power targets are cleared. *wait states are kept: their
// timeouts guard them.
func (c *Conductor) recover(ctx context.Context) error {
	released, err := c.store.ReleaseReservations(ctx, c.host)
	if err != nil {
		return fmt.Errorf("release stale reservations: %w", err)
	}
	if released > 0 {
		c.log.Warn().Int("count", released).Msg("released node reservations left by a previous run")
	}
	return c.recoverOrphans(ctx, false)
}

// recoverOrphans fails the nodes left in a transient state without a live reservation (no
// worker drives them any more) and clears their pending power targets; with ownedOnly, only
// among the nodes this conductor owns (a take-over), else among all (start-up).
func (c *Conductor) recoverOrphans(ctx context.Context, ownedOnly bool) error {
	now := c.cfg.Now()
	return c.forEachNode(ctx, node.NodeQuery{}, func(n *node.Node) error {
		stuck := slices.Contains(node.StuckAsFail, n.ProvisionState)
		if !stuck && n.TargetPowerState == "" {
			return nil
		}
		if n.Reservation != "" && n.ReservationExpires.After(now) {
			return nil // another live conductor is working on it
		}
		if ownedOnly && !c.owns(n) {
			return nil
		}
		return c.withLock(ctx, n.UUID, func(n *node.Node) error {
			if n.TargetPowerState != "" {
				n.TargetPowerState = ""
				n.LastError = "Pending power operation was aborted due to conductor restart"
				if ownedOnly {
					n.LastError = "Pending power operation was aborted due to conductor take over"
				}
			}
			if slices.Contains(node.StuckAsFail, n.ProvisionState) {
				msg := fmt.Sprintf("The %s state can't be resumed by conductor %s. Moving to fail state.", n.ProvisionState, c.host)
				c.log.Warn().Str("node_id", n.UUID).Str("state", string(n.ProvisionState)).Bool("take_over", ownedOnly).Msg("failing node left in a transient state")
				return c.advance(ctx, n, node.EvFail, "", msg)
			}
			return c.save(ctx, n)
		})
	})
}

// withLock runs f on the node under this conductor's reservation, without retries; a node
// locked by someone else is skipped silently.
func (c *Conductor) withLock(ctx context.Context, uuid string, f func(*node.Node) error) error {
	n, err := c.store.ReserveNode(ctx, uuid, c.host, c.cfg.Now().Add(c.cfg.LockTimeout))
	var le *node.LockedError
	if errors.As(err, &le) || isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer c.unlock(n.UUID)
	n.Normalize()
	return f(n)
}

// waitTimeout is the timeout guarding a wait state and the last_error Ironic writes.
func (c *Conductor) waitTimeout(s node.State, n *node.Node) (time.Duration, string) {
	switch s {
	case node.DeployWait:
		return c.cfg.DeployCallbackTimeout, fmt.Sprintf("Timeout reached while waiting for callback for node %s", n.UUID)
	case node.CleanWait:
		step, _ := n.CleanStep["step"].(string)
		return c.cfg.CleanCallbackTimeout, fmt.Sprintf("Timeout reached while cleaning the node. Please check if the ramdisk responsible for the cleaning is running on the node. Failed on step %q.", step)
	case node.InspectWait:
		return c.cfg.InspectWaitTimeout, "Timeout reached while inspecting the node"
	case node.RescueWait:
		return c.cfg.RescueCallbackTimeout, fmt.Sprintf("Timeout reached while waiting for rescue ramdisk callback for node %s", n.UUID)
	case node.ServiceWait:
		return c.cfg.ServiceCallbackTimeout, fmt.Sprintf("Timeout reached while servicing the node %s", n.UUID)
	}
	return 0, ""
}

// checkWaitTimeouts fails nodes that waited for a callback longer than allowed.
func (c *Conductor) checkWaitTimeouts(ctx context.Context) {
	off := false
	for _, s := range node.WaitStates {
		err := c.forEachNode(ctx, node.NodeQuery{ProvisionState: s, Maintenance: &off}, func(n *node.Node) error {
			if d, _ := c.waitTimeout(s, n); c.cfg.Now().Sub(n.ProvisionUpdatedAt) < d || !c.owns(n) {
				return nil
			}
			return c.withLock(ctx, n.UUID, func(n *node.Node) error {
				d, msg := c.waitTimeout(s, n)
				if n.ProvisionState != s || n.Maintenance || c.cfg.Now().Sub(n.ProvisionUpdatedAt) < d {
					return nil // changed since the list
				}
				c.log.Warn().Str("node_id", n.UUID).Str("state", string(s)).Dur("timeout", d).Msg("wait state timed out")
				if s == node.CleanWait && n.TargetProvisionState != node.Manageable {
					n.Maintenance, n.MaintenanceReason, n.Fault = true, msg, node.FaultCleanFailure
				}
				return c.advance(ctx, n, node.EvFail, n.TargetProvisionState, msg)
			})
		})
		if err != nil && ctx.Err() == nil {
			c.log.Error().Err(err).Str("state", string(s)).Msg("checking wait-state timeouts failed")
		}
	}
}
