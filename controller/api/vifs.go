package api

import (
	"net/http"
	"slices"

	"github.com/ferrumhq/ferrum/controller/node"
)

// VIFs (1.28). Ferrum has no Neutron, so it behaves like Ironic's "noop" network interface:
// attach and detach are accepted after validation and nothing is recorded, and the list is
// empty. That is what Nova's ironic driver gets from a noop-network Ironic.

// vifNode checks the microversion and finds the node of a /vifs request.
func (c *call) vifNode() (*node.Node, error) {
	if c.ver < v28VIFs {
		return nil, webobError(http.StatusNotFound, "")
	}
	n, _, err := c.lookupNode()
	return n, err
}

// listVIFs serves GET /v1/nodes/{node}/vifs.
func (s *server) listVIFs(c *call) error {
	if _, err := c.vifNode(); err != nil {
		return err
	}
	return c.json(http.StatusOK, obj{{"vifs", []obj{}}})
}

// attachVIF serves POST /v1/nodes/{node}/vifs.
func (s *server) attachVIF(c *call) error {
	if c.ver < v28VIFs {
		return webobError(http.StatusNotFound, "")
	}
	if _, err := c.nodeIdent(); err != nil {
		return err
	}
	body, err := c.readBody()
	if err != nil {
		return err
	}
	vif, ok := body.(map[string]any)
	if !ok {
		return badRequest("Schema error for vif: %s is not of type 'object'", pyRepr(body))
	}
	id, has := vif["id"]
	if !has {
		return badRequest("Schema error for vif: 'id' is a required property")
	}
	s2, ok := id.(string)
	if !ok {
		return badRequest("Schema error for vif: %s", typeError(id, tString))
	}
	if !isValidLogicalName(s2) && !isUUIDLike(s2) {
		return badRequest("Expected UUID or name for id: %s", s2)
	}
	if _, err := c.vifNode(); err != nil {
		return err
	}
	_, hasPort := vif["port_uuid"]
	_, hasPG := vif["portgroup_uuid"]
	if c.ver >= v67VIFAttachPort && hasPort && hasPG {
		return badRequest("Cannot specify both port_uuid and portgroup_uuid")
	}
	return c.empty(http.StatusNoContent)
}

// detachVIF serves DELETE /v1/nodes/{node}/vifs/{vif}.
func (s *server) detachVIF(c *call) error {
	id := c.r.PathValue("vif")
	if c.ver >= v28VIFs && !isValidLogicalName(id) && !isUUIDLike(id) {
		return badRequest("Expected UUID or name for vif_id: %s", id)
	}
	if _, err := c.vifNode(); err != nil {
		return err
	}
	return c.empty(http.StatusNoContent)
}

// listShards serves GET /v1/shards (1.82): node counts per shard, "None" for no shard.
func (s *server) listShards(c *call) error {
	if c.ver < v82Shard {
		return webobError(http.StatusNotFound, "")
	}
	nodes, err := s.be.ListNodes(c.r.Context(), node.NodeQuery{})
	if err != nil {
		return err
	}
	counts := map[string]int{}
	for _, n := range nodes {
		name := n.Shard
		if name == "" {
			name = "None"
		}
		counts[name]++
	}
	names := sortedKeys(counts)
	slices.SortStableFunc(names, func(a, b string) int { return counts[b] - counts[a] })
	items := make([]obj, len(names))
	for i, name := range names {
		items[i] = obj{{"name", name}, {"count", counts[name]}}
	}
	return c.json(http.StatusOK, obj{{"shards", items}})
}
