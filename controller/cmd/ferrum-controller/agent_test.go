package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests run a real ferrum-controller and real ferrum-agent processes on loopback.

var (
	agentBuild  sync.Once
	agentBins   map[string]string
	agentBuildE error
)

// agentBinaries builds ferrum-agent (with the race detector, like the daemon) and ferrum-certs.
func agentBinaries(t *testing.T) (agent, certsCLI string) {
	t.Helper()
	agentBuild.Do(func() {
		dir, err := os.MkdirTemp("", "ferrum-agent-bin-")
		if err != nil {
			agentBuildE = err
			return
		}
		agentBins = map[string]string{"agent": filepath.Join(dir, "ferrum-agent"), "certs": filepath.Join(dir, "ferrum-certs")}
		for _, b := range [][]string{
			{"build", "-race", "-o", agentBins["agent"], "../../../agent/cmd/ferrum-agent"},
			{"build", "-o", agentBins["certs"], "../../../certs/cmd/ferrum-certs"},
		} {
			if out, err := exec.Command("go", b...).CombinedOutput(); err != nil {
				agentBuildE = fmt.Errorf("go %v: %v\n%s", b, err, out)
				return
			}
		}
	})
	if agentBuildE != nil {
		t.Fatal(agentBuildE)
	}
	return agentBins["agent"], agentBins["certs"]
}

// agentProc is a running ferrum-agent.
type agentProc struct {
	cmd    *exec.Cmd
	logs   *syncBuffer
	exited chan struct{}
}

func startAgentProc(t *testing.T, bin, cmdline string) *agentProc {
	t.Helper()
	p := &agentProc{logs: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "--cmdline", cmdline)
	p.cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("agent logs:\n%s", p.logs.String())
		}
	})
	return p
}

func (p *agentProc) stop(t *testing.T) {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		t.Error("ferrum-agent did not exit on SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("ferrum-agent exited with %d", code)
	}
}

// agentView is driver_internal_info's agent part as the API shows it.
type agentView struct {
	DriverInternalInfo struct {
		LastHeartbeat *string `json:"agent_last_heartbeat"`
		Version       *string `json:"agent_version"`
		Ferrum        *struct {
			Connected       bool    `json:"connected"`
			EnrolledAt      *string `json:"enrolled_at"`
			ConnectedAt     *string `json:"connected_at"`
			DisconnectedAt  *string `json:"disconnected_at"`
			LastSeenAt      *string `json:"last_seen_at"`
			CertSerial      *string `json:"cert_serial"`
			BootID          *string `json:"boot_id"`
			ProtocolVersion int     `json:"protocol_version"`
			Status          *struct {
				BootID       string `json:"boot_id"`
				AgentVersion string `json:"agent_version"`
				Hostname     string `json:"hostname"`
			} `json:"status"`
		} `json:"ferrum_agent"`
	} `json:"driver_internal_info"`
}

func (d *daemon) agentView(id string) agentView {
	d.t.Helper()
	var v agentView
	if code, _, body := d.call("GET", "/v1/nodes/"+id, nil, &v); code != 200 {
		d.t.Fatalf("GET node: %d %s", code, body)
	}
	return v
}

func (d *daemon) waitAgent(id, what string, cond func(agentView) bool) agentView {
	d.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		v := d.agentView(id)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("node %s: never %s: %+v", id, what, v.DriverInternalInfo)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAgentProcess: token (kernel parameters from ferrum-certs) → the agent process enrolls →
// mutual-TLS tunnel → the controller runs get_status on it → the result and the boot path show
// in the API. A second agent with the same (spent) token is refused. Secrets stay out of logs.
func TestAgentProcess(t *testing.T) {
	agentBin, certsBin := agentBinaries(t)
	agentAddr := freeAddr(t)
	d := startDaemon(t, "", "--agent-addr", agentAddr, "--fake-inspect-delay", "10m",
		"--agent-heartbeat-interval", "200ms", "--shutdown-timeout", "2s")

	var n apiNode
	if code, _, body := d.call("POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "name": "agent-0"}, &n); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	for _, step := range []struct{ target, state string }{{"manage", "manageable"}, {"inspect", "inspecting"}} {
		if code, _, body := d.call("PUT", "/v1/nodes/"+n.UUID+"/states/provision", map[string]any{"target": step.target}, nil); code != 202 {
			t.Fatalf("%s: %d %s", step.target, code, body)
		}
		d.waitNode(n.UUID, step.state, func(x apiNode) bool { return x.ProvisionState == step.state })
	}

	out, err := exec.Command(certsBin, "kernel-params", "-dir", filepath.Join(d.DataDir, "pki"), "-node", n.UUID,
		"-controller", agentAddr).Output()
	if err != nil {
		t.Fatalf("ferrum-certs kernel-params: %v", err)
	}
	params := strings.TrimSpace(string(out))
	token := params[strings.Index(params, "ferrum.token=")+len("ferrum.token="):]
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	if err := os.WriteFile(cmdline, []byte("BOOT_IMAGE=/vmlinuz console=ttyS0 "+params+" quiet\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	a := startAgentProc(t, agentBin, cmdline)
	v := d.waitAgent(n.UUID, "connected with its status recorded", func(v agentView) bool {
		f := v.DriverInternalInfo.Ferrum
		return f != nil && f.Connected && f.Status != nil && f.Status.BootID != "" && f.EnrolledAt != nil &&
			v.DriverInternalInfo.LastHeartbeat != nil
	})
	f := v.DriverInternalInfo.Ferrum
	if f.Status.BootID != str(f.BootID) || f.ProtocolVersion < 1 || str(v.DriverInternalInfo.Version) != "dev" || f.CertSerial == nil {
		t.Errorf("agent link in the API: %+v / status %+v", f, f.Status)
	}
	first := str(v.DriverInternalInfo.LastHeartbeat)
	d.waitAgent(n.UUID, "heartbeating", func(v agentView) bool { return str(v.DriverInternalInfo.LastHeartbeat) != first })

	// The same kernel command line again: the token is spent.
	replay := startAgentProc(t, agentBin, cmdline)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(replay.logs.String(), "enrollment refused (401)") {
		if time.Now().After(deadline) {
			t.Fatalf("replayed token not refused with 401; agent logs:\n%s", replay.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	replay.stop(t)
	v0 := d.agentView(n.UUID).DriverInternalInfo.Ferrum
	if v0 == nil || !v0.Connected || str(v0.BootID) != f.Status.BootID {
		t.Fatalf("the first agent's session was disturbed: %+v", v0)
	}

	// A controller restart: the agent comes back on its own, resuming its TLS session (the
	// ticket key is in the data dir), and the spent token is still refused.
	d.stop(syscall.SIGTERM)
	firstLogs := d.logs.String()
	d = startDaemon(t, d.DataDir, "--agent-addr", agentAddr, "--fake-inspect-delay", "10m",
		"--agent-heartbeat-interval", "200ms", "--shutdown-timeout", "2s")
	d.waitAgent(n.UUID, "reconnected after the restart", func(v agentView) bool {
		f := v.DriverInternalInfo.Ferrum
		return f != nil && f.Connected && str(f.ConnectedAt) != str(v0.ConnectedAt)
	})
	if !strings.Contains(d.logs.String(), `"resumed":true`) {
		t.Error("the agent did not resume its TLS session after the restart")
	}
	replay2 := startAgentProc(t, agentBin, cmdline)
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(replay2.logs.String(), "enrollment refused (401)") {
		if time.Now().After(deadline) {
			t.Fatalf("replayed token not refused after a restart; agent logs:\n%s", replay2.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	replay2.stop(t)

	a.stop(t)
	d.waitAgent(n.UUID, "disconnected", func(v agentView) bool {
		f := v.DriverInternalInfo.Ferrum
		return f != nil && !f.Connected && f.DisconnectedAt != nil
	})
	for name, logs := range map[string]string{"controller": firstLogs + d.logs.String(), "agent": a.logs.String(),
		"replayed agent": replay.logs.String() + replay2.logs.String()} {
		if strings.Contains(logs, token) || strings.Contains(logs, token[len(token)-40:]) {
			t.Errorf("the %s logged the enrollment token", name)
		}
		if strings.Contains(logs, "PRIVATE KEY") {
			t.Errorf("the %s logged a private key", name)
		}
	}
}
