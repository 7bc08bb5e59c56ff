package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// MBRBin is syslinux's master boot record (Debian's syslinux-common).
const MBRBin = "/usr/lib/syslinux/mbr/mbr.bin"

// partMiB is the size of the test image's FAT partition, at 1 MiB.
const partMiB = 32

// guestModules are the modules the test image's init loads to see its virtio disk.
var guestModules = []string{"virtio_pci", "virtio_blk"}

// BuildImage writes a bootable raw disk image of size bytes to dir/image.raw and returns its
// path and sha256: syslinux's MBR, one active FAT16 partition at 1 MiB with syslinux, the
// ramdisk's Debian kernel and a small initramfs whose init (./guestinit) prints the marker; the
// rest is zeros (room for the config drive at the end of the disk). No root, no loop devices:
// the partition is made in its own file (mkfs.fat with the partition's offset as hidden
// sectors, mtools, `syslinux --install`) and copied into place.
func BuildImage(repo, dir, kernel string, size int64) (string, string, error) {
	if size < (partMiB+1)<<20 {
		return "", "", fmt.Errorf("image size %d below %d MiB", size, partMiB+1)
	}
	initrd, err := buildGuestInitrd(repo, dir, kernel)
	if err != nil {
		return "", "", err
	}
	part := filepath.Join(dir, "part.img")
	os.Remove(part)
	cfg := filepath.Join(dir, "syslinux.cfg")
	os.WriteFile(cfg, []byte("SERIAL 0 115200\nDEFAULT e2e\nPROMPT 0\nTIMEOUT 0\nLABEL e2e\n"+
		"  KERNEL /vmlinuz\n  INITRD /initrd.gz\n  APPEND console=ttyS0,115200 quiet\n"), 0o644)
	for _, c := range [][]string{
		{"mkfs.fat", "-C", "-F", "16", "-h", "2048", "-n", "FERRUME2E", part, fmt.Sprint(partMiB << 10)},
		{"mcopy", "-i", part, kernel, "::vmlinuz"},
		{"mcopy", "-i", part, initrd, "::initrd.gz"},
		{"mcopy", "-i", part, cfg, "::syslinux.cfg"},
		{"syslinux", "--install", part},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("%s: %w: %s", strings.Join(c, " "), err, bytes.TrimSpace(out))
		}
	}
	mbrCode, err := os.ReadFile(MBRBin)
	if err != nil {
		return "", "", fmt.Errorf("syslinux's mbr.bin: %w (apt-get install syslinux-common)", err)
	}
	mbr := make([]byte, 512)
	copy(mbr[:440], mbrCode)
	e := mbr[446:462]
	e[0] = 0x80                            // active: mbr.bin boots it
	copy(e[1:4], []byte{0xfe, 0xff, 0xff}) // CHS: use LBA
	e[4] = 0x0e                            // FAT16, LBA
	copy(e[5:8], []byte{0xfe, 0xff, 0xff})
	binary.LittleEndian.PutUint32(e[8:], 2048)
	binary.LittleEndian.PutUint32(e[12:], partMiB<<11)
	mbr[510], mbr[511] = 0x55, 0xaa

	img := filepath.Join(dir, "image.raw")
	f, err := os.Create(img)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return "", "", err
	}
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return "", "", err
	}
	p, err := os.ReadFile(part)
	if err != nil {
		return "", "", err
	}
	if _, err := f.WriteAt(p, 1<<20); err != nil {
		return "", "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		return "", "", err
	}
	return img, hex.EncodeToString(h.Sum(nil)), nil
}

// toQcow2 converts a raw image to qcow2 beside it (unallocated clusters for its zeros) and
// returns the new file and its sha256.
func toQcow2(ctx context.Context, raw string) (string, string, error) {
	out := strings.TrimSuffix(raw, filepath.Ext(raw)) + ".qcow2"
	if b, err := exec.CommandContext(ctx, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, out).CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("qemu-img convert: %w: %s", err, bytes.TrimSpace(b))
	}
	f, err := os.Open(out)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", "", err
	}
	return out, hex.EncodeToString(h.Sum(nil)), nil
}

// buildGuestInitrd builds ./guestinit statically and packs it with the virtio modules of
// kernel (from the ramdisk build's cache) into a gzipped newc archive.
func buildGuestInitrd(repo, dir, kernel string) (string, error) {
	initBin := filepath.Join(dir, "guestinit")
	cmd := exec.Command("go", "build", "-trimpath", "-o", initBin, "./initramfs/e2e/guestinit")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build guestinit: %w: %s", err, out)
	}
	mods, err := moduleFiles(filepath.Dir(kernel))
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "initrd.gz")
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	w := &cpioWriter{w: zw}
	w.dir("dev")
	w.dir("mods")
	if err := w.file("init", initBin, 0o755); err != nil {
		return "", err
	}
	for i, m := range mods {
		if err := w.file(fmt.Sprintf("mods/%02d-%s", i, filepath.Base(m)), m, 0o644); err != nil {
			return "", err
		}
	}
	w.trailer()
	if w.err != nil {
		return "", w.err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	return out, f.Close()
}

// moduleFiles finds guestModules and their dependencies, in load order, in the kernel's modules
// that the ramdisk build unpacked (out/cache/root/linux-image-*/lib/modules/KVER).
func moduleFiles(out string) ([]string, error) {
	kver, err := os.ReadFile(filepath.Join(out, "kver"))
	if err != nil {
		return nil, fmt.Errorf("the ramdisk build's kver: %w (make initramfs)", err)
	}
	deps, _ := filepath.Glob(filepath.Join(out, "cache", "root", "linux-image-*", "lib", "modules", strings.TrimSpace(string(kver)), "modules.dep"))
	if len(deps) == 0 {
		return nil, fmt.Errorf("no modules.dep for kernel %s under %s/cache (make initramfs)", bytes.TrimSpace(kver), out)
	}
	base := filepath.Dir(deps[0])
	f, err := os.Open(deps[0])
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dep := map[string][]string{} // module path → dependency paths
	byName := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		dep[mod] = strings.Fields(rest)
		name := strings.TrimSuffix(filepath.Base(mod), ".ko")
		byName[strings.ReplaceAll(name, "-", "_")] = mod
	}
	var order []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(m string) {
		if seen[m] {
			return
		}
		seen[m] = true
		d := dep[m]
		for i := len(d) - 1; i >= 0; i-- { // modules.dep lists the deepest last
			visit(d[i])
		}
		order = append(order, filepath.Join(base, m))
	}
	for _, name := range guestModules {
		m, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("module %s not in %s (built in? compressed?)", name, deps[0])
		}
		visit(m)
	}
	return order, nil
}

// cpioWriter writes a newc archive.
type cpioWriter struct {
	w   io.Writer
	ino int
	err error
}

func (c *cpioWriter) header(name string, mode uint32, size int) {
	if c.err != nil {
		return
	}
	c.ino++
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name)+1, 0)
	b := append([]byte(hdr), name...)
	b = append(b, 0)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	_, c.err = c.w.Write(b)
}

func (c *cpioWriter) pad(n int) {
	if c.err == nil && n%4 != 0 {
		_, c.err = c.w.Write(make([]byte, 4-n%4))
	}
}

func (c *cpioWriter) dir(name string) { c.header(name, 0o040755, 0) }

func (c *cpioWriter) file(name, src string, perm uint32) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	c.header(name, 0o100000|perm, len(b))
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
	c.pad(len(b))
	return c.err
}

func (c *cpioWriter) trailer() { c.header("TRAILER!!!", 0, 0) }
