// Package e2e runs Ferrum's whole provisioning lifecycle on virtual hardware: a QEMU machine
// behind an OpenIPMI ipmi_sim BMC, enrolled in a real ferrum-controller with driver ipmi, taken
// through manage → inspect → provide → deploy → active → undeploy → available through the API
// alone. The machine PXE-boots the agent ramdisk (initramfs/out) through the controller's boot
// server and boots the deployed test image from its disk afterwards.
//
// The BMC is ipmi_sim in "hybrid" mode: its chassis_control program (a bash script) forwards
// every chassis command over loopback TCP to a Machine in this process, which starts and stops
// QEMU as its own child and maps the IPMI boot device to QEMU's -boot order. Power goes only
// through IPMI: nothing but the BMC's commands starts or stops the machine.
//
// The test (FERRUM_E2E=1, `make e2e`) and `make demo` (cmd/demo) both call Run.
package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Line is one line of the machine's serial console.
type Line struct {
	At   time.Time
	Boot int // index into Boots: which power-on printed it
	Text string
}

// Boot is one power-on of the machine (one QEMU process).
type Boot struct {
	Start time.Time
	Order string // QEMU -boot order: n (network), c (disk), d (cdrom)
	End   time.Time
}

// Machine is the virtual machine behind the BMC. Its chassis commands arrive from ipmi_sim's
// chassis_control script; it owns the QEMU process of the current power-on and waits for it.
type Machine struct {
	Dir  string // disk, TFTP directory, console log
	Disk string // the raw disk file (kept across power cycles)
	MACs []string

	log     zerolog.Logger
	ln      net.Listener
	token   string
	logFile *os.File
	wg      sync.WaitGroup

	powerMu sync.Mutex // one power change at a time; Close takes it last
	closing bool

	mu      sync.Mutex
	command func(order string) *exec.Cmd // the process of one power-on (SetCommand)
	boot    string                       // ipmi_sim's boot device name: none, pxe, default, cdrom, bios
	proc    *exec.Cmd
	exited  chan struct{} // closed when proc has been waited for
	boots   []Boot
	console []Line
	events  []string
	changed chan struct{}
}

// NewMachine creates the machine's files (a sparse disk of diskSize bytes) and starts listening
// for chassis commands on loopback. tftpDir holds what QEMU's slirp serves over TFTP.
func NewMachine(dir string, diskSize int64, macs []string, tftpDir string, log zerolog.Logger) (*Machine, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	m := &Machine{Dir: dir, Disk: filepath.Join(dir, "disk0.raw"), MACs: macs, log: log, boot: "none",
		changed: make(chan struct{})}
	f, err := os.OpenFile(m.Disk, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	err = f.Truncate(diskSize)
	f.Close()
	if err != nil {
		return nil, err
	}
	if m.logFile, err = os.OpenFile(filepath.Join(dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return nil, err
	}
	m.command = func(order string) *exec.Cmd { return qemuCommand(m, tftpDir, order) }
	var tok [16]byte
	rand.Read(tok[:])
	m.token = hex.EncodeToString(tok[:])
	if m.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		m.logFile.Close()
		return nil, err
	}
	m.wg.Add(1)
	go func() { defer m.wg.Done(); m.serve() }()
	return m, nil
}

// SetCommand replaces what a power-on starts for a -boot order (default: QEMU); for tests.
func (m *Machine) SetCommand(f func(order string) *exec.Cmd) {
	m.mu.Lock()
	m.command = f
	m.mu.Unlock()
}

func qemuCommand(m *Machine, tftpDir, order string) *exec.Cmd {
	args := []string{"-accel", "tcg", "-cpu", "max", "-machine", "q35", "-m", "1024", "-smp", "2",
		"-nodefaults", "-display", "none", "-monitor", "none", "-serial", "stdio",
		"-device", "virtio-rng-pci",
		"-drive", "file=" + m.Disk + ",format=raw,if=none,id=d0",
		"-device", "virtio-blk-pci,drive=d0,serial=E2E-DISK-0",
		// The provisioning NIC: slirp is its DHCP and TFTP server (boot.ipxe chains to the
		// controller's boot server); its iPXE ROM is what PXE-boots.
		"-netdev", "user,id=n0,tftp=" + tftpDir + ",bootfile=boot.ipxe",
		"-device", "virtio-net-pci,netdev=n0,mac=" + m.MACs[0],
		"-boot", "order=" + order}
	// Further NICs on an unconnected hub: inspection sees them and creates their ports.
	for i, mac := range m.MACs[1:] {
		id := fmt.Sprintf("n%d", i+1)
		args = append(args, "-netdev", fmt.Sprintf("hubport,id=%s,hubid=%d", id, i+1),
			"-device", "virtio-net-pci,romfile=,netdev="+id+",mac="+mac)
	}
	return exec.Command("qemu-system-x86_64", args...)
}

// ChassisScript is the chassis_control program for ipmi_sim: it sends its arguments to the
// machine and prints the answer. ipmi_sim blocks until it exits, which is at once: starting
// QEMU is asynchronous on this side.
func (m *Machine) ChassisScript() string {
	port := m.ln.Addr().(*net.TCPAddr).Port
	return fmt.Sprintf(`#!/bin/bash
# ipmi_sim chassis_control for the Ferrum e2e machine (initramfs/e2e): forwards the command
# ("get power boot", "set power 1", "set boot pxe", …) to the machine's owner and prints its answer.
exec 3<>/dev/tcp/127.0.0.1/%d || exit 1
{ printf '%%s' '%s'; for a in "$@"; do printf '\t%%s' "$a"; done; printf '\n'; } >&3
rc=1
while IFS= read -r line <&3; do
  case $line in "exit "*) rc=${line#exit }; break;; *) printf '%%s\n' "$line";; esac
done
exit "$rc"
`, port, m.token)
}

func (m *Machine) serve() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		// ipmi_sim runs one chassis command at a time; so does this.
		c.SetDeadline(time.Now().Add(30 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil {
			args := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
			if args[0] != m.token {
				fmt.Fprint(c, "exit 1\n")
			} else {
				out, rc := m.Handle(args[1:])
				for _, l := range out {
					fmt.Fprintln(c, l)
				}
				fmt.Fprintf(c, "exit %d\n", rc)
			}
		}
		c.Close()
	}
}

// bootOrder maps ipmi_sim's boot device names to QEMU's -boot order.
var bootOrder = map[string]string{"pxe": "n", "default": "c", "cdrom": "d", "bios": "c", "none": "cn"}

// Handle answers one chassis_control command (ipmi_sim's argv after the program name): the
// lines to print and the exit status.
func (m *Machine) Handle(args []string) ([]string, int) {
	if len(args) == 0 {
		return nil, 1
	}
	switch args[0] {
	case "check":
		return nil, 0
	case "get":
		var out []string
		for _, k := range args[1:] {
			switch k {
			case "power":
				v := 0
				if m.PoweredOn() {
					v = 1
				}
				out = append(out, fmt.Sprintf("power:%d", v))
			case "boot":
				m.mu.Lock()
				out = append(out, "boot:"+m.boot)
				m.mu.Unlock()
			default:
				return out, 1
			}
		}
		return out, 0
	case "set":
		kv := args[1:]
		if len(kv)%2 != 0 {
			return nil, 1
		}
		for i := 0; i < len(kv); i += 2 {
			k, v := kv[i], kv[i+1]
			m.event("set " + k + " " + v)
			var err error
			switch k {
			case "power":
				if v == "1" {
					err = m.powerOn()
				} else {
					m.powerOff()
				}
			case "reset":
				m.powerOff()
				err = m.powerOn()
			case "shutdown": // no ACPI path: a soft power off is an off
				m.powerOff()
			case "boot":
				if _, ok := bootOrder[v]; !ok {
					return nil, 1
				}
				m.mu.Lock()
				m.boot = v
				m.mu.Unlock()
			case "identify":
			default:
				return nil, 1
			}
			if err != nil {
				m.log.Error().Err(err).Msg("e2e machine: power on failed")
				return nil, 1
			}
		}
		return nil, 0
	}
	return nil, 1
}

func (m *Machine) event(s string) {
	m.mu.Lock()
	m.events = append(m.events, time.Now().UTC().Format("15:04:05.000")+" "+s)
	m.notifyLocked()
	m.mu.Unlock()
	m.log.Debug().Str("command", s).Msg("e2e machine: chassis command")
}

func (m *Machine) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// PoweredOn says whether the machine's process runs.
func (m *Machine) PoweredOn() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.exited == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

func (m *Machine) powerOn() error {
	m.powerMu.Lock()
	defer m.powerMu.Unlock()
	if m.closing {
		return errors.New("the machine is being closed")
	}
	if m.PoweredOn() {
		return nil
	}
	m.mu.Lock()
	order, command := bootOrder[m.boot], m.command
	m.mu.Unlock()
	cmd := command(order)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	m.mu.Lock()
	m.proc, m.exited = cmd, exited
	m.boots = append(m.boots, Boot{Start: time.Now(), Order: order})
	n := len(m.boots) - 1
	fmt.Fprintf(m.logFile, "==== e2e: power on #%d, -boot order=%s, %s\n", n, order, time.Now().UTC().Format(time.RFC3339Nano))
	m.notifyLocked()
	m.mu.Unlock()
	m.log.Info().Int("boot", n).Str("order", order).Int("pid", cmd.Process.Pid).Msg("e2e machine: powered on")
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.readConsole(n, out)
		err := cmd.Wait()
		m.mu.Lock()
		m.boots[n].End = time.Now()
		fmt.Fprintf(m.logFile, "==== e2e: power off #%d (%v)\n", n, err)
		close(exited)
		m.notifyLocked()
		m.mu.Unlock()
	}()
	return nil
}

// readConsole collects the serial console until QEMU closes it.
func (m *Machine) readConsole(boot int, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		text := strings.TrimRight(sc.Text(), "\r")
		m.mu.Lock()
		now := time.Now()
		m.console = append(m.console, Line{At: now, Boot: boot, Text: text})
		fmt.Fprintf(m.logFile, "[%7.3f] %s\n", now.Sub(m.boots[boot].Start).Seconds(), text)
		m.notifyLocked()
		m.mu.Unlock()
	}
	io.Copy(io.Discard, r)
}

// powerOff stops QEMU (SIGTERM, SIGKILL after 5 s) and waits for it.
func (m *Machine) powerOff() {
	m.powerMu.Lock()
	defer m.powerMu.Unlock()
	m.powerOffLocked()
}

func (m *Machine) powerOffLocked() {
	m.mu.Lock()
	cmd, exited := m.proc, m.exited
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	m.log.Info().Msg("e2e machine: powered off")
}

// Boots returns every power-on so far.
func (m *Machine) Boots() []Boot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Boot(nil), m.boots...)
}

// Events returns the chassis commands received, with their times.
func (m *Machine) Events() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.events...)
}

// Console returns the console lines of boot (every boot when boot < 0).
func (m *Machine) Console(boot int) []Line {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Line
	for _, l := range m.console {
		if boot < 0 || l.Boot == boot {
			out = append(out, l)
		}
	}
	return out
}

// WaitConsole waits until a console line of a boot at or after fromBoot contains s.
func (m *Machine) WaitConsole(s string, fromBoot int, timeout time.Duration) (Line, error) {
	deadline := time.After(timeout)
	seen := 0
	for {
		m.mu.Lock()
		for ; seen < len(m.console); seen++ {
			if l := m.console[seen]; l.Boot >= fromBoot && strings.Contains(l.Text, s) {
				m.mu.Unlock()
				return l, nil
			}
		}
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return Line{}, fmt.Errorf("no console line with %q after %s", s, timeout)
		}
	}
}

// Close powers the machine off, stops listening and waits for everything it started.
func (m *Machine) Close() error {
	m.powerMu.Lock()
	m.closing = true
	m.powerOffLocked()
	m.powerMu.Unlock()
	m.ln.Close()
	m.wg.Wait()
	return errors.Join(m.logFile.Close())
}
