package api

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/ferrumhq/ferrum/controller/node"
)

// AllocationUpdater is an optional Backend ability found by type assertion: with it,
// PATCH /v1/allocations/{id} (1.57) works; without it the API answers 405.
type AllocationUpdater interface {
	UpdateAllocation(ctx context.Context, ident string, mutate func(a *node.Allocation) error) (*node.Allocation, error)
}

// allocationSchema is Ironic's ALLOCATION_SCHEMA.
var allocationSchema = objSchema{
	props: map[string]prop{
		"candidate_nodes": {types: tArrayNull},
		"extra":           {types: tObjectNull},
		"name":            {types: tStringNull},
		"node":            {types: tStringNull},
		"owner":           {types: tStringNull},
		"resource_class":  {types: tStringNull, maxLen: 80},
		"traits":          {types: tArrayNull},
		"uuid":            {types: tStringNull},
	},
}

// traitRE approximates Ironic's trait schema (CUSTOM_ traits or os-traits' standard names,
// which are upper-case words joined by underscores).
var (
	customTraitRE   = regexp.MustCompile(`^CUSTOM_[A-Z0-9_]+$`)
	standardTraitRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
)

// traitError returns jsonschema's message for an invalid trait, or "".
func traitError(v any) string {
	s, ok := v.(string)
	if !ok {
		return typeError(v, tString)
	}
	if s == "" {
		return "'' is too short"
	}
	if len(s) > 255 {
		return fmt.Sprintf("%s is too long", pyStr(s))
	}
	if customTraitRE.MatchString(s) || (standardTraitRE.MatchString(s) && !strings.HasPrefix(s, "CUSTOM_")) {
		return ""
	}
	return fmt.Sprintf("%s is not valid under any of the given schemas. Possible root cause: "+
		"%s does not match '^CUSTOM_[A-Z0-9_]+$'", pyStr(s), pyStr(s))
}

// allocationSchemaError checks the body, including each trait and candidate node.
func allocationSchemaError(body any) string {
	if msg := allocationSchema.check(body); msg != "" {
		return msg
	}
	m := body.(map[string]any)
	if l, ok := m["candidate_nodes"].([]any); ok {
		for _, v := range l {
			if !typeIn(v, tString) {
				return typeError(v, tString)
			}
		}
	}
	if l, ok := m["traits"].([]any); ok {
		for _, v := range l {
			if msg := traitError(v); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// allocationsAllowed is AllocationsController._route: below 1.52 GET is 404, the rest 405.
func (c *call) allocationsAllowed() error {
	if c.ver >= v52Allocations {
		return nil
	}
	status := http.StatusMethodNotAllowed
	if c.r.Method == http.MethodGet || c.r.Method == http.MethodHead {
		status = http.StatusNotFound
	}
	return webobError(status, "The API version does not allow allocations")
}

// renderAllocation is the allocation convert_with_links.
func (c *call) renderAllocation(a *node.Allocation, fields []string) obj {
	o := obj{
		{"uuid", a.UUID},
		{"created_at", isoTime(a.CreatedAt)},
		{"updated_at", isoTime(a.UpdatedAt)},
		{"candidate_nodes", stringsOrEmpty(a.CandidateNodes)},
		{"extra", mapOrEmpty(a.Extra)},
		{"last_error", strOrNil(a.LastError)},
		{"name", strOrNil(a.Name)},
		{"owner", strOrNil(a.Owner)},
		{"resource_class", strOrNil(a.ResourceClass)},
		{"state", a.State},
		{"traits", stringsOrEmpty(a.Traits)},
		{"links", c.links("allocations", a.UUID)},
		{"node_uuid", strOrNil(a.NodeUUID)},
	}
	if c.ver < v60AllocationOwner {
		o = slices.DeleteFunc(o, func(f field) bool { return f.k == "owner" })
	}
	if fields != nil {
		o = o.keep(fields)
	}
	return o
}

func stringsOrEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

var allocationFields = []string{"uuid", "created_at", "updated_at", "candidate_nodes",
	"extra", "last_error", "name", "owner", "resource_class", "state", "traits", "node_uuid"}

// checkAllocationFields validates ?fields= of allocation requests.
func (c *call) checkAllocationFields(fields []string) error {
	if err := c.checkFieldsAllowed(fields); err != nil {
		return err
	}
	if slices.Contains(fields, "owner") && c.ver < v60AllocationOwner {
		return notAcceptable()
	}
	return checkFieldNames(fields, func(f string) bool { return slices.Contains(allocationFields, f) })
}

// findAllocation resolves an allocation UUID or name.
func (c *call) findAllocation(ident string) (*node.Allocation, error) {
	if !isUUIDLike(ident) && !isValidNameAt(ident, c.ver) {
		return nil, badRequest("Expected a logical name or UUID but received %s.", ident)
	}
	return c.s.be.GetAllocation(c.r.Context(), ident)
}

// listAllocations serves GET /v1/allocations.
func (s *server) listAllocations(c *call) error {
	if err := c.allocationsAllowed(); err != nil {
		return err
	}
	q, err := c.query("node", "resource_class", "state", "marker", "limit", "sort_key",
		"sort_dir", "fields", "owner")
	if err != nil {
		return err
	}
	nodeIdent, err := q.uuidOrName("node")
	if err != nil {
		return err
	}
	fields := q.list("fields")
	if err := c.checkAllocationFields(fields); err != nil {
		return err
	}
	aq := node.AllocationQuery{}
	aq.ResourceClass, _ = q.str("resource_class")
	aq.State, _ = q.str("state")
	if owner, ok := q.str("owner"); ok {
		if c.ver < v60AllocationOwner {
			return notAcceptable()
		}
		aq.Owner = owner
	}
	p, err := q.page(pageSpec{sortKeys: node.PortSortKeys,
		noSortKeys: []string{"extra", "candidate_nodes", "traits"}})
	if err != nil {
		return err
	}
	aq.Page = node.Page{Limit: p.limit, Marker: p.marker, SortKey: p.sortKey, SortDir: p.sortDir}
	if nodeIdent != "" {
		n, err := c.findNode(nodeIdent)
		if err != nil {
			return asBadRequest(err)
		}
		aq.NodeUUID = n.UUID
	}
	allocs, err := s.be.ListAllocations(c.r.Context(), aq)
	if err != nil {
		return err
	}
	items := make([]obj, len(allocs))
	for i, a := range allocs {
		items[i] = c.renderAllocation(a, fields)
	}
	out := obj{{"allocations", items}}
	if len(allocs) > 0 {
		if next := c.nextLink("allocations", len(allocs), p, allocs[len(allocs)-1].UUID, fields); next != "" {
			out = append(out, field{"next", next})
		}
	}
	return c.json(http.StatusOK, out)
}

// allocationIdent is the {allocation} path value.
func (c *call) allocationIdent() (string, error) {
	if err := c.allocationsAllowed(); err != nil {
		return "", err
	}
	id := c.r.PathValue("allocation")
	if !isValidLogicalName(id) && !isUUIDLike(id) {
		return "", badRequest("Expected UUID or name for allocation_ident: %s", id)
	}
	return id, nil
}

// getAllocation serves GET /v1/allocations/{allocation}.
func (s *server) getAllocation(c *call) error {
	id, err := c.allocationIdent()
	if err != nil {
		return err
	}
	fields, err := c.fieldsParam(c.checkAllocationFields)
	if err != nil {
		return err
	}
	a, err := c.findAllocation(id)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, c.renderAllocation(a, fields))
}

// deleteAllocation serves DELETE /v1/allocations/{allocation}.
func (s *server) deleteAllocation(c *call) error {
	id, err := c.allocationIdent()
	if err != nil {
		return err
	}
	a, err := c.findAllocation(id)
	if err != nil {
		return err
	}
	if err := s.be.DeleteAllocation(c.r.Context(), a.UUID); err != nil {
		return err
	}
	return c.empty(http.StatusNoContent)
}

// createAllocation serves POST /v1/allocations.
func (s *server) createAllocation(c *call) error {
	if err := c.allocationsAllowed(); err != nil {
		return err
	}
	body, err := c.readBody()
	if err != nil {
		return err
	}
	if msg := allocationSchemaError(body); msg != "" {
		return badRequest("Schema error for allocation: %s", msg)
	}
	doc := body.(map[string]any)
	if s, ok := doc["uuid"].(string); ok {
		if err := argUUID("uuid", s); err != nil {
			return err
		}
	}
	a := &node.Allocation{State: node.AllocationAllocating}
	a.Name, _ = doc["name"].(string)
	if a.Name != "" && !isValidNameAt(a.Name, c.ver) {
		return badRequest("Cannot create allocation with invalid name '%s'", a.Name)
	}
	if owner, ok := doc["owner"].(string); ok {
		if c.ver < v60AllocationOwner {
			return notAcceptable()
		}
		a.Owner = owner
	}
	var backfill *node.Node
	if ident, _ := doc["node"].(string); ident != "" {
		if c.ver < v58AllocationBackfill {
			return badRequest("Cannot set node when creating an allocation in this API version")
		}
		if backfill, err = c.findNode(ident); err != nil {
			return asBadRequest(err)
		}
		a.NodeUUID = backfill.UUID
	}
	a.ResourceClass, _ = doc["resource_class"].(string)
	if a.ResourceClass == "" {
		if backfill == nil {
			return badRequest("The resource_class field is mandatory when not backfilling")
		}
		a.ResourceClass = backfill.ResourceClass
	}
	if a.CandidateNodes, err = s.candidateUUIDs(c, doc["candidate_nodes"]); err != nil {
		return err
	}
	a.Traits = anyStrings(doc["traits"])
	a.Extra, _ = doc["extra"].(map[string]any)
	a.UUID, _ = doc["uuid"].(string)
	if a.UUID == "" && backfill != nil {
		a.UUID = backfill.InstanceUUID
	}
	if a.UUID != "" {
		a.UUID = canonicalUUID(a.UUID)
	}
	created, err := s.be.CreateAllocation(c.r.Context(), a)
	if err != nil {
		return err
	}
	c.w.Header().Set("Location", c.base+"/v1/allocations/"+created.UUID)
	return c.json(http.StatusCreated, c.renderAllocation(created, nil))
}

// candidateUUIDs resolves candidate node names to UUIDs, keeping their order.
func (s *server) candidateUUIDs(c *call, v any) ([]string, error) {
	idents := anyStrings(v)
	var out, missing []string
	for _, ident := range idents {
		if !isUUIDLike(ident) && !isValidLogicalName(ident) {
			missing = append(missing, ident)
			continue
		}
		n, err := s.be.GetNode(c.r.Context(), ident)
		if err != nil {
			if status, _, _ := errorStatus(err, ""); status != http.StatusNotFound {
				return nil, err
			}
			missing = append(missing, ident)
			continue
		}
		out = append(out, n.UUID)
	}
	if len(missing) > 0 {
		return nil, badRequest("Nodes cannot be found: %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// anyStrings converts a validated JSON array of strings.
func anyStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// patchAllocation serves PATCH /v1/allocations/{allocation} (1.57; name and extra only).
func (s *server) patchAllocation(c *call) error {
	id := c.r.PathValue("allocation")
	if err := c.allocationsAllowed(); err != nil {
		return err
	}
	if c.ver < v57AllocationUpdate {
		return webobError(http.StatusMethodNotAllowed, "The API version does not allow updating allocations")
	}
	body, err := c.readBody()
	if err != nil {
		return err
	}
	ops, err := decodePatch(body)
	if err != nil {
		return err
	}
	if err := checkAllowed(ops, []string{"name", "extra"}); err != nil {
		return err
	}
	for _, name := range patchValues(ops, "/name") {
		if s, ok := name.(string); ok && s != "" && !isValidNameAt(s, c.ver) {
			return badRequest("Cannot update allocation with invalid name '%s'", s)
		}
	}
	up, ok := s.be.(AllocationUpdater)
	if !ok {
		return webobError(http.StatusMethodNotAllowed, "Updating allocations is not supported by this Ferrum controller")
	}
	a, err := c.findAllocation(id)
	if err != nil {
		return err
	}
	updated, err := up.UpdateAllocation(c.r.Context(), a.UUID, func(a *node.Allocation) error {
		doc := map[string]any{"name": strOrNil(a.Name), "extra": mapOrEmpty(copyMap(a.Extra))}
		if err := applyPatch(doc, ops); err != nil {
			return err
		}
		schema := objSchema{props: map[string]prop{"name": {types: tStringNull}, "extra": {types: tObjectNull}}}
		if msg := schema.check(doc); msg != "" {
			return badRequest("Schema error for patch: %s", msg)
		}
		a.Name, _ = doc["name"].(string)
		a.Extra, _ = doc["extra"].(map[string]any)
		return nil
	})
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, c.renderAllocation(updated, nil))
}

// nodeAllocation finds the allocation of the request's node (GET/DELETE
// /v1/nodes/{node}/allocation).
func (c *call) nodeAllocation() (*node.Allocation, error) {
	if c.ver < v52Allocations {
		return nil, webobError(http.StatusNotFound, "")
	}
	n, ident, err := c.lookupNode()
	if err != nil {
		return nil, err
	}
	allocs, err := c.s.be.ListAllocations(c.r.Context(), node.AllocationQuery{NodeUUID: n.UUID,
		Page: node.Page{Limit: 1}})
	if err != nil {
		return nil, err
	}
	if len(allocs) == 0 {
		return nil, clientError(http.StatusNotFound, "Allocation for node %s was not found", ident)
	}
	return allocs[0], nil
}

// getNodeAllocation serves GET /v1/nodes/{node}/allocation.
func (s *server) getNodeAllocation(c *call) error {
	fields, err := c.fieldsParam(c.checkAllocationFields)
	if err != nil {
		return err
	}
	a, err := c.nodeAllocation()
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, c.renderAllocation(a, fields))
}

// deleteNodeAllocation serves DELETE /v1/nodes/{node}/allocation.
func (s *server) deleteNodeAllocation(c *call) error {
	a, err := c.nodeAllocation()
	if err != nil {
		return err
	}
	if err := s.be.DeleteAllocation(c.r.Context(), a.UUID); err != nil {
		return err
	}
	return c.empty(http.StatusNoContent)
}
