package conductor

import "github.com/ferrumhq/ferrum/controller/node"

// ProvisionRequest is a decoded PUT /v1/nodes/{id}/states/provision.
type ProvisionRequest struct {
	// Target is the API verb: active, deploy, deleted, undeploy, rebuild, manage, provide,
	// inspect, clean, abort, adopt, rescue, unrescue.
	Target         string
	ConfigDrive    any // string (gzip+base64 ISO or URL) or a JSON object; nil when absent
	CleanSteps     []node.Step
	DeploySteps    []node.Step
	RescuePassword string
	DisableRamdisk bool
}

// ValidateResult is one interface's entry in GET /v1/nodes/{id}/validate. Result nil means the
// interface is not supported by the node's driver.
type ValidateResult struct {
	Result *bool  `json:"result"`
	Reason string `json:"reason,omitempty"`
}

// DriverInfo describes a hardware type for GET /v1/drivers.
type DriverInfo struct {
	Name  string
	Hosts []string
	// Enabled and default implementation names per interface type.
	Supported map[string][]string
}
