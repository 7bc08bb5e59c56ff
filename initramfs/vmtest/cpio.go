package vmtest

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
)

// File is a file the test adds to the ramdisk through an extra archive the kernel unpacks
// after the image's own (a later entry replaces an earlier one of the same path).
type File struct {
	Path string // absolute path in the guest
	Data []byte
	Mode uint32 // permission bits; 0 means 0o644
}

// writeCPIO writes files as an uncompressed newc archive: parent directories first, entries
// sorted, zero times, so the bytes depend only on the files.
func writeCPIO(w io.Writer, files []File) error {
	bw := bufio.NewWriter(w)
	dirs := map[string]bool{}
	var entries []File
	for _, f := range files {
		p := strings.TrimPrefix(path.Clean("/"+f.Path), "/")
		if p == "" {
			return fmt.Errorf("vmtest: file with an empty path")
		}
		for d := path.Dir(p); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
		f.Path = p
		entries = append(entries, f)
	}
	var dirList []string
	for d := range dirs {
		dirList = append(dirList, d)
	}
	slices.Sort(dirList) // a parent sorts before its children
	slices.SortFunc(entries, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	ino := 1
	for _, d := range dirList {
		if err := writeEntry(bw, ino, d, 0o40755, nil); err != nil {
			return err
		}
		ino++
	}
	for _, f := range entries {
		mode := f.Mode & 0o7777
		if mode == 0 {
			mode = 0o644
		}
		if err := writeEntry(bw, ino, f.Path, 0o100000|mode, f.Data); err != nil {
			return err
		}
		ino++
	}
	if err := writeEntry(bw, 0, "TRAILER!!!", 0, nil); err != nil {
		return err
	}
	return bw.Flush()
}

func writeEntry(w *bufio.Writer, ino int, name string, mode uint32, data []byte) error {
	nlink := 1
	if mode&0o40000 != 0 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	if _, err := w.WriteString(hdr + name + "\x00"); err != nil {
		return fmt.Errorf("vmtest: cpio: %w", err)
	}
	if err := pad4(w, len(hdr)+len(name)+1); err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("vmtest: cpio: %w", err)
	}
	return pad4(w, len(data))
}

func pad4(w *bufio.Writer, n int) error {
	if _, err := w.Write(make([]byte, (4-n%4)%4)); err != nil {
		return fmt.Errorf("vmtest: cpio: %w", err)
	}
	return nil
}
