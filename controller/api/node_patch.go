package api

import (
	"net/http"
	"slices"
	"strings"

	"github.com/ferrumhq/ferrum/controller/node"
)

// nodePatchAllowed is Ironic's PATCH_ALLOWED_FIELDS for nodes.
var nodePatchAllowed = []string{"automated_clean", "bios_interface", "boot_interface",
	"chassis_uuid", "conductor_group", "console_interface", "deploy_interface", "description",
	"driver", "driver_info", "extra", "inspect_interface", "instance_info", "instance_uuid",
	"lessee", "maintenance", "management_interface", "name", "network_data",
	"network_interface", "owner", "power_interface", "properties", "protected",
	"protected_reason", "raid_interface", "rescue_interface", "resource_class", "retired",
	"retired_reason", "shard", "storage_interface", "vendor_interface"}

// ifaceUpdateStates are the states in which interfaces and resource_class may change
// outside maintenance (conductor's allowed_update_states).
var ifaceUpdateStates = []node.State{node.Enroll, node.Inspecting, node.InspectWait,
	node.Manageable, node.Available}

// patchNode serves PATCH /v1/nodes/{node}.
func (s *server) patchNode(c *call) error {
	q, err := c.query("reset_interfaces")
	if err != nil {
		return err
	}
	reset, err := q.boolean("reset_interfaces")
	if err != nil {
		return err
	}
	ident, err := c.nodeIdent()
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
	if reset != nil && c.ver < v45ResetInterfaces {
		return notAcceptable()
	}
	if err := c.validateNodePatch(ops, reset != nil && *reset); err != nil {
		return err
	}
	n, err := c.findNode(ident)
	if err != nil {
		return err
	}
	updated, err := s.be.UpdateNode(c.r.Context(), n.UUID, func(n *node.Node) error {
		return c.applyNodePatch(n, ident, ops, reset != nil && *reset)
	})
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, c.renderNode(updated, nil))
}

// validateNodePatch is NodesController._validate_patch: checks that need no node.
func (c *call) validateNodePatch(ops []patchOp, reset bool) error {
	if err := checkAllowed(ops, nodePatchAllowed); err != nil {
		return err
	}
	for _, f := range nodePatchAllowed {
		if c.ver < nodeDocSince(f) && len(patchValues(ops, "/"+f)) > 0 {
			return notAcceptable()
		}
	}
	if reset && len(patchValues(ops, "/driver")) == 0 {
		return badRequest("The reset_interfaces parameter can only be used when changing the node's driver.")
	}
	if d := patchValues(ops, "/description"); len(d) > 0 {
		if s, ok := d[0].(string); ok && len([]rune(s)) > nodeDescriptionMax {
			return badRequest("Cannot update node with description exceeding %d characters", nodeDescriptionMax)
		}
	}
	for _, nd := range patchValues(ops, "/network_data") {
		if !typeIn(nd, tObjectNull) {
			return badRequest("Invalid network_data: %s is not valid under any of the given schemas ", pyRepr(nd))
		}
	}
	return nil
}

// applyNodePatch runs on the locked copy inside Backend.UpdateNode: Ironic's API-side state
// checks, the patch itself, schema validation, and the conductor's update rules.
func (c *call) applyNodePatch(n *node.Node, ident string, ops []patchOp, reset bool) error {
	onlyRemovesInstance := len(ops) == 1 && ops[0].op == "remove" && ops[0].path == "/instance_uuid"
	switch {
	case n.Maintenance && onlyRemovesInstance:
	case n.TargetProvisionState != "" && !slices.Contains(node.UpdateAllowed, n.ProvisionState):
		return clientError(http.StatusConflict,
			"Node %s can not be updated while a state transition is in progress.", ident)
	case n.ProvisionState == node.Inspecting && c.ver >= v39InspectWait:
		return clientError(http.StatusConflict,
			"Cannot update node \"%s\" while it is in state \"%s\".", n.UUID, node.Inspecting)
	}
	if names := patchValues(ops, "/name"); len(names) > 0 {
		if err := c.checkNodeNames(names, "Node "+ident+": Cannot change name to invalid name '%s'"); err != nil {
			return err
		}
	}
	doc := nodeDoc(n)
	if err := applyPatch(doc, ops); err != nil {
		return err
	}
	if err := validateNodeDoc(doc, nodePatchSchema, "patch"); err != nil {
		return err
	}
	if cu, ok := doc["chassis_uuid"].(string); ok && cu != "" && cu != n.ChassisUUID {
		return badRequest("Chassis %s could not be found.", cu)
	}
	old := n.Clone()
	for _, k := range nodePatchAllowed {
		if err := setNodeField(n, k, doc[k]); err != nil {
			return err
		}
	}
	return c.checkNodeUpdate(old, n, reset)
}

// nodeDoc is the patchable part of a node as Ironic's node.as_dict() shows it.
func nodeDoc(n *node.Node) map[string]any {
	doc := map[string]any{
		"automated_clean":  boolOrNil(n.AutomatedClean),
		"chassis_uuid":     strOrNil(n.ChassisUUID),
		"conductor_group":  n.ConductorGroup,
		"description":      strOrNil(n.Description),
		"driver":           n.Driver,
		"driver_info":      mapOrEmpty(copyMap(n.DriverInfo)),
		"extra":            mapOrEmpty(copyMap(n.Extra)),
		"instance_info":    mapOrEmpty(copyMap(n.InstanceInfo)),
		"instance_uuid":    strOrNil(n.InstanceUUID),
		"lessee":           strOrNil(n.Lessee),
		"maintenance":      n.Maintenance,
		"name":             strOrNil(n.Name),
		"network_data":     mapOrEmpty(copyMap(n.NetworkData)),
		"owner":            strOrNil(n.Owner),
		"properties":       mapOrEmpty(copyMap(n.Properties)),
		"protected":        n.Protected,
		"protected_reason": strOrNil(n.ProtectedReason),
		"resource_class":   strOrNil(n.ResourceClass),
		"retired":          n.Retired,
		"retired_reason":   strOrNil(n.RetiredReason),
		"shard":            strOrNil(n.Shard),
	}
	for _, k := range nodePatchAllowed {
		if t, ok := strings.CutSuffix(k, "_interface"); ok {
			doc[k] = strOrNil(n.Iface(t))
		}
	}
	return doc
}

// checkNodeUpdate applies the rules Ironic's conductor enforces in update_node to the
// change from old to n.
func (c *call) checkNodeUpdate(old, n *node.Node, reset bool) error {
	if old.Maintenance && !n.Maintenance {
		n.MaintenanceReason, n.Fault = "", ""
	}
	if old.Protected != n.Protected {
		if !n.Protected {
			n.ProtectedReason = ""
		} else if n.ProvisionState != node.Active && n.ProvisionState != node.Rescue {
			return clientError(http.StatusConflict, "Node %s can only be made protected in "+
				"provision states 'active' or 'rescue', the current state is '%s'",
				n.UUID, n.ProvisionState)
		}
	}
	if old.ProtectedReason != n.ProtectedReason && n.ProtectedReason != "" && !n.Protected {
		return badRequest("The protected_reason field can only be set when protected is True")
	}
	if old.Retired != n.Retired {
		if !n.Retired {
			n.RetiredReason = ""
		} else if n.ProvisionState == node.Available {
			return clientError(http.StatusConflict, "Node %s can not have 'retired' set in "+
				"provision state 'available', the current state is '%s'", n.UUID, n.ProvisionState)
		}
	}
	if old.RetiredReason != n.RetiredReason && n.RetiredReason != "" && !n.Retired {
		return badRequest("The retired_reason field can only be set when retired is True")
	}
	if old.Driver != n.Driver && n.ConsoleEnabled {
		return clientError(http.StatusConflict, "Node %s can not update the driver while the "+
			"console is enabled. Please stop the console first.", n.UUID)
	}
	allowed := slices.Contains(ifaceUpdateStates, n.ProvisionState)
	for _, t := range node.InterfaceTypes {
		if old.Iface(t) == n.Iface(t) {
			if old.Driver != n.Driver && reset {
				n.SetIface(t, "") // the backend fills the new driver's default
			}
			continue
		}
		if !allowed && !n.Maintenance {
			return clientError(http.StatusConflict, "Node %s can not have %s_interface updated "+
				"unless it is in one of allowed (%s) states or in maintenance mode.",
				n.UUID, t, stateList(ifaceUpdateStates))
		}
	}
	if old.InstanceUUID != n.InstanceUUID && n.InstanceUUID != "" && old.InstanceUUID != "" {
		return clientError(http.StatusConflict, "Node %s is associated with instance %s.",
			n.UUID, old.InstanceUUID)
	}
	if old.ResourceClass != n.ResourceClass && old.ResourceClass != "" && !allowed {
		return clientError(http.StatusConflict, "Node %s can not have resource_class updated "+
			"unless it is in one of allowed (%s) states.", n.UUID, stateList(ifaceUpdateStates))
	}
	return nil
}

// stateList joins states with ", ".
func stateList(states []node.State) string {
	s := make([]string, len(states))
	for i, st := range states {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}
