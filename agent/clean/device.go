package clean

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// device is an open disk or disk image file.
type device struct {
	f      *os.File
	path   string
	block  bool  // a block device, not a file
	size   int64 // bytes
	sector int64 // logical sector size
}

// ErrInUse: a block device is held open exclusively (mounted, an md or LVM member).
var ErrInUse = errors.New("device in use (mounted, or a member of an md array or LVM); stop it first")

// ErrReadOnly: the device or file cannot be written.
var ErrReadOnly = errors.New("device is read-only")

// openDevice opens path for writing: a block device exclusively (O_EXCL), or a regular file.
func openDevice(path string) (*device, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	d := &device{path: path, sector: 512}
	flags := os.O_RDWR
	switch {
	case st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0:
		d.block = true
		flags |= unix.O_EXCL
	case st.Mode().IsRegular():
	default:
		return nil, fmt.Errorf("open %s: not a block device or a regular file", path)
	}
	if d.block {
		if ro, err := isReadOnly(path); err == nil && ro {
			return nil, fmt.Errorf("open %s: %w", path, ErrReadOnly)
		}
	}
	f, err := os.OpenFile(path, flags|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.EBUSY):
		return nil, fmt.Errorf("open %s: %w", path, ErrInUse)
	case errors.Is(err, unix.EROFS), errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return nil, fmt.Errorf("open %s: %w (%v)", path, ErrReadOnly, err)
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	d.f = f
	if d.size, err = f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("size of %s: %w", path, err)
	}
	if d.block {
		if n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET); err == nil && n >= 512 {
			d.sector = int64(n)
		}
	}
	return d, nil
}

// isReadOnly reports the kernel's read-only flag of a block device (BLKROGET).
func isReadOnly(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	ro, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKROGET)
	return ro != 0, err
}

func (d *device) Close() error { return d.f.Close() }

// ioctlRange issues a block-device ioctl taking a {start, length} uint64 pair.
func (d *device) ioctlRange(req uint, off, n int64) error {
	r := [2]uint64{uint64(off), uint64(n)}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, d.f.Fd(), uintptr(req), uintptr(unsafe.Pointer(&r[0])))
	if errno != 0 {
		return errno
	}
	return nil
}

// unsupported reports an ioctl error meaning the device cannot do it.
func unsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EIO)
}

// zero writes zeros over [off, off+n): BLKZEROOUT on a block device (the kernel falls back to
// writing zeros when the device has no WRITE ZEROES), WriteAt on a file.
func (d *device) zero(off, n int64, buf []byte) error {
	if d.block {
		err := d.ioctlRange(unix.BLKZEROOUT, off, n)
		if err == nil || !unsupported(err) {
			return err
		}
	}
	for n > 0 {
		c := min(n, int64(len(buf)))
		if _, err := d.f.WriteAt(buf[:c], off); err != nil {
			return err
		}
		off += c
		n -= c
	}
	return nil
}

// rereadPartitions asks the kernel to re-read the partition table (BLKRRPART); a no-op on files.
func (d *device) rereadPartitions() error {
	if !d.block {
		return nil
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, d.f.Fd(), uintptr(unix.BLKRRPART), 0)
	if errno != 0 {
		return errno
	}
	return nil
}
