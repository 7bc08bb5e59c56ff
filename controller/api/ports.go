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

// portSchema is Ironic's PORT_SCHEMA (also its patch schema).
var portSchema = objSchema{
	required: []string{"address", "node_uuid"},
	props: map[string]prop{
		"address":               {types: tString},
		"extra":                 {types: tObjectNull},
		"is_smartnic":           {types: tStrBoolNull},
		"local_link_connection": {types: tNullObject},
		"node_uuid":             {types: tString},
		"physical_network":      {types: tStringNull, maxLen: 64},
		"portgroup_uuid":        {types: tStringNull},
		"pxe_enabled":           {types: tStrBoolNull},
		"uuid":                  {types: tStringNull},
	},
}

// portPatchAllowed is the port PATCH_ALLOWED_FIELDS.
var portPatchAllowed = []string{"address", "extra", "is_smartnic", "local_link_connection",
	"node_uuid", "physical_network", "portgroup_uuid", "pxe_enabled"}

// portFieldSince is the microversion of each port field a client can ask for (0: always).
var portFieldSince = map[string]int{
	"uuid": 0, "created_at": 0, "updated_at": 0, "address": 0, "extra": 0,
	"internal_info": v18PortInternalInfo, "is_smartnic": v53SmartNIC,
	"local_link_connection": v19PortAdvancedNet, "physical_network": v34PhysicalNetwork,
	"pxe_enabled": v19PortAdvancedNet, "node_uuid": 0, "links": 0,
	"portgroup_uuid": v24PortgroupSubcontrol,
}

var defaultPortFields = []string{"uuid", "address"}

var noPortSortKeys = []string{"extra", "internal_info", "local_link_connection"}

// validatePortDoc checks a port document and normalizes it in place (PORT_VALIDATOR).
func validatePortDoc(doc any, what string) error {
	if msg := portSchema.check(doc); msg != "" {
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
	for _, k := range []string{"is_smartnic", "pxe_enabled"} {
		if v, ok := m[k]; ok && v != nil {
			b, err := argBool(k, v)
			if err != nil {
				return err
			}
			m[k] = b
		}
	}
	if llc, ok := m["local_link_connection"].(map[string]any); ok {
		if err := checkLocalLink(llc); err != nil {
			return err
		}
	}
	for _, k := range []string{"portgroup_uuid", "uuid"} {
		if s, ok := m[k].(string); ok {
			if err := argUUID(k, s); err != nil {
				return err
			}
		}
	}
	return nil
}

var datapathRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// checkLocalLink is LOCAL_LINK_VALIDATOR: one of the allowed shapes, switch_id normalized.
func checkLocalLink(llc map[string]any) error {
	if len(llc) > 0 && !localLinkShapeOK(llc) {
		return badRequest("Schema error for local_link_connection: %s is not valid under any "+
			"of the given schemas. Possible root cause: %s", pyRepr(llc), localLinkRootCause(llc))
	}
	if v, ok := llc["switch_id"]; ok {
		s, _ := v.(string)
		if mac, ok := normalizeMAC(s); ok {
			llc["switch_id"] = mac
		} else if l := strings.ToLower(s); datapathRE.MatchString(l) {
			llc["switch_id"] = l
		} else {
			return badRequest("Expected a MAC address or OpenFlow datapath ID but received %s.", pyText(v))
		}
	}
	return nil
}

// localLinkShapeOK matches LOCAL_LINK_CONN_SCHEMA's anyOf.
func localLinkShapeOK(llc map[string]any) bool {
	for k, v := range llc {
		switch k {
		case "port_id", "switch_id", "hostname", "switch_info":
			if _, ok := v.(string); !ok {
				return false
			}
		case "network_type":
			if v != "managed" && v != "unmanaged" {
				return false
			}
		default:
			return false
		}
	}
	has := func(k string) bool { _, ok := llc[k]; return ok }
	return (has("port_id") && has("switch_id")) || (has("port_id") && has("hostname")) ||
		llc["network_type"] == "unmanaged"
}

// localLinkRootCause is the error jsonschema blames for a bad local_link_connection: the
// first of the anyOf schemas (port_id and switch_id required).
func localLinkRootCause(llc map[string]any) string {
	var extra []string
	for k := range llc {
		switch k {
		case "port_id", "switch_id", "hostname", "switch_info", "network_type":
		default:
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		return additionalProps(extra)
	}
	for _, k := range []string{"port_id", "switch_id"} {
		if _, ok := llc[k]; !ok {
			return fmt.Sprintf("%s is a required property", pyStr(k))
		}
	}
	for _, k := range []string{"port_id", "switch_id", "hostname", "switch_info"} {
		if v, ok := llc[k]; ok && !typeIn(v, tString) {
			return typeError(v, tString)
		}
	}
	return fmt.Sprintf("%s is not one of ['managed', 'unmanaged']", pyRepr(llc["network_type"]))
}

// checkPortFields is _check_allowed_port_fields.
func (c *call) checkPortFields(fields []string) error {
	for _, f := range fields {
		if since := portFieldSince[f]; c.ver < since && f != "internal_info" {
			return notAcceptable()
		}
	}
	return nil
}

// renderPort is Ironic's port convert_with_links + port_sanitize.
func (c *call) renderPort(p *node.Port, fields []string) obj {
	o := obj{
		{"uuid", p.UUID},
		{"created_at", isoTime(p.CreatedAt)},
		{"updated_at", isoTime(p.UpdatedAt)},
		{"address", p.Address},
		{"extra", mapOrEmpty(p.Extra)},
		{"internal_info", mapOrEmpty(p.InternalInfo)},
		{"is_smartnic", p.IsSmartNIC},
		{"local_link_connection", mapOrEmpty(p.LocalLinkConnection)},
		{"physical_network", strOrNil(p.PhysicalNetwork)},
		{"pxe_enabled", p.PXEEnabled},
		{"node_uuid", p.NodeUUID},
		{"links", c.links("ports", p.UUID)},
		{"portgroup_uuid", strOrNil(p.PortgroupUUID)},
	}
	o = slices.DeleteFunc(o, func(f field) bool { return c.ver < portFieldSince[f.k] })
	if fields != nil {
		o = o.keep(fields)
	}
	return o
}

// checkFieldNames is check_for_invalid_fields.
func checkFieldNames(fields []string, valid func(string) bool) error {
	var bad []string
	for _, f := range fields {
		if !valid(f) {
			bad = append(bad, f)
		}
	}
	if len(bad) > 0 {
		return badRequest("Field(s) \"%s\" are not valid", strings.Join(bad, ", "))
	}
	return nil
}

func isPortField(f string) bool { _, ok := portFieldSince[f]; return ok && f != "links" }

// portListArgs are GET /v1/ports' parameters.
var portListArgs = []string{"node", "node_uuid", "address", "marker", "limit", "sort_key",
	"sort_dir", "fields", "portgroup", "detail", "shard"}

// listPorts serves GET /v1/ports[/detail], /v1/nodes/{node}/ports[/detail] and
// /v1/portgroups/{portgroup}/ports[/detail].
func (s *server) listPorts(detailPath bool, parent string) handlerFunc {
	allowed := portListArgs
	if detailPath {
		allowed = slices.DeleteFunc(slices.Clone(portListArgs), func(a string) bool {
			return a == "fields" || a == "detail"
		})
	}
	return func(c *call) error {
		q, err := c.query(allowed...)
		if err != nil {
			return err
		}
		pq, fields, err := c.portQuery(q, detailPath, parent)
		if err != nil {
			return err
		}
		var ports []*node.Port
		if pq.address != "" && pq.NodeUUID == "" && pq.PortgroupUUID == "" {
			ports, err = s.portsByAddress(c.r.Context(), pq.address)
		} else {
			pq.PortQuery.Address = pq.address
			ports, err = s.be.ListPorts(c.r.Context(), pq.PortQuery)
		}
		if err != nil {
			return err
		}
		items := make([]obj, len(ports))
		for i, p := range ports {
			items[i] = c.renderPort(p, fields)
		}
		out := obj{{"ports", items}}
		if len(ports) > 0 {
			next := c.nextLink(pq.resource, len(ports), pq.page, ports[len(ports)-1].UUID, fields)
			if next != "" {
				out = append(out, field{"next", next})
			}
		}
		return c.json(http.StatusOK, out)
	}
}

// portsByAddress is Ironic's lookup by MAC: one port or none, no paging.
func (s *server) portsByAddress(ctx context.Context, mac string) ([]*node.Port, error) {
	return s.be.ListPorts(ctx, node.PortQuery{Address: mac, Page: node.Page{Limit: 1}})
}

// portListQuery is a decoded port list request.
type portListQuery struct {
	node.PortQuery
	address  string
	page     page
	resource string // path of the collection, for "next"
}

// portQuery reads a port list request in Ironic's order of checks.
func (c *call) portQuery(q query, detailPath bool, parent string) (portListQuery, []string, error) {
	pq := portListQuery{resource: "ports"}
	nodeIdent, err := q.uuidOrName("node")
	if err != nil {
		return pq, nil, err
	}
	nodeUUID, err := q.uuid("node_uuid")
	if err != nil {
		return pq, nil, err
	}
	if s, ok := q.str("address"); ok {
		mac, valid := normalizeMAC(s)
		if !valid {
			return pq, nil, badRequest("Expected valid MAC address for address: %s", s)
		}
		pq.address = mac
	}
	if _, err := q.uuid("marker"); err != nil {
		return pq, nil, err
	}
	pgIdent, err := q.uuidOrName("portgroup")
	if err != nil {
		return pq, nil, err
	}
	detail, err := q.boolean("detail")
	if err != nil {
		return pq, nil, err
	}
	fields := q.list("fields")
	if err := c.checkFieldsAllowed(fields); err != nil {
		return pq, nil, err
	}
	if err := c.checkPortFields(fields); err != nil {
		return pq, nil, err
	}
	if sk, ok := q.str("sort_key"); ok {
		if err := c.checkPortFields([]string{sk}); err != nil {
			return pq, nil, err
		}
	}
	if pgIdent != "" && c.ver < v24PortgroupSubcontrol {
		return pq, nil, notAcceptable()
	}
	if shard := q.list("shard"); shard != nil {
		if c.ver < v82Shard {
			return pq, nil, notAcceptableMin(v82Shard)
		}
		return pq, nil, badRequest("Filtering ports by shard is not supported by Ferrum.")
	}
	if !detailPath {
		if fields, err = c.returnFields(fields, detail, defaultPortFields); err != nil {
			return pq, nil, err
		}
	}
	if err := checkFieldNames(fields, isPortField); err != nil {
		return pq, nil, err
	}
	if nodeUUID == "" && nodeIdent != "" && c.ver < v5NodeName && !isUUIDLike(nodeIdent) {
		return pq, nil, notAcceptable()
	}
	if pq.page, err = q.page(pageSpec{sortKeys: node.PortSortKeys, noSortKeys: noPortSortKeys}); err != nil {
		return pq, nil, err
	}
	pq.Page = node.Page{Limit: pq.page.limit, Marker: pq.page.marker, SortKey: pq.page.sortKey, SortDir: pq.page.sortDir}
	if err := c.resolvePortParents(&pq, parent, nodeIdent, nodeUUID, pgIdent); err != nil {
		return pq, nil, err
	}
	if detailPath {
		pq.resource += "/detail"
	}
	return pq, fields, nil
}

// resolvePortParents turns node and portgroup identifiers (query or path) into UUIDs.
func (c *call) resolvePortParents(pq *portListQuery, parent, nodeIdent, nodeUUID, pgIdent string) error {
	switch parent {
	case "node":
		id, err := c.nodeIdent()
		if err != nil {
			return err
		}
		nodeIdent, nodeUUID = id, ""
	case "portgroup":
		pgIdent = c.r.PathValue("portgroup")
	}
	if nodeUUID != "" {
		nodeIdent = nodeUUID
	}
	filters := 0
	for _, f := range []string{nodeIdent, pgIdent} {
		if f != "" {
			filters++
		}
	}
	if filters > 1 {
		return clientError(http.StatusForbidden, "Operation not permitted.")
	}
	if pgIdent != "" {
		pg, err := c.findPortgroup(pgIdent)
		if err != nil {
			return err
		}
		pq.PortgroupUUID = pg.UUID
		if parent == "portgroup" {
			pq.resource = "portgroups/" + pg.UUID + "/ports"
		}
	}
	if nodeIdent != "" {
		n, err := c.findNode(nodeIdent)
		if err != nil {
			return err
		}
		pq.NodeUUID = n.UUID
		if parent == "node" {
			pq.resource = "nodes/" + n.UUID + "/ports"
		}
	}
	return nil
}

// portUUID is the {port} path value, which must be a UUID.
func (c *call) portUUID() (string, error) {
	id := c.r.PathValue("port")
	return id, argUUID("port_uuid", id)
}

// getPort serves GET /v1/ports/{port}.
func (s *server) getPort(c *call) error {
	q, err := c.query("fields")
	if err != nil {
		return err
	}
	id, err := c.portUUID()
	if err != nil {
		return err
	}
	fields := q.list("fields")
	p, err := s.be.GetPort(c.r.Context(), id)
	if err != nil {
		return err
	}
	if err := c.checkFieldsAllowed(fields); err != nil {
		return err
	}
	if err := c.checkPortFields(fields); err != nil {
		return err
	}
	if err := checkFieldNames(fields, isPortField); err != nil {
		return err
	}
	return c.json(http.StatusOK, c.renderPort(p, fields))
}

// deletePort serves DELETE /v1/ports/{port}.
func (s *server) deletePort(c *call) error {
	id, err := c.portUUID()
	if err != nil {
		return err
	}
	p, err := s.be.GetPort(c.r.Context(), id)
	if err != nil {
		return err
	}
	if err := s.be.DeletePort(c.r.Context(), p.UUID); err != nil {
		return err
	}
	return c.empty(http.StatusNoContent)
}

// createPort serves POST /v1/ports.
func (s *server) createPort(c *call) error {
	body, err := c.readBody()
	if err != nil {
		return err
	}
	if err := validatePortDoc(body, "port"); err != nil {
		return err
	}
	doc := body.(map[string]any)
	n, err := s.be.GetNode(c.r.Context(), doc["node_uuid"].(string))
	if err != nil {
		return asBadRequest(err)
	}
	var keys []string
	for k, v := range doc {
		if v != nil {
			keys = append(keys, k)
		}
	}
	if err := c.checkPortFields(keys); err != nil {
		return err
	}
	p := &node.Port{NodeUUID: n.UUID, PXEEnabled: true}
	var pg *node.Portgroup
	if id, ok := doc["portgroup_uuid"].(string); ok && id != "" {
		if pg, err = s.be.GetPortgroup(c.r.Context(), id); err != nil {
			return asBadRequest(err)
		}
		if pg.NodeUUID != n.UUID {
			return badRequest("Port can not be added to a portgroup belonging to a different node.")
		}
	}
	if llc, ok := doc["local_link_connection"].(map[string]any); ok {
		if _, has := llc["network_type"]; has && c.ver < v64LLCNetworkType {
			return notAcceptable()
		}
		_, port := llc["port_id"]
		_, host := llc["hostname"]
		if truthy(doc["is_smartnic"]) && (!port || !host) {
			return badRequest("Smart NIC port must have port_id and hostname in local_link_connection")
		}
	}
	setPortDoc(p, doc)
	if pn, ok := doc["physical_network"]; ok && pn == "" {
		return badRequest("A non-empty value is required when setting physical_network")
	}
	if pg != nil && truthy(doc["pxe_enabled"]) && !pg.StandalonePortsSupported {
		return clientError(http.StatusConflict, "Port group %s doesn't support standalone ports. "+
			"This port cannot be created as a member of that portgroup as the port's "+
			"'pxe_enabled' field was set to True.", pg.UUID)
	}
	created, err := s.be.CreatePort(c.r.Context(), p)
	if err != nil {
		return err
	}
	c.w.Header().Set("Location", c.base+"/v1/ports/"+created.UUID)
	return c.json(http.StatusCreated, c.renderPort(created, nil))
}

// asBadRequest turns a "not found" of a referenced resource into a 400, as Ironic does for
// references in request bodies.
func asBadRequest(err error) error {
	if status, msg, _ := errorStatus(err, ""); status == http.StatusNotFound {
		return badRequest("%s", msg)
	}
	return err
}

// setPortDoc copies a validated port document onto p.
func setPortDoc(p *node.Port, doc map[string]any) {
	for k, v := range doc {
		str, _ := v.(string)
		b, _ := v.(bool)
		m, _ := v.(map[string]any)
		switch k {
		case "uuid":
			p.UUID = canonicalUUID(str)
		case "address":
			p.Address = str
		case "node_uuid":
			p.NodeUUID = str
		case "portgroup_uuid":
			p.PortgroupUUID = str
		case "extra":
			p.Extra = m
		case "local_link_connection":
			p.LocalLinkConnection = m
		case "physical_network":
			p.PhysicalNetwork = str
		case "is_smartnic":
			p.IsSmartNIC = b
		case "pxe_enabled":
			p.PXEEnabled = b || v == nil // Ironic's default is True
		}
	}
}

// portDoc is the patchable view of a port.
func portDoc(p *node.Port) map[string]any {
	return map[string]any{
		"address":               p.Address,
		"extra":                 mapOrEmpty(copyMap(p.Extra)),
		"is_smartnic":           p.IsSmartNIC,
		"local_link_connection": mapOrEmpty(copyMap(p.LocalLinkConnection)),
		"node_uuid":             p.NodeUUID,
		"physical_network":      strOrNil(p.PhysicalNetwork),
		"portgroup_uuid":        strOrNil(p.PortgroupUUID),
		"pxe_enabled":           p.PXEEnabled,
	}
}

// patchPort serves PATCH /v1/ports/{port}. References (node, portgroup) are resolved on a
// first application of the patch; the backend's mutate applies it again to the locked copy.
func (s *server) patchPort(c *call) error {
	id, err := c.portUUID()
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
	if err := checkAllowed(ops, portPatchAllowed); err != nil {
		return err
	}
	var check []string
	for _, f := range []string{"pxe_enabled", "local_link_connection", "portgroup_uuid",
		"physical_network", "is_smartnic"} {
		if len(patchValues(ops, "/"+f)) > 0 || removes(ops, "/"+f) {
			check = append(check, f)
		}
	}
	if len(patchValues(ops, "/local_link_connection/network_type")) > 0 && c.ver < v64LLCNetworkType {
		return notAcceptable()
	}
	if err := c.checkPortFields(check); err != nil {
		return err
	}
	cur, err := s.be.GetPort(c.r.Context(), id)
	if err != nil {
		return err
	}
	doc, err := patchPortDoc(cur, ops)
	if err != nil {
		return err
	}
	n, err := s.be.GetNode(c.r.Context(), doc["node_uuid"].(string))
	if err != nil {
		return asBadRequest(err)
	}
	if pgID, _ := doc["portgroup_uuid"].(string); pgID != "" && touches(ops, "/portgroup_uuid") {
		if _, err := s.be.GetPortgroup(c.r.Context(), pgID); err != nil {
			return asBadRequest(err)
		}
	}
	if n.ProvisionState == node.Inspecting && c.ver >= v39InspectWait {
		return clientError(http.StatusConflict, "Cannot update port \"%s\" on \"%s\" while it is "+
			"in state \"%s\".", cur.UUID, n.UUID, node.Inspecting)
	}
	if pn, ok := doc["physical_network"]; ok && pn == "" && touches(ops, "/physical_network") {
		return badRequest("A non-empty value is required when setting physical_network")
	}
	updated, err := s.be.UpdatePort(c.r.Context(), cur.UUID, func(p *node.Port) error {
		again, err := patchPortDoc(p, ops)
		if err != nil {
			return err
		}
		if again["node_uuid"] != doc["node_uuid"] || again["portgroup_uuid"] != doc["portgroup_uuid"] {
			return clientError(http.StatusConflict, "Port %s changed during the update, please retry.", p.UUID)
		}
		*p = patchedPort(p, again)
		return nil
	})
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, c.renderPort(updated, nil))
}

// patchPortDoc applies ops to a port's document and validates the result.
func patchPortDoc(p *node.Port, ops []patchOp) (map[string]any, error) {
	doc := portDoc(p)
	if err := applyPatch(doc, ops); err != nil {
		return nil, err
	}
	if err := validatePortDoc(doc, "patch"); err != nil {
		return nil, err
	}
	return doc, nil
}

// patchedPort is p with the fields of a patched document.
func patchedPort(p *node.Port, doc map[string]any) node.Port {
	out := *p
	out.Extra, out.LocalLinkConnection = nil, nil
	out.PortgroupUUID, out.PhysicalNetwork = "", ""
	for k, v := range doc {
		if v == nil {
			continue
		}
		setPortDoc(&out, map[string]any{k: v})
	}
	if v, ok := doc["pxe_enabled"]; !ok || v == nil {
		out.PXEEnabled = true
	}
	if v, ok := doc["is_smartnic"]; !ok || v == nil {
		out.IsSmartNIC = false
	}
	return out
}
