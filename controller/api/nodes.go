package api

import (
	"net/http"
	"slices"
	"strings"

	"github.com/ferrumhq/ferrum/controller/node"
)

// nodeSubresources are path words that are never node identifiers (Ironic's
// NodesController._subcontroller_map).
var nodeSubresources = []string{"ports", "portgroups", "vifs", "volume", "traits", "bios",
	"allocation", "history", "inventory"}

// nodeReservedNames can not be node names (get_nodes_controller_reserved_names).
var nodeReservedNames = []string{"maintenance", "management", "states", "vendor_passthru",
	"detail", "validate"}

// defaultNodeFields are the fields of a plain node list.
var defaultNodeFields = []string{"instance_uuid", "maintenance", "power_state",
	"provision_state", "uuid", "name"}

// noNodeSortKeys are Ironic's invalid_sort_key_list for nodes.
var noNodeSortKeys = []string{"properties", "driver_info", "extra", "instance_info",
	"driver_internal_info", "clean_step", "deploy_step", "raid_config", "target_raid_config",
	"traits", "network_data"}

// validFaults are Ironic 21.4.4's faults.VALID_FAULTS.
var validFaults = []string{node.FaultPowerFailure, node.FaultCleanFailure, node.FaultRescueAbort}

// nodeIdent returns the {node} path value after Ironic's _lookup checks.
func (c *call) nodeIdent() (string, error) {
	ident := c.r.PathValue("node")
	if slices.Contains(nodeSubresources, ident) {
		return "", webobError(http.StatusNotFound, "")
	}
	if !isValidLogicalName(ident) && !isUUIDLike(ident) {
		return "", webobError(http.StatusBadRequest, "Expected UUID or name for node: "+ident)
	}
	return ident, nil
}

// lookupNode finds the node of the request path as get_rpc_node does: by UUID, by name from
// 1.5 on.
func (c *call) lookupNode() (*node.Node, string, error) {
	ident, err := c.nodeIdent()
	if err != nil {
		return nil, "", err
	}
	n, err := c.findNode(ident)
	return n, ident, err
}

// findNode resolves a UUID or name at the request's microversion.
func (c *call) findNode(ident string) (*node.Node, error) {
	if !isUUIDLike(ident) {
		if c.ver < v5NodeName {
			return nil, node.NotFound("Node", ident)
		}
		if !isValidNameAt(ident, c.ver) {
			return nil, badRequest("Expected a logical name or UUID but received %s.", ident)
		}
	}
	return c.s.be.GetNode(c.r.Context(), ident)
}

// checkNodeFields validates ?fields= of a node request: known names (400) that the
// microversion shows (406).
func (c *call) checkNodeFields(fields []string) error {
	if err := c.checkFieldsAllowed(fields); err != nil {
		return err
	}
	for _, f := range fields {
		if since, ok := nodeFieldSince(f); ok && c.ver < since {
			return notAcceptable()
		}
	}
	for _, f := range fields {
		if _, ok := nodeFieldSince(f); !ok {
			return badRequest("Field %s is not a valid field.", f)
		}
	}
	return nil
}

// getNode serves GET /v1/nodes/{node}.
func (s *server) getNode(c *call) error {
	q, err := c.query("fields")
	if err != nil {
		return err
	}
	n, _, err := c.lookupNode()
	if err != nil {
		return err
	}
	fields := q.list("fields")
	if err := c.checkNodeFields(fields); err != nil {
		return err
	}
	return c.json(http.StatusOK, c.renderNode(n, fields))
}

// deleteNode serves DELETE /v1/nodes/{node}.
func (s *server) deleteNode(c *call) error {
	n, _, err := c.lookupNode()
	if err != nil {
		return err
	}
	if err := s.be.DeleteNode(c.r.Context(), n.UUID); err != nil {
		return err
	}
	return c.empty(http.StatusNoContent)
}

// nodeListArgs are the query parameters of GET /v1/nodes (detail drops fields and detail).
var nodeListArgs = []string{"chassis_uuid", "instance_uuid", "associated", "maintenance",
	"retired", "provision_state", "marker", "limit", "sort_key", "sort_dir", "driver", "fields",
	"resource_class", "fault", "conductor_group", "detail", "conductor", "owner",
	"description_contains", "lessee", "project", "shard", "sharded"}

// listNodes serves GET /v1/nodes and, with detail, GET /v1/nodes/detail.
func (s *server) listNodes(detailPath bool) handlerFunc {
	allowed := nodeListArgs
	resource := "nodes"
	if detailPath {
		resource = "nodes/detail"
		allowed = slices.DeleteFunc(slices.Clone(nodeListArgs), func(a string) bool {
			return a == "fields" || a == "detail"
		})
	}
	return func(c *call) error {
		q, err := c.query(allowed...)
		if err != nil {
			return err
		}
		nq, fields, err := c.nodeQuery(q, detailPath)
		if err != nil {
			return err
		}
		nodes, err := s.be.ListNodes(c.r.Context(), nq)
		if err != nil {
			return err
		}
		if cond, ok := q.str("conductor"); ok {
			nodes = slices.DeleteFunc(nodes, func(n *node.Node) bool { return s.conductorOf(n) != cond })
		}
		items := make([]obj, len(nodes))
		for i, n := range nodes {
			items[i] = c.renderNode(n, fields)
		}
		out := obj{{"nodes", items}}
		p := nq.Page
		if nq.InstanceUUID == "" && len(nodes) > 0 {
			next := c.nextLink(resource, len(nodes),
				page{limit: p.Limit, sortKey: p.SortKey, sortDir: p.SortDir}, nodes[len(nodes)-1].UUID, fields)
			if next != "" {
				out = append(out, field{"next", next})
			}
		}
		return c.json(http.StatusOK, out)
	}
}

// nodeQuery turns the query string of a node list into a NodeQuery and the fields to show
// (nil: all), with Ironic's checks in Ironic's order.
func (c *call) nodeQuery(q query, detailPath bool) (node.NodeQuery, []string, error) {
	var nq node.NodeQuery
	var err error
	if nq.ChassisUUID, err = q.uuid("chassis_uuid"); err != nil {
		return nq, nil, err
	}
	if nq.InstanceUUID, err = q.uuid("instance_uuid"); err != nil {
		return nq, nil, err
	}
	for _, b := range []struct {
		name string
		dst  **bool
	}{{"associated", &nq.Associated}, {"maintenance", &nq.Maintenance}, {"retired", &nq.Retired}} {
		if *b.dst, err = q.boolean(b.name); err != nil {
			return nq, nil, err
		}
	}
	detail, err := q.boolean("detail")
	if err != nil {
		return nq, nil, err
	}
	sharded, err := q.boolean("sharded")
	if err != nil {
		return nq, nil, err
	}
	fields := q.list("fields")
	if err := c.checkFieldsAllowed(fields); err != nil {
		return nq, nil, err
	}
	for _, f := range fields {
		if since, ok := nodeFieldSince(f); ok && c.ver < since {
			return nq, nil, notAcceptable()
		}
	}
	if sk, ok := q.str("sort_key"); ok {
		if since, ok := nodeFieldSince(sk); ok && c.ver < since {
			return nq, nil, notAcceptable()
		}
	}
	if err := c.nodeFilters(q, &nq); err != nil {
		return nq, nil, err
	}
	if sharded != nil {
		return nq, nil, badRequest("Filtering nodes by sharded is not supported by Ferrum.")
	}
	if !detailPath {
		if fields, err = c.returnFields(fields, detail, defaultNodeFields); err != nil {
			return nq, nil, err
		}
		for _, f := range fields {
			if _, ok := nodeFieldSince(f); !ok {
				return nq, nil, badRequest("Field %s is not a valid field.", f)
			}
		}
	}
	p, err := q.page(pageSpec{sortKeys: node.NodeSortKeys, noSortKeys: noNodeSortKeys})
	if err != nil {
		return nq, nil, err
	}
	nq.Page = node.Page{Limit: p.limit, Marker: p.marker, SortKey: p.sortKey, SortDir: p.sortDir}
	return nq, fields, nil
}

// nodeFilters reads the string filters, each gated by the microversion that added it.
func (c *call) nodeFilters(q query, nq *node.NodeQuery) error {
	if s, ok := q.str("provision_state"); ok {
		if c.ver < v9ProvisionStateFilter {
			return notAcceptable()
		}
		if !node.State(s).Known() {
			return badRequest("Provision state \"%s\" is not valid", s)
		}
		nq.ProvisionState = node.State(s)
	}
	gated := []struct {
		name  string
		since int
		dst   *string
	}{
		{"driver", v16DriverFilter, &nq.Driver},
		{"resource_class", v21ResourceClass, &nq.ResourceClass},
		{"fault", v42Fault, &nq.Fault},
		{"conductor_group", v46ConductorGroup, nil},
		{"conductor", v49Conductors, nil},
		{"owner", v50Owner, &nq.Owner},
		{"lessee", v65Lessee, &nq.Lessee},
		{"shard", v82Shard, nil},
		{"sharded", v82Shard, nil},
	}
	for _, g := range gated {
		s, ok := q.str(g.name)
		if !ok {
			continue
		}
		if c.ver < g.since {
			return notAcceptableMin(g.since)
		}
		if g.dst != nil {
			*g.dst = s
		}
	}
	if nq.Fault != "" && !slices.Contains(validFaults, nq.Fault) {
		return badRequest("Unrecognized fault \"%s\" is specified, allowed faults are %s",
			nq.Fault, pyTuple(validFaults))
	}
	if s, ok := q.str("conductor_group"); ok {
		g := strings.ToLower(s)
		nq.ConductorGroup = &g
	}
	if shards := q.list("shard"); shards != nil {
		if len(shards) != 1 {
			return badRequest("Filtering nodes by more than one shard is not supported by Ferrum.")
		}
		nq.Shard = shards[0]
	}
	if s, ok := q.str("description_contains"); ok {
		nq.DescriptionContains = s
	}
	if _, ok := q.str("project"); ok {
		return badRequest("Filtering nodes by project is not supported by Ferrum.")
	}
	return nil
}

// pyTuple is repr() of a tuple of strings.
func pyTuple(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = pyStr(v)
	}
	return "(" + strings.Join(q, ", ") + ")"
}
