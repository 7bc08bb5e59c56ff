// Package inspect is the agent's inspection capability: it collects the machine's inventory in
// Ironic's format (CPU, memory, disks, network interfaces, SMBIOS system vendor, boot mode,
// the BMC's address through in-band IPMI, hostname) and resolves root device hints to a disk.
//
// Everything is read from files under a root directory (sys/, proc/, dev/): "/" on a machine,
// a fixture tree in tests, so trees captured from a machine or VM (testdata/capture.sh) test the
// same code. Only the IP addresses and the in-band IPMI call go past the files (Config.Addrs,
// Config.BMC). SMBIOS tables are decoded with u-root's smbios package and the BMC is asked with
// u-root's ipmi package; nothing is executed. LLDP is not collected.
//
// It knows nothing of the transport: cmd/ferrum-agent registers its commands (inspect,
// resolve_root_device) with agent/runner and runs Inventory for `ferrum-agent inventory`.
package inspect

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/agent/inspect/hints"
	"github.com/ferrumhq/ferrum/agent/internal/blockdev"
	"github.com/ferrumhq/ferrum/agent/runner"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// Config configures an Inspector.
type Config struct {
	Log zerolog.Logger
	// Root is the directory holding sys/, proc/ and dev/ ["/"].
	Root string
	// Addrs returns an interface's IPv4 and IPv6 addresses [the kernel's when Root is "/";
	// none otherwise, since a fixture tree has no addresses].
	Addrs func(ifname string) (ipv4, ipv6 string)
	// BMC reads the BMC's LAN address through the IPMI device at path, returning an error
	// wrapping os.ErrNotExist when there is none [u-root's ipmi when Root is "/"; nothing
	// otherwise].
	BMC func(ctx context.Context, path string) (BMCAddress, error)
}

// Inspector collects inventories. Its methods are safe for concurrent use.
type Inspector struct {
	cfg Config
	log zerolog.Logger
}

// New checks cfg and fills in its defaults.
func New(cfg Config) (*Inspector, error) {
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	st, err := os.Stat(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("inspect: root: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("inspect: root %s is not a directory", cfg.Root)
	}
	if filepath.Clean(cfg.Root) == "/" {
		if cfg.Addrs == nil {
			cfg.Addrs = hostAddrs
		}
		if cfg.BMC == nil {
			cfg.BMC = readBMCIPMI
		}
	}
	return &Inspector{cfg: cfg, log: cfg.Log.With().Str("component", "inspect").Logger()}, nil
}

// Register adds inspect and resolve_root_device (neither mutating) to r.
func Register(r *runner.Runner, cfg Config) error {
	in, err := New(cfg)
	if err != nil {
		return err
	}
	r.Register(proto.CmdInspect, in.InspectHandler(), false)
	r.Register(proto.CmdResolveRootDevice, in.ResolveHandler(), false)
	return nil
}

// Resolver selects root disks under the Inspector's root; it has the shape of agent/image's
// TargetResolver.
func (in *Inspector) Resolver() func(ctx context.Context, h map[string]any) (path, reason string, err error) {
	return hints.Resolver(in.cfg.Root)
}

// InspectHandler returns the handler of proto.CmdInspect.
func (in *Inspector) InspectHandler() runner.Handler {
	return runner.HandlerFunc(func(ctx context.Context, raw json.RawMessage, progress func(float64, string)) (any, error) {
		var args proto.InspectArgs
		if err := proto.DecodeArgs(raw, &args); err != nil {
			return nil, err
		}
		if len(args.RootDeviceHints) > proto.MaxRootHints {
			return nil, proto.Errorf(proto.CodeBadRequest, "inspect: %d root_device hints, at most %d", len(args.RootDeviceHints), proto.MaxRootHints)
		}
		hs, err := hints.Parse(args.RootDeviceHints)
		if err != nil {
			return nil, proto.Errorf(proto.CodeBadRequest, "inspect: %v", err)
		}
		progress(0, "collecting inventory")
		inv, err := in.Inventory(ctx, hs)
		if err != nil {
			return nil, err
		}
		progress(100, fmt.Sprintf("%d CPUs, %d MiB, %d disks, %d interfaces", inv.CPU.Count, inv.Memory.PhysicalMB, len(inv.Disks), len(inv.Interfaces)))
		return inv, nil
	})
}

// ResolveHandler returns the handler of proto.CmdResolveRootDevice.
func (in *Inspector) ResolveHandler() runner.Handler {
	return runner.HandlerFunc(func(ctx context.Context, raw json.RawMessage, _ func(float64, string)) (any, error) {
		var args proto.ResolveRootDeviceArgs
		if err := proto.DecodeArgs(raw, &args); err != nil {
			return nil, err
		}
		if err := args.Validate(); err != nil {
			return nil, proto.Errorf(proto.CodeBadRequest, "%v", err)
		}
		hs, err := hints.Parse(args.RootDeviceHints)
		if err != nil {
			return nil, proto.Errorf(proto.CodeBadRequest, "resolve_root_device: %v", err)
		}
		disks, err := blockdev.List(in.cfg.Root)
		if err != nil {
			return nil, fmt.Errorf("resolve_root_device: %w", err)
		}
		d, reason, err := hints.SelectParsed(disks, hs)
		if err != nil {
			return nil, proto.Errorf(proto.CodeFailed, "resolve_root_device: %v", err)
		}
		in.log.Info().Str("device", d.Name).Str("reason", reason).Msg("root device resolved")
		return proto.RootDevice{Disk: wireDisk(d), Reason: reason}, nil
	})
}

// Inventory collects the machine's inventory. Missing CPU, memory, disk or network information
// fails it; what only enriches it (SMBIOS, BMC) becomes a warning in Ferrum.Warnings. The root
// disk the hints choose (IPA's default without hints) is reported in Ferrum.RootDisk.
func (in *Inspector) Inventory(ctx context.Context, hs hints.Hints) (proto.Inventory, error) {
	root := in.cfg.Root
	var inv proto.Inventory
	var warnings []string
	warn := func(err error) {
		in.log.Warn().Err(err).Msg("inspection incomplete")
		warnings = append(warnings, err.Error())
	}

	dmi, err := in.dmi()
	if err != nil {
		warn(err)
	}
	inv.SystemVendor = proto.SystemVendor{ProductName: dmi.product, SerialNumber: dmi.serial, Manufacturer: dmi.manufacturer,
		Firmware: proto.Firmware{Vendor: dmi.biosVendor, Version: dmi.biosVersion, BuildDate: dmi.biosDate}}

	if inv.CPU, err = in.cpu(dmi); err != nil {
		return proto.Inventory{}, fmt.Errorf("inspect: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(root, "proc", "meminfo"))
	if err != nil {
		return proto.Inventory{}, fmt.Errorf("inspect: %w", err)
	}
	if inv.Memory.Total, err = parseMemTotal(string(b)); err != nil {
		return proto.Inventory{}, fmt.Errorf("inspect: %w", err)
	}
	inv.Memory.PhysicalMB = int64(dmi.memoryBytes >> 20)
	if inv.Memory.PhysicalMB == 0 { // no SMBIOS memory devices: the kernel's total, rounded up to a GiB
		inv.Memory.PhysicalMB = (inv.Memory.Total + 1<<30 - 1) >> 30 << 10
	}

	disks, err := blockdev.List(root)
	if err != nil {
		return proto.Inventory{}, fmt.Errorf("inspect: %w", err)
	}
	inv.Disks = make([]proto.Disk, 0, len(disks))
	for _, d := range disks {
		inv.Disks = append(inv.Disks, wireDisk(d))
	}

	if inv.Interfaces, err = interfaces(root, in.cfg.Addrs); err != nil {
		return proto.Inventory{}, fmt.Errorf("inspect: network interfaces: %w", err)
	}
	if len(inv.Interfaces) == 0 {
		warn(errors.New("no physical network interfaces"))
	}

	inv.Boot.CurrentBootMode = proto.BootModeBIOS
	if _, err := os.Stat(filepath.Join(root, "sys", "firmware", "efi")); err == nil {
		inv.Boot.CurrentBootMode = proto.BootModeUEFI
	}
	if b, err := os.ReadFile(filepath.Join(root, "proc", "cmdline")); err == nil {
		inv.Boot.PXEInterface = parseBOOTIF(string(b))
	}
	inv.Hostname = attr(root, "proc/sys/kernel/hostname")

	if in.cfg.BMC != nil {
		bmc, err := in.cfg.BMC(ctx, filepath.Join(root, "dev", "ipmi0"))
		switch {
		case errors.Is(err, os.ErrNotExist):
			in.log.Debug().Msg("no in-band IPMI device")
		case err != nil:
			warn(fmt.Errorf("bmc address: %w", err))
		default:
			inv.BMCAddress, inv.BMCV6Address, inv.BMCMAC = bmc.IPv4, bmc.IPv6, bmc.MAC
		}
	}
	if err := ctx.Err(); err != nil {
		return proto.Inventory{}, err
	}

	extra := &proto.InventoryExtra{SystemUUID: dmi.uuid}
	if d, reason, err := hints.SelectParsed(disks, hs); err == nil {
		extra.RootDisk = &proto.RootDevice{Disk: wireDisk(d), Reason: reason}
	} else {
		warn(fmt.Errorf("root disk: %w", err))
	}
	extra.Warnings = warnings
	inv.Ferrum = extra
	return inv, nil
}

// dmi reads SMBIOS from the raw tables, or else from the kernel's /sys/class/dmi/id files.
func (in *Inspector) dmi() (dmiInfo, error) {
	tables := filepath.Join(in.cfg.Root, "sys", "firmware", "dmi", "tables")
	entry, err1 := os.ReadFile(filepath.Join(tables, "smbios_entry_point"))
	data, err2 := os.ReadFile(filepath.Join(tables, "DMI"))
	tableErr := cmp.Or(err1, err2)
	if tableErr == nil {
		info, err := parseSMBIOS(entry, data)
		if err == nil {
			return info, nil
		}
		tableErr = err
	}
	id := filepath.Join(in.cfg.Root, "sys", "class", "dmi", "id")
	if _, err := os.Stat(id); err != nil {
		return dmiInfo{}, fmt.Errorf("system vendor unknown: no SMBIOS tables (%w) and no /sys/class/dmi/id", tableErr)
	}
	in.log.Debug().Err(tableErr).Msg("smbios tables unreadable, using /sys/class/dmi/id")
	info := dmiInfo{manufacturer: clean(attr(id, "sys_vendor")), product: clean(attr(id, "product_name")),
		serial: clean(attr(id, "product_serial")), uuid: strings.ToLower(attr(id, "product_uuid")),
		biosVendor: clean(attr(id, "bios_vendor")), biosVersion: clean(attr(id, "bios_version")), biosDate: clean(attr(id, "bios_date"))}
	return info, nil
}

// cpu reads /proc/cpuinfo, cpufreq and the CPU topology; SMBIOS fills in what they lack.
func (in *Inspector) cpu(dmi dmiInfo) (proto.CPU, error) {
	root := in.cfg.Root
	b, err := os.ReadFile(filepath.Join(root, "proc", "cpuinfo"))
	if err != nil {
		return proto.CPU{}, err
	}
	ci, err := parseCPUInfo(string(b))
	if err != nil {
		return proto.CPU{}, err
	}
	c := proto.CPU{ModelName: ci.modelName, Count: ci.count, Flags: ci.flags, Frequency: ci.mhz,
		Architecture: attr(root, "proc/sys/kernel/arch")}
	if c.Flags == nil {
		c.Flags = []string{}
	}
	if c.ModelName == "" {
		c.ModelName = dmi.cpuModel
	}
	if khz, err := strconv.ParseInt(attr(root, "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"), 10, 64); err == nil && khz > 0 {
		c.Frequency = strconv.FormatFloat(float64(khz)/1000, 'f', 3, 64)
	} else if c.Frequency == "" && dmi.cpuMaxMHz > 0 {
		c.Frequency = strconv.Itoa(dmi.cpuMaxMHz)
	}
	if c.Architecture == "" && filepath.Clean(root) == "/" {
		c.Architecture = unameMachine(runtime.GOARCH)
	}
	c.SocketCount = packages(root)
	if c.SocketCount == 0 {
		c.SocketCount = ci.sockets
	}
	if c.SocketCount == 0 {
		c.SocketCount = dmi.sockets
	}
	return c, nil
}

// packages counts the distinct physical packages (sockets) of the CPUs in sysfs.
func packages(root string) int {
	ids, _ := filepath.Glob(filepath.Join(root, "sys", "devices", "system", "cpu", "cpu[0-9]*", "topology", "physical_package_id"))
	var seen []string
	for _, f := range ids {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if id := strings.TrimSpace(string(b)); !slices.Contains(seen, id) {
			seen = append(seen, id)
		}
	}
	return len(seen)
}

// unameMachine is `uname -m` for a Go architecture.
func unameMachine(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i686"
	}
	return goarch
}

func wireDisk(d blockdev.Disk) proto.Disk {
	return proto.Disk{Name: d.Name, Model: d.Model, Size: d.Size, Rotational: d.Rotational, WWN: d.WWN, Serial: d.Serial,
		Vendor: d.Vendor, WWNWithExtension: d.WWNWithExtension, WWNVendorExtension: d.WWNVendorExtension, HCTL: d.HCTL,
		ByPath: d.ByPath, LogicalSectors: d.LogicalSectorSize, PhysicalSectors: d.PhysicalSectorSize, Tran: d.Tran}
}
