package conductor

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"

	"github.com/ferrumhq/ferrum/controller/node"
)

// management locks the node and returns its management interface after validating it
// (Ironic's set_boot_device / get_boot_device take the exclusive lock too).
func (c *Conductor) management(ctx context.Context, ident string) (*node.Node, Management, error) {
	n, err := c.lock(ctx, ident)
	if err != nil {
		return nil, nil, err
	}
	d, err := c.driver(n)
	if err != nil {
		c.unlock(n.UUID)
		return nil, nil, err
	}
	if d.Management == nil {
		c.unlock(n.UUID)
		return nil, nil, node.Errorf(node.ErrInvalid, "Driver %s does not support management (disabled or not implemented).", n.Driver)
	}
	if err := d.Management.Validate(ctx, n); err != nil {
		c.unlock(n.UUID)
		return nil, nil, node.Errorf(node.ErrInvalid, "%v", err)
	}
	return n, d.Management, nil
}

// SetBootDevice sets the device the node boots from next (or always, persistent): PUT
// /v1/nodes/{id}/management/boot_device. It returns once the BMC has taken it.
func (c *Conductor) SetBootDevice(ctx context.Context, ident, device string, persistent bool) error {
	n, m, err := c.management(ctx, ident)
	if err != nil {
		return err
	}
	defer c.unlock(n.UUID)
	supported, err := m.SupportedBootDevices(ctx, n)
	if err != nil {
		return hardwareError(err)
	}
	if !slices.Contains(supported, device) {
		return node.Errorf(node.ErrInvalid, "Invalid boot device %s specified.", device)
	}
	before := maps.Clone(n.DriverInternalInfo)
	if err := m.SetBootDevice(ctx, n, device, persistent); err != nil {
		c.log.Warn().Str("node_id", n.UUID).Str("device", device).Err(err).Msg("setting the boot device failed")
		return hardwareError(err)
	}
	c.log.Info().Str("node_id", n.UUID).Str("device", device).Bool("persistent", persistent).Msg("boot device set")
	if !reflect.DeepEqual(before, n.DriverInternalInfo) {
		return c.save(ctx, n)
	}
	return nil
}

// GetBootDevice reads the node's boot device from its BMC.
func (c *Conductor) GetBootDevice(ctx context.Context, ident string) (BootDevice, error) {
	n, m, err := c.management(ctx, ident)
	if err != nil {
		return BootDevice{}, err
	}
	defer c.unlock(n.UUID)
	bd, err := m.GetBootDevice(ctx, n)
	if err != nil {
		return BootDevice{}, hardwareError(err)
	}
	return bd, nil
}

// SupportedBootDevices lists the devices SetBootDevice accepts for the node.
func (c *Conductor) SupportedBootDevices(ctx context.Context, ident string) ([]string, error) {
	n, err := c.GetNode(ctx, ident)
	if err != nil {
		return nil, err
	}
	d, err := c.driver(n)
	if err != nil {
		return nil, err
	}
	if d.Management == nil {
		return nil, node.Errorf(node.ErrInvalid, "Driver %s does not support management (disabled or not implemented).", n.Driver)
	}
	out, err := d.Management.SupportedBootDevices(ctx, n)
	if err != nil {
		return nil, hardwareError(err)
	}
	return out, nil
}

// hardwareError gives a driver's failure the API's 500-with-message form, unless it is one of
// the domain errors already.
func hardwareError(err error) error {
	var ne *node.Error
	if errors.As(err, &ne) {
		return err
	}
	return node.Errorf(node.ErrHardware, "%v", err)
}
