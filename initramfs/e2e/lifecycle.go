package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ferrumhq/ferrum/controller/power/ipmi/bmcsim"
	"github.com/rs/zerolog"
)

// Options configure Run.
type Options struct {
	Repo      string // repository root (default: the go.mod above the working directory)
	Work      string // work directory (required): binaries, image, disk, logs
	ImageSize int64  // bytes of the deployed disk image (default 1 GiB)
	// Format of the image as served: qcow2 (default; only the allocated clusters travel,
	// as with a Glance image) or raw (every byte over slirp, ≈ 11 MB/s under TCG).
	Format   string
	DiskSize int64 // the machine's disk (default ImageSize + 4 GiB)
	// PhaseTimeout bounds each provisioning step (default 4 min).
	PhaseTimeout time.Duration
	Log          zerolog.Logger
	// Report receives readable progress lines (nil: none).
	Report func(msg string)
}

// Result holds what Run measured.
type Result struct {
	NodeUUID string
	// BootToConnected: QEMU start to the agent's "connected" console line, per agent boot
	// (inspect, provide's cleaning, deploy, undeploy's cleaning), PXE under TCG.
	BootToConnected []time.Duration
	// FirstBoot: milestones of the first PXE boot, from QEMU start.
	FirstBoot []Milestone
	// PowerOnToActive: the deploy's power-on (QEMU start) to provision state active.
	PowerOnToActive time.Duration
	// DeployRequestToActive: the deploy API call to active.
	DeployRequestToActive time.Duration
	// WriteImage: the agent's write_image (download, checksum, write) as it reported it.
	WriteImage time.Duration
	// ActiveToMarker: the reboot into the instance (QEMU start) to the image's marker line.
	RebootToMarker time.Duration
	// Phases: each API verb to its end state.
	Phases []Phase
	// Lifecycle: node create to available after undeploy.
	Lifecycle time.Duration
	ImageSize int64
	Format    string
	Marker    string
}

// Milestone is when a console line first appeared during a boot.
type Milestone struct {
	What string
	At   time.Duration
}

// milestones are the console lines of an agent boot worth timing.
var milestones = []struct{ what, substr string }{
	{"u-root init", "Welcome to u-root"},
	{"agent started", "ferrum-agent starting"},
	{"DHCP lease", "Configured eth0"},
	{"agent connected", `"message":"connected"`},
}

// Phase is one step of the lifecycle.
type Phase struct {
	Name string
	Took time.Duration
}

// Env is everything Run starts; Close stops it all and waits.
type env struct {
	opts       Options
	controller *exec.Cmd
	ctlDone    chan struct{}
	api        string
	imgSrv     *http.Server
	imgDone    chan struct{}
	machine    *Machine
	bmc        *BMC
}

const bmcPassword = "e2e-bmc-secret"

// MACs of the machine's NICs: the first PXE-boots, the second is only seen by inspection.
var MACs = []string{"52:54:00:e2:e0:01", "52:54:00:e2:e0:02"}

// Tools are the programs Run needs.
var Tools = []string{"qemu-system-x86_64", "qemu-img", "ipmi_sim", "ipmitool", "mkfs.fat", "mcopy", "syslinux", "go"}

// Check returns an error naming every missing tool or file Run needs.
func Check(repo string) error {
	var errs []error
	for _, t := range Tools {
		if _, err := exec.LookPath(t); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := os.Stat(MBRBin); err != nil {
		errs = append(errs, err)
	}
	for _, f := range []string{"vmlinuz", "initramfs.cpio.gz", "kver"} {
		if _, err := os.Stat(filepath.Join(outDir(repo), f)); err != nil {
			errs = append(errs, fmt.Errorf("%w (make initramfs)", err))
		}
	}
	return errors.Join(errs...)
}

func outDir(repo string) string {
	if d := os.Getenv("FERRUM_INITRAMFS_DIR"); d != "" {
		return d
	}
	return filepath.Join(repo, "initramfs", "out")
}

// RepoRoot finds the go.mod above the working directory.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no go.mod above the working directory")
		}
	}
}

// Run builds the controller and the test image, starts the controller, the BMC and the machine,
// and drives the node through its whole lifecycle through the API. Everything it started is
// stopped before it returns.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	if o.Work == "" {
		return nil, errors.New("e2e: Options.Work is required")
	}
	if o.Repo == "" {
		if o.Repo, err = RepoRoot(); err != nil {
			return nil, err
		}
	}
	if o.ImageSize == 0 {
		o.ImageSize = 1 << 30
	}
	if o.DiskSize == 0 {
		o.DiskSize = o.ImageSize + 4<<30 // sparse; the agent wants a root disk of 4 GiB or more
	}
	if o.Format == "" {
		o.Format = "qcow2"
	}
	if o.Format != "raw" && o.Format != "qcow2" {
		return nil, fmt.Errorf("e2e: image format %q: want raw or qcow2", o.Format)
	}
	if o.PhaseTimeout == 0 {
		o.PhaseTimeout = 4 * time.Minute
	}
	if o.Report == nil {
		o.Report = func(string) {}
	}
	if err := Check(o.Repo); err != nil {
		return nil, fmt.Errorf("e2e: missing tools (initramfs/e2e/test-setup.sh installs them): %w", err)
	}
	e := &env{opts: o}
	defer func() {
		if cerr := e.close(); err == nil {
			err = cerr
		}
	}()
	return e.run(ctx)
}

func (e *env) report(format string, args ...any) {
	e.opts.Report(fmt.Sprintf(format, args...))
}

func (e *env) run(ctx context.Context) (*Result, error) {
	o := e.opts
	out := outDir(o.Repo)
	kernel, initrd := filepath.Join(out, "vmlinuz"), filepath.Join(out, "initramfs.cpio.gz")

	e.report("building ferrum-controller and the %d MiB test image", o.ImageSize>>20)
	bin := filepath.Join(o.Work, "bin")
	os.MkdirAll(bin, 0o755)
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bin, "ferrum-controller"), "./controller/cmd/ferrum-controller")
	build.Dir = o.Repo
	if b, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ferrum-controller: %w: %s", err, b)
	}
	imgDir := filepath.Join(o.Work, "image")
	os.MkdirAll(imgDir, 0o755)
	img, sum, err := BuildImage(o.Repo, imgDir, kernel, o.ImageSize)
	if err != nil {
		return nil, fmt.Errorf("test image: %w", err)
	}
	if o.Format == "qcow2" {
		if img, sum, err = toQcow2(ctx, img); err != nil {
			return nil, err
		}
	}
	imgURL, err := e.serveImage(img)
	if err != nil {
		return nil, err
	}

	ports := freePorts(3)
	e.api = "127.0.0.1:" + ports[0]
	if err := e.startController(bin, kernel, initrd, ports[1], ports[2]); err != nil {
		return nil, err
	}
	tftp := filepath.Join(o.Work, "tftp")
	os.MkdirAll(tftp, 0o755)
	chain, err := httpGet("http://127.0.0.1:" + ports[2] + "/boot/boot.ipxe")
	if err != nil {
		return nil, fmt.Errorf("chain script: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tftp, "boot.ipxe"), chain, 0o644); err != nil {
		return nil, err
	}
	if e.machine, err = NewMachine(filepath.Join(o.Work, "machine"), o.DiskSize, MACs, tftp, o.Log); err != nil {
		return nil, err
	}
	if e.bmc, err = StartBMC(ctx, filepath.Join(o.Work, "bmc"), e.machine, bmcPassword); err != nil {
		return nil, err
	}
	e.report("controller API on %s, BMC (ipmi_sim) on udp %s:%d, machine disk %s (%d MiB)",
		e.api, e.bmc.Host, e.bmc.Port, e.machine.Disk, o.DiskSize>>20)
	return e.lifecycle(ctx, imgURL, sum)
}

func (e *env) lifecycle(ctx context.Context, imgURL, sum string) (*Result, error) {
	res := &Result{ImageSize: e.opts.ImageSize, Format: e.opts.Format}
	begin := time.Now()
	var n struct {
		UUID string `json:"uuid"`
	}
	if err := e.call("POST", "/v1/nodes", map[string]any{"name": "e2e-0", "driver": "ipmi",
		"deploy_interface": "direct", "inspect_interface": "agent",
		"driver_info": map[string]any{"ipmi_address": e.bmc.Host, "ipmi_port": e.bmc.Port,
			"ipmi_username": e.bmc.User, "ipmi_password": bmcPassword, "ipmi_cipher_suite": 3}}, &n, 201); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	res.NodeUUID = n.UUID
	e.report("enrolled node %s (driver ipmi); port %s for PXE", n.UUID, MACs[0])
	if err := e.call("POST", "/v1/ports", map[string]any{"node_uuid": n.UUID, "address": MACs[0], "pxe_enabled": true}, nil, 201); err != nil {
		return nil, fmt.Errorf("port: %w", err)
	}

	phase := func(verb, want string, extra map[string]any) (time.Duration, error) {
		start := time.Now()
		boots := len(e.machine.Boots())
		body := map[string]any{"target": verb}
		for k, v := range extra {
			body[k] = v
		}
		e.report("%s …", verb)
		if err := e.call("PUT", "/v1/nodes/"+n.UUID+"/states/provision", body, nil, 202); err != nil {
			return 0, fmt.Errorf("%s: %w", verb, err)
		}
		if err := e.waitState(ctx, n.UUID, want, boots, res); err != nil {
			return 0, fmt.Errorf("%s: %w", verb, err)
		}
		took := time.Since(start)
		res.Phases = append(res.Phases, Phase{Name: verb, Took: took})
		e.report("%s → %s in %.1fs", verb, want, took.Seconds())
		return took, nil
	}

	if _, err := phase("manage", "manageable", nil); err != nil {
		return nil, err
	}
	if _, err := phase("inspect", "manageable", nil); err != nil {
		return nil, err
	}
	if err := e.checkInspection(n.UUID); err != nil {
		return nil, err
	}
	if b := e.machine.Boots(); len(b) > 0 {
		lines := e.machine.Console(0)
		for _, ms := range milestones {
			for _, l := range lines {
				if strings.Contains(l.Text, ms.substr) {
					res.FirstBoot = append(res.FirstBoot, Milestone{What: ms.what, At: l.At.Sub(b[0].Start)})
					break
				}
			}
		}
	}
	if _, err := phase("provide", "available", nil); err != nil {
		return nil, err
	}

	patch := []map[string]any{
		{"op": "add", "path": "/instance_info/image_source", "value": imgURL},
		{"op": "add", "path": "/instance_info/image_disk_format", "value": e.opts.Format},
		{"op": "add", "path": "/instance_info/image_os_hash_algo", "value": "sha256"},
		{"op": "add", "path": "/instance_info/image_os_hash_value", "value": sum},
	}
	if err := e.call("PATCH", "/v1/nodes/"+n.UUID, patch, nil, 200); err != nil {
		return nil, fmt.Errorf("instance_info: %w", err)
	}
	bootsBefore := len(e.machine.Boots())
	deployStart := time.Now()
	took, err := phase("active", "active", map[string]any{"configdrive": map[string]any{
		"meta_data": map[string]any{"hostname": "e2e-deployed"}, "user_data": "#cloud-config\n"}})
	if err != nil {
		return nil, err
	}
	res.DeployRequestToActive = took
	// The reboot into the instance is a power cycle: ipmi_sim powers on again 1 s after off.
	boots := e.machine.Boots()
	for deadline := time.Now().Add(15 * time.Second); len(boots) < bootsBefore+2 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		boots = e.machine.Boots()
	}
	if len(boots) < bootsBefore+2 {
		return nil, fmt.Errorf("deploy: %d power-ons, want the agent's and the instance's: %+v", len(boots)-bootsBefore, boots[bootsBefore:])
	}
	activeAt := deployStart.Add(took)
	res.PowerOnToActive = activeAt.Sub(boots[bootsBefore].Start)
	var view struct {
		DII map[string]any `json:"driver_internal_info"`
	}
	if err := e.call("GET", "/v1/nodes/"+n.UUID, nil, &view, 200); err == nil {
		if p, ok := view.DII["deploy_progress"].(map[string]any); ok {
			if ms, ok := p["duration_ms"].(float64); ok {
				res.WriteImage = time.Duration(ms) * time.Millisecond
			}
		}
	}
	e.report("active: power-on → active %.1fs (image write %.1fs)", res.PowerOnToActive.Seconds(), res.WriteImage.Seconds())

	// The instance: the last power-on must boot from the disk and print the marker with the
	// node's UUID, read from the config drive.
	last := len(e.machine.Boots()) - 1
	if b := e.machine.Boots()[last]; b.Order != "c" {
		return nil, fmt.Errorf("the instance was powered on with -boot order=%s, want c (disk)", b.Order)
	}
	want := "FERRUM-E2E-DEPLOYED uuid=" + n.UUID
	l, err := e.machine.WaitConsole("FERRUM-E2E-", last, 3*time.Minute)
	if err != nil {
		return nil, fmt.Errorf("the deployed image: %w", err)
	}
	if !strings.Contains(l.Text, want) {
		return nil, fmt.Errorf("the deployed image printed %q, want %q", l.Text, want)
	}
	res.Marker = strings.TrimSpace(l.Text)
	res.RebootToMarker = l.At.Sub(e.machine.Boots()[last].Start)
	e.report("the machine booted its disk: %q %.1fs after power-on", res.Marker, res.RebootToMarker.Seconds())
	if out, err := bmcsim.Ipmitool(ctx, e.bmc.Host, e.bmc.Port, e.bmc.User, bmcPassword, "chassis", "bootparam", "get", "5"); err != nil || !strings.Contains(out, "Hard-Drive") {
		return nil, fmt.Errorf("BMC boot device while active: %v\n%s", err, out)
	}

	if _, err := phase("deleted", "available", nil); err != nil {
		return nil, err
	}
	res.Lifecycle = time.Since(begin)
	// Cleaning erased the metadata: the disk no longer has a partition table.
	f, err := os.Open(e.machine.Disk)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	mbr := make([]byte, 512)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return nil, err
	}
	if mbr[510] == 0x55 && mbr[511] == 0xaa {
		return nil, errors.New("after undeploy's cleaning the disk still has an MBR")
	}
	if e.machine.PoweredOn() {
		return nil, errors.New("the machine is still powered on after cleaning")
	}
	e.report("available again; whole lifecycle %.1fs", res.Lifecycle.Seconds())
	return res, nil
}

// checkInspection verifies the inventory and the ports inspection created.
func (e *env) checkInspection(uuid string) error {
	var node struct {
		Properties map[string]any `json:"properties"`
	}
	if err := e.call("GET", "/v1/nodes/"+uuid, nil, &node, 200); err != nil {
		return err
	}
	for _, k := range []string{"cpus", "memory_mb", "local_gb", "cpu_arch"} {
		if node.Properties[k] == nil {
			return fmt.Errorf("inspection set no %s: %v", k, node.Properties)
		}
	}
	var inv struct {
		Inventory struct {
			Disks []struct {
				Name   string `json:"name"`
				Serial string `json:"serial"`
			} `json:"disks"`
		} `json:"inventory"`
	}
	if err := e.callAt("1.81", "GET", "/v1/nodes/"+uuid+"/inventory", nil, &inv, 200); err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	found := false
	for _, d := range inv.Inventory.Disks {
		found = found || d.Serial == "E2E-DISK-0"
	}
	if !found {
		return fmt.Errorf("the inventory lacks the machine's disk: %+v", inv.Inventory.Disks)
	}
	var ports struct {
		Ports []struct {
			Address string `json:"address"`
		} `json:"ports"`
	}
	if err := e.call("GET", "/v1/ports?node_uuid="+uuid, nil, &ports, 200); err != nil {
		return err
	}
	have := map[string]bool{}
	for _, p := range ports.Ports {
		have[p.Address] = true
	}
	for _, m := range MACs {
		if !have[m] {
			return fmt.Errorf("no port %s after inspection: %+v", m, ports.Ports)
		}
	}
	e.report("inspected: cpus %v, memory_mb %v, local_gb %v; ports %v", node.Properties["cpus"],
		node.Properties["memory_mb"], node.Properties["local_gb"], MACs)
	return nil
}

type nodeView struct {
	ProvisionState string  `json:"provision_state"`
	Target         *string `json:"target_provision_state"`
	PowerState     *string `json:"power_state"`
	LastError      *string `json:"last_error"`
	Reservation    *string `json:"reservation"`
	CleanStep      map[string]any
	DeployStep     map[string]any
	DII            struct {
		Progress *struct {
			Percent     float64 `json:"percent"`
			BytesPerSec float64 `json:"bytes_per_sec"`
		} `json:"deploy_progress"`
	} `json:"driver_internal_info"`
}

// waitState polls the node until it rests in want (no reservation, no target), reporting each
// change, and records how long each agent boot after power-on bootsBefore took to connect.
func (e *env) waitState(ctx context.Context, uuid, want string, bootsBefore int, res *Result) error {
	deadline := time.Now().Add(e.opts.PhaseTimeout)
	var last, lastStep string
	connectedBoot, fifth := -1, 0
	for {
		var raw map[string]json.RawMessage
		var v nodeView
		if err := e.call("GET", "/v1/nodes/"+uuid, nil, &raw, 200); err != nil {
			return err
		}
		b, _ := json.Marshal(raw)
		json.Unmarshal(b, &v)
		json.Unmarshal(raw["clean_step"], &v.CleanStep)
		json.Unmarshal(raw["deploy_step"], &v.DeployStep)
		// The agent's "connected" line on the console of a PXE boot since the phase began,
		// timed on arrival (the API's connected_at has whole seconds).
		if boots := e.machine.Boots(); len(boots) > bootsBefore {
			if cur := len(boots) - 1; cur != connectedBoot && boots[cur].Order == "n" {
				for _, l := range e.machine.Console(cur) {
					if strings.Contains(l.Text, `"service":"ferrum-agent"`) && strings.Contains(l.Text, `"message":"connected"`) {
						connectedBoot = cur
						d := l.At.Sub(boots[cur].Start)
						res.BootToConnected = append(res.BootToConnected, d)
						e.report("  agent connected %.1fs after power-on (PXE boot #%d)", d.Seconds(), cur)
						break
					}
				}
			}
		}
		state := v.ProvisionState
		if v.Target != nil && *v.Target != "" {
			state += " → " + *v.Target
		}
		if v.PowerState != nil {
			state += ", " + *v.PowerState
		}
		if state != last {
			e.report("  %s", state)
			last = state
		}
		step := ""
		if s, _ := v.CleanStep["step"].(string); s != "" {
			step = "clean step " + s
		}
		if s, _ := v.DeployStep["step"].(string); s != "" {
			step = "deploy step " + s
		}
		if step != "" && step != lastStep {
			e.report("  %s", step)
			lastStep = step
		}
		if p := v.DII.Progress; p != nil && strings.HasSuffix(step, "write_image") && p.Percent < 100 && int(p.Percent/20) > fifth {
			fifth = int(p.Percent / 20)
			e.report("    image %.0f%% at %.1f MiB/s", p.Percent, p.BytesPerSec/(1<<20))
		}
		if v.ProvisionState == want && v.Reservation == nil && (v.Target == nil || *v.Target == "") {
			return nil
		}
		if strings.HasSuffix(v.ProvisionState, "failed") && v.Reservation == nil {
			le := ""
			if v.LastError != nil {
				le = *v.LastError
			}
			return fmt.Errorf("node went to %s: %s", v.ProvisionState, le)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node still %s after %s, want %s", state, e.opts.PhaseTimeout, want)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (e *env) startController(bin, kernel, initrd, agentPort, bootPort string) error {
	data := filepath.Join(e.opts.Work, "controller")
	os.MkdirAll(data, 0o700)
	logf, err := os.Create(filepath.Join(e.opts.Work, "controller.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	// In the guest, 10.0.2.2 is this host's loopback (slirp).
	cmd := exec.Command(filepath.Join(bin, "ferrum-controller"), "--api-addr", e.api, "--data-dir", data,
		"--hostname", "e2e", "--log-format", "json",
		"--agent-addr", "127.0.0.1:"+agentPort, "--agent-advertise-addr", "10.0.2.2:"+agentPort,
		"--boot-addr", "127.0.0.1:"+bootPort, "--boot-advertise-addr", "10.0.2.2:"+bootPort,
		"--boot-kernel", kernel, "--boot-initramfs", initrd, "--boot-kernel-args", "console=ttyS0,115200 quiet",
		// Cleaning under TCG: erase the disk's metadata (first and last MiB, partition tables),
		// skip the full erase of every block.
		"--erase-devices-metadata-priority", "99", "--erase-devices-priority", "0",
		"--shutdown-timeout", "5s")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ferrum-controller: %w", err)
	}
	e.controller, e.ctlDone = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(e.ctlDone) }()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := httpGet("http://" + e.api + "/"); err == nil {
			return nil
		}
		select {
		case <-e.ctlDone:
			return fmt.Errorf("ferrum-controller exited: %v (see %s)", cmd.ProcessState, logf.Name())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ferrum-controller API not answering on %s", e.api)
		}
	}
}

func (e *env) serveImage(path string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/image", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) })
	e.imgSrv, e.imgDone = &http.Server{Handler: mux}, make(chan struct{})
	go func() { e.imgSrv.Serve(ln); close(e.imgDone) }()
	return fmt.Sprintf("http://10.0.2.2:%d/image", ln.Addr().(*net.TCPAddr).Port), nil
}

func (e *env) close() error {
	var errs []error
	if e.machine != nil {
		errs = append(errs, e.machine.Close())
	}
	if e.bmc != nil {
		errs = append(errs, e.bmc.Close())
	}
	if e.controller != nil {
		e.controller.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.ctlDone:
		case <-time.After(30 * time.Second):
			e.controller.Process.Kill()
			<-e.ctlDone
			errs = append(errs, errors.New("ferrum-controller did not stop on SIGTERM"))
		}
	}
	if e.imgSrv != nil {
		e.imgSrv.Close()
		<-e.imgDone
	}
	return errors.Join(errs...)
}

func (e *env) call(method, path string, body, out any, want int) error {
	return e.callAt("1.78", method, path, body, out, want)
}

func (e *env) callAt(version, method, path string, body, out any, want int) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+e.api+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("X-OpenStack-Ironic-API-Version", version)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func httpGet(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, err
}

// freePorts returns n distinct free TCP ports on loopback.
func freePorts(n int) []string {
	var out []string
	var lns []net.Listener
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			continue
		}
		lns = append(lns, ln)
		_, p, _ := net.SplitHostPort(ln.Addr().String())
		out = append(out, p)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}
