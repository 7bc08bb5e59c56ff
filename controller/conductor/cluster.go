package conductor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ferrumhq/ferrum/controller/node"
)

// Several controllers on one database (Ironic's conductor model): each refreshes its row in
// the conductors table every HeartbeatInterval; a conductor whose row is older than
// HeartbeatTimeout, or marked offline, is dead. The live conductors of a conductor group that
// serve a driver form a hash ring, and a node belongs to the ring's owner of its UUID: only
// the owner runs the node's periodic work (power sync, power failure recovery, wait-state
// timeouts, orphan recovery). API requests are served by whichever controller receives them;
// the node's reservation in the database keeps them exclusive.
//
// When the set of live conductors changes, every live conductor releases the reservations
// held by dead ones and recovers the orphans among the nodes it now owns: a node left in a
// transient state fails (as at start-up), a pending power action is cleared. Nodes that were
// merely idle change owner without being touched.

// members is one view of the live conductors.
type members struct {
	alive map[string]bool      // live conductor host names
	hosts []string             // the same, sorted
	rings map[string]*hashRing // by ringKey(group, driver)
}

func ringKey(group, driver string) string { return strings.ToLower(group) + "\x00" + driver }

// alive reports whether a conductor row shows a live conductor at now.
func (c *Conductor) alive(cd *node.Conductor, now time.Time) bool {
	return cd.Online && now.Sub(cd.UpdatedAt) < c.cfg.HeartbeatTimeout
}

// refreshMembership reads the conductors table and installs the new view, which it returns
// with the dead conductors' names.
func (c *Conductor) refreshMembership(ctx context.Context) (*members, []string, error) {
	conds, err := c.store.ListConductors(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("list conductors: %w", err)
	}
	now := c.cfg.Now()
	m := &members{alive: map[string]bool{}, rings: map[string]*hashRing{}}
	byRing := map[string][]string{}
	var dead []string
	for _, cd := range conds {
		if cd.Hostname == c.host {
			// Its own heartbeats, timed on the local monotonic clock: when they have failed
			// for HeartbeatTimeout the others have taken its nodes, so it stops running their
			// periodic work too (its reservations are left to the others to release).
			if time.Since(c.lastBeat()) >= c.cfg.HeartbeatTimeout {
				continue
			}
		} else if !c.alive(cd, now) {
			dead = append(dead, cd.Hostname)
			continue
		}
		m.alive[cd.Hostname] = true
		m.hosts = append(m.hosts, cd.Hostname)
		for _, d := range cd.Drivers {
			k := ringKey(cd.ConductorGroup, d)
			byRing[k] = append(byRing[k], cd.Hostname)
		}
	}
	slices.Sort(m.hosts)
	for k, hosts := range byRing {
		m.rings[k] = newHashRing(hosts)
	}
	c.members.Store(m)
	return m, dead, nil
}

// ownerOf is the live conductor that owns n: the hash ring's pick among the live conductors
// of n's group that serve its driver; "" when none does. Before the first membership read
// every node this conductor can serve is its own.
func (c *Conductor) ownerOf(n *node.Node) string {
	m := c.members.Load()
	if m == nil {
		if _, ok := c.hw[n.Driver]; ok && strings.EqualFold(n.ConductorGroup, c.cfg.ConductorGroup) {
			return c.host
		}
		return ""
	}
	return m.rings[ringKey(n.ConductorGroup, n.Driver)].owner(n.UUID)
}

// owns reports whether this conductor runs n's periodic work.
func (c *Conductor) owns(n *node.Node) bool { return c.ownerOf(n) == c.host }

// NodeConductor is the conductor a node is mapped to (the API's "conductor" field): its hash
// ring owner, or "" when no live conductor serves its group and driver.
func (c *Conductor) NodeConductor(n *node.Node) string { return c.ownerOf(n) }

// lastBeat is when this conductor's row was last refreshed.
func (c *Conductor) lastBeat() time.Time {
	c.beatMu.Lock()
	defer c.beatMu.Unlock()
	return c.beat
}

// heartbeat refreshes this conductor's row, reads the others', and takes over the nodes of
// conductors that died since the last view.
func (c *Conductor) heartbeat(ctx context.Context) {
	if err := c.register(ctx); err != nil {
		c.log.Warn().Err(err).Msg("conductor heartbeat failed")
	}
	prev := c.members.Load()
	m, dead, err := c.refreshMembership(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn().Err(err).Msg("reading the conductors failed")
		}
		return
	}
	if prev != nil && slices.Equal(prev.hosts, m.hosts) {
		// With others around, look for orphans every CheckInterval anyway: two views that
		// disagreed for a moment may have left one unowned during the last change.
		if len(m.hosts) > 1 && c.cfg.Now().Sub(c.lastOrphanScan) >= c.cfg.CheckInterval {
			c.lastOrphanScan = c.cfg.Now()
			if err := c.recoverOrphans(ctx, true); err != nil && ctx.Err() == nil {
				c.log.Error().Err(err).Msg("recovering orphaned nodes failed")
			}
		}
		return
	}
	c.log.Info().Strs("alive", m.hosts).Strs("dead", dead).Msg("conductor membership changed; nodes rebalanced")
	c.lastOrphanScan = c.cfg.Now()
	c.takeOver(ctx, dead)
}

// takeOver releases the reservations dead conductors hold and recovers the orphaned nodes
// this conductor now owns (Ironic's _check_orphan_nodes).
func (c *Conductor) takeOver(ctx context.Context, dead []string) {
	for _, h := range dead {
		k, err := c.store.ReleaseReservations(ctx, h)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Error().Err(err).Str("conductor", h).Msg("releasing a dead conductor's reservations failed")
			}
			continue
		}
		if k > 0 {
			c.log.Warn().Str("conductor", h).Int("count", k).Msg("released the reservations of a dead conductor")
		}
	}
	if err := c.recoverOrphans(ctx, true); err != nil && ctx.Err() == nil {
		c.log.Error().Err(err).Msg("recovering orphaned nodes failed")
	}
}
