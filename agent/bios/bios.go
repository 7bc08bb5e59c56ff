// Package bios reads and changes firmware settings in-band, mirroring Ironic's BIOS interface:
// the settings cached for GET /v1/nodes/{node}/bios, apply_configuration (skip values already
// set, report what changed and whether a reboot is needed) and factory_reset.
//
// Settings come from a Backend. EFIBackend is the built-in one: UEFI variables through
// efivarfs (BootOrder, BootNext, Timeout, SecureBoot, and named settings under Ferrum's vendor
// GUID). A vendor tool (racadm, ilorest, ...) plugs in as another Backend. SMBIOS facts come
// from /sys/class/dmi/id. Only agent/cmd/ferrum-agent imports this package.
package bios

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/ferrumhq/ferrum/shared/proto"
)

// Backend reads and writes one kind of firmware settings.
type Backend interface {
	// Name is reported as BIOSSettings.Backend.
	Name() string
	Settings(ctx context.Context) ([]proto.BIOSSetting, error)
	// Apply sets the settings that differ and returns the names it changed and whether the
	// firmware needs a reboot for them.
	Apply(ctx context.Context, settings []proto.BIOSSettingValue) (changed []string, reboot bool, err error)
	// FactoryReset returns every setting to its default.
	FactoryReset(ctx context.Context) (changed []string, reboot bool, err error)
}

// BootEntryLister is a Backend that also lists boot entries (EFIBackend).
type BootEntryLister interface {
	BootEntries(ctx context.Context) ([]proto.BootEntry, error)
}

// ErrNoBackend: the machine has no settings backend (legacy BIOS boot, no vendor tool).
var ErrNoBackend = errors.New("no BIOS settings backend: no efivarfs (legacy BIOS boot) and no vendor tool")

// Config configures a BIOS.
type Config struct {
	Log zerolog.Logger
	// Backend holds the settings [EFIBackend on /sys/firmware/efi/efivars when the machine
	// booted with UEFI, else none; looked up at each command].
	Backend Backend
	// DMIDir is where the kernel exports SMBIOS facts [/sys/class/dmi/id].
	DMIDir string
}

// BIOS runs the BIOS commands.
type BIOS struct {
	backend Backend
	dmiDir  string
	log     zerolog.Logger
}

// DefaultEFIVarsDir is where efivarfs is mounted.
const DefaultEFIVarsDir = "/sys/firmware/efi/efivars"

// New checks cfg and fills its defaults.
func New(cfg Config) (*BIOS, error) {
	if cfg.DMIDir == "" {
		cfg.DMIDir = "/sys/class/dmi/id"
	}
	return &BIOS{backend: cfg.Backend, dmiDir: cfg.DMIDir, log: cfg.Log.With().Str("component", "bios").Logger()}, nil
}

// backendNow returns the configured backend or, without one, efivarfs when the machine booted
// with UEFI (mounting it if the ramdisk has not), looked up on every call so that a late
// module load or mount is seen.
func (b *BIOS) backendNow() (Backend, error) {
	if b.backend != nil {
		return b.backend, nil
	}
	if _, err := os.Stat(DefaultEFIVarsDir); err != nil {
		return nil, nil // legacy BIOS boot
	}
	v, err := OpenEFIVars(DefaultEFIVarsDir)
	if err == nil && !v.real {
		if err := unix.Mount("efivarfs", DefaultEFIVarsDir, "efivarfs", 0, ""); err != nil {
			return nil, fmt.Errorf("mount efivarfs on %s: %w", DefaultEFIVarsDir, err)
		}
		v, err = OpenEFIVars(DefaultEFIVarsDir)
	}
	if err != nil {
		return nil, err
	}
	return &EFIBackend{Vars: v}, nil
}

// Get reads every setting, the boot entries and the SMBIOS facts.
func (b *BIOS) Get(ctx context.Context) (proto.BIOSSettings, error) {
	out := proto.BIOSSettings{Settings: []proto.BIOSSetting{}, BootMode: proto.BootModeBIOS}
	if sys, err := ReadSMBIOS(b.dmiDir); err == nil {
		out.System = &sys
	} else {
		b.log.Debug().Err(err).Msg("no SMBIOS facts")
	}
	be, err := b.backendNow()
	if err != nil {
		return out, fmt.Errorf("bios settings: %w", err)
	}
	if be == nil {
		return out, nil
	}
	out.Backend = be.Name()
	if _, ok := be.(*EFIBackend); ok {
		out.BootMode = proto.BootModeUEFI
	}
	s, err := be.Settings(ctx)
	if err != nil {
		return out, fmt.Errorf("bios settings: %w", err)
	}
	out.Settings = s
	if l, ok := be.(BootEntryLister); ok {
		if out.BootEntries, err = l.BootEntries(ctx); err != nil {
			return out, fmt.Errorf("boot entries: %w", err)
		}
	}
	return out, nil
}

// Apply runs apply_bios_settings and returns the settings afterwards.
func (b *BIOS) Apply(ctx context.Context, args proto.ApplyBIOSArgs) (proto.BIOSSettings, error) {
	if err := args.Validate(); err != nil {
		return proto.BIOSSettings{}, proto.Errorf(proto.CodeBadRequest, "%v", err)
	}
	be, err := b.backendNow()
	if err != nil {
		return proto.BIOSSettings{}, err
	}
	if be == nil {
		return proto.BIOSSettings{}, proto.Errorf(proto.CodeUnsupported, "%v", ErrNoBackend)
	}
	changed, reboot, err := be.Apply(ctx, args.Settings)
	if err != nil {
		return proto.BIOSSettings{}, err
	}
	b.log.Info().Strs("changed", changed).Bool("reboot_required", reboot).Msg("bios settings applied")
	return b.after(ctx, changed, reboot)
}

// FactoryReset runs factory_reset_bios and returns the settings afterwards.
func (b *BIOS) FactoryReset(ctx context.Context) (proto.BIOSSettings, error) {
	be, err := b.backendNow()
	if err != nil {
		return proto.BIOSSettings{}, err
	}
	if be == nil {
		return proto.BIOSSettings{}, proto.Errorf(proto.CodeUnsupported, "%v", ErrNoBackend)
	}
	changed, reboot, err := be.FactoryReset(ctx)
	if err != nil {
		return proto.BIOSSettings{}, err
	}
	b.log.Info().Strs("changed", changed).Bool("reboot_required", reboot).Msg("bios settings reset")
	return b.after(ctx, changed, reboot)
}

func (b *BIOS) after(ctx context.Context, changed []string, reboot bool) (proto.BIOSSettings, error) {
	s, err := b.Get(ctx)
	if err != nil {
		return s, err
	}
	s.Changed, s.RebootRequired = changed, reboot
	if s.Changed == nil {
		s.Changed = []string{}
	}
	return s, nil
}

// RunGet answers get_bios_settings.
func (b *BIOS) RunGet(ctx context.Context, _ json.RawMessage, _ func(float64, string)) (any, error) {
	return b.Get(ctx)
}

// RunApply answers apply_bios_settings.
func (b *BIOS) RunApply(ctx context.Context, raw json.RawMessage, _ func(float64, string)) (any, error) {
	var a proto.ApplyBIOSArgs
	if err := proto.DecodeArgs(raw, &a); err != nil {
		return nil, err
	}
	return b.Apply(ctx, a)
}

// RunFactoryReset answers factory_reset_bios.
func (b *BIOS) RunFactoryReset(ctx context.Context, _ json.RawMessage, _ func(float64, string)) (any, error) {
	return b.FactoryReset(ctx)
}

// ReadSMBIOS reads the SMBIOS facts the kernel exports in dir (/sys/class/dmi/id). Files it
// may not read (product_serial is root-only) or that are missing are left empty.
func ReadSMBIOS(dir string) (proto.SMBIOS, error) {
	if _, err := os.Stat(dir); err != nil {
		return proto.SMBIOS{}, fmt.Errorf("smbios: %w", err)
	}
	r := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || len(b) > 4096 {
			return ""
		}
		return strings.TrimSpace(strings.ToValidUTF8(string(b), ""))
	}
	return proto.SMBIOS{BIOSVendor: r("bios_vendor"), BIOSVersion: r("bios_version"), BIOSDate: r("bios_date"),
		SysVendor: r("sys_vendor"), ProductName: r("product_name"), ProductVersion: r("product_version"),
		ProductSerial: r("product_serial"), ProductUUID: r("product_uuid"), ProductSKU: r("product_sku"),
		ProductFamily: r("product_family"), BoardVendor: r("board_vendor"), BoardName: r("board_name"),
		BoardSerial: r("board_serial"), ChassisVendor: r("chassis_vendor"), ChassisSerial: r("chassis_serial"),
		ChassisAssetTag: r("chassis_asset_tag")}, nil
}
