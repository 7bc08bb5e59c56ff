// Package fake is the `fake-hardware` hardware type: every interface succeeds without touching
// hardware, after an optional delay, so every provision and power path runs in tests and demos.
// Failures can be injected per node through driver_info.
//
// Only controller/cmd wiring and tests import it.
package fake

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
)

// Name is the hardware type's name on the API.
const Name = "fake-hardware"

// Config sets the delay of each kind of operation. A node's driver_info may override them with
// durations ("fake_power_delay": "2s", "fake_deploy_delay", "fake_clean_delay",
// "fake_inspect_delay") and make operations fail: "fake_fail": "deploy,clean" (any of power,
// management, deploy, clean, inspect, rescue, teardown, adopt, validate).
type Config struct {
	PowerDelay   time.Duration
	DeployDelay  time.Duration
	CleanDelay   time.Duration
	InspectDelay time.Duration
}

// Hardware implements conductor.HardwareType.
type Hardware struct{ cfg Config }

// New returns the fake-hardware type.
func New(cfg Config) (*Hardware, error) {
	for _, d := range []time.Duration{cfg.PowerDelay, cfg.DeployDelay, cfg.CleanDelay, cfg.InspectDelay} {
		if d < 0 {
			return nil, fmt.Errorf("fake: negative delay %s", d)
		}
	}
	return &Hardware{cfg: cfg}, nil
}

// Name implements conductor.HardwareType.
func (h *Hardware) Name() string { return Name }

// supported mirrors Ironic's fake-hardware: the fake implementation first (the default), then
// the generic names clients commonly set. All of them are simulated; "no-*" means unsupported.
var supported = map[string][]string{
	"bios":       {"fake", "no-bios"},
	"boot":       {"fake", "ipxe", "pxe", "http-ipxe", "http"},
	"console":    {"fake", "no-console"},
	"deploy":     {"fake", "direct", "ramdisk"},
	"firmware":   {"fake", "no-firmware"},
	"inspect":    {"fake", "no-inspect", "agent", "inspector"},
	"management": {"fake"},
	"network":    {"noop", "flat", "neutron"},
	"power":      {"fake"},
	"raid":       {"fake", "no-raid", "agent"},
	"rescue":     {"fake", "no-rescue", "agent"},
	"storage":    {"noop", "fake"},
	"vendor":     {"fake", "no-vendor"},
}

// Supported implements conductor.HardwareType.
func (h *Hardware) Supported() map[string][]string {
	out := make(map[string][]string, len(supported))
	for k, v := range supported {
		out[k] = slices.Clone(v)
	}
	return out
}

// Driver implements conductor.HardwareType.
func (h *Hardware) Driver(n *node.Node) (*conductor.Driver, error) {
	f := &fake{cfg: h.cfg}
	d := &conductor.Driver{Power: f, Management: f, Deploy: f}
	if !strings.HasPrefix(n.Interfaces.Inspect, "no-") {
		d.Inspect = f
	}
	if !strings.HasPrefix(n.Interfaces.Rescue, "no-") {
		d.Rescue = f
	}
	for iface, dst := range map[string]*conductor.Validator{"boot": &d.Boot, "raid": &d.Raid,
		"bios": &d.Bios, "console": &d.Console} {
		if !strings.HasPrefix(n.Iface(iface), "no-") {
			*dst = f
		}
	}
	return d, nil
}

type fake struct{ cfg Config }

// op waits for the operation's delay and reports an injected failure.
func (f *fake) op(ctx context.Context, n *node.Node, name string, def time.Duration) error {
	d := def
	if v, ok := n.DriverInfo["fake_"+name+"_delay"].(string); ok {
		if pd, err := time.ParseDuration(v); err == nil && pd >= 0 {
			d = pd
		}
	}
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	if fails, _ := n.DriverInfo["fake_fail"].(string); fails != "" {
		for _, s := range strings.Split(fails, ",") {
			if strings.TrimSpace(s) == name {
				return fmt.Errorf("fake %s failure injected by driver_info fake_fail", name)
			}
		}
	}
	return nil
}

func (f *fake) Validate(ctx context.Context, n *node.Node) error {
	return f.op(ctx, n, "validate", 0)
}

func (f *fake) PowerState(ctx context.Context, n *node.Node) (string, error) {
	if err := f.op(ctx, n, "power", 0); err != nil {
		return "", err
	}
	if n.PowerState == "" {
		return node.PowerOff, nil
	}
	return n.PowerState, nil
}

func (f *fake) SetPowerState(ctx context.Context, n *node.Node, target string, _ time.Duration) error {
	return f.op(ctx, n, "power", f.cfg.PowerDelay)
}

// SupportedBootDevices is Ironic's FakeManagement: PXE only.
func (f *fake) SupportedBootDevices(ctx context.Context, n *node.Node) ([]string, error) {
	return []string{"pxe"}, nil
}

func (f *fake) SetBootDevice(ctx context.Context, n *node.Node, device string, persistent bool) error {
	if device != "pxe" {
		return fmt.Errorf("Invalid boot device %s specified.", device)
	}
	return f.op(ctx, n, "management", 0)
}

// GetBootDevice is Ironic's FakeManagement answer: PXE, not persistent.
func (f *fake) GetBootDevice(ctx context.Context, n *node.Node) (conductor.BootDevice, error) {
	if err := f.op(ctx, n, "management", 0); err != nil {
		return conductor.BootDevice{}, err
	}
	persistent := false
	return conductor.BootDevice{Device: "pxe", Persistent: &persistent}, nil
}

func (f *fake) Deploy(ctx context.Context, n *node.Node) (conductor.Outcome, error) {
	if err := f.op(ctx, n, "deploy", f.cfg.DeployDelay); err != nil {
		return conductor.Done, err
	}
	n.PowerState = node.PowerOn
	return conductor.Done, nil
}

func (f *fake) TearDown(ctx context.Context, n *node.Node) error {
	if err := f.op(ctx, n, "teardown", f.cfg.DeployDelay); err != nil {
		return err
	}
	n.PowerState = node.PowerOff
	return nil
}

func (f *fake) Clean(ctx context.Context, n *node.Node, steps []node.Step) (conductor.Outcome, error) {
	return conductor.Done, f.op(ctx, n, "clean", f.cfg.CleanDelay)
}

func (f *fake) Adopt(ctx context.Context, n *node.Node) error {
	return f.op(ctx, n, "adopt", 0)
}

func (f *fake) Inspect(ctx context.Context, n *node.Node) (conductor.Outcome, error) {
	return conductor.Done, f.op(ctx, n, "inspect", f.cfg.InspectDelay)
}

func (f *fake) Rescue(ctx context.Context, n *node.Node) (conductor.Outcome, error) {
	return conductor.Done, f.op(ctx, n, "rescue", f.cfg.DeployDelay)
}

func (f *fake) Unrescue(ctx context.Context, n *node.Node) error {
	return f.op(ctx, n, "rescue", f.cfg.DeployDelay)
}

// Properties implements conductor.PropertiesDescriber.
func (h *Hardware) Properties() map[string]string {
	return map[string]string{
		"fake_power_delay":   "Duration of a power action on this node, e.g. \"2s\". Optional.",
		"fake_deploy_delay":  "Duration of deploy, tear-down and rescue on this node. Optional.",
		"fake_clean_delay":   "Duration of cleaning on this node. Optional.",
		"fake_inspect_delay": "Duration of inspection on this node. Optional.",
		"fake_fail":          "Comma-separated operations that fail on this node: power, management, deploy, clean, inspect, rescue, teardown, adopt, validate. Optional.",
	}
}
