package api

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
)

// provisionVerb is an API target with its FSM event and the microversion that allows it
// (states.VERBS and MIN_VERB_VERSIONS).
type provisionVerb struct {
	event node.Event
	since int
}

var provisionVerbs = map[string]provisionVerb{
	"active":   {node.EvDeploy, 1},
	"deploy":   {node.EvDeploy, v73DeployVerbs},
	"deleted":  {node.EvDelete, 1},
	"undeploy": {node.EvDelete, v73DeployVerbs},
	"rebuild":  {node.EvRebuild, 1},
	"manage":   {node.EvManage, v4ManageableState},
	"provide":  {node.EvProvide, v4ManageableState},
	"inspect":  {node.EvInspect, v6Inspect},
	"abort":    {node.EvAbort, v13Abort},
	"clean":    {node.EvClean, v15ManualClean},
	"adopt":    {node.EvAdopt, v17Adopt},
	"rescue":   {node.EvRescue, v38Rescue},
	"unrescue": {node.EvUnrescue, v38Rescue},
}

// stepInterfaces are the interfaces steps may name (CLEANING_INTERFACE_PRIORITY and
// DEPLOYING_INTERFACE_PRIORITY, in their order).
var stepInterfaces = []string{"power", "management", "deploy", "bios", "raid"}

// provisionBody is a decoded PUT …/states/provision before the node is known.
type provisionBody struct {
	target         string
	configdrive    any
	cleanSteps     []any
	deploySteps    []any
	rescuePassword *string
	disableRamdisk *bool
}

// decodeProvision type-checks the arguments in Ironic's signature order.
func decodeProvision(args map[string]any) (provisionBody, error) {
	var b provisionBody
	target, ok, err := optString(args, "target")
	if !ok && err == nil {
		return b, badRequest("Missing mandatory parameter: target")
	}
	if err != nil {
		return b, err
	}
	b.target = target
	switch v := args["configdrive"].(type) {
	case nil, string, map[string]any:
		b.configdrive = v
	default:
		return b, badRequest("Expected types <class 'NoneType'>, <class 'dict'>, <class 'str'> "+
			"for configdrive: %s", pyText(v))
	}
	for _, l := range []struct {
		name string
		dst  *[]any
	}{{"clean_steps", &b.cleanSteps}, {"deploy_steps", &b.deploySteps}} {
		switch v := args[l.name].(type) {
		case nil:
		case []any:
			*l.dst = v
		default:
			return b, badRequest("Expected types <class 'NoneType'>, <class 'list'> for %s: %s",
				l.name, pyText(v))
		}
	}
	if s, ok, err := optString(args, "rescue_password"); err != nil {
		return b, err
	} else if ok {
		b.rescuePassword = &s
	}
	if v, ok := args["disable_ramdisk"]; ok && v != nil {
		d, err := argBool("disable_ramdisk", v)
		if err != nil {
			return b, err
		}
		b.disableRamdisk = &d
	}
	return b, nil
}

// setProvision serves PUT /v1/nodes/{node}/states/provision.
func (s *server) setProvision(c *call) error {
	ident, err := c.nodeIdent()
	if err != nil {
		return err
	}
	args, err := c.bodyArgs("target", "configdrive", "clean_steps", "deploy_steps",
		"rescue_password", "disable_ramdisk")
	if err != nil {
		return err
	}
	b, err := decodeProvision(args)
	if err != nil {
		return err
	}
	n, err := c.findNode(ident)
	if err != nil {
		return err
	}
	req, err := c.checkProvision(n, b)
	if err != nil {
		return err
	}
	if err := s.be.SetProvisionState(c.r.Context(), n.UUID, req); err != nil {
		return err
	}
	c.statesLocation(ident)
	return c.empty(http.StatusAccepted)
}

// checkProvision is NodeStatesController.provision and _do_provision_action up to the RPC,
// check by check in Ironic's order.
func (c *call) checkProvision(n *node.Node, b provisionBody) (conductor.ProvisionRequest, error) {
	req := conductor.ProvisionRequest{Target: b.target, ConfigDrive: b.configdrive}
	if err := c.checkProvisionAllowed(n, b.target); err != nil {
		return req, err
	}
	if err := c.checkProvisionArgs(n, b, &req); err != nil {
		return req, err
	}
	return req, c.targetArgs(b, &req)
}

// checkProvisionAllowed checks the verb against the microversion, maintenance and the state
// machine. A node that is busy (reserved) gets 409 rather than 400, as in Ironic.
func (c *call) checkProvisionAllowed(n *node.Node, target string) error {
	verb, known := provisionVerbs[target]
	if known && c.ver < verb.since {
		return notAcceptable()
	}
	if (target == "active" || target == "rebuild") && n.Maintenance {
		return badRequest("The provisioning operation can't be performed on node %s "+
			"because it's in maintenance mode.", n.UUID)
	}
	event := node.Event(target)
	if known {
		event = verb.event
	}
	if !node.Allowed(n.ProvisionState, event) {
		if n.Reservation != "" {
			return &node.LockedError{Node: n.UUID, Holder: n.Reservation}
		}
		return invalidStateRequested(target, n.UUID, string(n.ProvisionState))
	}
	return nil
}

// checkProvisionArgs checks that each optional argument suits the target and version.
func (c *call) checkProvisionArgs(n *node.Node, b provisionBody, req *conductor.ProvisionRequest) error {
	if err := c.checkConfigdrive(b.target, b.configdrive); err != nil {
		return err
	}
	if b.disableRamdisk != nil {
		if c.ver < v70DisableRamdisk {
			return clientError(http.StatusNotAcceptable, "disable_ramdisk is not acceptable in this API version")
		}
		if b.target != "clean" {
			return badRequest("disable_ramdisk is supported only with manual cleaning")
		}
		req.DisableRamdisk = *b.disableRamdisk
	}
	if len(b.cleanSteps) > 0 && b.target != "clean" {
		return badRequest("\"clean_steps\" is only valid when setting target provision state to clean")
	}
	if len(b.deploySteps) > 0 {
		if c.ver < v69DeploySteps {
			return notAcceptableMin(v69DeploySteps)
		}
		if b.target != "active" && b.target != "rebuild" {
			return badRequest("\"deploy_steps\" is only valid when setting target provision state to active or rebuild")
		}
	}
	if b.rescuePassword != nil && b.target != "rescue" {
		return badRequest("\"rescue_password\" is only valid when setting target provision state to rescue")
	}
	if n.ProvisionState == node.InspectWait && b.target == "abort" && c.ver < v41InspectAbort {
		return notAcceptable()
	}
	return nil
}

// targetArgs validates what a target requires (steps, rescue password) into req.
func (c *call) targetArgs(b provisionBody, req *conductor.ProvisionRequest) error {
	switch b.target {
	case "active", "rebuild", "deploy":
		if len(b.deploySteps) > 0 {
			steps, err := checkSteps("deploy", b.deploySteps)
			if err != nil {
				return err
			}
			req.DeploySteps = steps
		}
	case "rescue":
		if b.rescuePassword == nil || strings.TrimSpace(*b.rescuePassword) == "" {
			return badRequest("A non-empty \"rescue_password\" is required when setting target provision state to rescue")
		}
		req.RescuePassword = *b.rescuePassword
	case "clean":
		if len(b.cleanSteps) == 0 {
			return badRequest("\"clean_steps\" is required when setting target provision state to clean")
		}
		steps, err := checkSteps("clean", b.cleanSteps)
		if err != nil {
			return err
		}
		req.CleanSteps = steps
	case "deleted", "undeploy", "inspect", "unrescue", "manage", "provide", "abort", "adopt":
	default:
		return badRequest("The requested action \"%s\" could not be understood.", b.target)
	}
	return nil
}

// configdriveKeys are the members of a configdrive object and their types.
var configdriveKeys = map[string][]string{
	"meta_data":    tObject,
	"network_data": tObject,
	"user_data":    tStringOrArray,
	"vendor_data":  tObject,
}

// checkConfigdrive is check_allow_configdrive.
func (c *call) checkConfigdrive(target string, cd any) error {
	if !truthy(cd) {
		return nil
	}
	allowed := []string{"active"}
	if c.ver >= v35RebuildConfigdrive {
		allowed = append(allowed, "rebuild")
	}
	if !slices.Contains(allowed, target) {
		return badRequest("Adding a config drive is only supported when setting provision state to %s",
			strings.Join(allowed, ", "))
	}
	switch v := cd.(type) {
	case map[string]any:
		for k, val := range v {
			types, ok := configdriveKeys[k]
			if !ok || !typeIn(val, types) {
				return badRequest("Invalid configdrive format: %s is not valid under any of the given schemas", pyRepr(v))
			}
		}
		if c.ver < v56ConfigdriveDict {
			return badRequest("Providing a JSON object for configdrive is only supported starting with API version 1.%d", v56ConfigdriveDict)
		}
		if _, ok := v["vendor_data"]; ok && c.ver < v59VendorData {
			return badRequest("Providing vendor_data in configdrive is only supported starting with API version 1.%d", v59VendorData)
		}
	case string:
		if strings.Contains(v, "://") {
			return nil
		}
		if !base64ish.MatchString(v) {
			return badRequest("Invalid configdrive format: it is neither a JSON, nor a URL, nor a base64 string")
		}
	}
	return nil
}

// base64ish is Ironic's _B64_ALPHABET check: base64 letters and the whitespace around them.
var base64ish = regexp.MustCompile(`^[A-Za-z0-9+/=\n\r\t ]*$`)

// stepMembers are the members a step may have.
func stepMembers(kind string) []string {
	if kind == "deploy" {
		return []string{"interface", "step", "args", "priority"}
	}
	return []string{"interface", "step", "args"}
}

// stepRequired are the members a step must have.
func stepRequired(kind string) []string {
	if kind == "deploy" {
		return []string{"interface", "step", "args", "priority"}
	}
	return []string{"interface", "step"}
}

var stepPriorityRE = regexp.MustCompile(`^[0-9]+$`)

// checkSteps validates clean or deploy steps against Ironic's step schema and converts
// them; errors read "Invalid <kind>_steps: <jsonschema message>".
func checkSteps(kind string, steps []any) ([]node.Step, error) {
	fail := func(msg string) error { return badRequest("Invalid %s_steps: %s", kind, msg) }
	for _, deep := range []bool{false, true} {
		for _, s := range steps {
			if msg := checkStep(kind, s, deep); msg != "" {
				return nil, fail(msg)
			}
		}
	}
	out := make([]node.Step, len(steps))
	for i, s := range steps {
		out[i] = node.Step(s.(map[string]any))
	}
	return out, nil
}

// checkStep checks one step: the object itself, or (deep) its members.
func checkStep(kind string, s any, deep bool) string {
	m, ok := s.(map[string]any)
	if !ok {
		if deep {
			return ""
		}
		return fmt.Sprintf("%s is not of type 'object'", pyRepr(s))
	}
	if !deep {
		for _, k := range stepRequired(kind) {
			if _, ok := m[k]; !ok {
				return fmt.Sprintf("%s is a required property", pyStr(k))
			}
		}
		var extra []string
		for k := range m {
			if !slices.Contains(stepMembers(kind), k) {
				extra = append(extra, k)
			}
		}
		if len(extra) > 0 {
			return additionalProps(extra)
		}
		return ""
	}
	return checkStepMembers(kind, m)
}

// checkStepMembers checks the members in the order of Ironic's schema properties.
func checkStepMembers(kind string, m map[string]any) string {
	order := []string{"interface", "step", "args"}
	if kind == "deploy" {
		order = []string{"args", "interface", "priority", "step"}
	}
	for _, k := range order {
		v, ok := m[k]
		if !ok {
			continue
		}
		switch k {
		case "interface":
			if kind == "deploy" && !typeIn(v, tString) {
				return typeError(v, tString)
			}
			if s, _ := v.(string); !slices.Contains(stepInterfaces, s) || !typeIn(v, tString) {
				return fmt.Sprintf("%s is not one of %s", pyRepr(v), pyRepr(stepInterfaces))
			}
		case "step":
			if !typeIn(v, tString) {
				return typeError(v, tString)
			}
			if v == "" {
				return "'' is too short"
			}
		case "args":
			if !typeIn(v, tObject) {
				return typeError(v, tObject)
			}
		case "priority":
			if !validPriority(v) {
				return fmt.Sprintf("%s is not valid under any of the given schemas", pyRepr(v))
			}
		}
	}
	return ""
}

// validPriority is anyOf(integer ≥ 0, numeric string).
func validPriority(v any) bool {
	if jsonType(v) == "integer" {
		n, err := argInteger("priority", v)
		return err == nil && n >= 0
	}
	s, ok := v.(string)
	return ok && s != "" && stepPriorityRE.MatchString(s)
}
