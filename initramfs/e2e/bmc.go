package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// BMC is an ipmi_sim process whose chassis_control program drives a Machine.
type BMC struct {
	Host     string
	Port     int
	User     string
	Password string
	dir      string
	cmd      *exec.Cmd
	done     chan struct{}
}

const bmcEmu = `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02
sel_enable 0x20 1000 0x0a
mc_enable 0x20
`

// StartBMC starts ipmi_sim on 127.0.0.1 (a free UDP port) with m as its chassis and waits until
// it answers. Close stops it; the machine is m's to stop (ipmi_sim's exit leaves it running).
func StartBMC(ctx context.Context, dir string, m *Machine, password string) (*BMC, error) {
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		return nil, err
	}
	script := filepath.Join(dir, "chassis.sh")
	if err := os.WriteFile(script, []byte(m.ChassisScript()), 0o700); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freeUDPPort()
		if err != nil {
			return nil, err
		}
		b, err := startBMC(ctx, dir, script, port, password)
		if err == nil {
			return b, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startBMC(ctx context.Context, dir, script string, port int, password string) (*BMC, error) {
	conf := fmt.Sprintf(`name "e2e"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %d
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid "e2e-%05d-guid-xxxx"
  endlan
  chassis_control %q
  user 2 true "admin" %q admin 10 none md2 md5 straight
`, port, port, script, password)
	lan := filepath.Join(dir, "lan.conf")
	emu := filepath.Join(dir, "bmc.emu")
	if err := os.WriteFile(lan, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(emu, []byte(bmcEmu), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "ipmi_sim.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	// A fresh state directory per start: ipmi_sim persists users and LAN parameters there.
	state := filepath.Join(dir, "state")
	os.RemoveAll(state)
	os.MkdirAll(state, 0o700)
	cmd := exec.Command("ipmi_sim", "-n", "-c", lan, "-f", emu, "-s", state)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group (the chassis scripts it forks go with it); dies with this process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start ipmi_sim: %w", err)
	}
	b := &BMC{Host: "127.0.0.1", Port: port, User: "admin", Password: password, dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(b.done) }()
	if err := b.waitReady(ctx, 5*time.Second); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// waitReady sends Get Channel Authentication Capabilities (IPMI 1.5, no session) until
// ipmi_sim answers.
func (b *BMC) waitReady(ctx context.Context, within time.Duration) error {
	ping := []byte{0x06, 0x00, 0xff, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x09,
		0x20, 0x18, 0xc8, 0x81, 0x04, 0x38, 0x0e, 0x04, 0x31}
	conn, err := net.Dial("udp", net.JoinHostPort(b.Host, strconv.Itoa(b.Port)))
	if err != nil {
		return err
	}
	defer conn.Close()
	buf := make([]byte, 512)
	for deadline := time.Now().Add(within); time.Now().Before(deadline); {
		select {
		case <-b.done:
			log, _ := os.ReadFile(filepath.Join(b.dir, "ipmi_sim.log"))
			return fmt.Errorf("ipmi_sim on port %d exited: %s", b.Port, bytes.TrimSpace(log))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		conn.Write(ping)
		conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, err := conn.Read(buf); err == nil && n > 20 {
			return nil
		}
	}
	return fmt.Errorf("ipmi_sim on port %d not answering after %s", b.Port, within)
}

// Close stops ipmi_sim (its process group) and waits for it.
func (b *BMC) Close() error {
	select {
	case <-b.done:
		return nil
	default:
	}
	syscall.Kill(-b.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(3 * time.Second):
		syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.done
	}
	return nil
}

func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}
