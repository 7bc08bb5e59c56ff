package api

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/ferrumhq/ferrum/controller/node"
)

// nodeDescriptionMax is Ironic's _NODE_DESCRIPTION_MAX_LENGTH.
const nodeDescriptionMax = 4096

// nodeSchema is Ironic's node_schema() (POST /v1/nodes). network_data's own schema is not
// checked beyond "an object".
var nodeSchema = objSchema{
	required: []string{"driver"},
	props: map[string]prop{
		"automated_clean":      {types: tStrBoolNull},
		"bios_interface":       {types: tStringNull},
		"boot_interface":       {types: tStringNull},
		"boot_mode":            {types: tStringNull},
		"chassis_uuid":         {types: tStringNull},
		"conductor_group":      {types: tStringNull},
		"console_enabled":      {types: tStrBoolNull},
		"console_interface":    {types: tStringNull},
		"deploy_interface":     {types: tStringNull},
		"description":          {types: tStringNull, maxLen: nodeDescriptionMax},
		"driver":               {types: tString},
		"driver_info":          {types: tObjectNull},
		"extra":                {types: tObjectNull},
		"inspect_interface":    {types: tStringNull},
		"instance_info":        {types: tObjectNull},
		"instance_uuid":        {types: tStringNull},
		"lessee":               {types: tStringNull},
		"management_interface": {types: tStringNull},
		"maintenance":          {types: tStrBoolNull},
		"name":                 {types: tStringNull},
		"network_data":         {types: tObjectNull},
		"network_interface":    {types: tStringNull},
		"owner":                {types: tStringNull},
		"power_interface":      {types: tStringNull},
		"properties":           {types: tObjectNull},
		"raid_interface":       {types: tStringNull},
		"rescue_interface":     {types: tStringNull},
		"resource_class":       {types: tStringNull, maxLen: 80},
		"retired":              {types: tStrBoolNull},
		"retired_reason":       {types: tStringNull},
		"secure_boot":          {types: tStrBoolNull},
		"shard":                {types: tStringNull},
		"storage_interface":    {types: tStringNull},
		"uuid":                 {types: tStringNull},
		"vendor_interface":     {types: tStringNull},
	},
}

// nodePatchSchema is node_patch_schema(): the create schema plus protected.
var nodePatchSchema = func() objSchema {
	s := objSchema{required: nodeSchema.required, props: map[string]prop{}}
	for k, v := range nodeSchema.props {
		s.props[k] = v
	}
	s.props["protected"] = prop{types: tStrBoolNull}
	s.props["protected_reason"] = prop{types: tStringNull}
	return s
}()

// nodeBoolFields and nodeUUIDFields are NODE_VALIDATE_EXTRA, in its order.
var (
	nodeBoolFields = []string{"automated_clean", "console_enabled", "protected", "maintenance",
		"retired", "secure_boot"}
	nodeUUIDFields = []string{"chassis_uuid", "instance_uuid", "uuid"}
)

// validateNodeDoc checks a node document (a POST body or a patched node) against schema
// and NODE_VALIDATE_EXTRA, coercing boolean strings in place. what names the document in
// schema errors ("node" or "patch").
func validateNodeDoc(doc map[string]any, schema objSchema, what string) error {
	if nd, ok := doc["network_data"]; ok && !typeIn(nd, tObjectNull) {
		return badRequest("Schema error for %s: %s is not valid under any of the given schemas",
			what, pyRepr(nd))
	}
	if msg := schema.check(doc); msg != "" {
		return badRequest("Schema error for %s: %s", what, msg)
	}
	for _, k := range nodeBoolFields {
		if v, ok := doc[k]; ok && v != nil {
			b, err := argBool(k, v)
			if err != nil {
				return err
			}
			doc[k] = b
		}
	}
	for _, k := range nodeUUIDFields {
		if s, ok := doc[k].(string); ok {
			if err := argUUID(k, s); err != nil {
				return err
			}
		}
	}
	return nil
}

// nodeDocSince is VERSIONED_FIELDS for the fields a client can send.
func nodeDocSince(name string) int {
	if name == "protected_reason" {
		return v48Protected
	}
	if since, ok := nodeFieldSince(name); ok {
		return since
	}
	return 1
}

// rejectNewerFields is reject_fields_in_newer_versions: a field the microversion does not
// know may only be absent (or null, or "" for conductor_group).
func (c *call) rejectNewerFields(doc map[string]any) error {
	for k, v := range doc {
		if c.ver >= nodeDocSince(k) || v == nil {
			continue
		}
		if k == "conductor_group" && v == "" {
			continue
		}
		return notAcceptable()
	}
	return nil
}

// checkNodeNames is _check_names_acceptable.
func (c *call) checkNodeNames(names []any, errFormat string) error {
	if c.ver < v5NodeName {
		return notAcceptable()
	}
	for _, v := range names {
		name, _ := v.(string)
		if !isValidNodeName(name, c.ver) {
			return badRequest(errFormat, pyText(v))
		}
		if slices.Contains(nodeReservedNames, name) {
			return badRequest("The word \"%s\" is reserved and can not be used as a node name. "+
				"Reserved words are: %s.", name, strings.Join(nodeReservedNames, ", "))
		}
	}
	return nil
}

// createNode serves POST /v1/nodes.
func (s *server) createNode(c *call) error {
	body, err := c.readBody()
	if err != nil {
		return err
	}
	if err := validateNodeDoc2(body); err != nil {
		return err
	}
	doc := body.(map[string]any)
	if err := c.rejectNewerFields(doc); err != nil {
		return err
	}
	if name, ok := doc["name"]; ok && name != nil {
		if err := c.checkNodeNames([]any{name}, "Cannot create node with invalid name '%s'"); err != nil {
			return err
		}
	}
	if cu, ok := doc["chassis_uuid"].(string); ok && cu != "" {
		return badRequest("Chassis %s could not be found.", cu)
	}
	n := &node.Node{ProvisionState: node.Enroll}
	if c.ver < v11Enroll {
		n.ProvisionState = node.Available
	}
	if err := setNodeDoc(n, doc); err != nil {
		return err
	}
	created, err := s.be.CreateNode(c.r.Context(), n)
	if err != nil {
		return err
	}
	c.w.Header().Set("Location", c.base+"/v1/nodes/"+created.UUID)
	return c.json(http.StatusCreated, c.renderNode(created, nil))
}

// validateNodeDoc2 validates a POST body, which must be an object.
func validateNodeDoc2(body any) error {
	doc, ok := body.(map[string]any)
	if !ok {
		return badRequest("Schema error for node: %s is not of type 'object'", pyRepr(body))
	}
	return validateNodeDoc(doc, nodeSchema, "node")
}

// setNodeDoc copies the fields of a validated node document onto n. Absent keys leave n
// alone; null clears.
func setNodeDoc(n *node.Node, doc map[string]any) error {
	for k, v := range doc {
		if err := setNodeField(n, k, v); err != nil {
			return err
		}
	}
	return nil
}

// setNodeField sets one client-settable field from its validated JSON value.
func setNodeField(n *node.Node, k string, v any) error {
	str, _ := v.(string)
	m, _ := v.(map[string]any)
	b, isBool := v.(bool)
	if t, ok := strings.CutSuffix(k, "_interface"); ok && slices.Contains(node.InterfaceTypes, t) {
		n.SetIface(t, str)
		return nil
	}
	switch k {
	case "uuid":
		n.UUID = canonicalUUID(str)
	case "name":
		n.Name = str
	case "driver":
		n.Driver = str
	case "driver_info":
		n.DriverInfo = m
	case "extra":
		n.Extra = m
	case "properties":
		n.Properties = m
	case "instance_info":
		n.InstanceInfo = m
	case "network_data":
		n.NetworkData = m
	case "instance_uuid":
		n.InstanceUUID = str
	case "chassis_uuid":
		n.ChassisUUID = str
	case "conductor_group":
		n.ConductorGroup = strings.ToLower(str)
	case "resource_class":
		n.ResourceClass = str
	case "owner":
		n.Owner = str
	case "lessee":
		n.Lessee = str
	case "description":
		n.Description = str
	case "shard":
		n.Shard = str
	case "boot_mode":
		n.BootMode = str
	case "retired_reason":
		n.RetiredReason = str
	case "protected_reason":
		n.ProtectedReason = str
	case "automated_clean":
		n.AutomatedClean = nil
		if isBool {
			n.AutomatedClean = &b
		}
	case "secure_boot":
		n.SecureBoot = nil
		if isBool {
			n.SecureBoot = &b
		}
	case "maintenance", "retired", "protected", "console_enabled":
		if !isBool {
			if k == "protected" {
				b = false // Ironic: protected is not nullable, None means False
			} else {
				return badRequest("Field `%s' cannot be None", k)
			}
		}
		switch k {
		case "maintenance":
			n.Maintenance = b
		case "retired":
			n.Retired = b
		case "protected":
			n.Protected = b
		default:
			n.ConsoleEnabled = b
		}
	default:
		return fmt.Errorf("api: node field %q has no setter", k)
	}
	return nil
}

// canonicalUUID writes a UUID-like string (braces, urn:, no dashes) in its canonical form.
func canonicalUUID(s string) string {
	u, err := uuid.Parse(s)
	if err != nil {
		return strings.ToLower(s)
	}
	return u.String()
}
