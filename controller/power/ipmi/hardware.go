package ipmi

import (
	"fmt"
	"maps"
	"slices"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
)

// Name is the hardware type's name on the API.
const Name = "ipmi"

// supported is Ironic's ipmi hardware type (drivers/ipmi.py over generic.py) limited to the
// implementations Ferrum has or that need none; the first name is the default, as Ironic's
// default configuration picks it. Interfaces Ferrum does not implement yet (deploy, boot,
// inspect, rescue, raid) are accepted by name and provided by HardwareConfig.Others.
var supported = map[string][]string{
	"bios":       {"no-bios", "agent"},
	"boot":       {"ipxe", "pxe"},
	"console":    {"no-console"},
	"deploy":     {"direct", "ramdisk"},
	"firmware":   {"no-firmware"},
	"inspect":    {"no-inspect", "agent", "inspector"},
	"management": {"ipmitool", "noop"},
	"network":    {"flat", "noop", "neutron"},
	"power":      {"ipmitool"},
	"raid":       {"no-raid", "agent"},
	"rescue":     {"no-rescue", "agent"},
	"storage":    {"noop"},
	"vendor":     {"ipmitool", "no-vendor"},
}

// HardwareConfig configures the ipmi hardware type.
type HardwareConfig struct {
	Driver *Driver // required: talks to the BMCs
	// Others fills in the interfaces that are not IPMI's (deploy, boot, inspect, rescue,
	// raid, bios) of a node's driver, whose Power and Management are already set (the agent
	// deploy boots through them); nil leaves them unsupported, so only power, management and
	// the provision steps that need nothing else work.
	Others func(n *node.Node, d *conductor.Driver) error
}

// Hardware is the `ipmi` hardware type (conductor.HardwareType).
type Hardware struct {
	cfg   HardwareConfig
	power *Power
	mgmt  *Management
}

// NewHardware returns the ipmi hardware type.
func NewHardware(cfg HardwareConfig) (*Hardware, error) {
	if cfg.Driver == nil {
		return nil, fmt.Errorf("ipmi: hardware config: Driver is required")
	}
	return &Hardware{cfg: cfg, power: cfg.Driver.Power(), mgmt: cfg.Driver.Management()}, nil
}

// Name implements conductor.HardwareType.
func (h *Hardware) Name() string { return Name }

// Supported implements conductor.HardwareType.
func (h *Hardware) Supported() map[string][]string {
	out := maps.Clone(supported)
	for k, v := range out {
		out[k] = slices.Clone(v)
	}
	return out
}

// Driver implements conductor.HardwareType.
func (h *Hardware) Driver(n *node.Node) (*conductor.Driver, error) {
	d := &conductor.Driver{Power: h.power, Management: h.mgmt}
	if n.Interfaces.Management == "noop" {
		d.Management = noopManagement{}
	}
	if h.cfg.Others != nil {
		if err := h.cfg.Others(n, d); err != nil {
			return nil, err
		}
		d.Power = h.power // Others may not replace IPMI's own
	}
	return d, nil
}

// Properties implements conductor.PropertiesDescriber: Ironic's ipmitool driver_info keys.
func (h *Hardware) Properties() map[string]string { return maps.Clone(properties) }
