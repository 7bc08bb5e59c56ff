// Command cluster measures several controllers on one PostgreSQL database against one: a power
// sync round over the whole fleet (every controller syncing the nodes it owns, at once), and
// API throughput (node show, node PATCH) with clients spread over the controllers. Each
// controller is the real stack in process (its own pgx pool, conductor, fake-hardware, API
// handler over loopback HTTP); power reads cost -read-latency, as a BMC round trip would.
// Figures go to docs/benchmarks.md.
//
//	FERRUM_PG_DSN=postgres://… go run ./controller/bench/cluster -nodes 3000 -controllers 1,3
//
// `make bench-cluster` starts a throwaway PostgreSQL (controller/store/postgres/test-setup.sh).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/api"
	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/hardware/fake"
	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/controller/store/postgres"
)

func main() {
	dsn := flag.String("dsn", os.Getenv("FERRUM_PG_DSN"), "PostgreSQL server URL (a database is created per run); default $FERRUM_PG_DSN")
	nodes := flag.Int("nodes", 3000, "fleet size")
	counts := flag.String("controllers", "1,3", "controller counts to compare")
	latency := flag.Duration("read-latency", 20*time.Millisecond, "cost of one power state read (a BMC round trip)")
	dur := flag.Duration("duration", 5*time.Second, "how long each API phase runs")
	clients := flag.Int("clients", 32, "concurrent API clients")
	flag.Parse()
	if *dsn == "" {
		fmt.Fprintln(os.Stderr, "cluster: set -dsn or FERRUM_PG_DSN to a PostgreSQL server")
		os.Exit(2)
	}
	var ns []int
	for _, f := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "cluster: bad -controllers %q\n", *counts)
			os.Exit(2)
		}
		ns = append(ns, n)
	}
	fmt.Printf("%d nodes, power read %v, %d API clients for %v per phase\n", *nodes, *latency, *clients, *dur)
	fmt.Println("controllers | sync round 1 (records) | sync round 2 (reads) | GET node req/s | PATCH node req/s | PATCH 409s")
	for _, n := range ns {
		if err := run(*dsn, n, *nodes, *latency, *dur, *clients, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "cluster:", err)
			os.Exit(1)
		}
	}
}

// slowPower makes every power state read take latency.
type slowPower struct {
	conductor.HardwareType
	latency time.Duration
}

type slowReads struct {
	conductor.Power
	latency time.Duration
}

func (h slowPower) Driver(n *node.Node) (*conductor.Driver, error) {
	d, err := h.HardwareType.Driver(n)
	if err == nil && d.Power != nil {
		d.Power = slowReads{d.Power, h.latency}
	}
	return d, err
}

func (p slowReads) PowerState(ctx context.Context, n *node.Node) (string, error) {
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(p.latency):
	}
	return p.Power.PowerState(ctx, n)
}

type controller struct {
	st   *postgres.Store
	cond *conductor.Conductor
	srv  *httptest.Server
}

func run(dsn string, count, nodes int, latency, dur time.Duration, clients int, out io.Writer) error {
	ctx := context.Background()
	db, drop, err := newDatabase(ctx, dsn)
	if err != nil {
		return err
	}
	defer drop()
	ctls := make([]*controller, count)
	defer func() {
		for _, c := range ctls {
			if c != nil {
				c.srv.Close()
				c.cond.Close()
				c.st.Close()
			}
		}
	}()
	for i := range ctls {
		st, err := postgres.Open(ctx, postgres.Config{DSN: db})
		if err != nil {
			return err
		}
		hw, err := fake.New(fake.Config{})
		if err != nil {
			st.Close()
			return err
		}
		host := fmt.Sprintf("ctl-%d", i+1)
		cond, err := conductor.New(conductor.Config{Store: st, Hostname: host, Log: zerolog.Nop(),
			HardwareTypes:     []conductor.HardwareType{slowPower{hw, latency}},
			HeartbeatInterval: 200 * time.Millisecond, HeartbeatTimeout: 2 * time.Second,
			PowerSyncInterval: -1, PowerFailureRecoveryInterval: -1})
		if err != nil {
			st.Close()
			return err
		}
		if err := cond.Start(ctx); err != nil {
			st.Close()
			return err
		}
		h, err := api.New(api.Config{Backend: cond, Log: zerolog.Nop(), Hostname: host})
		if err != nil {
			cond.Close()
			st.Close()
			return err
		}
		ctls[i] = &controller{st: st, cond: cond, srv: httptest.NewServer(h)}
	}
	uuids := make([]string, nodes)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < nodes; i += 16 {
				n, err := ctls[i%count].cond.CreateNode(ctx, &node.Node{Driver: fake.Name, Name: fmt.Sprintf("n%05d", i), ProvisionState: node.Available})
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				uuids[i] = n.UUID
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	time.Sleep(time.Second) // every controller's heartbeat has seen the others

	round := func() (time.Duration, int, error) {
		var wg sync.WaitGroup
		read := make([]int, count)
		errs := make([]error, count)
		start := time.Now()
		for i, c := range ctls {
			wg.Go(func() {
				st, err := c.cond.SyncPowerStates(ctx)
				read[i], errs[i] = st.Nodes, err
			})
		}
		wg.Wait()
		total := 0
		for i := range read {
			if errs[i] != nil {
				return 0, 0, errs[i]
			}
			total += read[i]
		}
		return time.Since(start), total, nil
	}
	r1, n1, err := round()
	if err != nil {
		return err
	}
	r2, n2, err := round()
	if err != nil {
		return err
	}
	if n1 != nodes || n2 != nodes {
		return fmt.Errorf("sync rounds read %d and %d nodes, want %d each (every node by exactly one controller)", n1, n2, nodes)
	}

	gets, _, err := load(ctls, uuids, dur, clients, "GET")
	if err != nil {
		return err
	}
	patches, conflicts, err := load(ctls, uuids, dur, clients, "PATCH")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%d | %.2f s | %.2f s | %.0f | %.0f | %d\n", count, r1.Seconds(), r2.Seconds(), gets, patches, conflicts)
	return nil
}

// load runs clients for dur, each request to a random node through the next controller in
// turn; it returns successful requests per second and the 409s (node locked) seen.
func load(ctls []*controller, uuids []string, dur time.Duration, clients int, method string) (float64, int64, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var ok, conflicts atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range clients {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				c := ctls[(w+i)%len(ctls)]
				id := uuids[rand.IntN(len(uuids))]
				var body []byte
				if method == "PATCH" {
					body, _ = json.Marshal([]map[string]any{{"op": "add", "path": "/extra/bench", "value": i}})
				}
				req, _ := http.NewRequest(method, c.srv.URL+"/v1/nodes/"+id, bytes.NewReader(body))
				req.Header.Set("X-OpenStack-Ironic-API-Version", "1.78")
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == 200:
					ok.Add(1)
				case resp.StatusCode == 409:
					conflicts.Add(1)
				default:
					firstErr.CompareAndSwap(nil, fmt.Errorf("%s node: %d %s", method, resp.StatusCode, b))
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, 0, err
	}
	return float64(ok.Load()) / time.Since(start).Seconds(), conflicts.Load(), nil
}

// newDatabase creates an empty database on the server and returns its URL and a function
// that drops it.
func newDatabase(ctx context.Context, dsn string) (string, func(), error) {
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", nil, fmt.Errorf("connect: %w", err)
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("ferrum_bench_%d_%d", os.Getpid(), time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	return u.String(), func() {
		c, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}, nil
}
