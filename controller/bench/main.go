// Command bench measures the controller's API on the real stack (SQLite file, conductor,
// fake-hardware, API handler with its middleware): node create throughput and
// `GET /v1/nodes?detail=True` latency at a given fleet size, in process through
// controller/direct and over loopback HTTP. Figures go to docs/benchmarks.md.
//
//	go run ./controller/bench -nodes 10000 -requests 200
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/api"
	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/direct"
	"github.com/ferrumhq/ferrum/controller/hardware/fake"
	"github.com/ferrumhq/ferrum/controller/store/sqlite"
)

func main() {
	nodes := flag.Int("nodes", 10000, "fleet size")
	requests := flag.Int("requests", 200, "list requests to time")
	conc := flag.Int("concurrency", 8, "concurrent clients while creating nodes")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the list phase to this file")
	flag.Parse()
	profile = *cpuprofile
	if err := run(*nodes, *requests, *conc, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

var profile string

func run(nodes, requests, conc int, out io.Writer) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ferrum-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "ferrum.db")})
	if err != nil {
		return err
	}
	defer st.Close()
	hw, err := fake.New(fake.Config{})
	if err != nil {
		return err
	}
	cond, err := conductor.New(conductor.Config{Store: st, Hostname: "bench", HardwareTypes: []conductor.HardwareType{hw}, Log: zerolog.Nop()})
	if err != nil {
		return err
	}
	if err := cond.Start(ctx); err != nil {
		return err
	}
	defer cond.Close()
	h, err := api.New(api.Config{Backend: cond, Log: zerolog.Nop(), Hostname: "bench"})
	if err != nil {
		return err
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	transports := []struct {
		name string
		c    *http.Client
		base string
	}{
		{"direct (in process)", direct.Client(h), "http://ferrum.direct"},
		{"HTTP over loopback", &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}}, srv.URL},
	}

	fmt.Fprintf(out, "cores: %d (GOMAXPROCS %d), Go %s\n\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Fprintf(out, "| measure | transport | result |\n|---|---|---|\n")
	// Half of the fleet through each transport: both are timed, the total is the fleet.
	for i, tr := range transports {
		n := nodes / 2
		if i == 1 {
			n = nodes - nodes/2
		}
		rate, err := createNodes(tr.c, tr.base, n, conc, i)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "| POST /v1/nodes, %d clients | %s | %.0f nodes/s |\n", conc, tr.name, rate)
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for _, tr := range transports {
		p50, p99, count, err := listDetail(tr.c, tr.base, requests)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "| GET /v1/nodes?detail=True at %d nodes (%d per page), %d requests | %s | p50 %.1f ms, p99 %.1f ms |\n",
			nodes, count, requests, tr.name, ms(p50), ms(p99))
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func do(c *http.Client, method, url string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-OpenStack-Ironic-API-Version", "1.78")
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func createNodes(c *http.Client, base string, n, conc, batch int) (float64, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				body, _ := json.Marshal(map[string]any{"driver": "fake-hardware",
					"name":        fmt.Sprintf("bench-%d-%d", batch, i),
					"properties":  map[string]any{"cpus": 32, "memory_mb": 131072, "local_gb": 900},
					"driver_info": map[string]any{"ipmi_address": "10.0.0.1", "ipmi_password": "x"}})
				code, b, err := do(c, "POST", base+"/v1/nodes", body)
				if err == nil && code != 201 {
					err = fmt.Errorf("create: %d %s", code, b)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func listDetail(c *http.Client, base string, requests int) (p50, p99 time.Duration, count int, err error) {
	lat := make([]time.Duration, 0, requests)
	for range requests {
		t := time.Now()
		code, b, err := do(c, "GET", base+"/v1/nodes?detail=True", nil)
		if err != nil {
			return 0, 0, 0, err
		}
		if code != 200 {
			return 0, 0, 0, fmt.Errorf("list: %d %s", code, b)
		}
		lat = append(lat, time.Since(t))
		if count == 0 {
			var page struct {
				Nodes []json.RawMessage `json:"nodes"`
			}
			if err := json.Unmarshal(b, &page); err != nil {
				return 0, 0, 0, err
			}
			count = len(page.Nodes)
		}
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[(len(lat)*99)/100], count, nil
}
