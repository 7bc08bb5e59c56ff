package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"unsafe"
)

// align is the offset, length and memory alignment of O_DIRECT writes; 4096 suits devices with
// 512-byte and 4 KiB logical blocks.
const align = 4096

// alignedBuf returns n bytes starting at an align boundary.
func alignedBuf(n int) []byte {
	b := make([]byte, n+align)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % align); r != 0 {
		skip = align - r
	}
	return b[skip : skip+n : skip+n]
}

func isAligned(p []byte, off int64) bool {
	return len(p)%align == 0 && off%align == 0 && uintptr(unsafe.Pointer(&p[0]))%align == 0
}

// target is the disk (or file) being written. Data goes through a coalescer that merges
// contiguous writes into large aligned O_DIRECT pwrites; ranges that must read as zeros go
// through zeroer (BLKZEROOUT on a device, a punched hole in a file). Not safe for concurrent use.
type target struct {
	path   string
	f      *os.File // buffered descriptor: unaligned pieces, zeroing, sync
	direct *os.File // O_DIRECT descriptor, or nil where the file system refuses it
	block  bool     // a block device
	fresh  bool     // a file emptied before writing: what is not written reads as zeros
	size   int64    // device size; for a file, the size it was given (grows with writes)

	coalesce int    // coalescer size
	buf      []byte // coalescer, allocated on first use: buf[:n] goes to off
	bufOff   int64
	bufN     int

	zOff, zN int64 // pending zero range

	written atomic.Int64 // data bytes written
	touched atomic.Bool  // anything reached the disk (wipe on failure)
}

func openTarget(path string, coalesce int) (*target, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("target %s: %w", path, err)
	case fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0:
	case fi.Mode().IsRegular():
	default:
		return nil, fmt.Errorf("target %s is neither a block device nor a regular file", path)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open target: %w", err)
	}
	t := &target{path: path, f: f, coalesce: coalesce}
	fi, err = f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("target %s: %w", path, err)
	}
	t.block = fi.Mode()&os.ModeDevice != 0
	if t.size, err = f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("target %s size: %w", path, err)
	}
	if d, err := os.OpenFile(path, os.O_WRONLY|oDirect, 0); err == nil {
		t.direct = d
	}
	return t, nil
}

// setSize checks that a disk of n bytes fits a device, or makes a file n bytes of holes
// (n < 0: empty, to grow with the writes), so that nothing needs zeroing.
func (t *target) setSize(n int64) error {
	if t.block {
		if n > t.size {
			return fmt.Errorf("image of %d bytes does not fit %s (%d bytes)", n, t.path, t.size)
		}
		return nil
	}
	t.touched.Store(true)
	if !t.fresh {
		if err := t.f.Truncate(0); err != nil {
			return fmt.Errorf("empty target: %w", err)
		}
		t.fresh = true
	}
	if n < 0 {
		n = 0
	}
	if err := t.f.Truncate(n); err != nil {
		return fmt.Errorf("size target: %w", err)
	}
	t.size = n
	return nil
}

// WriteAt queues p for off. p is copied unless it can be written at once.
func (t *target) WriteAt(p []byte, off int64) error {
	if t.block && off+int64(len(p)) > t.size {
		return fmt.Errorf("write at %d+%d past the end of %s (%d bytes)", off, len(p), t.path, t.size)
	}
	if t.bufN > 0 && off != t.bufOff+int64(t.bufN) {
		if err := t.flush(); err != nil {
			return err
		}
	}
	if t.bufN == 0 && len(p) >= t.coalesce/4 && isAligned(p, off) {
		return t.pwrite(p, off)
	}
	if t.buf == nil {
		t.buf = alignedBuf(t.coalesce)
	}
	for len(p) > 0 {
		if t.bufN == 0 {
			t.bufOff = off
		}
		n := copy(t.buf[t.bufN:], p)
		t.bufN += n
		p, off = p[n:], off+int64(n)
		if t.bufN == len(t.buf) {
			if err := t.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Zero makes [off, off+n) read as zeros.
func (t *target) Zero(off, n int64) error {
	if n <= 0 {
		return nil
	}
	if t.zN > 0 && off == t.zOff+t.zN {
		t.zN += n
		return nil
	}
	if err := t.flushZero(); err != nil {
		return err
	}
	t.zOff, t.zN = off, n
	return nil
}

func (t *target) flush() error {
	if t.bufN == 0 {
		return nil
	}
	n, off := t.bufN, t.bufOff
	t.bufN = 0
	head := n &^ (align - 1)
	if off%align != 0 {
		head = 0
	}
	if head > 0 {
		if err := t.pwrite(t.buf[:head], off); err != nil {
			return err
		}
	}
	if head < n {
		if err := t.pwriteBuffered(t.buf[head:n], off+int64(head)); err != nil {
			return err
		}
	}
	return nil
}

// pwrite writes p at off now: O_DIRECT when aligned. Safe for concurrent use, unlike the
// coalescing methods.
func (t *target) pwrite(p []byte, off int64) error {
	if t.direct == nil || !isAligned(p, off) {
		return t.pwriteBuffered(p, off)
	}
	if t.block && off+int64(len(p)) > t.size {
		return fmt.Errorf("write at %d+%d past the end of %s (%d bytes)", off, len(p), t.path, t.size)
	}
	t.touched.Store(true)
	if _, err := t.direct.WriteAt(p, off); err != nil {
		return fmt.Errorf("write %s at %d: %w", t.path, off, err)
	}
	t.written.Add(int64(len(p)))
	return nil
}

func (t *target) pwriteBuffered(p []byte, off int64) error {
	if t.block && off+int64(len(p)) > t.size {
		return fmt.Errorf("write at %d+%d past the end of %s (%d bytes)", off, len(p), t.path, t.size)
	}
	t.touched.Store(true)
	if _, err := t.f.WriteAt(p, off); err != nil {
		return fmt.Errorf("write %s at %d: %w", t.path, off, err)
	}
	t.written.Add(int64(len(p)))
	return nil
}

func (t *target) flushZero() error {
	if t.zN == 0 {
		return nil
	}
	off, n := t.zOff, t.zN
	t.zN = 0
	return t.zero(off, n)
}

// zero zeroes [off, off+n) now. Safe for concurrent use.
func (t *target) zero(off, n int64) error {
	if t.fresh {
		return nil // never written since the file was emptied
	}
	if !t.block && off >= t.size {
		return nil // past the end of a file: reads as zeros once the file is sized
	}
	if !t.block && off+n > t.size {
		n = t.size - off
	}
	if t.block && off+n > t.size {
		return fmt.Errorf("zero at %d+%d past the end of %s (%d bytes)", off, n, t.path, t.size)
	}
	t.touched.Store(true)
	if err := zeroRange(t.f, t.block, off, n); err == nil {
		return nil
	}
	return t.writeZeros(off, n)
}

// writeZeros writes zeros where the device or file system cannot zero a range cheaply.
func (t *target) writeZeros(off, n int64) error {
	z := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, int64(len(z)))
		if _, err := t.f.WriteAt(z[:k], off); err != nil {
			return fmt.Errorf("zero %s at %d: %w", t.path, off, err)
		}
		off, n = off+k, n-k
	}
	return nil
}

// Finish flushes everything and syncs the data to stable storage.
func (t *target) Finish() error {
	if err := t.flush(); err != nil {
		return err
	}
	if err := t.flushZero(); err != nil {
		return err
	}
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", t.path, err)
	}
	return nil
}

// Wipe makes a partly written disk unbootable: the first and last MiB (MBR, GPT and its
// backup) are zeroed and synced.
func (t *target) Wipe() error {
	t.bufN, t.zN = 0, 0
	size := t.size
	if fi, err := t.f.Stat(); err == nil && !t.block {
		size = fi.Size()
	}
	const mib = 1 << 20
	var errs []error
	errs = append(errs, t.writeZeros(0, min(size, mib)))
	if size > mib {
		tail := max(size-mib, mib)
		errs = append(errs, t.writeZeros(tail, size-tail))
	}
	errs = append(errs, t.f.Sync())
	return errors.Join(errs...)
}

func (t *target) Close() error {
	if t.direct != nil {
		t.direct.Close()
	}
	return t.f.Close()
}

var zeroMiB = make([]byte, 1<<20)

// allZero reports whether p holds only zeros.
func allZero(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(zeroMiB))
		if !bytes.Equal(p[:n], zeroMiB[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}
