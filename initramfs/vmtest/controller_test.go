package vmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goBuild builds a command of this repository into dir.
func goBuild(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	if b, err := exec.Command("go", "build", "-o", out, "../../"+pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// TestAgentEnrollsWithController boots the image as a node with a real ferrum-controller on the
// host (reached as 10.0.2.2): the agent gets DHCP from its uinit, enrolls with the one-time
// token from `ferrum-certs kernel-params`, and the node's agent link shows up in the API.
func TestAgentEnrollsWithController(t *testing.T) {
	needVM(t)
	bin := t.TempDir()
	controller := goBuild(t, bin, "controller/cmd/ferrum-controller")
	certs := goBuild(t, bin, "certs/cmd/ferrum-certs")
	data := t.TempDir()
	api, agentPort := "127.0.0.1:"+freePort(t), freePort(t)
	cmd := exec.Command(controller, "--api-addr", api, "--data-dir", data, "--hostname", "vmtest",
		"--agent-addr", "127.0.0.1:"+agentPort, "--agent-advertise-addr", "10.0.2.2:"+agentPort,
		"--fake-inspect-delay", "10m", "--agent-heartbeat-interval", "1s", "--log-format", "json")
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("controller logs:\n%s", logs.String())
		}
	})
	call := func(method, path string, body, out any) int {
		t.Helper()
		var rd bytes.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd.Reset(b)
		}
		req, _ := http.NewRequest(method, "http://"+api+path, &rd)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-OpenStack-Ironic-API-Version", "1.78")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}
	deadline := time.Now().Add(60 * time.Second)
	for call("GET", "/v1/", nil, nil) != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("controller API never answered:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	var n struct {
		UUID string `json:"uuid"`
	}
	if code := call("POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "name": "vm-0"}, &n); code != 201 {
		t.Fatalf("create node: %d", code)
	}
	for _, target := range []string{"manage", "inspect"} {
		if code := call("PUT", "/v1/nodes/"+n.UUID+"/states/provision", map[string]any{"target": target}, nil); code != 202 {
			t.Fatalf("%s: %d", target, code)
		}
		time.Sleep(500 * time.Millisecond)
	}
	out, err := exec.Command(certs, "kernel-params", "-dir", filepath.Join(data, "pki"), "-node", n.UUID,
		"-controller", "10.0.2.2:"+agentPort).Output()
	if err != nil {
		t.Fatalf("ferrum-certs kernel-params: %v", err)
	}
	v := start(t, Config{Cmdline: strings.TrimSpace(string(out))})

	type view struct {
		DII struct {
			Ferrum *struct {
				Connected   bool    `json:"connected"`
				ConnectedAt *string `json:"connected_at"`
				Status      *struct {
					AgentVersion string `json:"agent_version"`
				} `json:"status"`
			} `json:"ferrum_agent"`
		} `json:"driver_internal_info"`
	}
	deadline = time.Now().Add(3 * time.Minute)
	for {
		var got view
		call("GET", "/v1/nodes/"+n.UUID, nil, &got)
		if f := got.DII.Ferrum; f != nil && f.Connected && f.Status != nil {
			t.Logf("FIGURE boot→agent-connected %.2fs (QEMU launch to the controller showing the node's agent connected, TCG)", v.Uptime().Seconds())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s: agent never connected: %+v", n.UUID, got.DII.Ferrum)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if l, err := v.WaitConsole(ctx, "ferrum-agent starting"); err == nil {
		t.Logf("agent started at %.2fs", l.At.Seconds())
	} else {
		t.Error(fmt.Errorf("agent start line: %w", err))
	}
}
