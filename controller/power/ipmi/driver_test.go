package ipmi

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/controller/power/ipmi/bmcsim"
)

var (
	_ conductor.Power        = (*Power)(nil)
	_ conductor.Management   = (*Management)(nil)
	_ conductor.Management   = noopManagement{}
	_ conductor.HardwareType = (*Hardware)(nil)
)

// newDriver is a driver with test-friendly timings.
func newDriver(t *testing.T, mod func(*Config)) *Driver {
	t.Helper()
	cfg := Config{Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel),
		ExchangeTimeout: 300 * time.Millisecond, Attempts: 1, CallTimeout: 3 * time.Second,
		PollInterval: 10 * time.Millisecond, PowerTimeout: 2 * time.Second, SoftPowerOffTimeout: 2 * time.Second,
		ProbeInterval: 100 * time.Millisecond, ProbeMax: 400 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// startBMC runs a go-ipmi BMC on a free loopback port.
func startBMC(t testing.TB, o bmcsim.Options) *bmcsim.BMC {
	t.Helper()
	b, err := bmcsim.Start("127.0.0.1:0", o)
	if err != nil {
		t.Fatalf("bmcsim.Start: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// nodeFor is a node whose driver_info points at b.
func nodeFor(b *bmcsim.BMC, extra map[string]any) *node.Node {
	di := map[string]any{"ipmi_address": b.Host, "ipmi_port": strconv.Itoa(b.Port),
		"ipmi_username": "admin", "ipmi_password": "password", "ipmi_cipher_suite": 3}
	for k, v := range extra {
		di[k] = v
	}
	n := &node.Node{UUID: "node-" + strconv.Itoa(b.Port), Driver: Name, DriverInfo: di}
	n.Normalize()
	return n
}

func TestPowerActions(t *testing.T) {
	tests := []struct {
		name    string
		start   bool
		target  string
		wantOn  bool
		wantLog []string
	}{
		{"power-on/from-off", false, node.PowerOn, true, []string{"power-on"}},
		{"power-on/already-on", true, node.PowerOn, true, nil},
		{"power-off/from-on", true, node.PowerOff, false, []string{"power-off"}},
		{"power-off/already-off", false, node.PowerOff, false, nil},
		{"soft-power-off/from-on", true, node.SoftPowerOff, false, []string{"soft-off"}},
		{"soft-power-off/already-off", false, node.SoftPowerOff, false, nil},
		{"reboot/from-on", true, node.Rebooting, true, []string{"power-off", "power-on"}},
		{"reboot/from-off", false, node.Rebooting, true, []string{"power-on"}},
		{"soft-reboot/from-on", true, node.SoftRebooting, true, []string{"soft-off", "power-on"}},
	}
	d := newDriver(t, nil)
	p := d.Power()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := startBMC(t, bmcsim.Options{PowerOn: tc.start})
			n := nodeFor(b, nil)
			if err := p.SetPowerState(context.Background(), n, tc.target, 0); err != nil {
				t.Fatalf("SetPowerState(%q): %v", tc.target, err)
			}
			if got := b.Chassis.Power(); got != tc.wantOn {
				t.Errorf("BMC power after %q = %v, want %v", tc.target, got, tc.wantOn)
			}
			if diff := cmp.Diff(tc.wantLog, b.Chassis.Log()); diff != "" {
				t.Errorf("BMC commands (-want +got):\n%s", diff)
			}
			want := node.PowerOff
			if tc.wantOn {
				want = node.PowerOn
			}
			if got, err := p.PowerState(context.Background(), n); err != nil || got != want {
				t.Errorf("PowerState = %q, %v; want %q", got, err, want)
			}
		})
	}
}

func TestPowerWaitsForConvergence(t *testing.T) {
	d := newDriver(t, nil)
	b := startBMC(t, bmcsim.Options{PowerDelay: 150 * time.Millisecond})
	n := nodeFor(b, nil)
	start := time.Now()
	if err := d.Power().SetPowerState(context.Background(), n, node.PowerOn, 0); err != nil {
		t.Fatalf("SetPowerState: %v", err)
	}
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Errorf("power on returned after %v, before the BMC reported on (150ms)", el)
	}

	slow := startBMC(t, bmcsim.Options{PowerDelay: time.Hour})
	err := d.Power().SetPowerState(context.Background(), nodeFor(slow, nil), node.PowerOn, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "still reports power off after 300ms") {
		t.Fatalf("SetPowerState on a BMC that never converges = %v, want a timeout naming the state", err)
	}
}

func TestBootDevice(t *testing.T) {
	tests := []struct {
		name       string
		device     string
		persistent bool
		props      map[string]any
		inst       map[string]any
		wantSel    uint8
		wantEFI    bool
	}{
		{"pxe/uefi-default/once", DevicePXE, false, nil, nil, 1, true},
		{"disk/uefi/persistent", DeviceDisk, true, nil, nil, 2, true},
		{"disk/uefi/supermicro", DeviceDisk, false, map[string]any{"vendor": "supermicro"}, nil, 9, true},
		{"pxe/bios-capability", DevicePXE, false, map[string]any{"capabilities": "boot_mode:bios"}, nil, 1, false},
		{"cdrom/instance-bios", DeviceCDROM, true, nil, map[string]any{"capabilities": map[string]any{"boot_mode": "bios"}}, 5, false},
		{"bios/secure-boot-uefi", DeviceBIOS, false, map[string]any{"capabilities": "boot_mode:bios"},
			map[string]any{"capabilities": `{"secure_boot": "true"}`}, 6, true},
		{"safe", DeviceSafe, false, nil, nil, 3, true},
	}
	d := newDriver(t, nil)
	m := d.Management()
	b := startBMC(t, bmcsim.Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := nodeFor(b, nil)
			for k, v := range tc.props {
				n.Properties[k] = v
			}
			for k, v := range tc.inst {
				n.InstanceInfo[k] = v
			}
			if err := m.SetBootDevice(context.Background(), n, tc.device, tc.persistent); err != nil {
				t.Fatalf("SetBootDevice: %v", err)
			}
			f := b.Chassis.BootFlags()
			if f == nil || !f.BootFlagsValid || uint8(f.BootDeviceSelector) != tc.wantSel || bool(f.BIOSBootType) != tc.wantEFI || f.Persist != tc.persistent {
				t.Fatalf("BMC boot flags = %+v, want valid selector %d efi %v persistent %v", f, tc.wantSel, tc.wantEFI, tc.persistent)
			}
			got, err := m.GetBootDevice(context.Background(), n)
			if err != nil {
				t.Fatalf("GetBootDevice: %v", err)
			}
			if got.Device != tc.device || got.Persistent == nil || *got.Persistent != tc.persistent {
				t.Errorf("GetBootDevice = %q %v, want %q %v", got.Device, ptr(got.Persistent), tc.device, tc.persistent)
			}
		})
	}
	if err := m.SetBootDevice(context.Background(), nodeFor(b, nil), "floppy", false); err == nil || err.Error() != "Invalid boot device floppy specified." {
		t.Errorf("SetBootDevice(floppy) = %v, want Ironic's invalid boot device error", err)
	}
}

func TestForceBootDevice(t *testing.T) {
	d := newDriver(t, nil)
	b := startBMC(t, bmcsim.Options{})
	n := nodeFor(b, map[string]any{"ipmi_force_boot_device": "true"})
	ctx := context.Background()
	if err := d.Management().SetBootDevice(ctx, n, DevicePXE, true); err != nil {
		t.Fatal(err)
	}
	if n.DriverInternalInfo["persistent_boot_device"] != DevicePXE {
		t.Fatalf("driver_internal_info = %v, want persistent_boot_device pxe", n.DriverInternalInfo)
	}
	if f := b.Chassis.BootFlags(); f == nil || f.Persist {
		t.Fatalf("forced boot device sent persistent: %+v", f)
	}
	got, _ := d.Management().GetBootDevice(ctx, n)
	if got.Device != DevicePXE || !*got.Persistent {
		t.Errorf("GetBootDevice = %+v, want the recorded persistent pxe", got)
	}
	// Every power on re-sends it.
	for range 2 {
		if err := d.Power().SetPowerState(ctx, n, node.Rebooting, 0); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"boot:1", "boot:1", "power-on", "power-off", "boot:1", "power-on"}
	if diff := cmp.Diff(want, b.Chassis.Log()); diff != "" {
		t.Errorf("BMC commands (-want +got):\n%s", diff)
	}
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t, func(c *Config) { c.FailureThreshold = 100 })
	p := d.Power()

	t.Run("silent", func(t *testing.T) {
		b := startBMC(t, bmcsim.Options{Silent: true})
		start := time.Now()
		_, err := p.PowerState(ctx, nodeFor(b, nil))
		if !errors.Is(err, ErrNoAnswer) {
			t.Fatalf("PowerState on a silent BMC = %v, want ErrNoAnswer", err)
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("silent BMC held the caller %v, want about one 300ms timeout", el)
		}
		t.Logf("silent: %v", err)
		if !strings.Contains(err.Error(), b.Addr()) || !strings.Contains(err.Error(), "no answer from the BMC within 300ms") {
			t.Errorf("error %q does not say which BMC and what happened", err)
		}
	})
	t.Run("wrong-password", func(t *testing.T) {
		b := startBMC(t, bmcsim.Options{Password: "other"})
		_, err := p.PowerState(ctx, nodeFor(b, nil))
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("PowerState with a wrong password = %v, want ErrAuth", err)
		}
		t.Logf("wrong password: %v", err)
		if strings.Contains(err.Error(), "password\"") || strings.Contains(err.Error(), "=password") {
			t.Errorf("error %q shows the password", err)
		}
	})
	t.Run("slow", func(t *testing.T) {
		b := startBMC(t, bmcsim.Options{Delay: 500 * time.Millisecond})
		_, err := p.PowerState(ctx, nodeFor(b, nil))
		if !errors.Is(err, ErrNoAnswer) {
			t.Fatalf("PowerState on a BMC slower than the timeout = %v, want ErrNoAnswer", err)
		}
	})
	t.Run("bad-driver-info", func(t *testing.T) {
		n := &node.Node{DriverInfo: map[string]any{"ipmi_port": 623}}
		if _, err := p.PowerState(ctx, n); err == nil || !strings.Contains(err.Error(), "ipmi_address") {
			t.Fatalf("PowerState without ipmi_address = %v", err)
		}
	})
}

func TestSessionKeptAndReopened(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t, nil)
	b := startBMC(t, bmcsim.Options{PowerOn: true})
	n := nodeFor(b, nil)
	info, _ := ParseInfo(n.DriverInfo)
	session := func() any {
		bm, _ := d.get(info)
		bm.acquire(ctx)
		defer bm.release()
		return bm.cl
	}
	if _, err := d.Power().PowerState(ctx, n); err != nil {
		t.Fatal(err)
	}
	first := session()
	for range 5 {
		if _, err := d.Power().PowerState(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if session() != first || first == nil {
		t.Fatal("the session was not kept between calls")
	}

	// The BMC restarts on the same port: its sessions are gone.
	port := b.Port
	b.Close()
	b2, err := bmcsim.Start("127.0.0.1:"+strconv.Itoa(port), bmcsim.Options{PowerOn: false})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	got, err := d.Power().PowerState(ctx, n)
	if err != nil || got != node.PowerOff {
		t.Fatalf("PowerState after the BMC dropped the session = %q, %v; want a fresh session and power off", got, err)
	}
	if session() == first {
		t.Error("the dropped session was not replaced")
	}
}

func TestCircuitBreaker(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t, func(c *Config) { c.FailureThreshold = 2 })
	b := startBMC(t, bmcsim.Options{Silent: true})
	n := nodeFor(b, nil)
	for i := range 2 {
		if _, err := d.Power().PowerState(ctx, n); !errors.Is(err, ErrNoAnswer) {
			t.Fatalf("call %d = %v, want ErrNoAnswer", i, err)
		}
	}
	start := time.Now()
	_, err := d.Power().PowerState(ctx, n)
	var ue *UnreachableError
	if !errors.As(err, &ue) || !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("call after 2 failures = %v, want *UnreachableError wrapping ErrNoAnswer", err)
	}
	if el := time.Since(start); el > 20*time.Millisecond {
		t.Errorf("open circuit took %v to answer, want at once", el)
	}
	if s := d.Stats(); s.Unreachable != 1 {
		t.Errorf("Stats = %+v, want 1 unreachable", s)
	}

	// The BMC comes back: the background probe closes the circuit.
	port := b.Port
	b.Close()
	b2, err := bmcsim.Start("127.0.0.1:"+strconv.Itoa(port), bmcsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := d.Power().PowerState(ctx, n); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the circuit never closed after the BMC came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConcurrentCallsOneBMC(t *testing.T) {
	d := newDriver(t, nil)
	b := startBMC(t, bmcsim.Options{PowerOn: true})
	n := nodeFor(b, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if _, err := d.Power().PowerState(context.Background(), n.Clone()); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent PowerState: %v", err)
	}
}

func TestCloseEndsSessions(t *testing.T) {
	d := newDriver(t, nil)
	b := startBMC(t, bmcsim.Options{})
	n := nodeFor(b, nil)
	if _, err := d.Power().PowerState(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if s := d.Stats(); s.Sessions != 1 {
		t.Fatalf("Stats = %+v, want 1 session", s)
	}
	d.Close()
	if _, err := d.Power().PowerState(context.Background(), n); !errors.Is(err, ErrClosed) {
		t.Fatalf("PowerState after Close = %v, want ErrClosed", err)
	}
}

func ptr(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

// Session parameters from driver_info reach the BMC: IPMI 1.5 (lan), a lower privilege level,
// cipher suite 17 and go-ipmi's own suite negotiation.
func TestSessionParameters(t *testing.T) {
	d := newDriver(t, nil)
	b := startBMC(t, bmcsim.Options{PowerOn: true})
	tests := []struct {
		name  string
		extra map[string]any
	}{
		{"ipmi-1.5", map[string]any{"ipmi_protocol_version": "1.5", "ipmi_cipher_suite": nil}},
		{"operator", map[string]any{"ipmi_priv_level": "OPERATOR"}},
		{"suite-17", map[string]any{"ipmi_cipher_suite": 17}},
		{"suite-negotiated", map[string]any{"ipmi_cipher_suite": nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := nodeFor(b, nil)
			for k, v := range tc.extra {
				if v == nil {
					delete(n.DriverInfo, k)
				} else {
					n.DriverInfo[k] = v
				}
			}
			if got, err := d.Power().PowerState(context.Background(), n); err != nil || got != node.PowerOn {
				t.Fatalf("PowerState = %q, %v", got, err)
			}
		})
	}
}

func TestPanicInClientBecomesError(t *testing.T) {
	d := newDriver(t, nil)
	b := startBMC(t, bmcsim.Options{})
	info, _ := ParseInfo(nodeFor(b, nil).DriverInfo)
	err := d.do(context.Background(), info, "power status", func(context.Context, *client.Client) error {
		panic("index out of range")
	})
	if err == nil || !strings.Contains(err.Error(), "the IPMI client failed on the BMC's reply: index out of range") {
		t.Fatalf("do with a panicking client = %v", err)
	}
	// The BMC answered (garbage): its circuit stays closed and the next call works.
	if _, err := d.Power().PowerState(context.Background(), nodeFor(b, nil)); err != nil {
		t.Fatalf("PowerState after the panic: %v", err)
	}
}
