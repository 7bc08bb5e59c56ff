// Command powersync measures Ferrum's power sync pass on the real stack (a SQLite file, the
// conductor, the ipmi hardware type and its go-ipmi sessions) against simulated BMCs on
// loopback. Figures go to docs/benchmarks.md.
//
//	go run ./controller/bench/powersync -mode ipmisim -n 200
//	    (a) N ipmi_sim BMCs: Ferrum's passes against Ironic's way of reading the same power
//	        states (one `ipmitool -I lanplus … power status` process per node, 8 at a time)
//	go run ./controller/bench/powersync -mode fleet -n 10000 [-silent-every 100]
//	    (b) N go-ipmi BMCs (pkg/server) in a child process: a cold pass (fresh sessions), then
//	        steady-state passes on the kept sessions; every M-th BMC silent if asked
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/controller/power/ipmi"
	"github.com/ferrumhq/ferrum/controller/power/ipmi/bmcsim"
	"github.com/ferrumhq/ferrum/controller/store/sqlite"
)

// config is every knob of a run.
type config struct {
	mode          string
	n             int
	workers       int
	slowWorkers   int
	passes        int
	timeout       time.Duration
	attempts      int
	ironicWorkers int
	silentEvery   int
	basePort      int
	inProcess     bool // fleet: BMCs in this process (tests)
	cpuprofile    string
	coldProfile   bool // profile the cold pass instead of the kept ones
}

func main() {
	var c config
	flag.StringVar(&c.mode, "mode", "fleet", "ipmisim (a: ipmi_sim BMCs, against ipmitool) | fleet (b: go-ipmi BMCs) | serve (internal: the fleet's BMC process)")
	flag.IntVar(&c.n, "n", 10000, "number of BMCs (and nodes)")
	flag.IntVar(&c.workers, "k", 64, "power sync workers (main lane)")
	flag.IntVar(&c.slowWorkers, "slow-k", 64, "power sync workers (slow lane)")
	flag.IntVar(&c.passes, "passes", 5, "steady-state passes after the cold one")
	flag.DurationVar(&c.timeout, "timeout", 500*time.Millisecond, "IPMI reply timeout")
	flag.IntVar(&c.attempts, "attempts", 1, "IPMI sends per request")
	flag.IntVar(&c.ironicWorkers, "ironic-k", 8, "ipmisim: concurrent ipmitool processes (Ironic's sync_power_state_workers)")
	flag.IntVar(&c.silentEvery, "silent-every", 0, "fleet: every M-th BMC never answers (0: none)")
	flag.IntVar(&c.basePort, "base-port", 20000, "fleet: first UDP port; keep N ports below 32768")
	flag.BoolVar(&c.inProcess, "in-process", false, "fleet: run the BMCs in this process")
	flag.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of the kept passes")
	flag.BoolVar(&c.coldProfile, "profile-cold", false, "-cpuprofile covers the cold pass only")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if c.mode == "serve" {
		err = serve(ctx, c, os.Stdout)
	} else {
		err = run(ctx, c, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "powersync:", err)
		os.Exit(1)
	}
}

// bmcAddr is where node i's BMC listens.
type bmcAddr struct {
	host string
	port int
	on   bool // its initial power
}

func run(ctx context.Context, c config, out io.Writer) error {
	fmt.Fprintf(out, "go %s, GOMAXPROCS=%d, NumCPU=%d, mode %s, %d BMCs, k=%d slow-k=%d, timeout %s × %d\n",
		runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), c.mode, c.n, c.workers, c.slowWorkers, c.timeout, c.attempts)
	dir, err := os.MkdirTemp("", "ferrum-powersync-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var addrs []bmcAddr
	var bmcCPU func() time.Duration
	var ironic func() error
	switch c.mode {
	case "ipmisim":
		sims, err := startSims(ctx, dir, c.n)
		defer func() {
			for _, s := range sims {
				s.Close()
			}
		}()
		if err != nil {
			return err
		}
		for _, s := range sims {
			addrs = append(addrs, bmcAddr{host: s.Host, port: s.Port})
		}
		bmcCPU = func() time.Duration {
			var t time.Duration
			for _, s := range sims {
				t += cpuOf(s.Pid())
			}
			return t
		}
		ironic = func() error { return ironicWay(ctx, c, sims, out) }
	case "fleet":
		pid, ports, stopFleet, err := startFleet(ctx, c)
		if err != nil {
			return err
		}
		defer stopFleet()
		for i, p := range ports {
			addrs = append(addrs, bmcAddr{host: "127.0.0.1", port: p, on: i%2 == 1})
		}
		bmcCPU = func() time.Duration { return cpuOf(pid) }
	default:
		return fmt.Errorf("unknown -mode %q", c.mode)
	}

	t0 := time.Now()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "ferrum.db")})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := createNodes(ctx, st, addrs); err != nil {
		return err
	}
	fmt.Fprintf(out, "setup: %d nodes stored in %s\n", len(addrs), time.Since(t0).Round(time.Millisecond))

	drv, err := ipmi.New(ipmi.Config{ExchangeTimeout: c.timeout, Attempts: c.attempts, CallTimeout: 10 * time.Second,
		ProbeInterval: 30 * time.Second, IdleTimeout: time.Hour})
	if err != nil {
		return err
	}
	defer drv.Close()
	hw, err := ipmi.NewHardware(ipmi.HardwareConfig{Driver: drv})
	if err != nil {
		return err
	}
	cond, err := conductor.New(conductor.Config{Store: st, Hostname: "bench", HardwareTypes: []conductor.HardwareType{hw},
		Log: zerolog.Nop(), PowerSyncInterval: -1, PowerFailureRecoveryInterval: -1,
		PowerSyncWorkers: c.workers, PowerSyncSlowWorkers: c.slowWorkers})
	if err != nil {
		return err
	}
	if err := cond.Start(ctx); err != nil {
		return err
	}
	defer cond.Close()

	startProfile := func() error { return nil }
	if c.cpuprofile != "" {
		f, err := os.Create(c.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		startProfile = func() error { return pprof.StartCPUProfile(f) }
		defer pprof.StopCPUProfile()
	}
	fmt.Fprintln(out, "pass          wall      list     nodes  matched failed slow maint detach  cpu-ferrum  cpu-bmcs  sessions unreachable")
	var kept []time.Duration
	for p := 0; p <= c.passes; p++ {
		name := "cold"
		if p > 0 {
			name = "kept-" + strconv.Itoa(p)
		}
		if (p == 1 && !c.coldProfile) || (p == 0 && c.coldProfile) {
			if err := startProfile(); err != nil {
				return err
			}
		}
		if p == 1 && c.coldProfile {
			pprof.StopCPUProfile()
		}
		runtime.GC()
		cpu0, bmc0 := cpuSelf(), bmcCPU()
		s, err := cond.SyncPowerStates(ctx)
		if err != nil {
			return err
		}
		cpuF, cpuB := cpuSelf()-cpu0, bmcCPU()-bmc0
		ds := drv.Stats()
		fmt.Fprintf(out, "%-10s %7.3fs %7.3fs %8d %8d %6d %4d %5d %6d %10.2fs %8.2fs %9d %11d\n", name, s.Duration.Seconds(),
			s.Listing.Seconds(), s.Nodes, s.Matched, s.Failed, s.SlowLane, s.Maintenance, s.Detached, cpuF.Seconds(), cpuB.Seconds(),
			ds.Sessions, ds.Unreachable)
		if p > 0 {
			kept = append(kept, s.Duration)
		}
	}
	if len(kept) > 0 {
		slices.Sort(kept)
		fmt.Fprintf(out, "kept passes: median %.3fs, best %.3fs, worst %.3fs\n", kept[len(kept)/2].Seconds(), kept[0].Seconds(), kept[len(kept)-1].Seconds())
	}
	if ironic != nil {
		pprof.StopCPUProfile()
		t := time.Now()
		if err := ironic(); err != nil {
			return err
		}
		iw := time.Since(t)
		fmt.Fprintf(out, "ironic's way: %.3fs for %d reads (%d ipmitool processes at a time)\n", iw.Seconds(), c.n, c.ironicWorkers)
		if len(kept) > 0 {
			fmt.Fprintf(out, "ratio ironic/ferrum: %.0f× (kept sessions, median pass)\n", iw.Seconds()/kept[len(kept)/2].Seconds())
		}
	}
	return nil
}

// createNodes stores one manageable node per BMC, its recorded power matching the BMC's.
func createNodes(ctx context.Context, st *sqlite.Store, addrs []bmcAddr) error {
	for i, a := range addrs {
		power := node.PowerOff
		if a.on {
			power = node.PowerOn
		}
		n := &node.Node{UUID: uuid.NewString(), Name: fmt.Sprintf("bmc-%05d", i), Driver: ipmi.Name,
			DriverInfo: map[string]any{"ipmi_address": a.host, "ipmi_port": a.port, "ipmi_username": "admin",
				"ipmi_password": "password", "ipmi_cipher_suite": 3},
			Interfaces: node.Interfaces{Management: "ipmitool", Power: "ipmitool", Boot: "ipxe", Deploy: "direct",
				Bios: "no-bios", Console: "no-console", Firmware: "no-firmware", Inspect: "no-inspect", Network: "flat",
				Raid: "no-raid", Rescue: "no-rescue", Storage: "noop", Vendor: "ipmitool"},
			ProvisionState: node.Manageable, PowerState: power}
		n.Normalize()
		if err := st.CreateNode(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// startSims starts n ipmi_sim BMCs with in-process power (fast status), 16 at a time.
func startSims(ctx context.Context, dir string, n int) ([]*bmcsim.Sim, error) {
	sims := make([]*bmcsim.Sim, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			sims[i], errs[i] = bmcsim.StartSim(ctx, bmcsim.SimOptions{Dir: filepath.Join(dir, "bmc"+strconv.Itoa(i)), Mode: bmcsim.Fast})
		}()
	}
	wg.Wait()
	var out []*bmcsim.Sim
	for _, s := range sims {
		if s != nil {
			out = append(out, s)
		}
	}
	return out, errors.Join(errs...)
}

// ironicWay reads every BMC's power the way Ironic's ipmitool driver does: one ipmitool
// process (and so one new RMCP+ session) per read, ironic-k at a time.
func ironicWay(ctx context.Context, c config, sims []*bmcsim.Sim, out io.Writer) error {
	sem := make(chan struct{}, c.ironicWorkers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, s := range sims {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o, err := s.Ipmitool(ctx, "power", "status")
			if err == nil && !strings.Contains(o, "Chassis Power is") {
				err = fmt.Errorf("unexpected ipmitool output %q", o)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		fmt.Fprintf(out, "ironic's way: %d errors, first: %v\n", len(errs), errs[0])
	}
	return nil
}

// startFleet runs the go-ipmi BMCs: in a child process (this command, -mode serve) unless
// in-process. It returns the pid whose CPU time is the BMCs' and their ports.
func startFleet(ctx context.Context, c config) (int, []int, func(), error) {
	if c.inProcess {
		f, err := bmcsim.StartFleet(c.n, "127.0.0.1", c.basePort, fleetOptions(c))
		if err != nil {
			return 0, nil, nil, err
		}
		ports := make([]int, len(f.BMCs))
		for i, b := range f.BMCs {
			ports[i] = b.Port
		}
		return os.Getpid(), ports, func() { f.Close() }, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, nil, nil, err
	}
	cmd := exec.Command(exe, "-mode", "serve", "-n", strconv.Itoa(c.n), "-base-port", strconv.Itoa(c.basePort),
		"-silent-every", strconv.Itoa(c.silentEvery))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return 0, nil, nil, err
	}
	stopChild := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		stopChild()
		return 0, nil, nil, fmt.Errorf("BMC process did not start: %q %v", line, err)
	}
	fmt.Print("fleet: ", line)
	ports := make([]int, c.n)
	for i := range ports {
		ports[i] = c.basePort + i
	}
	return cmd.Process.Pid, ports, stopChild, nil
}

func fleetOptions(c config) func(i int) bmcsim.Options {
	return func(i int) bmcsim.Options {
		return bmcsim.Options{PowerOn: i%2 == 1, Silent: c.silentEvery > 0 && i%c.silentEvery == c.silentEvery-1}
	}
}

// serve is the fleet's BMC process: N go-ipmi BMCs until SIGTERM.
func serve(ctx context.Context, c config, out io.Writer) error {
	t := time.Now()
	f, err := bmcsim.StartFleet(c.n, "127.0.0.1", c.basePort, fleetOptions(c))
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(out, "ready: %d BMCs on 127.0.0.1:%d..%d in %s (pid %d)\n", c.n, c.basePort, c.basePort+c.n-1,
		time.Since(t).Round(time.Millisecond), os.Getpid())
	<-ctx.Done()
	return nil
}

func cpuSelf() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuOf reads utime+stime of a process from /proc (10 ms ticks); 0 if it is gone.
func cpuOf(pid int) time.Duration {
	if pid == os.Getpid() {
		return 0 // in-process BMCs: counted as Ferrum's
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
