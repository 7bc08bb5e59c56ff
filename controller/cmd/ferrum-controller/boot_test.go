package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bootView is the boot part of driver_internal_info.ferrum_agent.
type bootView struct {
	DriverInternalInfo struct {
		Ferrum *struct {
			Connected       bool    `json:"connected"`
			TokenIssuedAt   *string `json:"token_issued_at"`
			EnrolledAt      *string `json:"enrolled_at"`
			ConnectedAt     *string `json:"connected_at"`
			ScriptFetchedAt *string `json:"script_fetched_at"`
			KernelFetchedAt *string `json:"kernel_fetched_at"`
			InitrdFetchedAt *string `json:"initrd_fetched_at"`
			BootClientAddr  *string `json:"boot_client_addr"`
			BootMAC         *string `json:"boot_mac"`
		} `json:"ferrum_agent"`
	} `json:"driver_internal_info"`
}

func freeUDPAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// fetch GETs url as iPXE would and returns status, headers and body.
func fetch(t *testing.T, url string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// bootScript is a parsed agent boot script.
type bootScript struct {
	kernelURL, initrdURL string
	args                 []string
}

func (s bootScript) arg(key string) string {
	for _, a := range s.args {
		if k, v, ok := strings.Cut(a, "="); ok && k == key {
			return v
		}
	}
	return ""
}

func parseBootScript(t *testing.T, body string) bootScript {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if len(lines) != 4 || lines[0] != "#!ipxe" || lines[3] != "boot" ||
		!strings.HasPrefix(lines[1], "kernel ") || !strings.HasPrefix(lines[2], "initrd ") {
		t.Fatalf("not an agent boot script:\n%s", body)
	}
	k := strings.Fields(lines[1])[1:]
	return bootScript{kernelURL: k[0], args: k[1:], initrdURL: strings.TrimPrefix(lines[2], "initrd ")}
}

// TestBootServer: the network boot of a node as iPXE does it, against the real daemon and
// the real agent. A fake-hardware node in "inspecting" (an agent state) with a port: its MAC's
// script boots the ramdisk with the node, the PKI's fingerprint and a fresh token; the kernel
// and initramfs come with Range support; the agent run with the script's command line enrolls
// and connects; each fetch mints a new token and a spent one is refused; unknown MACs and nodes
// that expect no agent get "exit"; the TFTP chain script points at the boot server; the boot
// path shows in the API; no token reaches the logs.
func TestBootServer(t *testing.T) {
	agentBin, _ := agentBinaries(t)
	dir := t.TempDir()
	kernel := make([]byte, 1<<20)
	rand.Read(kernel)
	initrd := []byte("initramfs-bytes")
	kernelFile, initrdFile := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initramfs.cpio.gz")
	if err := os.WriteFile(kernelFile, kernel, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(initrdFile, initrd, 0o600); err != nil {
		t.Fatal(err)
	}
	agentAddr, bootAddr, tftpAddr := freeAddr(t), freeAddr(t), freeUDPAddr(t)
	d := startDaemon(t, "", "--agent-addr", agentAddr, "--boot-addr", bootAddr, "--boot-tftp-addr", tftpAddr,
		"--boot-kernel", kernelFile, "--boot-initramfs", initrdFile, "--boot-kernel-args", "console=ttyS0,115200",
		"--fake-inspect-delay", "10m", "--agent-heartbeat-interval", "1s", "--shutdown-timeout", "2s")
	bootURL := "http://" + bootAddr

	const mac, idleMAC = "52:54:00:aa:bb:01", "52:54:00:aa:bb:02"
	newNode := func(name, mac string) string {
		t.Helper()
		var n apiNode
		if code, _, body := d.call("POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "name": name}, &n); code != 201 {
			t.Fatalf("create %s: %d %s", name, code, body)
		}
		if code, _, body := d.call("POST", "/v1/ports", map[string]any{"node_uuid": n.UUID, "address": mac}, nil); code != 201 {
			t.Fatalf("port %s: %d %s", mac, code, body)
		}
		return n.UUID
	}
	id := newNode("boot-0", mac)
	newNode("boot-idle", idleMAC) // stays in enroll: expects no agent
	for _, step := range []struct{ target, state string }{{"manage", "manageable"}, {"inspect", "inspecting"}} {
		if code, _, body := d.call("PUT", "/v1/nodes/"+id+"/states/provision", map[string]any{"target": step.target}, nil); code != 202 {
			t.Fatalf("%s: %d %s", step.target, code, body)
		}
		d.waitNode(id, step.state, func(x apiNode) bool { return x.ProvisionState == step.state })
	}

	// Machines the controller should not boot go on to their next boot device.
	for _, m := range []string{"52:54:00:00:00:99", idleMAC} {
		code, hdr, body := fetch(t, bootURL+"/boot/ipxe?mac="+m)
		if code != 200 || string(body) != "#!ipxe\nexit\n" || hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("script for %s: %d %q (Cache-Control %q), want the exit script", m, code, body, hdr.Get("Cache-Control"))
		}
	}
	if code, _, body := fetch(t, bootURL+"/boot/ipxe?mac=not-a-mac"); code != 400 {
		t.Errorf("malformed MAC: %d %q, want 400", code, body)
	}

	// The node's script, as iPXE asks for it (dashes and upper case work too).
	code, hdr, body := fetch(t, bootURL+"/boot/ipxe?mac="+strings.ToUpper(mac))
	if code != 200 || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("script: %d %q, Cache-Control %q", code, body, hdr.Get("Cache-Control"))
	}
	s := parseBootScript(t, string(body))
	rootPEM, err := os.ReadFile(filepath.Join(d.DataDir, "pki", "root_ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(rootPEM)
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(root.Raw)
	token1 := s.arg("ferrum.token")
	for k, want := range map[string]string{"ferrum.node": id, "ferrum.controller": agentAddr,
		"ferrum.fingerprint": hex.EncodeToString(sum[:]), "BOOTIF": "01-52-54-00-aa-bb-01",
		"console": "ttyS0,115200", "initrd": "initramfs.cpio.gz"} {
		if got := s.arg(k); got != want {
			t.Errorf("kernel argument %s = %q, want %q", k, got, want)
		}
	}
	if strings.Count(token1, ".") != 2 {
		t.Fatalf("ferrum.token is not a JWT: %q", token1)
	}
	if want := bootURL + "/boot/nodes/" + id + "/"; s.kernelURL != want+"vmlinuz" || s.initrdURL != want+"initramfs.cpio.gz" {
		t.Errorf("kernel %s, initrd %s: want under %s", s.kernelURL, s.initrdURL, want)
	}

	// The ramdisk, as iPXE fetches it, and in pieces.
	if code, _, b := fetch(t, s.kernelURL); code != 200 || !bytes.Equal(b, kernel) {
		t.Errorf("kernel: %d, %d bytes, want 200 and %d", code, len(b), len(kernel))
	}
	if code, _, b := fetch(t, s.initrdURL); code != 200 || !bytes.Equal(b, initrd) {
		t.Errorf("initramfs: %d %q", code, b)
	}
	if code, hdr, b := fetch(t, s.kernelURL, "Range", "bytes=1000-1999"); code != 206 || !bytes.Equal(b, kernel[1000:2000]) ||
		hdr.Get("Content-Range") != "bytes 1000-1999/1048576" {
		t.Errorf("kernel range: %d, %d bytes, Content-Range %q", code, len(b), hdr.Get("Content-Range"))
	}
	if code, _, b := fetch(t, bootURL+"/boot/initramfs.cpio.gz", "Range", "bytes=-5"); code != 206 || string(b) != "bytes" {
		t.Errorf("initramfs suffix range: %d %q", code, b)
	}

	// The machine boots: the agent with the script's kernel command line.
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	if err := os.WriteFile(cmdline, []byte("BOOT_IMAGE=vmlinuz "+strings.Join(s.args, " ")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startAgentProc(t, agentBin, cmdline)
	d.waitAgent(id, "connected", func(v agentView) bool {
		f := v.DriverInternalInfo.Ferrum
		return f != nil && f.Connected && f.EnrolledAt != nil
	})

	// The boot path, in order, in the API.
	var v bootView
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _, body := d.call("GET", "/v1/nodes/"+id, nil, &v); code != 200 {
			t.Fatalf("GET node: %d %s", code, body)
		}
		if f := v.DriverInternalInfo.Ferrum; f != nil && f.TokenIssuedAt != nil && f.ScriptFetchedAt != nil &&
			f.KernelFetchedAt != nil && f.InitrdFetchedAt != nil && f.ConnectedAt != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("boot path incomplete in the API: %+v", v.DriverInternalInfo.Ferrum)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f := v.DriverInternalInfo.Ferrum
	if str(f.BootClientAddr) != "127.0.0.1" || str(f.BootMAC) != mac {
		t.Errorf("boot client %q, MAC %q; want 127.0.0.1 and %s", str(f.BootClientAddr), str(f.BootMAC), mac)
	}
	order := []*string{f.ScriptFetchedAt, f.KernelFetchedAt, f.InitrdFetchedAt, f.EnrolledAt, f.ConnectedAt}
	for i := 1; i < len(order); i++ {
		if *order[i] < *order[i-1] { // ISO 8601 in UTC sorts as text
			t.Errorf("boot path out of order: script %s, kernel %s, initrd %s, enrolled %s, connected %s",
				*f.ScriptFetchedAt, *f.KernelFetchedAt, *f.InitrdFetchedAt, *f.EnrolledAt, *f.ConnectedAt)
			break
		}
	}

	// A second fetch (a reboot) mints a new token; the spent one is refused.
	_, _, body2 := fetch(t, bootURL+"/boot/ipxe?mac="+mac)
	if token2 := parseBootScript(t, string(body2)).arg("ferrum.token"); token2 == "" || token2 == token1 {
		t.Errorf("second fetch: token %q, want a new one", token2)
	}
	replay := startAgentProc(t, agentBin, cmdline)
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(replay.logs.String(), "enrollment refused (401)") {
		if time.Now().After(deadline) {
			t.Fatalf("spent token not refused; agent logs:\n%s", replay.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	replay.stop(t)

	// TFTP: the chain script points at the advertised boot address.
	if _, err := exec.LookPath("curl"); err == nil {
		out, err := exec.Command("curl", "-sS", "--max-time", "10", "tftp://"+tftpAddr+"/boot.ipxe").Output()
		if want := "#!ipxe\nchain " + bootURL + "/boot/ipxe?mac=${netX/mac}\n"; err != nil || string(out) != want {
			t.Errorf("TFTP boot.ipxe = %q, %v; want %q", out, err, want)
		}
	} else if os.Getenv("FERRUM_SLOW") != "" {
		t.Errorf("FERRUM_SLOW is set but curl is missing: %v", err)
	} else {
		t.Log("curl not installed: TFTP not checked here (controller/boot tests it with a Go client)")
	}

	m := d.metrics()
	for _, want := range []string{`ferrum_boot_scripts_total{result="agent"} 2`, `ferrum_boot_scripts_total{result="unknown_mac"} 1`,
		`ferrum_boot_scripts_total{result="no_agent"} 1`, `ferrum_boot_files_total{file="vmlinuz"} 2`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "ferrum_boot"))
		}
	}

	a.stop(t)
	d.stop(syscall.SIGTERM)
	tokens := []string{token1, parseBootScript(t, string(body2)).arg("ferrum.token")}
	for name, logs := range map[string]string{"controller": d.logs.String(), "agent": a.logs.String() + replay.logs.String()} {
		for _, tok := range tokens {
			if strings.Contains(logs, tok) || strings.Contains(logs, tok[len(tok)-40:]) {
				t.Errorf("the %s logged an enrollment token", name)
			}
		}
	}
	if !strings.Contains(d.logs.String(), "boot script: no port has this MAC") {
		t.Error("no log line for the unknown MAC")
	}
}

// TestBootServerPXEWithQEMU: a QEMU machine without -kernel network-boots as a node would:
// its NIC's iPXE gets the chain script from QEMU's own TFTP (slirp), asks the boot server for
// its node's script by MAC, loads the ramdisk from it, and the agent enrolls and connects. The
// boot path shows in the API in order.
func TestBootServerPXEWithQEMU(t *testing.T) {
	gate(t, "FERRUM_VMTEST", "boots the agent ramdisk (make initramfs) under QEMU")
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatalf("FERRUM_VMTEST is set but QEMU is missing: %v", err)
	}
	out, err := filepath.Abs("../../../initramfs/out")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vmlinuz", "initramfs.cpio.gz"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Fatalf("FERRUM_VMTEST is set but the ramdisk is not built (make initramfs): %v", err)
		}
	}
	agentAddr, bootAddr := freeAddr(t), freeAddr(t)
	_, agentPort, _ := net.SplitHostPort(agentAddr)
	_, bootPort, _ := net.SplitHostPort(bootAddr)
	// In the guest, 10.0.2.2 is the host's loopback.
	d := startDaemon(t, "", "--agent-addr", agentAddr, "--agent-advertise-addr", "10.0.2.2:"+agentPort,
		"--boot-addr", bootAddr, "--boot-advertise-addr", "10.0.2.2:"+bootPort,
		"--boot-kernel", filepath.Join(out, "vmlinuz"), "--boot-initramfs", filepath.Join(out, "initramfs.cpio.gz"),
		"--boot-kernel-args", "console=ttyS0,115200", "--fake-inspect-delay", "10m", "--shutdown-timeout", "2s")
	const mac = "52:54:00:fe:00:01"
	var n apiNode
	if code, _, body := d.call("POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "name": "pxe-0"}, &n); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, _, body := d.call("POST", "/v1/ports", map[string]any{"node_uuid": n.UUID, "address": mac}, nil); code != 201 {
		t.Fatalf("port: %d %s", code, body)
	}
	for _, step := range []struct{ target, state string }{{"manage", "manageable"}, {"inspect", "inspecting"}} {
		if code, _, body := d.call("PUT", "/v1/nodes/"+n.UUID+"/states/provision", map[string]any{"target": step.target}, nil); code != 202 {
			t.Fatalf("%s: %d %s", step.target, code, body)
		}
		d.waitNode(n.UUID, step.state, func(x apiNode) bool { return x.ProvisionState == step.state })
	}

	tftp := t.TempDir()
	code, _, chain := fetch(t, "http://"+bootAddr+"/boot/boot.ipxe")
	if code != 200 {
		t.Fatalf("chain script: %d %q", code, chain)
	}
	if err := os.WriteFile(filepath.Join(tftp, "boot.ipxe"), chain, 0o644); err != nil {
		t.Fatal(err)
	}
	serial := &syncBuffer{}
	vm := exec.Command(qemu, "-accel", "tcg", "-m", "1024", "-nographic", "-no-reboot", "-monitor", "none",
		"-serial", "stdio", "-netdev", "user,id=n0,tftp="+tftp+",bootfile=boot.ipxe",
		"-device", "virtio-net-pci,netdev=n0,mac="+mac+",bootindex=1")
	vm.Stdout, vm.Stderr = serial, serial
	if err := vm.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { vm.Wait(); close(exited) }()
	t.Cleanup(func() {
		vm.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("serial console:\n%s", serial.String())
		}
	})

	var v bootView
	deadline := time.Now().Add(4 * time.Minute)
	for {
		if code, _, body := d.call("GET", "/v1/nodes/"+n.UUID, nil, &v); code != 200 {
			t.Fatalf("GET node: %d %s", code, body)
		}
		if f := v.DriverInternalInfo.Ferrum; f != nil && f.Connected && f.ScriptFetchedAt != nil &&
			f.KernelFetchedAt != nil && f.InitrdFetchedAt != nil && f.EnrolledAt != nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("QEMU exited: %v; boot path %+v", vm.ProcessState, v.DriverInternalInfo.Ferrum)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the machine never booted the agent; boot path %+v", v.DriverInternalInfo.Ferrum)
		}
		time.Sleep(200 * time.Millisecond)
	}
	f := v.DriverInternalInfo.Ferrum
	if str(f.BootMAC) != mac || *f.KernelFetchedAt < *f.ScriptFetchedAt || *f.EnrolledAt < *f.InitrdFetchedAt {
		t.Errorf("boot path: MAC %q, script %s, kernel %s, initrd %s, enrolled %s", str(f.BootMAC),
			*f.ScriptFetchedAt, *f.KernelFetchedAt, *f.InitrdFetchedAt, *f.EnrolledAt)
	}
	if !strings.Contains(serial.String(), "ferrum.node="+n.UUID) {
		t.Error("the guest's kernel command line lacks ferrum.node")
	}
	d.stop(syscall.SIGTERM)
	if strings.Contains(d.logs.String(), "ferrum.token=") {
		t.Error("the controller logged a kernel command line with the token")
	}
}
