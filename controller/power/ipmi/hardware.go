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
	"bios":       {"no-bios"},
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
	// Others builds the interfaces that are not IPMI's (deploy, boot, inspect, rescue, raid)
	// for a node; nil leaves them unsupported, so only power, management and the provision
	// steps that need nothing else (manage, adopt checks aside) work.
	Others func(n *node.Node) (*conductor.Driver, error)
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
	d := &conductor.Driver{}
	if h.cfg.Others != nil {
		o, err := h.cfg.Others(n)
		if err != nil {
			return nil, err
		}
		if o != nil {
			*d = *o
		}
	}
	d.Power = h.power
	if n.Interfaces.Management == "noop" {
		d.Management = noopManagement{}
	} else {
		d.Management = h.mgmt
	}
	return d, nil
}

// Properties implements conductor.PropertiesDescriber: Ironic's ipmitool driver_info keys.
func (h *Hardware) Properties() map[string]string { return maps.Clone(properties) }
