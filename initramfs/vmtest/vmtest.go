// Package vmtest boots the agent ramdisk built by `make initramfs` (initramfs/out) in a QEMU
// machine under TCG, with the disks, firmware (SeaBIOS or OVMF with a persistent variable
// store) and SMBIOS fields a test asks for, and gives the test the serial console, a script
// runner whose results come back on a second serial port, and QMP.
//
// Tests import it; nothing else may. The VM tests themselves run only with FERRUM_VMTEST=1
// (`make test` sets it; initramfs/vmtest/test-setup.sh installs QEMU and builds the image).
//
// How a test runs commands in the guest: Config.Script replaces /bin/uinit with a gosh script
// (through an extra archive the kernel unpacks after the image) that runs each Step, writes
// "@@FERRUM-STEP name rc", the step's stdout and "@@FERRUM-END name" to /dev/ttyS1 (a Unix
// socket on the host, so kernel messages never mix in), then "@@FERRUM-DONE", syncs and powers
// off. Without a Script the image boots as it would on a node: its uinit mounts efivarfs,
// starts DHCP and runs ferrum-agent.
package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bus is how a disk is attached.
type Bus string

// Buses. What the guest sees differs: virtio-blk has a serial but no model or WWN and is always
// rotational; scsi-hd has a WWN, vendor/product, rotation and its serial only in VPD page 0x80;
// NVMe has QEMU's fixed model and a wwid made from serial and model. SCSI disks are probed in
// parallel, so their sdX names vary between boots: find them by WWN.
const (
	Virtio Bus = "virtio" // virtio-blk-pci: /dev/vdX
	SCSI   Bus = "scsi"   // scsi-hd on one virtio-scsi-pci controller: /dev/sdX
	NVMe   Bus = "nvme"   // nvme controller with one namespace: /dev/nvmeNn1
)

// Disk is a virtual disk backed by a raw file.
type Disk struct {
	Size int64  // bytes; the file is created sparse when it does not exist
	File string // backing file; default DIR/diskN.raw
	Bus  Bus    // default Virtio
	// Serial is the disk's serial number (virtio, SCSI VPD page 0x80, NVMe).
	Serial string
	// SCSI only.
	WWN          uint64 // world wide name (naa.…); 0: none
	RotationRate int    // 1: solid state (rotational 0); N: rpm; 0: not reported (rotational 1)
	Vendor       string
	Product      string
}

// Config describes one machine. Starting it again with the same Dir keeps the disks and the
// UEFI variables, like a power cycle.
type Config struct {
	Dir       string // work directory: disks, variable store, sockets (required)
	Kernel    string // default: Artifacts
	Initrd    string // default: Artifacts
	MemoryMiB int    // default 512
	CPUs      int    // default 2
	Disks     []Disk
	// UEFI boots OVMF with a writable variable store (VarsFile, default DIR/OVMF_VARS.fd, made
	// from OVMF_VARS_4M.fd when missing).
	UEFI     bool
	VarsFile string
	SMBIOS   []string // -smbios values, e.g. "type=1,manufacturer=Acme,serial=S1"
	MAC      string   // the NIC's address; default 52:54:00:12:34:56
	NIC      string   // the NIC's QEMU model: virtio-net-pci (default), e1000, e1000e
	Cmdline  string   // appended to the kernel command line
	Files    []File   // extra files for the guest
	Script   []Step   // when set, uinit runs these instead of the agent, then powers off
	// Hold keeps the guest running after the script instead of powering off.
	Hold bool
	// Reboot lets a guest reboot (or a QMP system_reset) restart the machine, and a kernel
	// panic too; by default QEMU exits on reboot and a panic ends the run at once.
	Reboot bool
	// Log receives every console line (t.Log); nil discards them.
	Log func(line string)
}

// Line is one console line and when it arrived, counted from QEMU's start.
type Line struct {
	At   time.Duration
	Text string
}

// VM is a running QEMU process. Close stops it and waits for it.
type VM struct {
	cfg     Config
	cmd     *exec.Cmd
	started time.Time
	results net.Listener
	stderr  lockedBuffer
	stdin   io.WriteCloser

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever console, steps or exit change
	console  []Line
	partial  []byte
	runs     []*run // one per time the script ran (a reboot runs it again)
	exited   bool
	exitErr  error
	qmpMu    sync.Mutex
	qmp      *qmpConn
	wg       sync.WaitGroup
	waitDone chan struct{}
}

// Artifacts returns the kernel and initramfs `make initramfs` wrote: FERRUM_INITRAMFS_DIR, or
// initramfs/out of the repository the working directory is in.
func Artifacts() (kernel, initrd string, err error) {
	dir := os.Getenv("FERRUM_INITRAMFS_DIR")
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", "", fmt.Errorf("vmtest: %w", err)
		}
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				dir = filepath.Join(d, "initramfs", "out")
				break
			}
			if filepath.Dir(d) == d {
				return "", "", errors.New("vmtest: no go.mod above the working directory")
			}
		}
	}
	kernel, initrd = filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initramfs.cpio.gz")
	for _, f := range []string{kernel, initrd} {
		if _, err := os.Stat(f); err != nil {
			return "", "", fmt.Errorf("vmtest: %w (run `make initramfs`)", err)
		}
	}
	return kernel, initrd, nil
}

// OVMF firmware files (Debian's ovmf package).
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// Start launches QEMU. The process outlives ctx's deadline (only Close stops it); ctx bounds
// the set-up.
func Start(ctx context.Context, cfg Config) (*VM, error) {
	if cfg.Dir == "" {
		return nil, errors.New("vmtest: Config.Dir is required")
	}
	if cfg.Kernel == "" || cfg.Initrd == "" {
		k, i, err := Artifacts()
		if err != nil {
			return nil, err
		}
		if cfg.Kernel == "" {
			cfg.Kernel = k
		}
		if cfg.Initrd == "" {
			cfg.Initrd = i
		}
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = 512
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 2
	}
	if cfg.MAC == "" {
		cfg.MAC = "52:54:00:12:34:56"
	}
	if cfg.NIC == "" {
		cfg.NIC = "virtio-net-pci"
	}
	if cfg.Log == nil {
		cfg.Log = func(string) {}
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil, fmt.Errorf("vmtest: %w (apt-get install qemu-system-x86)", err)
	}
	initrd, err := composeInitrd(cfg)
	if err != nil {
		return nil, err
	}
	args, err := qemuArgs(&cfg, initrd)
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(cfg.Dir, "ttyS1.sock")
	os.Remove(sock)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "unix", sock)
	if err != nil {
		return nil, fmt.Errorf("vmtest: results socket: %w", err)
	}
	os.Remove(filepath.Join(cfg.Dir, "qmp.sock"))
	v := &VM{cfg: cfg, results: ln, changed: make(chan struct{}),
		waitDone: make(chan struct{})}
	v.cmd = exec.Command(qemu, args...)
	v.cmd.Stdout = lineWriter{v}
	v.cmd.Stderr = &v.stderr
	v.stdin, err = v.cmd.StdinPipe() // kept open: the console's input; closed by Wait
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("vmtest: %w", err)
	}
	v.started = time.Now()
	if err := v.cmd.Start(); err != nil {
		ln.Close()
		return nil, fmt.Errorf("vmtest: start qemu: %w", err)
	}
	v.wg.Add(2)
	readerDone := make(chan struct{})
	go func() {
		defer v.wg.Done()
		defer close(readerDone)
		v.readResults()
	}()
	go func() {
		defer v.wg.Done()
		err := v.cmd.Wait()
		v.results.Close() // unblocks Accept if QEMU never connected
		<-readerDone      // everything QEMU wrote to ttyS1 has been read (EOF)
		v.mu.Lock()
		v.exited, v.exitErr = true, err
		v.notifyLocked()
		v.mu.Unlock()
		close(v.waitDone)
	}()
	return v, nil
}

// Uptime is the time since QEMU was launched, the origin of Line.At.
func (v *VM) Uptime() time.Duration { return time.Since(v.started) }

// Args returns the QEMU command line (for logs).
func (v *VM) Args() []string { return v.cmd.Args }

func qemuArgs(cfg *Config, initrd string) ([]string, error) {
	cmdline := "console=ttyS0,115200 quiet panic=-1"
	if cfg.Cmdline != "" {
		cmdline += " " + cfg.Cmdline
	}
	a := []string{"-accel", "tcg", "-cpu", "max", "-machine", "q35", "-m", strconv.Itoa(cfg.MemoryMiB),
		"-smp", strconv.Itoa(cfg.CPUs), "-nodefaults", "-display", "none",
		"-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
		"-chardev", "socket,id=res,path=" + filepath.Join(cfg.Dir, "ttyS1.sock"), "-serial", "chardev:res",
		"-qmp", "unix:" + filepath.Join(cfg.Dir, "qmp.sock") + ",server=on,wait=off",
		"-device", "virtio-rng-pci",
		"-netdev", "user,id=n0", "-device", cfg.NIC + ",netdev=n0,romfile=,mac=" + cfg.MAC,
		"-kernel", cfg.Kernel, "-initrd", initrd}
	// The command line (it may hold an enrollment token) goes through a 0600 file, not argv.
	if strings.ContainsAny(cmdline, "\"\n") {
		return nil, errors.New("vmtest: Config.Cmdline must not contain quotes or newlines")
	}
	conf := filepath.Join(cfg.Dir, "qemu.cfg")
	if err := os.WriteFile(conf, []byte("[machine]\n  append = \""+cmdline+"\"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("vmtest: %w", err)
	}
	a = append(a, "-readconfig", conf)
	if !cfg.Reboot {
		a = append(a, "-no-reboot")
	}
	if cfg.UEFI {
		if cfg.VarsFile == "" {
			cfg.VarsFile = filepath.Join(cfg.Dir, "OVMF_VARS.fd")
		}
		if _, err := os.Stat(cfg.VarsFile); errors.Is(err, os.ErrNotExist) {
			b, err := os.ReadFile(OVMFVars)
			if err != nil {
				return nil, fmt.Errorf("vmtest: %w (apt-get install ovmf)", err)
			}
			if err := os.WriteFile(cfg.VarsFile, b, 0o644); err != nil {
				return nil, fmt.Errorf("vmtest: %w", err)
			}
		}
		a = append(a, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+cfg.VarsFile)
	}
	for _, s := range cfg.SMBIOS {
		a = append(a, "-smbios", s)
	}
	scsi := false
	for i := range cfg.Disks {
		d := &cfg.Disks[i]
		if d.File == "" {
			d.File = filepath.Join(cfg.Dir, fmt.Sprintf("disk%d.raw", i))
		}
		if _, err := os.Stat(d.File); errors.Is(err, os.ErrNotExist) {
			if d.Size <= 0 {
				return nil, fmt.Errorf("vmtest: disk %d: no size", i)
			}
			f, err := os.Create(d.File)
			if err == nil {
				err = f.Truncate(d.Size)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				return nil, fmt.Errorf("vmtest: disk %d: %w", i, err)
			}
		}
		id := fmt.Sprintf("d%d", i)
		a = append(a, "-drive", "file="+d.File+",format=raw,if=none,id="+id)
		dev := ""
		switch d.Bus {
		case Virtio, "":
			dev = "virtio-blk-pci,drive=" + id
		case SCSI:
			if !scsi {
				a = append(a, "-device", "virtio-scsi-pci,id=scsi0")
				scsi = true
			}
			dev = "scsi-hd,bus=scsi0.0,drive=" + id
			if d.WWN != 0 {
				dev += fmt.Sprintf(",wwn=0x%016x", d.WWN)
			}
			if d.RotationRate != 0 {
				dev += ",rotation_rate=" + strconv.Itoa(d.RotationRate)
			}
			if d.Vendor != "" {
				dev += ",vendor=" + d.Vendor
			}
			if d.Product != "" {
				dev += ",product=" + d.Product
			}
		case NVMe:
			dev = fmt.Sprintf("nvme,id=nvme%d,drive=%s", i, id)
		default:
			return nil, fmt.Errorf("vmtest: disk %d: unknown bus %q", i, d.Bus)
		}
		if d.Serial != "" {
			dev += ",serial=" + d.Serial
		}
		a = append(a, "-device", dev)
	}
	return a, nil
}

// composeInitrd returns the image, or the image followed by an archive with cfg.Files and the
// script, written to DIR.
func composeInitrd(cfg Config) (string, error) {
	files := cfg.Files
	if cfg.Script != nil {
		s, err := script(cfg.Script, cfg.Hold)
		if err != nil {
			return "", err
		}
		files = append(files[:len(files):len(files)], File{Path: "/bin/uinit", Data: []byte(s), Mode: 0o755})
	}
	if len(files) == 0 {
		return cfg.Initrd, nil
	}
	base, err := os.ReadFile(cfg.Initrd)
	if err != nil {
		return "", fmt.Errorf("vmtest: %w", err)
	}
	var buf bytes.Buffer
	buf.Write(base)
	buf.Write(make([]byte, (512-len(base)%512)%512)) // the kernel skips zeros between archives
	if err := writeCPIO(&buf, files); err != nil {
		return "", err
	}
	out := filepath.Join(cfg.Dir, "initrd")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("vmtest: %w", err)
	}
	return out, nil
}

// notifyLocked wakes the waiters; v.mu is held.
func (v *VM) notifyLocked() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// lineWriter receives QEMU's stdout: the guest's console.
type lineWriter struct{ v *VM }

func (w lineWriter) Write(p []byte) (int, error) {
	v := w.v
	at := time.Since(v.started)
	v.mu.Lock()
	v.partial = append(v.partial, p...)
	var lines []string
	for {
		i := bytes.IndexByte(v.partial, '\n')
		if i < 0 {
			break
		}
		s := strings.TrimRight(string(v.partial[:i]), "\r")
		v.partial = v.partial[i+1:]
		v.console = append(v.console, Line{At: at, Text: s})
		lines = append(lines, s)
	}
	if len(lines) > 0 {
		v.notifyLocked()
	}
	v.mu.Unlock()
	for _, s := range lines {
		v.cfg.Log(fmt.Sprintf("%7.3fs %s", at.Seconds(), s))
	}
	return len(p), nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Console returns the console lines so far.
func (v *VM) Console() []Line {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]Line(nil), v.console...)
}

// WaitConsole waits for a console line containing substr.
func (v *VM) WaitConsole(ctx context.Context, substr string) (Line, error) {
	seen := 0
	for {
		v.mu.Lock()
		for ; seen < len(v.console); seen++ {
			if strings.Contains(v.console[seen].Text, substr) {
				l := v.console[seen]
				v.mu.Unlock()
				return l, nil
			}
		}
		exited, ch := v.exited, v.changed
		v.mu.Unlock()
		if exited {
			return Line{}, fmt.Errorf("vmtest: QEMU exited before %q on the console: %w", substr, v.exitError())
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return Line{}, fmt.Errorf("vmtest: waiting for %q on the console: %w", substr, ctx.Err())
		}
	}
}

// Wait waits for QEMU to exit (the guest powered off) and returns its error, if any.
func (v *VM) Wait(ctx context.Context) error {
	select {
	case <-v.waitDone:
		return v.exitError()
	case <-ctx.Done():
		return fmt.Errorf("vmtest: waiting for QEMU to exit: %w", ctx.Err())
	}
}

func (v *VM) exitError() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.exitErr == nil {
		return nil
	}
	return fmt.Errorf("%w: %s", v.exitErr, strings.TrimSpace(v.stderr.String()))
}

// Close stops QEMU (QMP quit, then SIGKILL) and waits for it and for its readers.
func (v *VM) Close() error {
	select {
	case <-v.waitDone:
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := v.QMP(ctx, "quit", nil)
		if err == nil {
			select {
			case <-v.waitDone:
			case <-ctx.Done():
			}
		}
		cancel()
		select {
		case <-v.waitDone:
		default:
			_ = v.cmd.Process.Kill()
		}
	}
	<-v.waitDone
	v.qmpMu.Lock()
	if v.qmp != nil {
		v.qmp.close()
		v.qmp = nil
	}
	v.qmpMu.Unlock()
	v.wg.Wait()
	return nil
}

// run is one execution of the script.
type run struct {
	steps map[string]StepResult
	done  bool // @@FERRUM-DONE seen
}

// readResults reads the second serial port: step markers and outputs.
func (v *VM) readResults() {
	conn, err := v.results.Accept()
	if err != nil {
		return
	}
	defer conn.Close() // read to EOF: QEMU closes its end when it exits
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var cur string
	var pending StepResult
	var out strings.Builder
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		// A marker may follow output without a final newline, or noise after a reset.
		if i := strings.Index(line, "@@FERRUM-"); i > 0 {
			if cur != "" {
				out.WriteString(line[:i])
			}
			line = line[i:]
		}
		v.mu.Lock()
		if len(v.runs) == 0 || line == "@@FERRUM-START" {
			v.runs = append(v.runs, &run{steps: map[string]StepResult{}})
		}
		r := v.runs[len(v.runs)-1]
		v.mu.Unlock()
		switch {
		case strings.HasPrefix(line, "@@FERRUM-STEP "):
			f := strings.Fields(line)
			if len(f) == 3 {
				cur = f[1]
				out.Reset()
				rc, _ := strconv.Atoi(f[2])
				pending = StepResult{Name: cur, RC: rc, At: time.Since(v.started)}
			}
		case strings.HasPrefix(line, "@@FERRUM-END "):
			v.mu.Lock()
			pending.Output = out.String()
			r.steps[cur] = pending
			v.notifyLocked()
			v.mu.Unlock()
			cur = ""
		case line == "@@FERRUM-DONE":
			v.mu.Lock()
			r.done = true
			v.notifyLocked()
			v.mu.Unlock()
		case cur != "":
			out.WriteString(line)
			out.WriteByte('\n')
		}
	}
}

// QMP sends one QMP command and returns its "return" value.
func (v *VM) QMP(ctx context.Context, command string, args any) ([]byte, error) {
	v.qmpMu.Lock()
	defer v.qmpMu.Unlock()
	if v.qmp == nil {
		c, err := dialQMP(ctx, filepath.Join(v.cfg.Dir, "qmp.sock"), v.waitDone)
		if err != nil {
			return nil, err
		}
		v.qmp = c
	}
	return v.qmp.do(ctx, command, args)
}

// Stdin is the console's input (gosh reads it when no script runs).
func (v *VM) Stdin() io.Writer { return v.stdin }
