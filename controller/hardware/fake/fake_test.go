package fake

import (
	"context"
	"testing"
	"time"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
)

var _ conductor.HardwareType = (*Hardware)(nil)

func TestDelaysAndInjectedFailures(t *testing.T) {
	h, err := New(Config{DeployDelay: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		info     map[string]any
		minDelay time.Duration
		fail     bool
	}{
		{"config-delay", nil, 30 * time.Millisecond, false},
		{"node-override", map[string]any{"fake_deploy_delay": "0s"}, 0, false},
		{"injected-failure", map[string]any{"fake_fail": "power, deploy"}, 30 * time.Millisecond, true},
		{"other-op-failing", map[string]any{"fake_fail": "clean"}, 30 * time.Millisecond, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := &node.Node{Driver: Name, DriverInfo: tc.info}
			d, err := h.Driver(n)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = d.Deploy.Deploy(context.Background(), n)
			if took := time.Since(start); took < tc.minDelay {
				t.Errorf("Deploy took %s, want at least %s", took, tc.minDelay)
			}
			if (err != nil) != tc.fail {
				t.Fatalf("Deploy error = %v, want failure %v", err, tc.fail)
			}
			if !tc.fail && n.PowerState != node.PowerOn {
				t.Errorf("power after deploy = %q, want on", n.PowerState)
			}
		})
	}
	if _, err := New(Config{PowerDelay: -time.Second}); err == nil {
		t.Error("New accepted a negative delay")
	}
}

func TestNoInterfacesAreUnsupported(t *testing.T) {
	h, _ := New(Config{})
	n := &node.Node{Driver: Name}
	n.Interfaces.Inspect, n.Interfaces.Rescue, n.Interfaces.Raid = "no-inspect", "no-rescue", "no-raid"
	d, _ := h.Driver(n)
	if d.Inspect != nil || d.Rescue != nil || d.Raid != nil || d.Boot == nil {
		t.Fatalf("driver = %+v: no-* must be nil, others set", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n.DriverInfo = map[string]any{"fake_power_delay": "1h"}
	if err := d.Power.SetPowerState(ctx, n, node.PowerOn, 0); err == nil {
		t.Fatal("a cancelled power action succeeded")
	}
}
