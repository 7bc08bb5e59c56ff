package ipmi

import (
	"context"
	"fmt"
	"time"

	"github.com/bougou/go-ipmi/pkg/command/chassis"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
)

// Power is the `ipmitool` power interface of a node (conductor.Power).
type Power struct{ d *Driver }

// Management is the `ipmitool` management interface of a node (conductor.Management).
type Management struct{ d *Driver }

// Power returns the power interface backed by this driver.
func (d *Driver) Power() *Power { return &Power{d: d} }

// Management returns the management interface backed by this driver.
func (d *Driver) Management() *Management { return &Management{d: d} }

// Validate checks driver_info without touching the BMC (like Ironic: BMCs are fragile).
func (p *Power) Validate(ctx context.Context, n *node.Node) error {
	_, err := ParseInfo(n.DriverInfo)
	return err
}

// PowerState reads the chassis power state: node.PowerOn or node.PowerOff.
func (p *Power) PowerState(ctx context.Context, n *node.Node) (string, error) {
	info, err := ParseInfo(n.DriverInfo)
	if err != nil {
		return "", err
	}
	return p.d.status(ctx, info)
}

// SetPowerState performs a power action and waits until the BMC reports its result, like
// Ironic's ipmitool driver: on and off are skipped when already done; reboot is off (unless
// off) then on; soft reboot is soft off then on; each wait has its own timeout (timeout, or
// the configured power or soft power off timeout when 0).
func (p *Power) SetPowerState(ctx context.Context, n *node.Node, target string, timeout time.Duration) error {
	info, err := ParseInfo(n.DriverInfo)
	if err != nil {
		return err
	}
	d := p.d
	hard, soft := timeout, timeout
	if timeout <= 0 {
		hard, soft = d.cfg.PowerTimeout, d.cfg.SoftPowerOffTimeout
	}
	on := func() error {
		if err := d.ensureNextBootDevice(ctx, n, info); err != nil {
			return err
		}
		if err := d.control(ctx, info, chassis.ChassisControlPowerUp, "power on"); err != nil {
			return err
		}
		return d.waitFor(ctx, info, node.PowerOn, hard)
	}
	off := func(c chassis.ChassisControl, what string, t time.Duration) error {
		if err := d.control(ctx, info, c, what); err != nil {
			return err
		}
		return d.waitFor(ctx, info, node.PowerOff, t)
	}
	switch target {
	case node.PowerOn, node.PowerOff, node.SoftPowerOff, node.Rebooting:
		cur, err := d.status(ctx, info)
		if err != nil {
			return err
		}
		switch {
		case target == node.PowerOn && cur == node.PowerOn,
			(target == node.PowerOff || target == node.SoftPowerOff) && cur == node.PowerOff:
			return nil
		case target == node.PowerOn:
			return on()
		case target == node.PowerOff:
			return off(chassis.ChassisControlPowerDown, "power off", hard)
		case target == node.SoftPowerOff:
			return off(chassis.ChassisControlSoftShutdown, "soft power off", soft)
		}
		if cur != node.PowerOff { // reboot
			if err := off(chassis.ChassisControlPowerDown, "power off", hard); err != nil {
				return err
			}
		}
		return on()
	case node.SoftRebooting:
		if err := off(chassis.ChassisControlSoftShutdown, "soft power off", soft); err != nil {
			return err
		}
		return on()
	}
	return fmt.Errorf("set_power_state called with invalid power state %s.", target)
}

// ensureNextBootDevice re-sends the recorded persistent boot device before a power on when
// ipmi_force_boot_device is set (for BMCs that forget it), unless a one-time device was set
// since, which this power on consumes.
func (d *Driver) ensureNextBootDevice(ctx context.Context, n *node.Node, info Info) error {
	if !info.ForceBootDevice {
		return nil
	}
	if v, ok := n.DriverInternalInfo["is_next_boot_persistent"].(bool); ok && !v {
		delete(n.DriverInternalInfo, "is_next_boot_persistent")
		return nil
	}
	dev, _ := n.DriverInternalInfo["persistent_boot_device"].(string)
	if dev == "" {
		return nil
	}
	return d.setBootDevice(ctx, n, info, dev, false)
}

// Validate checks driver_info without touching the BMC.
func (m *Management) Validate(ctx context.Context, n *node.Node) error {
	_, err := ParseInfo(n.DriverInfo)
	return err
}

// SupportedBootDevices is Ironic's list for ipmitool: pxe, disk, cdrom, bios, safe.
func (m *Management) SupportedBootDevices(ctx context.Context, n *node.Node) ([]string, error) {
	return append([]string(nil), SupportedBootDevices...), nil
}

// SetBootDevice sets the next boot device (or every boot's, persistent), in the node's boot
// mode: UEFI or legacy BIOS. With ipmi_force_boot_device the choice is recorded in
// driver_internal_info and always sent as next-boot-only, like Ironic.
func (m *Management) SetBootDevice(ctx context.Context, n *node.Node, device string, persistent bool) error {
	info, err := ParseInfo(n.DriverInfo)
	if err != nil {
		return err
	}
	if !validDevice(device) {
		return fmt.Errorf("Invalid boot device %s specified.", device)
	}
	if info.ForceBootDevice {
		if n.DriverInternalInfo == nil {
			n.DriverInternalInfo = map[string]any{}
		}
		if persistent {
			delete(n.DriverInternalInfo, "is_next_boot_persistent")
			n.DriverInternalInfo["persistent_boot_device"] = device
		} else {
			n.DriverInternalInfo["is_next_boot_persistent"] = false
		}
		persistent = false
	}
	return m.d.setBootDevice(ctx, n, info, device, persistent)
}

func (d *Driver) setBootDevice(ctx context.Context, n *node.Node, info Info, device string, persistent bool) error {
	efi := d.bootMode(n) == "uefi"
	vendor, _ := n.Properties["vendor"].(string)
	sel, err := selectorFor(device, efi, vendor)
	if err != nil {
		return err
	}
	return d.setBootFlags(ctx, info, bootFlags{Valid: true, Persistent: persistent, EFI: efi, Selector: sel})
}

// GetBootDevice reads the boot flags back: the device ("" when none or unknown) and whether
// it persists. With ipmi_force_boot_device the recorded persistent device is reported.
func (m *Management) GetBootDevice(ctx context.Context, n *node.Node) (conductor.BootDevice, error) {
	info, err := ParseInfo(n.DriverInfo)
	if err != nil {
		return conductor.BootDevice{}, err
	}
	if info.ForceBootDevice {
		dev, _ := n.DriverInternalInfo["persistent_boot_device"].(string)
		next, ok := n.DriverInternalInfo["is_next_boot_persistent"].(bool)
		if dev != "" && (!ok || next) {
			yes := true
			return conductor.BootDevice{Device: dev, Persistent: &yes}, nil
		}
	}
	f, err := m.d.getBootFlags(ctx, info)
	if err != nil {
		return conductor.BootDevice{}, err
	}
	persistent := f.Persistent
	return conductor.BootDevice{Device: deviceFor(f.Selector), Persistent: &persistent}, nil
}

// noopManagement is Ironic's `noop` management interface: boot devices are managed by hand.
type noopManagement struct{}

func (noopManagement) Validate(context.Context, *node.Node) error { return nil }

func (noopManagement) SupportedBootDevices(context.Context, *node.Node) ([]string, error) {
	return append([]string(nil), SupportedBootDevices...), nil
}

func (noopManagement) SetBootDevice(context.Context, *node.Node, string, bool) error { return nil }

func (noopManagement) GetBootDevice(context.Context, *node.Node) (conductor.BootDevice, error) {
	return conductor.BootDevice{}, nil
}
