// Command agentlink measures the agent link on the real code paths: an agentlink.Server (TLS 1.3
// mutual auth, yamux, identity checks) and N agents made of agent/link with their own
// certificates, in a child process so that the controller's memory is its own. Figures go to
// docs/benchmarks.md.
//
//	go run ./controller/bench/agentlink -agents 1000,10000
//
// For each N: connect time, controller RSS and goroutines per idle agent; at the largest N the
// time for every agent to reconnect after a controller restart; with -rtt-agents connected,
// ping round trips one at a time, 16 in flight, and one in flight per agent.
//
// The node lookup and revocation check are in memory and nothing is recorded to a store: the
// figures are the link's own. Agent certificates are signed straight from the PKI's
// intermediate (enrollment through the authority is measured separately, -enroll).
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"go.step.sm/crypto/keyutil"

	"github.com/ferrumhq/ferrum/agent/diag"
	"github.com/ferrumhq/ferrum/agent/link"
	"github.com/ferrumhq/ferrum/agent/runner"
	"github.com/ferrumhq/ferrum/certs"
	"github.com/ferrumhq/ferrum/controller/agentlink"
	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/controller/store/sqlite"
	"github.com/ferrumhq/ferrum/shared/mtls"
	"github.com/ferrumhq/ferrum/shared/proto"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "agents" {
		if err := agents(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "agents:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	sizes := flag.String("agents", "1000,10000", "comma-separated agent counts")
	flag.IntVar(&o.rttAgents, "rtt-agents", 1000, "agent count at which round trips are timed (0: none)")
	flag.IntVar(&o.rttRequests, "rtt-requests", 5000, "round trips timed one at a time and 16 in flight")
	flag.IntVar(&o.burstRounds, "burst-rounds", 10, "rounds of one ping in flight per agent")
	flag.BoolVar(&o.restart, "restart", true, "time reconnects after a controller restart at the largest count")
	flag.IntVar(&o.enroll, "enroll", 500, "agents enrolled through the authority to time enrollment (0: none)")
	flag.StringVar(&o.memprofile, "memprofile", "", "write a heap profile of the idle controller (largest count) to this file")
	flag.IntVar(&maxHandshakes, "max-handshakes", 0, "agentlink.Config.MaxHandshakes (0: its default)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the controller during the restart to this file")
	flag.Parse()
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bad -agents %q\n", *sizes)
			os.Exit(2)
		}
		o.sizes = append(o.sizes, n)
	}
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	sizes       []int
	rttAgents   int
	rttRequests int
	burstRounds int
	restart     bool
	enroll      int
	memprofile  string
	cpuprofile  string
}

// nodeID is the UUID of the i-th benchmark node.
func nodeID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// nodes is the in-memory lookup: every node waits for its agent.
type nodes struct{ n int }

func (s nodes) GetNode(_ context.Context, id string) (*node.Node, error) {
	i, err := strconv.Atoi(strings.TrimPrefix(id, "00000000-0000-4000-8000-"))
	if err != nil || i >= s.n || nodeID(i) != id {
		return nil, node.NotFound("Node", id)
	}
	return &node.Node{UUID: id, ProvisionState: node.DeployWait}, nil
}

type noRevocations struct{}

func (noRevocations) IsRevoked(context.Context, string) (bool, error) { return false, nil }

func rssKiB() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is another process's user+system CPU time (Linux /proc).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}

func settle() (rss int64, goroutines int) {
	runtime.GC()
	debug.FreeOSMemory()
	time.Sleep(300 * time.Millisecond)
	runtime.GC()
	debug.FreeOSMemory()
	return rssKiB(), runtime.NumGoroutine()
}

type controller struct {
	srv  *agentlink.Server
	done chan error
	stop context.CancelFunc
}

var maxHandshakes int

// ticketKey is kept across the controller restart, as ferrum-controller keeps it in its data dir.
var ticketKey = func() *[32]byte {
	var k [32]byte
	rand.Read(k[:])
	return &k
}()

func startController(addr string, cert tls.Certificate, p *certs.PKI, n int, enroll certs.Signer) (*controller, error) {
	cfg := agentlink.Config{Addr: addr, Certificate: cert, ClientCAs: p.ClientCAs(), Fingerprint: p.Fingerprint(),
		Nodes: nodes{n}, Revocations: noRevocations{}, Log: zerolog.Nop(), TicketKey: ticketKey, MaxHandshakes: maxHandshakes}
	if enroll != nil {
		h, err := certs.EnrollHandler(certs.EnrollConfig{Signer: enroll, TokenKey: p.Provisioner, Log: zerolog.Nop()})
		if err != nil {
			return nil, err
		}
		cfg.Enroll = h
	}
	srv, err := agentlink.New(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &controller{srv: srv, done: make(chan error, 1), stop: cancel}
	go func() { c.done <- srv.Serve(ctx) }()
	return c, nil
}

func (c *controller) close() error {
	c.stop()
	return <-c.done
}

// waitSessions waits until the server has want sessions.
func waitSessions(srv *agentlink.Server, want int, limit time.Duration) (time.Duration, error) {
	t0 := time.Now()
	for srv.Count() < want {
		if time.Since(t0) > limit {
			return time.Since(t0), fmt.Errorf("%d of %d agents connected after %v", srv.Count(), want, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(t0), nil
}

func run(o options, out io.Writer) error {
	dir, err := os.MkdirTemp("", "ferrum-linkbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := certs.Init(filepath.Join(dir, "pki"), certs.InitOptions{})
	if err != nil {
		return err
	}
	cert, err := p.IssueController(certs.ControllerOptions{DNSNames: []string{"127.0.0.1"}})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "agent link benchmark: Go %s, %d CPUs, GOMAXPROCS %d\n", runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0))
	largest := slices.Max(o.sizes)
	for _, n := range o.sizes {
		if err := measure(o, n, n == largest, p, cert, dir, out); err != nil {
			return err
		}
	}
	if o.enroll > 0 {
		return measureEnroll(o.enroll, p, cert, out)
	}
	return nil
}

func measure(o options, n int, largest bool, p *certs.PKI, cert tls.Certificate, dir string, out io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	ctl, err := startController(addr, cert, p, n, nil)
	if err != nil {
		return err
	}
	baseRSS, baseG := settle()

	child := exec.Command(os.Args[0], "agents", "-addr", addr, "-pki", p.Dir, "-n", strconv.Itoa(n))
	child.Stderr = os.Stderr
	stdout, err := child.StdoutPipe()
	if err != nil {
		return err
	}
	if err := child.Start(); err != nil {
		return err
	}
	defer func() {
		child.Process.Signal(syscall.SIGTERM)
		child.Wait()
	}()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "certs-ready" {
		return fmt.Errorf("agents process: %q %v", sc.Text(), sc.Err())
	}
	go io.Copy(io.Discard, stdout)
	took, err := waitSessions(ctl.srv, n, 5*time.Minute)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n== %d agents\nconnect: %v (%.0f agents/s, 64 dialing at a time)\n", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	time.Sleep(2 * time.Second)
	rss, g := settle()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(out, "controller idle: RSS %d MiB (base %d MiB) => %.1f KiB/agent; goroutines %d (base %d) => %.2f/agent; heap in use %.1f KiB/agent, stacks %.1f KiB/agent\n",
		rss/1024, baseRSS/1024, float64(rss-baseRSS)/float64(n), g, baseG, float64(g-baseG)/float64(n),
		float64(ms.HeapInuse)/1024/float64(n), float64(ms.StackInuse)/1024/float64(n))

	if largest && o.memprofile != "" {
		f, err := os.Create(o.memprofile)
		if err != nil {
			return err
		}
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	if n == o.rttAgents {
		if err := measureRTT(o, ctl.srv, n, out); err != nil {
			return err
		}
	}
	if largest && o.restart {
		tc := time.Now()
		if err := ctl.close(); err != nil {
			return err
		}
		closing := time.Since(tc)
		child.Process.Signal(syscall.SIGUSR1)
		cpu0, childCPU0 := selfCPU(), procCPU(child.Process.Pid)
		if o.cpuprofile != "" {
			f, err := os.Create(o.cpuprofile)
			if err != nil {
				return err
			}
			pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
		t0 := time.Now()
		ctl, err = startController(addr, cert, p, n, nil)
		if err != nil {
			return err
		}
		var marks []string
		for _, frac := range []float64{.5, .9, .99} {
			if _, err := waitSessions(ctl.srv, int(frac*float64(n)), 5*time.Minute); err != nil {
				return err
			}
			marks = append(marks, fmt.Sprintf("%.0f%% in %v", frac*100, time.Since(t0).Round(time.Millisecond)))
		}
		if _, err := waitSessions(ctl.srv, n, 5*time.Minute); err != nil {
			return err
		}
		took := time.Since(t0)
		fmt.Fprintf(out, "controller restart: closing the old server took %v; %s; CPU while reconnecting: controller %.1f s (%.0f µs/agent), agents' process %.1f s\n",
			closing.Round(time.Millisecond), strings.Join(marks, ", "), (selfCPU() - cpu0).Seconds(),
			float64((selfCPU()-cpu0).Microseconds())/float64(n), (procCPU(child.Process.Pid) - childCPU0).Seconds())
		resumed := 0
		for _, s := range ctl.srv.Sessions() {
			if s.Resumed {
				resumed++
			}
		}
		fmt.Fprintf(out, "controller restart: all %d agents back in %v (%.0f agents/s, %d TLS sessions resumed; agents wait a random 0–1 s, doubling to 30 s, before each redial)\n",
			n, took.Round(time.Millisecond), float64(n)/took.Seconds(), resumed)
	}
	return ctl.close()
}

func pct(d []time.Duration, p float64) time.Duration {
	slices.Sort(d)
	return d[int(float64(len(d)-1)*p)]
}

func ping(srv *agentlink.Server, id string) (time.Duration, error) {
	t := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := srv.Run(ctx, id, proto.Command{ID: "", Name: proto.CmdPing}, nil)
	if err == nil && res.Error != nil {
		err = res.Error
	}
	return time.Since(t), err
}

func measureRTT(o options, srv *agentlink.Server, n int, out io.Writer) error {
	// Warm up every session once.
	for i := range n {
		if _, err := ping(srv, nodeID(i)); err != nil {
			return err
		}
	}
	for _, inflight := range []int{1, 16} {
		lat := make([]time.Duration, o.rttRequests)
		var next atomic.Int64
		var wg sync.WaitGroup
		var firstErr atomic.Value
		t0 := time.Now()
		for range inflight {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= o.rttRequests {
						return
					}
					d, err := ping(srv, nodeID(i%n))
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
					}
					lat[i] = d
				}
			})
		}
		wg.Wait()
		if err, _ := firstErr.Load().(error); err != nil {
			return err
		}
		el := time.Since(t0)
		fmt.Fprintf(out, "ping round trip, %d agents connected, %d in flight: p50 %v p99 %v (%d round trips, %.0f/s)\n",
			n, inflight, pct(lat, .5).Round(time.Microsecond), pct(lat, .99).Round(time.Microsecond), o.rttRequests, float64(o.rttRequests)/el.Seconds())
	}
	lat := make([]time.Duration, 0, n*o.burstRounds)
	var mu sync.Mutex
	var firstErr error
	t0 := time.Now()
	for range o.burstRounds {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				d, err := ping(srv, nodeID(i))
				mu.Lock()
				lat = append(lat, d)
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	if firstErr != nil {
		return firstErr
	}
	el := time.Since(t0)
	fmt.Fprintf(out, "ping round trip, %d agents, one in flight per agent (%d at once, %d rounds): p50 %v p99 %v (%.0f/s)\n",
		n, n, o.burstRounds, pct(lat, .5).Round(time.Microsecond), pct(lat, .99).Round(time.Microsecond), float64(len(lat))/el.Seconds())
	return nil
}

// measureEnroll times enrollment through the embedded authority: token → /1.0/sign → cert,
// with used tokens recorded in a SQLite file as ferrum-controller does (one fsync each).
func measureEnroll(n int, p *certs.PKI, cert tls.Certificate, out io.Writer) error {
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(filepath.Dir(p.Dir), "tokens.db")})
	if err != nil {
		return err
	}
	defer st.Close()
	auth, err := certs.NewAuthority(certs.AuthorityConfig{PKI: p, Store: st, Log: zerolog.Nop()})
	if err != nil {
		return err
	}
	defer auth.Close()
	ctl, err := startController("127.0.0.1:0", cert, p, n, auth)
	if err != nil {
		return err
	}
	defer ctl.close()
	addr := ctl.srv.Addr().String()
	m := p.Minter(time.Hour)
	toks := make([]string, n)
	for i := range toks {
		if toks[i], err = m.Mint(nodeID(i)); err != nil {
			return err
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	t0 := time.Now()
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if _, err := link.Enroll(context.Background(), link.EnrollConfig{Controller: addr, Fingerprint: p.Fingerprint(), Token: toks[i]}); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(t0)
	fmt.Fprintf(out, "\nenrollment through the embedded authority (used tokens in SQLite), 16 at a time: %d in %v (%.0f/s), %d failed\n",
		n, el.Round(time.Millisecond), float64(n)/el.Seconds(), failed.Load())
	return nil
}

// agents is the child process: n agents with their own certificates.
func agents(args []string) error {
	fs := flag.NewFlagSet("agents", flag.ExitOnError)
	addr := fs.String("addr", "", "")
	dir := fs.String("pki", "", "")
	n := fs.Int("n", 1, "")
	fs.Parse(args)
	p, err := certs.Load(*dir)
	if err != nil {
		return err
	}
	tlsCerts := make([]*tls.Certificate, *n)
	for i := range tlsCerts {
		if tlsCerts[i], err = issue(p, nodeID(i)); err != nil {
			return err
		}
	}
	fmt.Println("certs-ready")
	if f := os.Getenv("LINKBENCH_AGENT_CPUPROFILE"); f != "" {
		// SIGUSR1 starts the profile (the parent sends it when it restarts the controller).
		usr := make(chan os.Signal, 1)
		signal.Notify(usr, syscall.SIGUSR1)
		go func() {
			<-usr
			if pf, err := os.Create(f); err == nil {
				pprof.StartCPUProfile(pf)
				time.Sleep(15 * time.Second)
				pprof.StopCPUProfile()
				pf.Close()
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	r := runner.New(runner.Config{Log: zerolog.Nop()})
	defer r.Close()
	diag.Register(r, diag.Info{AgentVersion: "bench", Started: time.Now(), Running: r.Running}, nil)
	childLog := zerolog.Nop()
	if os.Getenv("LINKBENCH_AGENT_LOG") != "" {
		childLog = zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	}
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range *n {
		var once sync.Once
		a, err := link.New(link.Config{Controller: *addr, Fingerprint: p.Fingerprint(), Certificate: tlsCerts[i],
			Runner: r, AgentVersion: "bench", Log: childLog,
			OnConnect: func(proto.HelloAck) { once.Do(func() { <-sem }) }})
		if err != nil {
			return err
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		wg.Go(func() { a.Run(ctx) })
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

// issue signs an agent certificate for id with the PKI's intermediate.
func issue(p *certs.PKI, id string) (*tls.Certificate, error) {
	key, err := keyutil.GenerateDefaultSigner()
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(mtls.NodeURI(id))
	sn, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	now := time.Now()
	tpl := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: id}, URIs: []*url.URL{u},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, p.Intermediate, key.Public(), p.IntermediateKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der, p.Intermediate.Raw}, PrivateKey: key, Leaf: leaf}, nil
}
