package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Tests here run the real ferrum-controller binary as a separate process, the way operators
// and clients see it.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds ferrum-controller once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ferrum-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "ferrum-controller")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// daemon is a running ferrum-controller.
type daemon struct {
	t       *testing.T
	URL     string
	DataDir string
	addr    string
	host    string // --hostname, when a test names its controllers
	cmd     *exec.Cmd
	logs    *syncBuffer
	exited  chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startDaemon starts the controller on a fresh loopback port with dataDir ("" = a new one).
func startDaemon(t *testing.T, dataDir string, extra ...string) *daemon {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	d := &daemon{t: t, DataDir: dataDir, addr: freeAddr(t), logs: &syncBuffer{}, exited: make(chan struct{})}
	d.URL = "http://" + d.addr
	args := append([]string{"--api-addr", d.addr, "--data-dir", dataDir, "--hostname", "ferrum-test",
		"--log-format", "json"}, extra...)
	d.cmd = exec.Command(binary(t), args...)
	d.cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("daemon logs:\n%s", d.logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(d.URL + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return d
			}
		}
		select {
		case <-d.exited:
			t.Fatalf("daemon exited early: %v\n%s", d.cmd.ProcessState, d.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not answering on %s: %v\n%s", d.URL, err, d.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends sig and waits for the process to exit.
func (d *daemon) stop(sig syscall.Signal) {
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(sig)
	select {
	case <-d.exited:
	case <-time.After(60 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
		d.t.Errorf("daemon did not exit on %v", sig)
	}
}

// call sends a request at API version 1.78 and decodes a JSON answer into out (if not nil).
func (d *daemon) call(method, path string, body any, out any) (int, http.Header, string) {
	d.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			d.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, d.URL+path, r)
	if err != nil {
		d.t.Fatal(err)
	}
	req.Header.Set("X-OpenStack-Ironic-API-Version", "1.78")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			d.t.Fatalf("%s %s: decoding %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, resp.Header, string(b)
}

// apiNode is the part of a node these tests read.
type apiNode struct {
	UUID                 string         `json:"uuid"`
	Name                 string         `json:"name"`
	ProvisionState       string         `json:"provision_state"`
	TargetProvisionState *string        `json:"target_provision_state"`
	PowerState           *string        `json:"power_state"`
	TargetPowerState     *string        `json:"target_power_state"`
	LastError            *string        `json:"last_error"`
	Reservation          *string        `json:"reservation"`
	Maintenance          bool           `json:"maintenance"`
	MaintenanceReason    *string        `json:"maintenance_reason"`
	Properties           map[string]any `json:"properties"`
	Extra                map[string]any `json:"extra"`
}

func (d *daemon) node(ident string) apiNode {
	d.t.Helper()
	var n apiNode
	if code, _, body := d.call("GET", "/v1/nodes/"+ident, nil, &n); code != 200 {
		d.t.Fatalf("GET node %s: %d %s", ident, code, body)
	}
	return n
}

// waitNode polls until cond holds for the node or fails the test.
func (d *daemon) waitNode(ident string, what string, cond func(apiNode) bool) apiNode {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := d.node(ident)
		if cond(n) {
			return n
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("node %s never became %s: %+v", ident, what, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func gate(t *testing.T, env, why string) {
	t.Helper()
	if os.Getenv(env) == "" {
		t.Skipf("set %s=1 to run (%s); make test sets it", env, why)
	}
}

func trimLines(s string) string { return strings.TrimSpace(s) }
