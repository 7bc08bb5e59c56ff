package api

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ferrumhq/ferrum/controller/node"
)

// bodyArgs reads a JSON object body as keyword arguments (pecan's behaviour): a missing or
// non-object body gives no arguments; names outside allowed are refused.
func (c *call) bodyArgs(allowed ...string) (map[string]any, error) {
	body, err := c.readBody()
	if err != nil {
		return nil, err
	}
	args, ok := body.(map[string]any)
	if !ok {
		return map[string]any{}, nil
	}
	var extra []string
	for k := range args {
		if !slices.Contains(allowed, k) {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return nil, badRequest("Unexpected arguments: %s", strings.Join(extra, ", "))
	}
	return args, nil
}

// optString is an optional string argument (null counts as absent).
func optString(args map[string]any, name string) (string, bool, error) {
	v, ok := args[name]
	if !ok || v == nil {
		return "", false, nil
	}
	s, err := argString(name, v)
	return s, true, err
}

// statesLocation is the Location of a 202 on a node's states.
func (c *call) statesLocation(ident string) {
	c.w.Header().Set("Location", c.base+"/v1/nodes/"+ident+"/states")
}

// getStates serves GET /v1/nodes/{node}/states.
func (s *server) getStates(c *call) error {
	n, _, err := c.lookupNode()
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, c.renderNodeStates(n))
}

// powerTargets are ALLOWED_TARGET_POWER_STATES.
var powerTargets = []string{node.PowerOn, node.PowerOff, node.Rebooting, node.SoftRebooting,
	node.SoftPowerOff}

// setPower serves PUT /v1/nodes/{node}/states/power.
func (s *server) setPower(c *call) error {
	ident, err := c.nodeIdent()
	if err != nil {
		return err
	}
	args, err := c.bodyArgs("target", "timeout")
	if err != nil {
		return err
	}
	target, ok, err := optString(args, "target")
	if err != nil {
		return err
	}
	var timeout *int
	if v, has := args["timeout"]; has && v != nil {
		t, err := argInteger("timeout", v)
		if err != nil {
			return err
		}
		timeout = &t
	}
	if !ok {
		return badRequest("Missing mandatory parameter: target")
	}
	n, err := c.findNode(ident)
	if err != nil {
		return err
	}
	soft := target == node.SoftRebooting || target == node.SoftPowerOff
	if (soft || (timeout != nil && *timeout != 0)) && c.ver < v27SoftPower {
		return notAcceptable()
	}
	if timeout != nil && *timeout < 1 {
		return badRequest("timeout has to be positive integer")
	}
	if !slices.Contains(powerTargets, target) {
		return invalidStateRequested(target, ident, pyState(n.PowerState))
	}
	if n.ProvisionState == node.CleanWait || n.ProvisionState == node.Cleaning {
		return invalidStateRequested(target, ident, string(n.ProvisionState))
	}
	var d time.Duration
	if timeout != nil {
		d = time.Duration(*timeout) * time.Second
	}
	if err := s.be.SetPowerState(c.r.Context(), n.UUID, target, d); err != nil {
		return err
	}
	c.statesLocation(ident)
	return c.empty(http.StatusAccepted)
}

// invalidStateRequested is Ironic's InvalidStateRequested (400).
func invalidStateRequested(action, nodeID, state string) error {
	return badRequest("The requested action \"%s\" can not be performed on node \"%s\" while "+
		"it is in state \"%s\".", action, nodeID, state)
}

// pyState is str() of an optional state ("None" when unset).
func pyState(s string) string {
	if s == "" {
		return "None"
	}
	return s
}

// setMaintenance serves PUT /v1/nodes/{node}/maintenance.
func (s *server) setMaintenance(c *call) error {
	ident, err := c.nodeIdent()
	if err != nil {
		return err
	}
	args, err := c.bodyArgs("reason")
	if err != nil {
		return err
	}
	reason, _, err := optString(args, "reason")
	if err != nil {
		return err
	}
	n, err := c.findNode(ident)
	if err != nil {
		return err
	}
	if err := s.be.SetMaintenance(c.r.Context(), n.UUID, true, reason); err != nil {
		return err
	}
	return c.empty(http.StatusAccepted)
}

// clearMaintenance serves DELETE /v1/nodes/{node}/maintenance.
func (s *server) clearMaintenance(c *call) error {
	n, _, err := c.lookupNode()
	if err != nil {
		return err
	}
	if err := s.be.SetMaintenance(c.r.Context(), n.UUID, false, ""); err != nil {
		return err
	}
	return c.empty(http.StatusAccepted)
}

// validateOrder lists the interfaces of GET …/validate in Ironic 21.4.4's order; others
// (vendor, firmware) are not shown at 1.82.
var validateOrder = []string{"boot", "deploy", "management", "network", "power", "bios",
	"console", "inspect", "raid", "rescue", "storage"}

// validateNode serves GET /v1/nodes/{node}/validate.
func (s *server) validateNode(c *call) error {
	n, _, err := c.lookupNode()
	if err != nil {
		return err
	}
	return s.writeValidation(c, n)
}

// validateNodeQuery serves GET /v1/nodes/validate?node=X (or the deprecated node_uuid).
func (s *server) validateNodeQuery(c *call) error {
	q, err := c.query("node", "node_uuid")
	if err != nil {
		return err
	}
	ident, err := q.uuidOrName("node")
	if err != nil {
		return err
	}
	byUUID, err := q.uuid("node_uuid")
	if err != nil {
		return err
	}
	if ident != "" && c.ver < v5NodeName && !isUUIDLike(ident) {
		return notAcceptable()
	}
	if byUUID != "" {
		ident = byUUID
	}
	n, err := c.findNode(ident)
	if err != nil {
		return err
	}
	return s.writeValidation(c, n)
}

func (s *server) writeValidation(c *call, n *node.Node) error {
	res, err := s.be.Validate(c.r.Context(), n.UUID)
	if err != nil {
		return err
	}
	out := obj{}
	add := func(k string) {
		r := res[k]
		o := obj{{"result", boolOrNil(r.Result)}}
		if r.Reason != "" {
			o = append(o, field{"reason", r.Reason})
		}
		out = append(out, field{k, o})
	}
	for _, k := range validateOrder {
		if _, ok := res[k]; ok {
			add(k)
		}
	}
	return c.json(http.StatusOK, out)
}

// setRAID serves PUT /v1/nodes/{node}/states/raid.
func (s *server) setRAID(c *call) error {
	ident, err := c.nodeIdent()
	if err != nil {
		return err
	}
	body, err := c.readBody()
	if err != nil {
		return err
	}
	cfg, ok := body.(map[string]any)
	if !ok {
		return badRequest("Expected types <class 'dict'> for target_raid_config: %s", pyRepr(body))
	}
	n, err := c.findNode(ident)
	if err != nil {
		return err
	}
	if c.ver < v12Raid {
		return notAcceptable()
	}
	if len(cfg) > 0 {
		if err := validateRAIDConfig(cfg); err != nil {
			return err
		}
	}
	if err := s.be.SetTargetRAIDConfig(c.r.Context(), n.UUID, cfg); err != nil {
		return err
	}
	return c.empty(http.StatusNoContent)
}

// getInventory serves GET /v1/nodes/{node}/inventory (1.81).
func (s *server) getInventory(c *call) error {
	if c.ver < v81Inventory {
		return webobError(http.StatusNotFound, "")
	}
	n, _, err := c.lookupNode()
	if err != nil {
		return err
	}
	if len(n.Inventory) == 0 {
		return clientError(http.StatusNotFound,
			"Node inventory record for node %s could not be found.", n.UUID)
	}
	v, err := decodeJSON(n.Inventory)
	if err != nil {
		return err
	}
	out := obj{{"inventory", v}, {"plugin_data", map[string]any{}}}
	// A stored continue_inspection body carries the inventory inside it.
	if m, ok := v.(map[string]any); ok {
		if inv, ok := m["inventory"].(map[string]any); ok {
			out = obj{{"inventory", inv}, {"plugin_data", mapOrEmpty(asMap(m["plugin_data"]))}}
		}
	}
	return c.json(http.StatusOK, out)
}

// asMap returns v as an object, or nil.
func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
