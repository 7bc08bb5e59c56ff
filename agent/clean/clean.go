// Package clean erases the node's disks for Ironic's cleaning steps: erase_devices_metadata
// (partition tables, both GPT copies, filesystem and RAID signatures at both ends of each disk
// and partition, like wipefs) and erase_devices (the device's own secure erase where it has
// one: NVMe Format NVM or the kernel's secure discard; a plain discard on request; else zeros
// over every byte, with progress).
//
// It works on block devices and on regular files (tests, images). Only agent/cmd/ferrum-agent
// imports it; agent/raid uses it through its own interface.
package clean

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/ferrumhq/ferrum/agent/internal/blockdev"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// SecureEraser is a vendor tool's secure erase (ATA security erase, NVMe format). Erase
// returns ok false, with no error, when the device is not one it handles.
type SecureEraser interface {
	Name() string
	Erase(ctx context.Context, device string) (ok bool, err error)
}

// Config configures a Cleaner.
type Config struct {
	Log zerolog.Logger
	// ListDisks lists the node's disks when a command names none [blockdev.List("/")].
	ListDisks func() ([]blockdev.Disk, error)
	// SysDir is sysfs, where md arrays' members are found [/sys].
	SysDir string
	// SecureErasers are tried in order before the kernel's secure discard.
	SecureErasers []SecureEraser
	// ChunkSize is the unit of zeroing and of progress [64 MiB].
	ChunkSize int64
	// Concurrency is how many devices erase_devices erases at once [4, Ironic's
	// disk_erasure_concurrency].
	Concurrency int
	Now         func() time.Time // [time.Now]
}

// Cleaner runs the erase commands.
type Cleaner struct {
	cfg Config
	log zerolog.Logger
}

// New checks cfg and fills its defaults.
func New(cfg Config) (*Cleaner, error) {
	if cfg.ListDisks == nil {
		cfg.ListDisks = func() ([]blockdev.Disk, error) { return blockdev.List("/") }
	}
	if cfg.SysDir == "" {
		cfg.SysDir = "/sys"
	}
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = 64 << 20
	}
	if cfg.ChunkSize < 4096 || cfg.ChunkSize%4096 != 0 {
		return nil, fmt.Errorf("clean: chunk size %d is not a positive multiple of 4096", cfg.ChunkSize)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 4
	}
	if cfg.Concurrency < 0 {
		return nil, fmt.Errorf("clean: negative concurrency")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cleaner{cfg: cfg, log: cfg.Log.With().Str("component", "clean").Logger()}, nil
}

// target is one device to erase, or to skip with a reason.
type target struct {
	path, skip string
}

// targets resolves the devices of args: the ones named, or every disk of the node. Assembled
// md arrays are erased as devices and their member disks skipped (held by the array; delete_raid
// frees them); removable and, with SkipReadOnly, read-only devices are skipped.
func (c *Cleaner) targets(args proto.EraseArgs) ([]target, error) {
	var out []target
	if len(args.Devices) > 0 {
		for _, d := range args.Devices {
			out = append(out, target{path: d})
		}
		return out, nil
	}
	disks, err := c.cfg.ListDisks()
	if err != nil {
		return nil, fmt.Errorf("list disks: %w", err)
	}
	held := c.mdMembers(disks)
	for _, d := range disks {
		switch {
		case d.Type != "disk" && !strings.HasPrefix(d.KName(), "md"):
			continue
		case held[d.Name] != "":
			out = append(out, target{d.Name, "member of " + held[d.Name]})
		case d.Removable:
			out = append(out, target{d.Name, "removable"})
		case d.ReadOnly && args.SkipReadOnly:
			out = append(out, target{d.Name, "read-only"})
		default:
			out = append(out, target{path: d.Name})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no disks to erase")
	}
	return out, nil
}

// mdMembers maps each disk holding a member of an md array in disks to the array.
func (c *Cleaner) mdMembers(disks []blockdev.Disk) map[string]string {
	out := map[string]string{}
	for _, d := range disks {
		if !strings.HasPrefix(d.KName(), "md") {
			continue
		}
		slaves, _ := os.ReadDir(filepath.Join(c.cfg.SysDir, "block", d.KName(), "slaves"))
		for _, s := range slaves {
			disk := "/dev/" + s.Name() // a whole-disk member
			if m, _ := filepath.Glob(filepath.Join(c.cfg.SysDir, "block", "*", s.Name())); len(m) == 1 {
				disk = "/dev/" + filepath.Base(filepath.Dir(m[0]))
			}
			out[disk] = d.Name
		}
	}
	return out
}

// EraseMetadata runs erase_devices_metadata.
func (c *Cleaner) EraseMetadata(ctx context.Context, args proto.EraseArgs) (proto.EraseResult, error) {
	ts, err := c.targets(args)
	if err != nil {
		return proto.EraseResult{}, err
	}
	res := proto.EraseResult{Devices: []proto.ErasedDevice{}}
	for _, t := range ts {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if t.skip != "" {
			res.Devices = append(res.Devices, proto.ErasedDevice{Device: t.path, Skipped: t.skip})
			continue
		}
		ed, err := c.EraseDeviceMetadata(t.path)
		if errors.Is(err, ErrReadOnly) && args.SkipReadOnly {
			res.Devices = append(res.Devices, proto.ErasedDevice{Device: t.path, Skipped: "read-only"})
			continue
		}
		if err != nil {
			return res, err
		}
		res.Devices = append(res.Devices, ed)
	}
	return res, nil
}

// EraseDeviceMetadata erases one device's partition tables and signatures.
func (c *Cleaner) EraseDeviceMetadata(path string) (proto.ErasedDevice, error) {
	start := c.cfg.Now()
	d, err := openDevice(path)
	if err != nil {
		return proto.ErasedDevice{}, fmt.Errorf("erase metadata: %w", err)
	}
	defer d.Close()
	parts, table := partitions(d.f, d.size, d.sector)
	sigs := signatures(d.f, 0, d.size)
	if table != "" && !slices.Contains(sigs, table) {
		sigs = append([]string{table}, sigs...)
	}
	for _, p := range parts {
		for _, s := range signatures(d.f, p.Start, p.End) {
			if !slices.Contains(sigs, s) {
				sigs = append(sigs, s)
			}
		}
	}
	rs := regions(d.size, parts)
	buf := make([]byte, wipeEdge)
	for _, r := range rs {
		if err := d.zero(r.Off, r.Len, buf); err != nil {
			return proto.ErasedDevice{}, fmt.Errorf("erase metadata of %s at %d: %w", path, r.Off, err)
		}
	}
	if err := d.f.Sync(); err != nil {
		return proto.ErasedDevice{}, fmt.Errorf("erase metadata of %s: sync: %w", path, err)
	}
	if err := d.rereadPartitions(); err != nil {
		c.log.Warn().Err(err).Str("device", path).Msg("re-reading the partition table failed")
	}
	c.log.Info().Str("device", path).Strs("signatures", sigs).Int("regions", len(rs)).Msg("metadata erased")
	return proto.ErasedDevice{Device: path, Method: proto.EraseMetadata, Bytes: d.size, Regions: len(rs),
		Signatures: sigs, DurationMs: c.cfg.Now().Sub(start).Milliseconds()}, nil
}

// EraseDevices runs erase_devices (args.Express: erase_devices_express), Concurrency devices
// at a time. progress gets the overall
// percentage (each device weighs the same) and a message. The first failure cancels the
// others.
func (c *Cleaner) EraseDevices(ctx context.Context, args proto.EraseArgs, progress func(float64, string)) (proto.EraseResult, error) {
	if progress == nil {
		progress = func(float64, string) {}
	}
	ts, err := c.targets(args)
	if err != nil {
		return proto.EraseResult{}, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	out := make([]proto.ErasedDevice, len(ts))
	frac := make([]float64, len(ts)) // each device's done fraction
	var mu sync.Mutex                // guards frac and progress calls
	var wg sync.WaitGroup
	sem := make(chan struct{}, c.cfg.Concurrency)
	for i, t := range ts {
		if t.skip != "" {
			out[i] = proto.ErasedDevice{Device: t.path, Skipped: t.skip}
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ed, err := c.eraseDevice(ctx, t.path, args.AllowDiscard || args.Express, args.Express, func(done, total int64) {
				mu.Lock()
				defer mu.Unlock()
				frac[i] = float64(done) / float64(max(total, 1))
				sum := 0.0
				for _, f := range frac {
					sum += f
				}
				progress(100*sum/float64(len(ts)), fmt.Sprintf("%s: %d of %d bytes", t.path, done, total))
			})
			if errors.Is(err, errNoFastErase) { // express: the metadata only
				ed, err = c.EraseDeviceMetadata(t.path)
			}
			switch {
			case errors.Is(err, ErrReadOnly) && args.SkipReadOnly:
				ed = proto.ErasedDevice{Device: t.path, Skipped: "read-only"}
			case err != nil:
				cancel(err)
				return
			}
			out[i] = ed
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return proto.EraseResult{Devices: []proto.ErasedDevice{}}, err
	}
	progress(100, "erased")
	return proto.EraseResult{Devices: out}, nil
}

// errNoFastErase: an express erasure found no secure erase or discard on the device.
var errNoFastErase = errors.New("no secure erase or discard")

// eraseDevice erases one device: a vendor secure erase, else BLKSECDISCARD, else (if allowed)
// BLKDISCARD, else zeros (express: errNoFastErase instead).
func (c *Cleaner) eraseDevice(ctx context.Context, path string, allowDiscard, express bool, progress func(done, total int64)) (proto.ErasedDevice, error) {
	start := c.cfg.Now()
	d, err := openDevice(path)
	if err != nil {
		return proto.ErasedDevice{}, fmt.Errorf("erase: %w", err)
	}
	defer d.Close()
	log := c.log.With().Str("device", path).Int64("bytes", d.size).Logger()
	out := proto.ErasedDevice{Device: path, Bytes: d.size}
	done := func(method string) (proto.ErasedDevice, error) {
		out.Method, out.DurationMs = method, c.cfg.Now().Sub(start).Milliseconds()
		progress(d.size, d.size)
		log.Info().Str("method", method).Int64("duration_ms", out.DurationMs).Msg("device erased")
		return out, nil
	}
	if d.block {
		for _, se := range c.cfg.SecureErasers {
			ok, err := se.Erase(ctx, path)
			if err != nil {
				return out, fmt.Errorf("erase %s with %s: %w", path, se.Name(), err)
			}
			if ok {
				return done(proto.EraseSecureErase)
			}
		}
		err := d.ioctlRange(unix.BLKSECDISCARD, 0, d.size)
		if err == nil {
			return done(proto.EraseSecureDiscard)
		}
		if !unsupported(err) {
			return out, fmt.Errorf("erase %s: secure discard: %w", path, err)
		}
		log.Debug().Err(err).Msg("no secure discard")
		if allowDiscard {
			err := d.ioctlRange(unix.BLKDISCARD, 0, d.size)
			if err == nil {
				return done(proto.EraseDiscard)
			}
			if !unsupported(err) {
				return out, fmt.Errorf("erase %s: discard: %w", path, err)
			}
			log.Debug().Err(err).Msg("no discard")
		}
	}
	if express {
		return out, errNoFastErase
	}
	buf := make([]byte, min(c.cfg.ChunkSize, 4<<20))
	for off := int64(0); off < d.size; off += c.cfg.ChunkSize {
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("erase %s: stopped at byte %d: %w", path, off, err)
		}
		n := min(c.cfg.ChunkSize, d.size-off)
		if err := d.zero(off, n, buf); err != nil {
			return out, fmt.Errorf("erase %s at byte %d: %w", path, off, err)
		}
		progress(off+n, d.size)
	}
	if err := d.f.Sync(); err != nil {
		return out, fmt.Errorf("erase %s: sync: %w", path, err)
	}
	_ = d.rereadPartitions()
	return done(proto.EraseZero)
}

// Steps returns get_clean_steps's result.
func (c *Cleaner) Steps() proto.CleanSteps { return proto.CleanSteps{Steps: proto.DefaultCleanSteps()} }

// Command handlers, in the runner's handler shape.

// RunGetCleanSteps answers get_clean_steps.
func (c *Cleaner) RunGetCleanSteps(context.Context, json.RawMessage, func(float64, string)) (any, error) {
	return c.Steps(), nil
}

// RunEraseDevicesMetadata answers erase_devices_metadata.
func (c *Cleaner) RunEraseDevicesMetadata(ctx context.Context, raw json.RawMessage, progress func(float64, string)) (any, error) {
	args, err := decode(raw)
	if err != nil {
		return nil, err
	}
	return c.EraseMetadata(ctx, args)
}

// RunEraseDevices answers erase_devices.
func (c *Cleaner) RunEraseDevices(ctx context.Context, raw json.RawMessage, progress func(float64, string)) (any, error) {
	args, err := decode(raw)
	if err != nil {
		return nil, err
	}
	return c.EraseDevices(ctx, args, progress)
}

func decode(raw json.RawMessage) (proto.EraseArgs, error) {
	var a proto.EraseArgs
	if err := proto.DecodeArgs(raw, &a); err != nil {
		return a, err
	}
	if err := a.Validate(); err != nil {
		return a, proto.Errorf(proto.CodeBadRequest, "%v", err)
	}
	return a, nil
}
