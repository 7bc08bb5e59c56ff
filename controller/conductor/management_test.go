package conductor_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ferrumhq/ferrum/controller/node"
)

func TestBootDevice(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	e.create(t, &node.Node{Name: "n1"})
	e.create(t, &node.Node{Name: "broken", DriverInfo: map[string]any{"fake_fail": "management"}})

	if got, err := e.c.SupportedBootDevices(ctx, "n1"); err != nil || len(got) != 1 || got[0] != "pxe" {
		t.Errorf("SupportedBootDevices = %v, %v; want [pxe]", got, err)
	}
	if err := e.c.SetBootDevice(ctx, "n1", "pxe", true); err != nil {
		t.Fatalf("SetBootDevice(pxe): %v", err)
	}
	bd, err := e.c.GetBootDevice(ctx, "n1")
	if err != nil || bd.Device != "pxe" || bd.Persistent == nil || *bd.Persistent {
		t.Errorf("GetBootDevice = %+v, %v; want pxe, not persistent (fake management)", bd, err)
	}
	tests := []struct {
		name, node, device string
		kind               error
		msg                string
	}{
		{"unsupported-device", "n1", "floppy", node.ErrInvalid, "Invalid boot device floppy specified."},
		{"unknown-node", "nope", "pxe", node.ErrNotFound, ""},
		{"bmc-failure", "broken", "pxe", node.ErrHardware, "fake management failure injected by driver_info fake_fail"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.c.SetBootDevice(ctx, tc.node, tc.device, false)
			if !errors.Is(err, tc.kind) || (tc.msg != "" && err.Error() != tc.msg) {
				t.Errorf("SetBootDevice(%s, %s) = %v, want %v %q", tc.node, tc.device, err, tc.kind, tc.msg)
			}
		})
	}
	if _, err := e.c.GetBootDevice(ctx, "broken"); !errors.Is(err, node.ErrHardware) {
		t.Errorf("GetBootDevice on a failing BMC = %v, want ErrHardware", err)
	}
	if n, _ := e.c.GetNode(ctx, "n1"); n.Reservation != "" {
		t.Errorf("boot device calls left the node locked by %q", n.Reservation)
	}
}
