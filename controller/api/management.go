package api

import (
	"context"
	"net/http"

	"github.com/ferrumhq/ferrum/controller/conductor"
)

// BootDeviceManager is an optional Backend ability found by type assertion: a node's boot
// device through its management interface (*conductor.Conductor has it). Without it the
// management endpoints answer 404.
type BootDeviceManager interface {
	SetBootDevice(ctx context.Context, ident, device string, persistent bool) error
	GetBootDevice(ctx context.Context, ident string) (conductor.BootDevice, error)
	SupportedBootDevices(ctx context.Context, ident string) ([]string, error)
}

func (s *server) bootDevices() (BootDeviceManager, error) {
	m, ok := s.be.(BootDeviceManager)
	if !ok {
		return nil, webobError(http.StatusNotFound, "")
	}
	return m, nil
}

// setBootDevice serves PUT /v1/nodes/{node}/management/boot_device: {"boot_device": "pxe",
// "persistent": false}. Synchronous, 204 once the BMC has it.
func (s *server) setBootDevice(c *call) error {
	m, err := s.bootDevices()
	if err != nil {
		return err
	}
	ident, err := c.nodeIdent()
	if err != nil {
		return err
	}
	args, err := c.bodyArgs("boot_device", "persistent")
	if err != nil {
		return err
	}
	device, ok, err := optString(args, "boot_device")
	if err != nil {
		return err
	}
	if !ok {
		return badRequest("Missing mandatory parameter: boot_device")
	}
	persistent := false
	if v, has := args["persistent"]; has && v != nil {
		if persistent, err = argBool("persistent", v); err != nil {
			return err
		}
	}
	n, err := c.findNode(ident)
	if err != nil {
		return err
	}
	if err := m.SetBootDevice(c.r.Context(), n.UUID, device, persistent); err != nil {
		return err
	}
	return c.empty(http.StatusNoContent)
}

// getBootDevice serves GET /v1/nodes/{node}/management/boot_device: {"boot_device": …,
// "persistent": …}, null when unknown.
func (s *server) getBootDevice(c *call) error {
	m, err := s.bootDevices()
	if err != nil {
		return err
	}
	n, _, err := c.lookupNode()
	if err != nil {
		return err
	}
	bd, err := m.GetBootDevice(c.r.Context(), n.UUID)
	if err != nil {
		return err
	}
	var out obj
	if bd.Device == "" {
		out.set("boot_device", nil)
	} else {
		out.set("boot_device", bd.Device)
	}
	if bd.Persistent == nil {
		out.set("persistent", nil)
	} else {
		out.set("persistent", *bd.Persistent)
	}
	return c.json(http.StatusOK, out)
}

// supportedBootDevices serves GET /v1/nodes/{node}/management/boot_device/supported.
func (s *server) supportedBootDevices(c *call) error {
	m, err := s.bootDevices()
	if err != nil {
		return err
	}
	n, _, err := c.lookupNode()
	if err != nil {
		return err
	}
	devs, err := m.SupportedBootDevices(c.r.Context(), n.UUID)
	if err != nil {
		return err
	}
	list := make([]any, len(devs))
	for i, d := range devs {
		list[i] = d
	}
	var out obj
	out.set("supported_boot_devices", list)
	return c.json(http.StatusOK, out)
}
