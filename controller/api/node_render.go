package api

import (
	"fmt"
	"slices"
	"time"

	"github.com/ferrumhq/ferrum/controller/node"
)

// isoTime is Python's datetime.isoformat() of a UTC time: microseconds only when non-zero.
func isoTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	s := t.Format("2006-01-02T15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		s += fmt.Sprintf(".%06d", us)
	}
	return s + "+00:00"
}

// strOrNil shows an empty string as null.
func strOrNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// boolOrNil shows a nil *bool as null.
func boolOrNil(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

// mapOrEmpty shows a nil map as {}.
func mapOrEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// nodeField is one object field of Ironic's node, in the order Ironic lists them
// (_get_fields_for_node_query), with the microversion that shows it.
type nodeField struct {
	name  string
	since int
	get   func(c *call, n *node.Node) any
}

func iface(t string) func(*call, *node.Node) any {
	return func(_ *call, n *node.Node) any { return strOrNil(n.Iface(t)) }
}

var nodeFields = []nodeField{
	{"automated_clean", v47AutomatedClean, func(_ *call, n *node.Node) any { return boolOrNil(n.AutomatedClean) }},
	{"bios_interface", v40BiosInterface, iface("bios")},
	{"boot_interface", v31DynamicInterfaces, iface("boot")},
	{"boot_mode", v75BootMode, func(_ *call, n *node.Node) any { return strOrNil(n.BootMode) }},
	{"clean_step", v7CleanStep, func(_ *call, n *node.Node) any { return mapOrEmpty(n.CleanStep) }},
	{"conductor_group", v46ConductorGroup, func(_ *call, n *node.Node) any { return n.ConductorGroup }},
	{"console_enabled", 1, func(_ *call, n *node.Node) any { return n.ConsoleEnabled }},
	{"console_interface", v31DynamicInterfaces, iface("console")},
	{"deploy_interface", v31DynamicInterfaces, iface("deploy")},
	{"deploy_step", v44DeployStep, func(_ *call, n *node.Node) any { return mapOrEmpty(n.DeployStep) }},
	{"description", v51Description, func(_ *call, n *node.Node) any { return strOrNil(n.Description) }},
	{"driver", 1, func(_ *call, n *node.Node) any { return n.Driver }},
	{"driver_info", 1, func(_ *call, n *node.Node) any { return maskDict(mapOrEmpty(n.DriverInfo)) }},
	{"driver_internal_info", v3DriverInternalInfo, func(_ *call, n *node.Node) any {
		return withAgentLink(maskInternalInfo(mapOrEmpty(n.DriverInternalInfo)), n.Agent)
	}},
	{"extra", 1, func(_ *call, n *node.Node) any { return mapOrEmpty(n.Extra) }},
	{"fault", v42Fault, func(_ *call, n *node.Node) any { return strOrNil(n.Fault) }},
	{"inspection_finished_at", v6Inspect, func(_ *call, n *node.Node) any { return isoTime(n.InspectionFinishedAt) }},
	{"inspection_started_at", v6Inspect, func(_ *call, n *node.Node) any { return isoTime(n.InspectionStartedAt) }},
	{"inspect_interface", v31DynamicInterfaces, iface("inspect")},
	{"instance_info", 1, func(_ *call, n *node.Node) any { return maskInstanceInfo(mapOrEmpty(n.InstanceInfo)) }},
	{"instance_uuid", 1, func(_ *call, n *node.Node) any { return strOrNil(n.InstanceUUID) }},
	{"last_error", 1, func(_ *call, n *node.Node) any { return strOrNil(n.LastError) }},
	{"lessee", v65Lessee, func(_ *call, n *node.Node) any { return strOrNil(n.Lessee) }},
	{"maintenance", 1, func(_ *call, n *node.Node) any { return n.Maintenance }},
	{"maintenance_reason", 1, func(_ *call, n *node.Node) any { return strOrNil(n.MaintenanceReason) }},
	{"management_interface", v31DynamicInterfaces, iface("management")},
	{"name", v5NodeName, func(_ *call, n *node.Node) any { return strOrNil(n.Name) }},
	{"network_data", v66NetworkData, func(_ *call, n *node.Node) any { return mapOrEmpty(n.NetworkData) }},
	{"network_interface", v20NetworkInterface, iface("network")},
	{"owner", v50Owner, func(_ *call, n *node.Node) any { return strOrNil(n.Owner) }},
	{"power_interface", v31DynamicInterfaces, iface("power")},
	{"power_state", 1, func(_ *call, n *node.Node) any { return strOrNil(n.PowerState) }},
	{"properties", 1, func(_ *call, n *node.Node) any { return mapOrEmpty(n.Properties) }},
	{"protected", v48Protected, func(_ *call, n *node.Node) any { return n.Protected }},
	{"protected_reason", v48Protected, func(_ *call, n *node.Node) any { return strOrNil(n.ProtectedReason) }},
	{"provision_state", 1, func(c *call, n *node.Node) any { return c.shownState(n.ProvisionState) }},
	{"provision_updated_at", 1, func(_ *call, n *node.Node) any { return isoTime(n.ProvisionUpdatedAt) }},
	{"raid_config", v12Raid, func(_ *call, n *node.Node) any { return mapOrEmpty(n.RaidConfig) }},
	{"raid_interface", v31DynamicInterfaces, iface("raid")},
	{"rescue_interface", v38Rescue, iface("rescue")},
	{"reservation", 1, func(_ *call, n *node.Node) any { return strOrNil(n.Reservation) }},
	{"resource_class", v21ResourceClass, func(_ *call, n *node.Node) any { return strOrNil(n.ResourceClass) }},
	{"retired", v61Retired, func(_ *call, n *node.Node) any { return n.Retired }},
	{"retired_reason", v61Retired, func(_ *call, n *node.Node) any { return strOrNil(n.RetiredReason) }},
	{"secure_boot", v75BootMode, func(_ *call, n *node.Node) any { return boolOrNil(n.SecureBoot) }},
	{"shard", v82Shard, func(_ *call, n *node.Node) any { return strOrNil(n.Shard) }},
	{"storage_interface", v33StorageInterface, iface("storage")},
	{"target_power_state", 1, func(_ *call, n *node.Node) any { return strOrNil(n.TargetPowerState) }},
	{"target_provision_state", 1, func(c *call, n *node.Node) any { return strOrNil(string(n.TargetProvisionState)) }},
	{"target_raid_config", v12Raid, func(_ *call, n *node.Node) any { return mapOrEmpty(n.TargetRaidConfig) }},
	{"traits", v37Traits, func(_ *call, n *node.Node) any { return traitList(n.Traits) }},
	{"vendor_interface", v31DynamicInterfaces, iface("vendor")},
}

// apiNodeFields are filled by the API rather than read from the node object.
var apiNodeFields = []struct {
	name  string
	since int
}{
	{"conductor", v49Conductors}, {"allocation_uuid", v52Allocations}, {"chassis_uuid", 1},
}

// nodeFieldSince returns the microversion of a node field name usable in ?fields=, or false.
func nodeFieldSince(name string) (int, bool) {
	if name == "uuid" {
		return 1, true
	}
	for _, f := range nodeFields {
		if f.name == name {
			return f.since, true
		}
	}
	for _, f := range apiNodeFields {
		if f.name == name {
			return f.since, true
		}
	}
	return 0, false
}

// traitList shows traits as a list, never null.
func traitList(t []string) []string {
	if t == nil {
		return []string{}
	}
	return t
}

// shownState is the provision state as the requested microversion names it.
func (c *call) shownState(s node.State) any {
	switch {
	case s == node.Available && c.ver < v2AvailableState:
		return nil // the old NOSTATE
	case s == node.InspectWait && c.ver < v39InspectWait:
		return string(node.Inspecting)
	case s == node.NoState:
		return nil
	}
	return string(s)
}

// renderNode is Ironic's node_convert_with_links + node_sanitize: every field visible at the
// microversion, or only fields (plus links) when fields is not nil.
func (c *call) renderNode(n *node.Node, fields []string) obj {
	o := make(obj, 0, len(nodeFields)+12)
	if fields == nil || slices.Contains(fields, "uuid") {
		o = append(o, field{"uuid", n.UUID})
	}
	if fields == nil {
		o = append(o, field{"created_at", isoTime(n.CreatedAt)}, field{"updated_at", isoTime(n.UpdatedAt)})
		for _, f := range nodeFields {
			if c.ver >= f.since {
				o = append(o, field{f.name, f.get(c, n)})
			}
		}
	} else {
		for _, name := range fields {
			for _, f := range nodeFields {
				if f.name == name {
					o.set(name, f.get(c, n))
				}
			}
		}
	}
	o = append(o, field{"links", c.links("nodes", n.UUID)})
	want := func(name string, since int) bool {
		return c.ver >= since && (fields == nil || slices.Contains(fields, name))
	}
	if want("conductor", v49Conductors) {
		o = append(o, field{"conductor", c.s.conductorOf(n)})
	}
	if want("allocation_uuid", v52Allocations) {
		o = append(o, field{"allocation_uuid", strOrNil(n.AllocationUUID)})
	}
	if want("chassis_uuid", 1) {
		o = append(o, field{"chassis_uuid", strOrNil(n.ChassisUUID)})
	}
	if fields != nil {
		return o
	}
	o = append(o, field{"ports", c.links("nodes", n.UUID+"/ports")})
	if c.ver >= v14StatesLinks {
		o = append(o, field{"states", c.links("nodes", n.UUID+"/states")})
	}
	if c.ver >= v24PortgroupSubcontrol {
		o = append(o, field{"portgroups", c.links("nodes", n.UUID+"/portgroups")})
	}
	if c.ver >= v32Volume {
		o = append(o, field{"volume", c.links("nodes", n.UUID+"/volume")})
	}
	return o
}

// renderNodeStates is GET /v1/nodes/{id}/states.
func (c *call) renderNodeStates(n *node.Node) obj {
	o := obj{
		{"console_enabled", n.ConsoleEnabled},
		{"last_error", strOrNil(n.LastError)},
		{"power_state", strOrNil(n.PowerState)},
		{"provision_state", c.shownState(n.ProvisionState)},
		{"target_power_state", strOrNil(n.TargetPowerState)},
		{"target_provision_state", strOrNil(string(n.TargetProvisionState))},
		{"provision_updated_at", isoTime(n.ProvisionUpdatedAt)},
	}
	if c.ver >= v12Raid {
		o = append(o, field{"raid_config", mapOrEmpty(n.RaidConfig)},
			field{"target_raid_config", mapOrEmpty(n.TargetRaidConfig)})
	}
	if c.ver >= v75BootMode {
		o = append(o, field{"boot_mode", strOrNil(n.BootMode)},
			field{"secure_boot", boolOrNil(n.SecureBoot)})
	}
	return o
}

// nodeConductorer is an optional Backend ability: the conductor a node is mapped to (its hash
// ring owner when several controllers share the database).
type nodeConductorer interface {
	NodeConductor(n *node.Node) string
}

// conductorOf is a node's "conductor" field: null when no live conductor serves it.
func (s *server) conductorOf(n *node.Node) any {
	nc, ok := s.be.(nodeConductorer)
	if !ok {
		return s.hostname
	}
	if h := nc.NodeConductor(n); h != "" {
		return h
	}
	return nil
}
