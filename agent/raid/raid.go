// Package raid builds and deletes software RAID (Linux md, with mdadm) from Ironic's
// target_raid_config, as ironic-python-agent does: one GPT partition per logical disk on
// every member disk (after room for a bootloader), then one mdadm --create per logical disk;
// deleting stops every array, zeroes the members' superblocks and wipes the member disks.
// It also lists the arrays, for the inventory.
//
// mdadm runs behind the Execer interface, so tests check the exact argv; partition tables
// are written in Go (agent/internal/gpt), so the package works on disk image files as well as block
// devices. Only agent/cmd/ferrum-agent imports it.
package raid

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/agent/inspect/hints"
	"github.com/ferrumhq/ferrum/agent/internal/blockdev"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// Execer runs a program and returns its standard output; a failure's error carries its
// standard error.
type Execer interface {
	Exec(ctx context.Context, name string, args ...string) ([]byte, error)
}

// Wiper erases a disk's partition table and signatures (clean.Cleaner).
type Wiper interface {
	EraseDeviceMetadata(path string) (proto.ErasedDevice, error)
}

// Config configures a RAID.
type Config struct {
	Log zerolog.Logger
	// Exec runs mdadm [os/exec].
	Exec Execer
	// Wiper erases member disks on delete. Required.
	Wiper Wiper
	// ListDisks lists the node's disks [blockdev.List("/")].
	ListDisks func() ([]blockdev.Disk, error)
	// SysDir is sysfs, where arrays are listed [/sys].
	SysDir string
	// PartitionWait bounds the wait for the kernel to create new partitions' device nodes [10s].
	PartitionWait time.Duration
}

// RAID runs the RAID commands.
type RAID struct {
	cfg Config
	log zerolog.Logger
}

// New checks cfg and fills its defaults.
func New(cfg Config) (*RAID, error) {
	if cfg.Wiper == nil {
		return nil, errors.New("raid: no Wiper")
	}
	if cfg.Exec == nil {
		cfg.Exec = OSExec{}
	}
	if cfg.ListDisks == nil {
		cfg.ListDisks = func() ([]blockdev.Disk, error) { return blockdev.List("/") }
	}
	if cfg.SysDir == "" {
		cfg.SysDir = "/sys"
	}
	if cfg.PartitionWait == 0 {
		cfg.PartitionWait = 10 * time.Second
	}
	return &RAID{cfg: cfg, log: cfg.Log.With().Str("component", "raid").Logger()}, nil
}

// OSExec runs programs with os/exec.
type OSExec struct{}

// Exec implements Execer.
func (OSExec) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2048 {
			msg = msg[:2048]
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// mdadmLevel is mdadm's --level for an Ironic RAID level.
func mdadmLevel(l string) string {
	if l == proto.RAIDLevel10 {
		return "10"
	}
	return l
}

// ironicLevel is Ironic's level for md's (raid1 → 1, raid10 → 1+0).
func ironicLevel(md string) string {
	l := strings.TrimPrefix(md, "raid")
	if l == "10" {
		return proto.RAIDLevel10
	}
	return l
}

// Create runs create_raid.
func (r *RAID) Create(ctx context.Context, args proto.CreateRAIDArgs) (proto.RAIDStatus, error) {
	if err := args.Validate(); err != nil {
		return proto.RAIDStatus{}, proto.Errorf(proto.CodeBadRequest, "%v", err)
	}
	if args.DeleteExisting {
		if _, err := r.Delete(ctx); err != nil {
			return proto.RAIDStatus{}, err
		}
	}
	disks, err := r.members(args)
	if err != nil {
		return proto.RAIDStatus{}, err
	}
	for i, d := range disks { // /dev/disk/by-id/... → /dev/sda, whose partitions are /dev/sdaN
		if p, err := filepath.EvalSymlinks(d); err == nil {
			disks[i] = p
		}
	}
	cfg := args.TargetRAIDConfig
	if err := cfg.ValidateSoftware(len(disks)); err != nil {
		return proto.RAIDStatus{}, proto.Errorf(proto.CodeBadRequest, "create_raid: %v", err)
	}
	existing, err := r.List(ctx)
	if err != nil {
		return proto.RAIDStatus{}, err
	}
	for _, d := range disks {
		for _, a := range existing {
			if slices.Contains(a.PhysicalDisks, d) {
				return proto.RAIDStatus{}, fmt.Errorf("create_raid: %s is already a member of %s; delete the RAID configuration first", d, a.Name)
			}
		}
	}
	bootMode := args.BootMode
	if bootMode == "" {
		bootMode = proto.BootModeUEFI
	}
	var parts [][]string // parts[logical disk][disk] = partition device
	for _, d := range disks {
		ps, err := r.partition(ctx, d, cfg.LogicalDisks, bootMode)
		if err != nil {
			return proto.RAIDStatus{}, err
		}
		for i, p := range ps {
			if len(parts) <= i {
				parts = append(parts, nil)
			}
			parts[i] = append(parts[i], p)
		}
	}
	used := map[string]bool{}
	for _, a := range existing {
		used[a.Name] = true
	}
	var created []string
	root := ""
	for i, ld := range cfg.LogicalDisks {
		md := nextMD(used)
		used[md] = true
		argv := []string{"--create", md, "--force", "--run", "--metadata=1", "--level", mdadmLevel(ld.RAIDLevel)}
		if ld.VolumeName != "" {
			argv = append(argv, "--name", ld.VolumeName)
		}
		argv = append(argv, "--raid-devices", strconv.Itoa(len(parts[i])))
		argv = append(argv, parts[i]...)
		r.log.Info().Str("array", md).Str("raid_level", ld.RAIDLevel).Strs("members", parts[i]).Msg("creating md array")
		if _, err := r.cfg.Exec.Exec(ctx, "mdadm", argv...); err != nil {
			return proto.RAIDStatus{}, fmt.Errorf("create_raid: logical disk %d: %w", i, err)
		}
		created = append(created, md)
		if ld.IsRootVolume || (root == "" && i == 0) {
			root = md
		}
	}
	arrays, err := r.List(ctx)
	if err != nil {
		return proto.RAIDStatus{}, err
	}
	st := proto.RAIDStatus{Arrays: []proto.RAIDArray{}, RootDevice: root, RAIDConfig: &cfg}
	for _, a := range arrays {
		if slices.Contains(created, a.Name) {
			st.Arrays = append(st.Arrays, a)
		}
	}
	return st, nil
}

// nextMD returns the first /dev/mdN not in used.
func nextMD(used map[string]bool) string {
	for i := 0; ; i++ {
		if n := fmt.Sprintf("/dev/md%d", i); !used[n] {
			return n
		}
	}
}

// members resolves the member disks: physical_disks (device names or root device hints, each
// entry the first matching disk in name order not chosen yet), else args.Devices, else every
// writable, non-removable disk of the node.
func (r *RAID) members(args proto.CreateRAIDArgs) ([]string, error) {
	phys := args.TargetRAIDConfig.LogicalDisks[0].PhysicalDisks
	if len(phys) == 0 && len(args.Devices) > 0 {
		return args.Devices, nil
	}
	disks, err := r.cfg.ListDisks()
	if err != nil {
		return nil, fmt.Errorf("create_raid: list disks: %w", err)
	}
	if len(phys) == 0 {
		var out []string
		for _, d := range disks {
			if d.Type == "disk" && !d.Removable && !d.ReadOnly {
				out = append(out, d.Name)
			}
		}
		if len(out) < 2 {
			return nil, fmt.Errorf("create_raid: software RAID needs at least 2 disks, the node has %d", len(out))
		}
		return out, nil
	}
	var out []string
	for _, raw := range phys {
		name, m, err := proto.ParsePhysicalDisk(raw)
		if err != nil {
			return nil, proto.Errorf(proto.CodeBadRequest, "create_raid: %v", err)
		}
		if name != "" {
			m = map[string]any{"name": name}
		}
		hs, err := hints.Parse(m)
		if err != nil {
			return nil, proto.Errorf(proto.CodeBadRequest, "create_raid: physical_disks: %v", err)
		}
		var free []blockdev.Disk // disks not chosen yet, md arrays left out
		for _, d := range disks {
			if d.Type == "disk" && !slices.Contains(out, d.Name) {
				free = append(free, d)
			}
		}
		d, _, err := hints.SelectParsed(free, hs)
		if err != nil {
			return nil, fmt.Errorf("create_raid: physical_disks entry %s: %w", raw, err)
		}
		out = append(out, d.Name)
	}
	return out, nil
}

// Delete runs delete_raid: stop every array, zero its members' superblocks, and wipe the member
// disks' partition tables and signatures.
func (r *RAID) Delete(ctx context.Context) (proto.DeleteRAIDResult, error) {
	res := proto.DeleteRAIDResult{Stopped: []string{}, Wiped: []string{}}
	arrays, err := r.List(ctx)
	if err != nil {
		return res, err
	}
	var holders []string
	for _, a := range arrays {
		if _, err := r.cfg.Exec.Exec(ctx, "mdadm", "--stop", a.Name); err != nil {
			return res, fmt.Errorf("delete_raid: %w", err)
		}
		res.Stopped = append(res.Stopped, a.Name)
		for _, m := range a.Members {
			if _, err := r.cfg.Exec.Exec(ctx, "mdadm", "--zero-superblock", m); err != nil {
				return res, fmt.Errorf("delete_raid: %w", err)
			}
		}
		for _, d := range a.PhysicalDisks {
			if !slices.Contains(holders, d) {
				holders = append(holders, d)
			}
		}
	}
	for _, d := range holders {
		if _, err := r.cfg.Wiper.EraseDeviceMetadata(d); err != nil {
			return res, fmt.Errorf("delete_raid: %w", err)
		}
		res.Wiped = append(res.Wiped, d)
	}
	r.log.Info().Strs("stopped", res.Stopped).Strs("wiped", res.Wiped).Msg("software RAID deleted")
	return res, nil
}

// Handlers in the runner's shape.

// RunCreate answers create_raid.
func (r *RAID) RunCreate(ctx context.Context, raw json.RawMessage, _ func(float64, string)) (any, error) {
	var a proto.CreateRAIDArgs
	if err := proto.DecodeArgs(raw, &a); err != nil {
		return nil, err
	}
	return r.Create(ctx, a)
}

// RunDelete answers delete_raid.
func (r *RAID) RunDelete(ctx context.Context, _ json.RawMessage, _ func(float64, string)) (any, error) {
	return r.Delete(ctx)
}

// RunGet answers get_raid.
func (r *RAID) RunGet(ctx context.Context, _ json.RawMessage, _ func(float64, string)) (any, error) {
	arrays, err := r.List(ctx)
	if err != nil {
		return nil, err
	}
	return proto.RAIDStatus{Arrays: arrays}, nil
}
