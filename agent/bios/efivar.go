package bios

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf16"
	"unsafe"

	"golang.org/x/sys/unix"
)

// GUIDs of the variables this package reads and writes.
const (
	// GlobalGUID is EFI_GLOBAL_VARIABLE: BootOrder, BootNext, Boot####, Timeout, SecureBoot.
	GlobalGUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
	// FerrumGUID is Ferrum's vendor GUID: named settings live under it (firmware refuses
	// made-up names under the global GUID).
	FerrumGUID = "5e7a1c3d-0f2b-4e8a-9c6d-f3e2b1a09d47"
)

// Variable attributes (UEFI spec 8.2).
const (
	AttrNonVolatile       uint32 = 0x1
	AttrBootserviceAccess uint32 = 0x2
	AttrRuntimeAccess     uint32 = 0x4
	// AttrNVBSRT is what persistent boot variables and Ferrum's settings carry.
	AttrNVBSRT = AttrNonVolatile | AttrBootserviceAccess | AttrRuntimeAccess
)

// fsImmutableFL is FS_IMMUTABLE_FL of linux/fs.h.
const fsImmutableFL = 0x10

// efivarfsMagic is efivarfs's statfs f_type.
const efivarfsMagic = 0xde5e81e4

// MaxVarSize bounds a variable read or written; firmware stores far less.
const MaxVarSize = 64 << 10

// ErrNotFound: no such variable.
var ErrNotFound = errors.New("efi variable not found")

// EFIVars reads and writes UEFI variables through an efivarfs mount, or a directory of files
// in efivarfs's format (tests): one file Name-GUID per variable holding a 4-byte little-endian
// attribute word and the data.
type EFIVars struct {
	dir  string
	real bool // an efivarfs mount: no O_TRUNC, writes replace the variable
}

// OpenEFIVars opens dir (normally /sys/firmware/efi/efivars).
func OpenEFIVars(dir string) (*EFIVars, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil, fmt.Errorf("efivars %s: %w", dir, err)
	}
	return &EFIVars{dir: dir, real: uint32(st.Type) == efivarfsMagic}, nil
}

func (e *EFIVars) path(name, guid string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || len(name) > 512 {
		return "", fmt.Errorf("efi variable name %q", name)
	}
	return filepath.Join(e.dir, name+"-"+guid), nil
}

// Get reads a variable: its attributes and data.
func (e *EFIVars) Get(name, guid string) (uint32, []byte, error) {
	p, err := e.path(name, guid)
	if err != nil {
		return 0, nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil, fmt.Errorf("%s-%s: %w", name, guid, ErrNotFound)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read efi variable %s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxVarSize+5))
	n := len(b)
	if err != nil {
		return 0, nil, fmt.Errorf("read efi variable %s: %w", name, err)
	}
	if n < 4 {
		return 0, nil, fmt.Errorf("efi variable %s: %d bytes, no attribute word", name, n)
	}
	if n > MaxVarSize+4 {
		return 0, nil, fmt.Errorf("efi variable %s larger than %d bytes", name, MaxVarSize)
	}
	return binary.LittleEndian.Uint32(b), b[4:n:n], nil
}

// Set writes a variable in one write, clearing the immutable flag efivarfs puts on existing
// variables first and putting it back afterwards.
func (e *EFIVars) Set(name, guid string, attrs uint32, data []byte) error {
	p, err := e.path(name, guid)
	if err != nil {
		return err
	}
	if len(data) > MaxVarSize {
		return fmt.Errorf("efi variable %s: %d bytes, at most %d", name, len(data), MaxVarSize)
	}
	restore, err := clearImmutable(p)
	if err != nil {
		return fmt.Errorf("write efi variable %s: %w", name, err)
	}
	flags := os.O_WRONLY | os.O_CREATE
	if !e.real {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(p, flags, 0o644)
	if err != nil {
		restore()
		return fmt.Errorf("write efi variable %s: %w", name, err)
	}
	buf := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(data)), attrs)
	_, werr := f.Write(append(buf, data...))
	cerr := f.Close()
	restore()
	if werr != nil {
		return fmt.Errorf("write efi variable %s: %w", name, werr)
	}
	if cerr != nil {
		return fmt.Errorf("write efi variable %s: %w", name, cerr)
	}
	return nil
}

// Delete removes a variable; a missing one is not an error.
func (e *EFIVars) Delete(name, guid string) error {
	p, err := e.path(name, guid)
	if err != nil {
		return err
	}
	if _, err := clearImmutable(p); err != nil {
		return fmt.Errorf("delete efi variable %s: %w", name, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete efi variable %s: %w", name, err)
	}
	return nil
}

// List returns the names of the variables under guid, sorted by the directory.
func (e *EFIVars) List(guid string) ([]string, error) {
	ents, err := os.ReadDir(e.dir)
	if err != nil {
		return nil, fmt.Errorf("list efi variables: %w", err)
	}
	var out []string
	for _, ent := range ents {
		if n, ok := strings.CutSuffix(ent.Name(), "-"+guid); ok && n != "" {
			out = append(out, n)
		}
	}
	return out, nil
}

// clearImmutable clears FS_IMMUTABLE_FL on path if set and returns a func that sets it again.
// A missing file or a filesystem without the flag (tmpfs) is fine.
func clearImmutable(path string) (restore func(), err error) {
	noop := func() {}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return noop, nil
	}
	if err != nil {
		return noop, err
	}
	defer f.Close()
	flags, err := getFlags(f)
	if err != nil || flags&fsImmutableFL == 0 {
		return noop, nil // no flags on this filesystem, or not immutable
	}
	if err := setFlags(f, flags&^fsImmutableFL); err != nil {
		return noop, fmt.Errorf("clear immutable flag: %w", err)
	}
	return func() {
		if f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0); err == nil {
			if cur, err := getFlags(f); err == nil {
				_ = setFlags(f, cur|fsImmutableFL)
			}
			f.Close()
		}
	}, nil
}

func getFlags(f *os.File) (int, error) {
	var v int32 // the kernel reads and writes an int, whatever the ioctl's declared size
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(unix.FS_IOC_GETFLAGS), uintptr(unsafe.Pointer(&v)))
	if errno != 0 {
		return 0, errno
	}
	return int(v), nil
}

func setFlags(f *os.File, flags int) error {
	v := int32(flags)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(unix.FS_IOC_SETFLAGS), uintptr(unsafe.Pointer(&v)))
	if errno != 0 {
		return errno
	}
	return nil
}

// LoadOption is an EFI_LOAD_OPTION, the content of a Boot#### variable.
type LoadOption struct {
	Attributes   uint32
	Description  string
	FilePath     []byte // the device path list, as is
	OptionalData []byte
}

// LoadOptionActive is LOAD_OPTION_ACTIVE.
const LoadOptionActive = 0x1

// ParseLoadOption decodes an EFI_LOAD_OPTION.
func ParseLoadOption(b []byte) (LoadOption, error) {
	if len(b) < 6 {
		return LoadOption{}, fmt.Errorf("load option: %d bytes, shorter than its header", len(b))
	}
	lo := LoadOption{Attributes: binary.LittleEndian.Uint32(b)}
	pathLen := int(binary.LittleEndian.Uint16(b[4:]))
	rest := b[6:]
	var u []uint16
	for {
		if len(rest) < 2 {
			return LoadOption{}, fmt.Errorf("load option: description not terminated")
		}
		c := binary.LittleEndian.Uint16(rest)
		rest = rest[2:]
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	lo.Description = string(utf16.Decode(u))
	if pathLen > len(rest) {
		return LoadOption{}, fmt.Errorf("load option: device path of %d bytes, only %d left", pathLen, len(rest))
	}
	lo.FilePath = append([]byte{}, rest[:pathLen]...)
	lo.OptionalData = append([]byte{}, rest[pathLen:]...)
	return lo, nil
}

// Marshal encodes the load option.
func (lo LoadOption) Marshal() ([]byte, error) {
	if len(lo.FilePath) > 0xffff {
		return nil, fmt.Errorf("load option: device path of %d bytes", len(lo.FilePath))
	}
	if strings.ContainsRune(lo.Description, 0) {
		return nil, fmt.Errorf("load option: description contains NUL")
	}
	b := binary.LittleEndian.AppendUint32(nil, lo.Attributes)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(lo.FilePath)))
	for _, c := range utf16.Encode([]rune(lo.Description)) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	b = append(b, 0, 0)
	b = append(b, lo.FilePath...)
	return append(b, lo.OptionalData...), nil
}
