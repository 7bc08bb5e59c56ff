package api

import (
	"net/http"
	"slices"

	"github.com/ferrumhq/ferrum/controller/node"
)

// portgroupSchema is Ironic's PORTGROUP_SCHEMA (also its patch schema).
var portgroupSchema = objSchema{
	required: []string{"node_uuid"},
	props: map[string]prop{
		"address":                    {types: tStringNull},
		"extra":                      {types: tObjectNull},
		"mode":                       {types: tStringNull},
		"name":                       {types: tStringNull},
		"node_uuid":                  {types: tString},
		"properties":                 {types: tObjectNull},
		"standalone_ports_supported": {types: tStrBoolNull},
		"uuid":                       {types: tStringNull},
	},
}

var portgroupPatchAllowed = []string{"address", "extra", "mode", "name", "node_uuid",
	"properties", "standalone_ports_supported"}

var portgroupFields = []string{"uuid", "created_at", "updated_at", "address", "extra",
	"internal_info", "mode", "name", "properties", "standalone_ports_supported", "node_uuid",
	"ports"}

var defaultPortgroupFields = []string{"uuid", "address", "name"}

// defaultPortgroupMode is Ironic's [DEFAULT]default_portgroup_mode.
const defaultPortgroupMode = "active-backup"

// validatePortgroupDoc is PORTGROUP_VALIDATOR; it normalizes the document in place.
func validatePortgroupDoc(doc any, what string) error {
	if msg := portgroupSchema.check(doc); msg != "" {
		return badRequest("Schema error for %s: %s", what, msg)
	}
	m := doc.(map[string]any)
	if s, ok := m["address"].(string); ok {
		mac, valid := normalizeMAC(s)
		if !valid {
			return badRequest("Expected valid MAC address for address: %s", s)
		}
		m["address"] = mac
	}
	if s, ok := m["node_uuid"].(string); ok {
		if err := argUUID("node_uuid", s); err != nil {
			return err
		}
	}
	if v, ok := m["standalone_ports_supported"]; ok && v != nil {
		b, err := argBool("standalone_ports_supported", v)
		if err != nil {
			return err
		}
		m["standalone_ports_supported"] = b
	}
	if s, ok := m["uuid"].(string); ok {
		if err := argUUID("uuid", s); err != nil {
			return err
		}
	}
	return nil
}

// portgroupsAllowed is allow_portgroups (1.23): below it the collection does not exist.
func (c *call) portgroupsAllowed() error {
	if c.ver < v23Portgroups {
		return clientError(http.StatusNotFound, msgNotFound)
	}
	return nil
}

// findPortgroup resolves a portgroup UUID or name (get_rpc_portgroup).
func (c *call) findPortgroup(ident string) (*node.Portgroup, error) {
	if !isUUIDLike(ident) && !isValidNameAt(ident, c.ver) {
		return nil, badRequest("Expected a logical name or UUID but received %s.", ident)
	}
	return c.s.be.GetPortgroup(c.r.Context(), ident)
}

// portgroupIdent is the {portgroup} path value after the _lookup checks.
func (c *call) portgroupIdent() (string, error) {
	if c.ver < v23Portgroups {
		return "", webobError(http.StatusNotFound, "")
	}
	id := c.r.PathValue("portgroup")
	if !isValidLogicalName(id) && !isUUIDLike(id) {
		return "", webobError(http.StatusBadRequest, "Expected UUID or name for portgroup: "+id)
	}
	return id, nil
}

// renderPortgroup is the portgroup convert_with_links.
func (c *call) renderPortgroup(pg *node.Portgroup, fields []string) obj {
	o := obj{
		{"uuid", pg.UUID},
		{"created_at", isoTime(pg.CreatedAt)},
		{"updated_at", isoTime(pg.UpdatedAt)},
		{"address", strOrNil(pg.Address)},
		{"extra", mapOrEmpty(pg.Extra)},
		{"internal_info", mapOrEmpty(pg.InternalInfo)},
		{"mode", strOrNil(pg.Mode)},
		{"name", strOrNil(pg.Name)},
		{"properties", mapOrEmpty(pg.Properties)},
		{"standalone_ports_supported", pg.StandalonePortsSupported},
		{"node_uuid", pg.NodeUUID},
		{"links", c.links("portgroups", pg.UUID)},
		{"ports", c.links("portgroups", pg.UUID+"/ports")},
	}
	if fields != nil {
		o = o.keep(fields)
	}
	return o
}

// checkPortgroupFields validates ?fields= of portgroup requests.
func (c *call) checkPortgroupFields(fields []string) error {
	if err := c.checkFieldsAllowed(fields); err != nil {
		return err
	}
	if c.ver < v26PortgroupMode && (slices.Contains(fields, "mode") || slices.Contains(fields, "properties")) {
		return notAcceptable()
	}
	return checkFieldNames(fields, func(f string) bool { return slices.Contains(portgroupFields, f) })
}

var portgroupListArgs = []string{"node", "address", "marker", "limit", "sort_key",
	"sort_dir", "fields", "detail"}

// listPortgroups serves GET /v1/portgroups[/detail] and /v1/nodes/{node}/portgroups[/detail].
func (s *server) listPortgroups(detailPath, underNode bool) handlerFunc {
	allowed := portgroupListArgs
	if detailPath {
		allowed = slices.DeleteFunc(slices.Clone(portgroupListArgs), func(a string) bool {
			return a == "fields" || a == "detail"
		})
	}
	return func(c *call) error {
		if underNode && c.ver < v24PortgroupSubcontrol {
			return webobError(http.StatusNotFound, "")
		}
		q, err := c.query(allowed...)
		if err != nil {
			return err
		}
		lq, err := c.portgroupQuery(q, detailPath, underNode)
		if err != nil {
			return err
		}
		pgs, err := s.be.ListPortgroups(c.r.Context(), lq.PortgroupQuery)
		if err != nil {
			return err
		}
		items := make([]obj, len(pgs))
		for i, pg := range pgs {
			items[i] = c.renderPortgroup(pg, lq.fields)
		}
		out := obj{{"portgroups", items}}
		if len(pgs) > 0 {
			if next := c.nextLink(lq.resource, len(pgs), lq.page, pgs[len(pgs)-1].UUID, lq.fields); next != "" {
				out = append(out, field{"next", next})
			}
		}
		return c.json(http.StatusOK, out)
	}
}

// portgroupListQuery is a decoded portgroup list request.
type portgroupListQuery struct {
	node.PortgroupQuery
	page     page
	fields   []string
	resource string // path of the collection, for "next"
}

// portgroupQuery reads a portgroup list request in Ironic's order of checks.
func (c *call) portgroupQuery(q query, detailPath, underNode bool) (portgroupListQuery, error) {
	lq := portgroupListQuery{resource: "portgroups"}
	nodeIdent, err := q.uuidOrName("node")
	if err != nil {
		return lq, err
	}
	if s, ok := q.str("address"); ok {
		mac, valid := normalizeMAC(s)
		if !valid {
			return lq, badRequest("Expected valid MAC address for address: %s", s)
		}
		lq.Address = mac
	}
	detail, err := q.boolean("detail")
	if err != nil {
		return lq, err
	}
	if err := c.portgroupsAllowed(); err != nil {
		return lq, err
	}
	lq.fields = q.list("fields")
	if err := c.checkPortgroupFields(lq.fields); err != nil {
		return lq, err
	}
	if !detailPath {
		if lq.fields, err = c.returnFields(lq.fields, detail, defaultPortgroupFields); err != nil {
			return lq, err
		}
	}
	if lq.page, err = q.page(pageSpec{sortKeys: node.PortSortKeys,
		noSortKeys: []string{"extra", "internal_info", "properties"}}); err != nil {
		return lq, err
	}
	lq.Page = node.Page{Limit: lq.page.limit, Marker: lq.page.marker, SortKey: lq.page.sortKey, SortDir: lq.page.sortDir}
	if underNode {
		if nodeIdent, err = c.nodeIdent(); err != nil {
			return lq, err
		}
	}
	if nodeIdent != "" {
		if c.ver < v5NodeName && !isUUIDLike(nodeIdent) {
			return lq, notAcceptable()
		}
		n, err := c.findNode(nodeIdent)
		if err != nil {
			return lq, err
		}
		lq.NodeUUID = n.UUID
		if underNode {
			lq.resource = "nodes/" + n.UUID + "/portgroups"
		}
	}
	if detailPath {
		lq.resource += "/detail"
	}
	return lq, nil
}

// getPortgroup serves GET /v1/portgroups/{portgroup}.
func (s *server) getPortgroup(c *call) error {
	id, err := c.portgroupIdent()
	if err != nil {
		return err
	}
	fields, err := c.fieldsParam(c.checkPortgroupFields)
	if err != nil {
		return err
	}
	pg, err := c.findPortgroup(id)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, c.renderPortgroup(pg, fields))
}

// deletePortgroup serves DELETE /v1/portgroups/{portgroup}.
func (s *server) deletePortgroup(c *call) error {
	id, err := c.portgroupIdent()
	if err != nil {
		return err
	}
	pg, err := c.findPortgroup(id)
	if err != nil {
		return err
	}
	if err := s.be.DeletePortgroup(c.r.Context(), pg.UUID); err != nil {
		return err
	}
	return c.empty(http.StatusNoContent)
}

// createPortgroup serves POST /v1/portgroups.
func (s *server) createPortgroup(c *call) error {
	body, err := c.readBody()
	if err != nil {
		return err
	}
	if err := validatePortgroupDoc(body, "portgroup"); err != nil {
		return err
	}
	doc := body.(map[string]any)
	if err := c.portgroupsAllowed(); err != nil {
		return err
	}
	n, err := s.be.GetNode(c.r.Context(), doc["node_uuid"].(string))
	if err != nil {
		return asBadRequest(err)
	}
	if c.ver < v26PortgroupMode && (truthy(doc["mode"]) || truthy(doc["properties"])) {
		return notAcceptable()
	}
	if name, ok := doc["name"].(string); ok && name != "" && !isValidNameAt(name, c.ver) {
		return badRequest("Cannot create portgroup with invalid name '%s'", name)
	}
	pg := &node.Portgroup{NodeUUID: n.UUID, Mode: defaultPortgroupMode, StandalonePortsSupported: true}
	setPortgroupDoc(pg, doc)
	created, err := s.be.CreatePortgroup(c.r.Context(), pg)
	if err != nil {
		return err
	}
	c.w.Header().Set("Location", c.base+"/v1/portgroups/"+created.UUID)
	return c.json(http.StatusCreated, c.renderPortgroup(created, nil))
}

// setPortgroupDoc copies a validated portgroup document onto pg; null clears.
func setPortgroupDoc(pg *node.Portgroup, doc map[string]any) {
	for k, v := range doc {
		str, _ := v.(string)
		m, _ := v.(map[string]any)
		switch k {
		case "uuid":
			pg.UUID = canonicalUUID(str)
		case "address":
			pg.Address = str
		case "name":
			pg.Name = str
		case "mode":
			if str != "" {
				pg.Mode = str
			}
		case "node_uuid":
			pg.NodeUUID = str
		case "extra":
			pg.Extra = m
		case "properties":
			pg.Properties = m
		case "standalone_ports_supported":
			b, isBool := v.(bool)
			pg.StandalonePortsSupported = b || !isBool
		}
	}
}

// portgroupDoc is the patchable view of a portgroup.
func portgroupDoc(pg *node.Portgroup) map[string]any {
	return map[string]any{
		"address":                    strOrNil(pg.Address),
		"extra":                      mapOrEmpty(copyMap(pg.Extra)),
		"mode":                       strOrNil(pg.Mode),
		"name":                       strOrNil(pg.Name),
		"node_uuid":                  pg.NodeUUID,
		"properties":                 mapOrEmpty(copyMap(pg.Properties)),
		"standalone_ports_supported": pg.StandalonePortsSupported,
	}
}

// patchPortgroupDoc applies ops to a portgroup's document and validates the result.
func patchPortgroupDoc(pg *node.Portgroup, ops []patchOp) (map[string]any, error) {
	doc := portgroupDoc(pg)
	if err := applyPatch(doc, ops); err != nil {
		return nil, err
	}
	if _, ok := doc["mode"]; !ok {
		return nil, badRequest("'mode' is a mandatory attribute and can not be removed")
	}
	if err := validatePortgroupDoc(doc, "patch"); err != nil {
		return nil, err
	}
	return doc, nil
}

// patchPortgroup serves PATCH /v1/portgroups/{portgroup}.
func (s *server) patchPortgroup(c *call) error {
	id, err := c.portgroupIdent()
	if err != nil {
		return err
	}
	body, err := c.readBody()
	if err != nil {
		return err
	}
	ops, err := decodePatch(body)
	if err != nil {
		return err
	}
	if err := checkAllowed(ops, portgroupPatchAllowed); err != nil {
		return err
	}
	if c.ver < v26PortgroupMode && (touches(ops, "/mode") || touches(ops, "/properties")) {
		return notAcceptable()
	}
	for _, name := range patchValues(ops, "/name") {
		if s, ok := name.(string); ok && s != "" && !isValidNameAt(s, c.ver) {
			return badRequest("Portgroup %s: Cannot change name to invalid name '%s'", id, s)
		}
	}
	cur, err := c.findPortgroup(id)
	if err != nil {
		return err
	}
	doc, err := patchPortgroupDoc(cur, ops)
	if err != nil {
		return err
	}
	n, err := s.be.GetNode(c.r.Context(), doc["node_uuid"].(string))
	if err != nil {
		return asBadRequest(err)
	}
	if n.ProvisionState == node.Inspecting && c.ver >= v39InspectWait {
		return clientError(http.StatusConflict, "Cannot update portgroup \"%s\" on node \"%s\" "+
			"while it is in state \"%s\".", cur.UUID, n.UUID, node.Inspecting)
	}
	updated, err := s.be.UpdatePortgroup(c.r.Context(), cur.UUID, func(pg *node.Portgroup) error {
		again, err := patchPortgroupDoc(pg, ops)
		if err != nil {
			return err
		}
		if again["node_uuid"] != doc["node_uuid"] {
			return clientError(http.StatusConflict, "Portgroup %s changed during the update, please retry.", pg.UUID)
		}
		pg.Address, pg.Name, pg.Extra, pg.Properties = "", "", nil, nil
		setPortgroupDoc(pg, again)
		return nil
	})
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, c.renderPortgroup(updated, nil))
}
