package image

import (
	"os"
	"syscall"
	"unsafe"
)

// oDirect opens a descriptor that bypasses the page cache.
const oDirect = syscall.O_DIRECT

const (
	blkZeroOut      = 0x127f // BLKZEROOUT
	fallocPunchHole = 0x02   // FALLOC_FL_PUNCH_HOLE
	fallocKeepSize  = 0x01   // FALLOC_FL_KEEP_SIZE
)

// zeroRange zeroes [off, off+n) without writing the zeros: BLKZEROOUT on a block device (the
// device offloads it where it can), a punched hole in a file.
func zeroRange(f *os.File, block bool, off, n int64) error {
	if block {
		if off%512 != 0 || n%512 != 0 {
			return syscall.EINVAL
		}
		r := [2]uint64{uint64(off), uint64(n)}
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), blkZeroOut, uintptr(unsafe.Pointer(&r))); e != 0 {
			return e
		}
		return nil
	}
	return syscall.Fallocate(int(f.Fd()), fallocPunchHole|fallocKeepSize, off, n)
}
