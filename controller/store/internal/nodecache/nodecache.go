// Package nodecache memoizes the decoding of stored node bodies for the store implementations
// (store/sqlite, store/postgres). Only those import it.
package nodecache

import (
	"bytes"
	"encoding/json"
	"slices"
	"sync"

	"github.com/ferrumhq/ferrum/controller/node"
)

// Size bounds the decoded nodes kept; when full the cache starts over.
const Size = 16384

// Cache memoizes the decoding of node bodies, which is most of the cost of a node list
// (about 25µs per node with encoding/json, against a few µs for the rest). An entry is used
// only when the stored body is byte for byte the one it was decoded from, so the cache can
// never return anything but what decoding the row would; writers need not invalidate it.
// Callers always get their own deep copy.
type Cache struct {
	mu sync.Mutex
	m  map[int64]cachedNode
}

type cachedNode struct {
	body string
	n    *node.Node // Normalized; never handed out
}

// Decode returns the node stored as body in row id, Normalized, as a copy the caller owns.
func (c *Cache) Decode(id int64, body string) (*node.Node, error) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok && e.body == body {
		return Clone(e.n), nil
	}
	n := new(node.Node)
	if err := json.Unmarshal([]byte(body), n); err != nil {
		return nil, err
	}
	n.Normalize()
	c.mu.Lock()
	if c.m == nil || len(c.m) >= Size {
		c.m = make(map[int64]cachedNode)
	}
	c.m[id] = cachedNode{body: body, n: n}
	c.mu.Unlock()
	return Clone(n), nil
}

// Forget drops the entry of a deleted row.
func (c *Cache) Forget(id int64) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// Clone deep-copies a node decoded from JSON: its maps hold only maps, slices and
// immutable scalars. TestCloneNodeCoversEveryField fails when node.Node gains a field this
// does not copy.
func Clone(n *node.Node) *node.Node {
	c := *n
	for _, m := range []*map[string]any{&c.DriverInfo, &c.DriverInternalInfo, &c.Properties,
		&c.Extra, &c.InstanceInfo, &c.NetworkData, &c.RaidConfig, &c.TargetRaidConfig,
		(*map[string]any)(&c.CleanStep), (*map[string]any)(&c.DeployStep), (*map[string]any)(&c.ServiceStep)} {
		*m = cloneMap(*m)
	}
	c.Traits = slices.Clone(n.Traits)
	c.Inventory = bytes.Clone(n.Inventory)
	if n.AutomatedClean != nil {
		c.AutomatedClean = new(*n.AutomatedClean)
	}
	if n.SecureBoot != nil {
		c.SecureBoot = new(*n.SecureBoot)
	}
	c.Agent = nil // not part of the stored node; attached by the conductor on reads
	return &c
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = cloneValue(v)
	}
	return c
}

func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return cloneMap(x)
	case []any:
		c := make([]any, len(x))
		for i, e := range x {
			c[i] = cloneValue(e)
		}
		return c
	}
	return v // string, float64, bool or nil
}
