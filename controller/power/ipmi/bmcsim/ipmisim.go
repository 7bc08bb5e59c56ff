package bmcsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SimMode is how an ipmi_sim BMC handles the chassis.
type SimMode int

const (
	// Script: power and boot device live in files, set by a chassis_control script that
	// ipmi_sim forks per chassis command (5–50 ms each). Boot devices work.
	Script SimMode = iota
	// Fast: power is a dummy child process that ipmi_sim starts and stops itself; status is
	// answered in-process. Boot device commands fail (cc 0xcc).
	Fast
)

// SimOptions describe one ipmi_sim BMC.
type SimOptions struct {
	Dir            string // fresh directory for its files (required)
	Port           int    // UDP port on 127.0.0.1; 0 picks a free one
	User, Password string // admin / password
	Mode           SimMode
	PowerOn        bool // Script mode: start powered on
}

// Sim is one running ipmi_sim process.
type Sim struct {
	Host string
	Port int
	User string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	pass string
}

// emu is the emulator command file: one BMC at IPMB 0x20 with a SEL.
const emu = `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02
sel_enable 0x20 1000 0x0a
mc_enable 0x20
`

// chassisScript keeps power (0|1) and boot device in files beside itself.
const chassisScript = `#!/bin/sh
D=$(dirname "$0")
cmd=$1; shift
case $cmd in
get)
  for k in "$@"; do
    case $k in
      power) echo "power:$(cat "$D/power" 2>/dev/null || echo 0)";;
      boot)  echo "boot:$(cat "$D/boot" 2>/dev/null || echo none)";;
      *) exit 1;;
    esac
  done;;
set)
  while [ $# -ge 2 ]; do
    k=$1; v=$2; shift 2
    case $k in
      power) echo "$v" > "$D/power";;
      boot) echo "$v" > "$D/boot";;
      shutdown) echo 0 > "$D/power";;
      reset|identify) ;;
      *) exit 1;;
    esac
    echo "set $k $v" >> "$D/events"
  done;;
check) exit 0;;
*) exit 1;;
esac
`

// StartSim starts ipmi_sim on 127.0.0.1 and waits until it answers.
func StartSim(ctx context.Context, o SimOptions) (*Sim, error) {
	if o.Dir == "" {
		return nil, errors.New("bmcsim: SimOptions.Dir is required")
	}
	if o.User == "" {
		o.User = "admin"
	}
	if o.Password == "" {
		o.Password = "password"
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "state"), 0o700); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		port := o.Port
		if port == 0 {
			if port, err = freeUDPPort(); err != nil {
				return nil, err
			}
		}
		s, err := startSim(ctx, dir, port, o)
		if err == nil || o.Port != 0 || attempt == 2 {
			return s, err
		}
	}
}

func startSim(ctx context.Context, dir string, port int, o SimOptions) (*Sim, error) {
	var chassis string
	switch o.Mode {
	case Script:
		script := filepath.Join(dir, "chassis.sh")
		if err := os.WriteFile(script, []byte(chassisScript), 0o700); err != nil {
			return nil, err
		}
		power := "0\n"
		if o.PowerOn {
			power = "1\n"
		}
		if err := os.WriteFile(filepath.Join(dir, "power"), []byte(power), 0o600); err != nil {
			return nil, err
		}
		chassis = fmt.Sprintf("  chassis_control %q\n", script)
	case Fast:
		vm, err := freeTCPPort()
		if err != nil {
			return nil, err
		}
		chassis = fmt.Sprintf("  serial 15 127.0.0.1 %d codec VM\n  startcmd \"sleep 2147483647\"\n  poweroff_wait 1\n  kill_wait 1\n", vm)
	}
	conf := fmt.Sprintf(`name "bmc%d"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %d
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid "bmc-%05d-guid-xxxx"
  endlan
%s  user 2 true %q %q admin 10 none md2 md5 straight
`, port, port, port, chassis, o.User, o.Password)
	lan := filepath.Join(dir, "lan.conf")
	if err := os.WriteFile(lan, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	emuFile := filepath.Join(dir, "bmc.emu")
	if err := os.WriteFile(emuFile, []byte(emu), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "sim.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command("ipmi_sim", "-n", "-c", lan, "-f", emuFile, "-s", filepath.Join(dir, "state"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its dummy machine joins the group
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bmcsim: start ipmi_sim: %w", err)
	}
	s := &Sim{Host: "127.0.0.1", Port: port, User: o.User, pass: o.Password, dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	if err := s.waitReady(ctx, 5*time.Second); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// waitReady sends Get Channel Authentication Capabilities (IPMI 1.5 framing, no session)
// until ipmi_sim answers.
func (s *Sim) waitReady(ctx context.Context, within time.Duration) error {
	ping := []byte{0x06, 0x00, 0xff, 0x07, // RMCP, class IPMI
		0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x09, // session: auth none, seq 0, id 0, length 9
		0x20, 0x18, 0xc8, 0x81, 0x04, 0x38, 0x0e, 0x04, 0x31} // Get Channel Auth Caps, ch 0xe, admin
	conn, err := net.Dial("udp", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(within)
	buf := make([]byte, 512)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.dir, "sim.log"))
			return fmt.Errorf("bmcsim: ipmi_sim on port %d exited: %s", s.Port, bytes.TrimSpace(log))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		_, _ = conn.Write(ping)
		_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, err := conn.Read(buf); err == nil && n > 20 {
			return nil
		}
	}
	return fmt.Errorf("bmcsim: ipmi_sim on port %d not answering after %s", s.Port, within)
}

// Close kills ipmi_sim and its dummy machine (its process group) and waits.
func (s *Sim) Close() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	return nil
}

// Pid is ipmi_sim's process id (for CPU accounting).
func (s *Sim) Pid() int { return s.cmd.Process.Pid }

// PowerFile reads the Script-mode power state from its file (no IPMI involved).
func (s *Sim) PowerFile() (bool, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "power"))
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(b)) == "1", nil
}

// SetPowerBehindBack flips Script-mode power by writing its file, as a button press would.
func (s *Sim) SetPowerBehindBack(on bool) error {
	v := "0\n"
	if on {
		v = "1\n"
	}
	return os.WriteFile(filepath.Join(s.dir, "power"), []byte(v), 0o600)
}

// Ipmitool runs `ipmitool -I lanplus -C 3 -H host -p port -U user -E args…` with the
// password in IPMITOOL_PASSWORD, never in argv.
func (s *Sim) Ipmitool(ctx context.Context, args ...string) (string, error) {
	return Ipmitool(ctx, s.Host, s.Port, s.User, s.pass, args...)
}

// Ipmitool runs ipmitool over lanplus with cipher suite 3 (ipmi_sim needs -C 3) against any
// BMC, the password passed through the environment.
func Ipmitool(ctx context.Context, host string, port int, user, password string, args ...string) (string, error) {
	argv := append([]string{"-I", "lanplus", "-C", "3", "-H", host, "-p", strconv.Itoa(port), "-U", user, "-E"}, args...)
	cmd := exec.CommandContext(ctx, "ipmitool", argv...)
	cmd.Env = append(os.Environ(), "IPMITOOL_PASSWORD="+password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ipmitool %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
