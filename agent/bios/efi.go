package bios

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ferrumhq/ferrum/shared/proto"
)

// EFIBackend keeps settings in UEFI variables:
//
//	BootOrder   String "0001,0000": the Boot#### entries to try, in order
//	BootNext    String "0003" or "": the entry for the next boot only
//	Timeout     Integer 0..65535: seconds the firmware's boot menu waits
//	SecureBoot  read-only Enumeration Enabled/Disabled
//	any other   a named String setting: variable NAME-FerrumGUID, deleted by an empty value
//	            and by a factory reset
type EFIBackend struct {
	Vars *EFIVars
}

// Name implements Backend.
func (*EFIBackend) Name() string { return "efivarfs" }

var bootVarRe = regexp.MustCompile(`^Boot[0-9A-F]{4}$`)

// readOnly are global variables the firmware owns.
var readOnly = []string{"SecureBoot", "SetupMode", "AuditMode", "DeployedMode", "PK", "KEK", "db", "dbx",
	"PlatformLang", "Lang", "BootCurrent", "OsIndicationsSupported", "BootOptionSupport", "ConIn", "ConOut", "ErrOut"}

// Settings implements Backend.
func (e *EFIBackend) Settings(ctx context.Context) ([]proto.BIOSSetting, error) {
	var out []proto.BIOSSetting
	order, err := e.bootOrder()
	if err != nil {
		return nil, err
	}
	out = append(out, proto.BIOSSetting{Name: "BootOrder", Value: formatBootNums(order), AttributeType: proto.BIOSTypeString, ResetRequired: true})
	next := ""
	if _, b, err := e.Vars.Get("BootNext", GlobalGUID); err == nil && len(b) == 2 {
		next = fmt.Sprintf("%04X", binary.LittleEndian.Uint16(b))
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	out = append(out, proto.BIOSSetting{Name: "BootNext", Value: next, AttributeType: proto.BIOSTypeString, ResetRequired: true})
	if _, b, err := e.Vars.Get("Timeout", GlobalGUID); err == nil && len(b) == 2 {
		lo, hi := int64(0), int64(0xffff)
		out = append(out, proto.BIOSSetting{Name: "Timeout", Value: strconv.Itoa(int(binary.LittleEndian.Uint16(b))),
			AttributeType: proto.BIOSTypeInteger, LowerBound: &lo, UpperBound: &hi, ResetRequired: true})
	}
	if _, b, err := e.Vars.Get("SecureBoot", GlobalGUID); err == nil && len(b) == 1 {
		v := "Disabled"
		if b[0] == 1 {
			v = "Enabled"
		}
		out = append(out, proto.BIOSSetting{Name: "SecureBoot", Value: v, AttributeType: proto.BIOSTypeEnumeration,
			AllowableValues: []string{"Disabled", "Enabled"}, ReadOnly: true})
	}
	names, err := e.Vars.List(FerrumGUID)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	for _, n := range names {
		_, b, err := e.Vars.Get(n, FerrumGUID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, proto.BIOSSetting{Name: n, Value: string(b), AttributeType: proto.BIOSTypeString})
	}
	return out, nil
}

func (e *EFIBackend) bootOrder() ([]uint16, error) {
	_, b, err := e.Vars.Get("BootOrder", GlobalGUID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b)%2 != 0 {
		return nil, fmt.Errorf("BootOrder of %d bytes, not a list of 16-bit numbers", len(b))
	}
	out := make([]uint16, len(b)/2)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return out, nil
}

func formatBootNums(ns []uint16) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprintf("%04X", n)
	}
	return strings.Join(s, ",")
}

// parseBootNums reads "0001,000A" (hex, case-insensitive; "Boot0001" accepted).
func parseBootNums(s string) ([]uint16, error) {
	var out []uint16
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if len(f) == 8 && strings.EqualFold(f[:4], "boot") {
			f = f[4:]
		}
		if len(f) != 4 {
			return nil, fmt.Errorf("boot entry %q: want four hex digits", f)
		}
		n, err := strconv.ParseUint(f, 16, 16)
		if err != nil {
			return nil, fmt.Errorf("boot entry %q: want four hex digits", f)
		}
		if slices.Contains(out, uint16(n)) {
			return nil, fmt.Errorf("boot entry %04X listed twice", n)
		}
		out = append(out, uint16(n))
	}
	return out, nil
}

func u16s(ns []uint16) []byte {
	var b []byte
	for _, n := range ns {
		b = binary.LittleEndian.AppendUint16(b, n)
	}
	return b
}

// write is one variable change Apply makes.
type write struct {
	setting, name, guid string
	data                []byte // nil: delete
	reboot              bool
}

// Apply implements Backend. Every setting is checked before any is written.
func (e *EFIBackend) Apply(ctx context.Context, settings []proto.BIOSSettingValue) ([]string, bool, error) {
	var ws []write
	for _, s := range settings {
		w, err := e.plan(s)
		if err != nil {
			return nil, false, proto.Errorf(proto.CodeBadRequest, "setting %s: %v", s.Name, err)
		}
		ws = append(ws, w)
	}
	changed := []string{}
	reboot := false
	for _, w := range ws {
		attrs, cur, err := e.Vars.Get(w.name, w.guid)
		exists := err == nil
		if !exists {
			attrs = AttrNVBSRT
		} // else keep the variable's attributes: firmware refuses to change them
		if err != nil && !errors.Is(err, ErrNotFound) {
			return changed, reboot, err
		}
		switch {
		case w.data == nil && !exists, w.data != nil && exists && string(cur) == string(w.data):
			continue // already so: Ironic skips matching values
		case w.data == nil:
			err = e.Vars.Delete(w.name, w.guid)
		default:
			err = e.Vars.Set(w.name, w.guid, attrs, w.data)
		}
		if err != nil {
			return changed, reboot, fmt.Errorf("setting %s: %w", w.setting, err)
		}
		changed = append(changed, w.setting)
		reboot = reboot || w.reboot
	}
	return changed, reboot, nil
}

func (e *EFIBackend) plan(s proto.BIOSSettingValue) (write, error) {
	w := write{setting: s.Name, name: s.Name, guid: GlobalGUID, reboot: true}
	switch {
	case s.Name == "BootOrder":
		ns, err := parseBootNums(s.Value)
		if err != nil {
			return w, err
		}
		if err := e.entriesExist(ns); err != nil {
			return w, err
		}
		w.data = u16s(ns)
		if len(ns) == 0 {
			w.data = nil
		}
	case s.Name == "BootNext":
		ns, err := parseBootNums(s.Value)
		if err != nil || len(ns) > 1 {
			return w, fmt.Errorf("want one boot entry (0003) or an empty value")
		}
		if err := e.entriesExist(ns); err != nil {
			return w, err
		}
		if len(ns) == 1 {
			w.data = u16s(ns)
		}
	case s.Name == "Timeout":
		n, err := strconv.ParseUint(s.Value, 10, 16)
		if err != nil {
			return w, fmt.Errorf("want an integer from 0 to 65535")
		}
		w.data = binary.LittleEndian.AppendUint16(nil, uint16(n))
	case slices.Contains(readOnly, s.Name):
		return w, fmt.Errorf("read-only, owned by the firmware")
	case bootVarRe.MatchString(s.Name):
		return w, fmt.Errorf("boot entries are not settings; set BootOrder or BootNext")
	default:
		w.guid, w.reboot = FerrumGUID, false
		if s.Value != "" {
			w.data = []byte(s.Value)
		}
	}
	return w, nil
}

func (e *EFIBackend) entriesExist(ns []uint16) error {
	for _, n := range ns {
		if _, _, err := e.Vars.Get(fmt.Sprintf("Boot%04X", n), GlobalGUID); err != nil {
			return fmt.Errorf("boot entry %04X: %w", n, err)
		}
	}
	return nil
}

// FactoryReset implements Backend: it deletes every named setting and BootNext. BootOrder and
// the boot entries stay (the firmware owns them).
func (e *EFIBackend) FactoryReset(ctx context.Context) ([]string, bool, error) {
	names, err := e.Vars.List(FerrumGUID)
	if err != nil {
		return nil, false, err
	}
	slices.Sort(names)
	changed := []string{}
	for _, n := range names {
		if err := e.Vars.Delete(n, FerrumGUID); err != nil {
			return changed, false, err
		}
		changed = append(changed, n)
	}
	reboot := false
	if _, _, err := e.Vars.Get("BootNext", GlobalGUID); err == nil {
		if err := e.Vars.Delete("BootNext", GlobalGUID); err != nil {
			return changed, false, err
		}
		changed, reboot = append(changed, "BootNext"), true
	}
	return changed, reboot, nil
}

// BootEntries implements BootEntryLister: the Boot#### entries, those of BootOrder first. An
// entry that does not decode is left out.
func (e *EFIBackend) BootEntries(ctx context.Context) ([]proto.BootEntry, error) {
	names, err := e.Vars.List(GlobalGUID)
	if err != nil {
		return nil, err
	}
	order, err := e.bootOrder()
	if err != nil {
		return nil, err
	}
	rank := func(name string) int {
		n, _ := strconv.ParseUint(name[4:], 16, 16)
		if i := slices.Index(order, uint16(n)); i >= 0 {
			return i
		}
		return len(order) + int(n)
	}
	var boots []string
	for _, n := range names {
		if bootVarRe.MatchString(n) {
			boots = append(boots, n)
		}
	}
	slices.SortFunc(boots, func(a, b string) int { return rank(a) - rank(b) })
	out := []proto.BootEntry{}
	for _, n := range boots {
		_, b, err := e.Vars.Get(n, GlobalGUID)
		if err != nil {
			continue
		}
		lo, err := ParseLoadOption(b)
		if err != nil {
			continue
		}
		out = append(out, proto.BootEntry{Number: n[4:], Description: lo.Description,
			Active: lo.Attributes&LoadOptionActive != 0, DevicePath: hex.EncodeToString(lo.FilePath)})
	}
	return out, nil
}
