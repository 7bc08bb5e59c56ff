// Package bmcsim runs simulated IPMI BMCs on loopback for tests and benchmarks: go-ipmi's
// reference BMC server (pkg/server; thousands fit in one process) and OpenIPMI's ipmi_sim (one
// process per BMC, the peer Ironic's ipmitool is tested against), plus an ipmitool runner that
// keeps the password out of argv.
//
// Only tests and benchmark commands import it.
package bmcsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/bougou/go-ipmi/pkg/bmc"
	"github.com/bougou/go-ipmi/pkg/hal"
	"github.com/bougou/go-ipmi/pkg/hal/mock"
	"github.com/bougou/go-ipmi/pkg/handlers"
	"github.com/bougou/go-ipmi/pkg/server"
	"github.com/bougou/go-ipmi/pkg/transport/udp"
	"github.com/bougou/go-ipmi/pkg/types"
)

// Options describe one go-ipmi BMC. Zero values: user admin, password password, powered off.
type Options struct {
	User, Password string
	PowerOn        bool
	// Silent binds the port but never reads it: a dead BMC that sends no ICMP.
	Silent bool
	// Delay holds every reply this long: a slow BMC.
	Delay time.Duration
	// PowerDelay makes power on/off show in the status only this long after the command.
	PowerDelay time.Duration
	// CipherSuites offered (go-ipmi's default: 3 and 17).
	CipherSuites []types.CipherSuiteID
}

// BMC is one go-ipmi BMC server listening on Addr (127.0.0.1:port).
type BMC struct {
	Host string
	Port int

	Chassis *Chassis
	srv     *server.Server
	conn    *udp.Conn // set for a silent BMC
	done    chan struct{}
}

// shared is the command table every server uses (read-only during dispatch).
var shared = sync.OnceValue(func() *handlers.Registry {
	r := handlers.NewRegistry()
	handlers.RegisterAllHandlers(r)
	return r
})

// Start serves one BMC on addr ("127.0.0.1:0" picks a free port) until Close.
func Start(addr string, o Options) (*BMC, error) {
	if o.User == "" {
		o.User = "admin"
	}
	if o.Password == "" {
		o.Password = "password"
	}
	ch := &Chassis{on: o.PowerOn, delay: o.PowerDelay}
	h := &halWithChassis{HAL: mock.New(), ch: ch}
	info := bmc.DeviceInfo{DeviceID: 0x20, DeviceRevision: 1, FirmwareMajor: 1, IPMIVersion: 0x02,
		ManufacturerID: 0x000157, ProductID: 1, AdditionalDeviceSupport: 0x39}
	var guid [16]byte
	copy(guid[:], "ferrum-bmcsim-"+addr)
	b := bmc.New(info, guid, h)
	u, err := b.Users.Add(2, o.User)
	if err != nil {
		return nil, err
	}
	u.SetPassword([]byte(o.Password))
	u.Enabled = true
	u.ChannelAccess[1] = bmc.UserChannelAccess{MaxPrivilege: bmc.PrivilegeLevelAdministrator, Enabled: true}

	conn, err := udp.Listen(addr)
	if err != nil {
		return nil, err
	}
	la := conn.LocalAddr().(*net.UDPAddr)
	out := &BMC{Host: la.IP.String(), Port: la.Port, Chassis: ch, done: make(chan struct{})}
	if o.Silent {
		out.conn = conn
		close(out.done)
		return out, nil
	}
	opts := []server.ServerOption{server.WithHandlerRegistry(shared())}
	if len(o.CipherSuites) > 0 {
		opts = append(opts, server.WithCipherSuites(o.CipherSuites))
	}
	var pc = packetConn(conn)
	if o.Delay > 0 {
		pc = &slowConn{Conn: conn, delay: o.Delay}
	}
	out.srv = server.NewServer(b, pc, opts...)
	go func() {
		defer close(out.done)
		_ = out.srv.Serve(context.Background())
	}()
	return out, nil
}

// Addr is host:port.
func (b *BMC) Addr() string { return net.JoinHostPort(b.Host, strconv.Itoa(b.Port)) }

// Close stops the server, frees the port and waits for the read loop to end.
func (b *BMC) Close() error {
	var err error
	if b.srv != nil {
		err = b.srv.Close()
	}
	if b.conn != nil {
		err = b.conn.Close()
	}
	<-b.done
	return err
}

type packetConn interface {
	ReadFrom(buf []byte) (int, net.Addr, error)
	WriteTo(data []byte, addr net.Addr) (int, error)
	Close() error
}

// slowConn delays every reply (the server answers each packet on its own goroutine).
type slowConn struct {
	*udp.Conn
	delay time.Duration
}

func (c *slowConn) WriteTo(data []byte, addr net.Addr) (int, error) {
	time.Sleep(c.delay)
	return c.Conn.WriteTo(data, addr)
}

// halWithChassis is go-ipmi's in-memory HAL with this package's chassis.
type halWithChassis struct {
	*mock.HAL
	ch *Chassis
}

func (h *halWithChassis) Chassis() hal.ChassisHAL { return h.ch }

// Chassis is the simulated machine behind a go-ipmi BMC: power, boot flags and a command log.
// Soft shutdown (go-ipmi maps it to a warm reset) powers the machine off.
type Chassis struct {
	mu        sync.Mutex
	on        bool
	delay     time.Duration
	pending   *time.Timer
	flags     *types.BootOptionParam_BootFlags
	Commands  []string // power-on, power-off, cycle, reset, soft-off, boot:<selector>
	powerCmds int
}

// Power reports whether the machine is on.
func (c *Chassis) Power() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.on
}

// SetPowerBehindBack changes power as if someone pressed the button: no IPMI involved.
func (c *Chassis) SetPowerBehindBack(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = on
}

// BootFlags returns the last boot flags set, or nil.
func (c *Chassis) BootFlags() *types.BootOptionParam_BootFlags {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flags == nil {
		return nil
	}
	f := *c.flags
	return &f
}

// Log returns the commands received so far.
func (c *Chassis) Log() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.Commands...)
}

func (c *Chassis) setPower(on bool, what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Commands = append(c.Commands, what)
	if c.pending != nil {
		c.pending.Stop()
	}
	if c.delay <= 0 {
		c.on = on
		return
	}
	c.pending = time.AfterFunc(c.delay, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.on = on
	})
}

func (c *Chassis) PowerState(context.Context) (bool, error) { return c.Power(), nil }

func (c *Chassis) SetPower(_ context.Context, on bool) error {
	what := "power-off"
	if on {
		what = "power-on"
	}
	c.setPower(on, what)
	return nil
}

func (c *Chassis) PowerCycle(context.Context) error { c.log("cycle"); return nil }
func (c *Chassis) ColdReset(context.Context) error  { c.log("reset"); return nil }

// WarmReset is what go-ipmi's handler calls for Chassis Control "soft shutdown".
func (c *Chassis) WarmReset(context.Context) error {
	c.setPower(false, "soft-off")
	return nil
}

func (c *Chassis) Identify(context.Context, uint8) error { return nil }

func (c *Chassis) IntrusionState(context.Context) (bool, error) { return false, hal.ErrNotSupported }

func (c *Chassis) SetBootFlags(_ context.Context, f *types.BootOptionParam_BootFlags) error {
	if f == nil {
		return hal.ErrNotSupported
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := *f
	c.flags = &cp
	c.Commands = append(c.Commands, fmt.Sprintf("boot:%d", f.BootDeviceSelector))
	return nil
}

func (c *Chassis) GetBootFlags(context.Context) (*types.BootOptionParam_BootFlags, error) {
	f := c.BootFlags()
	if f == nil {
		return nil, hal.ErrNotSupported
	}
	return f, nil
}

func (c *Chassis) SetBootInfoAcknowledge(context.Context, *types.BootOptionParam_BootInfoAcknowledge) error {
	return nil
}

func (c *Chassis) GetBootInfoAcknowledge(context.Context) (*types.BootOptionParam_BootInfoAcknowledge, error) {
	return &types.BootOptionParam_BootInfoAcknowledge{}, nil
}

func (c *Chassis) log(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Commands = append(c.Commands, s)
}

// Fleet is many go-ipmi BMCs in this process.
type Fleet struct {
	BMCs []*BMC
}

// StartFleet starts n BMCs on host at ports base, base+1, … (base 0: any free ports); opts(i)
// gives BMC i's options. Keep the range below the ephemeral ports (32768 on Linux) so clients
// cannot take them.
func StartFleet(n int, host string, base int, opts func(i int) Options) (*Fleet, error) {
	f := &Fleet{BMCs: make([]*BMC, 0, n)}
	for i := range n {
		var o Options
		if opts != nil {
			o = opts(i)
		}
		port := 0
		if base > 0 {
			port = base + i
		}
		b, err := Start(net.JoinHostPort(host, strconv.Itoa(port)), o)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("bmcsim: BMC %d: %w", i, err)
		}
		f.BMCs = append(f.BMCs, b)
	}
	return f, nil
}

// Close stops every BMC.
func (f *Fleet) Close() error {
	var errs []error
	for _, b := range f.BMCs {
		if err := b.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
