// Package blockdev discovers the machine's disks from sysfs: the whole-disk block devices a
// capability may write (SCSI/SATA/SAS, virtio, NVMe, MMC, Xen) and assembled software RAID
// (md) arrays, with the attributes Ironic's inventory and root device hints use.
//
// It reads files only (no udev, no lsblk, no ioctls), under a root directory that is "/" in
// production and a fixture tree in tests, so the same code runs on fixtures captured from a
// machine or a VM. It is internal to agent/: the capabilities (inspect, image, raid, clean)
// import it.
//
// Like Ironic's agent it leaves out what is not a disk: loop, ram, zram, device-mapper (LVM,
// multipath, crypt), optical (sr) and floppy (fd) drives, nbd, partitions, MMC boot and RPMB
// areas, hidden NVMe multipath paths, and devices of size 0. md arrays are listed (Type is
// their RAID level, e.g. "raid1") so that hints may name one (name: /dev/md0); inactive arrays
// have size 0 and are left out.
package blockdev

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Disk is one whole-disk block device.
type Disk struct {
	// Name is the device node, e.g. /dev/sda.
	Name string
	// Size in bytes.
	Size int64
	// Type is "disk", or an md array's RAID level ("raid1", "raid0", "linear", ...).
	Type string
	// Rotational is the kernel's queue/rotational (always true for virtio-blk).
	Rotational bool
	// Model and Vendor as the device reports them (SCSI INQUIRY, NVMe identify, or the
	// device's PCI vendor ID for virtio, as Ironic's agent reports it).
	Model, Vendor string
	// Serial from the device (virtio serial, NVMe serial, SCSI VPD page 0x80).
	Serial string
	// WWN in udev's form: "0x" + the NAA identifier for SCSI/SATA/SAS, the kernel's wwid
	// (eui./nguid./nvme.) for NVMe. WWNWithExtension adds a 16-byte NAA's vendor extension
	// (equal to WWN without one); WWNVendorExtension is that extension alone.
	WWN, WWNWithExtension, WWNVendorExtension string
	// HCTL is the SCSI address host:channel:target:lun, SCSI devices only.
	HCTL string
	// ByPath is the device's /dev/disk/by-path name, taken from /dev/disk/by-path when udev
	// made one, else computed from the sysfs path as udev's path_id does for PCI (virtio,
	// NVMe, SCSI, ATA, SAS, USB). Empty when there is no stable path (md, virtual devices).
	ByPath string
	// Tran is the transport as lsblk names it: sata, sas, nvme, usb, iscsi, fc, or "".
	Tran string
	// LogicalSectorSize and PhysicalSectorSize in bytes.
	LogicalSectorSize, PhysicalSectorSize int
	// Removable and ReadOnly are the kernel's removable and ro flags.
	Removable, ReadOnly bool
	// SysPath is the device's directory under sysfs, relative to the root (e.g.
	// sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda).
	SysPath string
}

// KName is the kernel's name of the device, e.g. sda.
func (d Disk) KName() string { return strings.TrimPrefix(d.Name, "/dev/") }

// skipPrefixes are /sys/block names that are never disks.
var skipPrefixes = []string{"loop", "ram", "zram", "dm-", "sr", "fd", "nbd"}

var (
	mmcSpecial = regexp.MustCompile(`^mmcblk\d+(boot\d+|rpmb)$`)
	hctlRe     = regexp.MustCompile(`^\d+:\d+:\d+:\d+$`)
	pciRe      = regexp.MustCompile(`^[0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)
	usbIfRe    = regexp.MustCompile(`^\d+-[\d.]+:\d+\.\d+$`)
	nvmeNsRe   = regexp.MustCompile(`^nvme\d+(?:c\d+)?n(\d+)$`)
	hostRe     = regexp.MustCompile(`^host(\d+)$`)
	ataRe      = regexp.MustCompile(`^ata(\d+)$`)
)

// List returns the disks under root's /sys/block, sorted by name. A device that disappears
// while it is read is left out; any other read error fails the call.
func List(root string) ([]Disk, error) {
	dir := filepath.Join(root, "sys", "block")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("blockdev: list %s: %w", dir, err)
	}
	byPath := byPathLinks(root)
	var out []Disk
	for _, e := range ents {
		name := e.Name()
		if skipName(name) {
			continue
		}
		d, ok, err := read(root, name, byPath)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b Disk) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Get returns one disk by device node (/dev/sda) or kernel name (sda). It fails for a device
// List would leave out.
func Get(root, name string) (Disk, error) {
	k := strings.TrimPrefix(name, "/dev/")
	if k == "" || strings.ContainsAny(k, "/") || k == "." || k == ".." {
		return Disk{}, fmt.Errorf("blockdev: bad device name %q", name)
	}
	if skipName(k) {
		return Disk{}, fmt.Errorf("blockdev: %s is not a disk", name)
	}
	d, ok, err := read(root, k, byPathLinks(root))
	if err != nil {
		return Disk{}, err
	}
	if !ok {
		return Disk{}, fmt.Errorf("blockdev: %s is not a disk", name)
	}
	return d, nil
}

func skipName(name string) bool {
	for _, p := range skipPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return mmcSpecial.MatchString(name)
}

// read reads one /sys/block entry; ok is false for a device that is not a disk.
func read(root, name string, byPath map[string]string) (Disk, bool, error) {
	blk := filepath.Join(root, "sys", "block", name)
	attr := func(rel string) string { return readAttr(filepath.Join(blk, rel)) }
	if exists(filepath.Join(blk, "partition")) || attr("hidden") == "1" {
		return Disk{}, false, nil
	}
	sizeStr, err := os.ReadFile(filepath.Join(blk, "size"))
	if err != nil {
		return Disk{}, false, fmt.Errorf("blockdev: %s: %w", name, err)
	}
	sectors, err := strconv.ParseInt(strings.TrimSpace(string(sizeStr)), 10, 64)
	if err != nil || sectors < 0 {
		return Disk{}, false, fmt.Errorf("blockdev: %s: bad size %q", name, strings.TrimSpace(string(sizeStr)))
	}
	if sectors == 0 {
		return Disk{}, false, nil
	}
	d := Disk{Name: "/dev/" + name, Size: sectors * 512, Type: "disk",
		Rotational: attr("queue/rotational") == "1", Removable: attr("removable") == "1", ReadOnly: attr("ro") == "1"}
	d.LogicalSectorSize, _ = strconv.Atoi(attr("queue/logical_block_size"))
	d.PhysicalSectorSize, _ = strconv.Atoi(attr("queue/physical_block_size"))
	if real, err := filepath.EvalSymlinks(blk); err == nil {
		if rel, err := filepath.Rel(root, real); err == nil {
			d.SysPath = filepath.ToSlash(rel)
		}
	}
	if level := attr("md/level"); strings.HasPrefix(name, "md") && level != "" {
		d.Type = level
		return d, true, nil
	}
	d.Model = attr("device/model")
	d.Vendor = attr("device/vendor")
	d.Serial = attr("serial")
	if d.Serial == "" {
		d.Serial = attr("device/serial")
	}
	if d.Serial == "" {
		if b, err := os.ReadFile(filepath.Join(blk, "device", "vpd_pg80")); err == nil {
			d.Serial, _ = ParseVPD80(b)
		}
	}
	if strings.HasPrefix(name, "nvme") {
		d.WWN = attr("wwid")
		if d.WWN == "" {
			d.WWN = attr("device/wwid")
		}
		d.WWNWithExtension = d.WWN
	} else {
		d.WWN, d.WWNWithExtension, d.WWNVendorExtension = ParseWWID(attr("device/wwid"))
	}
	elems := strings.Split(d.SysPath, "/")
	for _, e := range elems {
		if hctlRe.MatchString(e) {
			d.HCTL = e
		}
	}
	d.Tran = tran(d.SysPath)
	if p, ok := byPath[name]; ok {
		d.ByPath = p
	} else if p := pathID(root, name, elems); p != "" {
		d.ByPath = "/dev/disk/by-path/" + p
	}
	return d, true, nil
}

// ParseVPD80 returns the unit serial number of a SCSI VPD page 0x80 (Unit Serial Number):
// a 4-byte header whose bytes 2–3 give the length, then the serial in ASCII, space padded.
func ParseVPD80(b []byte) (string, error) {
	if len(b) < 4 || b[1] != 0x80 {
		return "", errors.New("blockdev: not a VPD page 0x80")
	}
	n := int(b[2])<<8 | int(b[3])
	if n > len(b)-4 {
		return "", fmt.Errorf("blockdev: VPD page 0x80 says %d bytes, has %d", n, len(b)-4)
	}
	s := strings.Trim(string(b[4:4+n]), " \x00\t\r\n")
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			return "", errors.New("blockdev: VPD page 0x80 serial is not printable ASCII")
		}
	}
	return s, nil
}

// ParseWWID turns a SCSI device's wwid ("naa.5000c500a1b2c3d4", or a 32-digit registered
// extended NAA) into udev's ID_WWN, ID_WWN_WITH_EXTENSION and ID_WWN_VENDOR_EXTENSION. Other
// designators (t10., eui.) give no WWN, as with udev.
func ParseWWID(wwid string) (wwn, withExt, vendorExt string) {
	h, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(wwid)), "naa.")
	if !ok {
		return "", "", ""
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", "", ""
	}
	switch len(h) {
	case 16:
		return "0x" + h, "0x" + h, ""
	case 32:
		return "0x" + h[:16], "0x" + h, "0x" + h[16:]
	}
	return "", "", ""
}

// tran names the transport from the device's sysfs path, as lsblk's TRAN column does.
func tran(sysPath string) string {
	p := "/" + sysPath + "/"
	switch {
	case strings.Contains(p, "/nvme/") || strings.Contains(p, "/nvme-subsystem/"):
		return "nvme"
	case strings.Contains(p, "/usb"):
		return "usb"
	case strings.Contains(p, "/end_device-"):
		return "sas"
	case strings.Contains(p, "/rport-"):
		return "fc"
	case strings.Contains(p, "/session"):
		return "iscsi"
	}
	for _, e := range strings.Split(sysPath, "/") {
		if ataRe.MatchString(e) {
			return "sata"
		}
	}
	return ""
}

// pathID computes the device's by-path name from its sysfs path the way udev's path_id does
// for the common cases: a platform parent, the innermost PCI function, then the bus-specific
// parts (SCSI, ATA, SAS, USB, NVMe namespace). It returns "" when the device has no PCI or
// platform parent.
func pathID(root, name string, elems []string) string {
	end := len(elems) - 1 // the device itself
	if end > 0 && elems[end-1] == "block" {
		end--
	}
	var parts []string
	add := func(s string) { parts = append([]string{s}, parts...) }
	full := strings.Join(elems, "/")
	pci := false
	for i := end - 1; i >= 1; i-- {
		e := elems[i]
		switch {
		case pci && pciRe.MatchString(e):
			// bridges above the innermost PCI function are not part of the path
		case strings.HasPrefix(e, "nvme") && elems[i-1] == "nvme":
			nsid := readAttr(filepath.Join(root, "sys", "block", name, "nsid"))
			if nsid == "" {
				if m := nvmeNsRe.FindStringSubmatch(name); m != nil {
					nsid = m[1]
				}
			}
			add("nvme-" + nsid)
		case hctlRe.MatchString(e):
			add(scsiPart(root, elems, i, full))
		case usbIfRe.MatchString(e):
			_, port, _ := strings.Cut(e, "-")
			add("usb-0:" + port)
		case pciRe.MatchString(e):
			add("pci-" + e)
			pci = true
		case elems[i-1] == "platform":
			// a platform device, or the platform host bridge of a PCI bus (arm64)
			add("platform-" + e)
			return strings.Join(parts, "-")
		}
	}
	if !pci {
		return ""
	}
	return strings.Join(parts, "-")
}

// scsiPart is path_id's name for the SCSI device elems[i] (h:c:t:l).
func scsiPart(root string, elems []string, i int, full string) string {
	hctl := elems[i]
	f := strings.Split(hctl, ":")
	lun := f[3]
	switch {
	case strings.Contains(full, "/end_device-"):
		for _, e := range elems[:i] {
			if strings.HasPrefix(e, "end_device-") {
				addr := readAttr(filepath.Join(root, "sys", "class", "sas_device", e, "sas_address"))
				if addr != "" {
					return "sas-" + addr + "-lun-" + lun
				}
			}
		}
	case strings.Contains(full, "/ata"):
		for _, e := range elems[:i] {
			if m := ataRe.FindStringSubmatch(e); m != nil {
				port := readAttr(filepath.Join(root, "sys", "class", "ata_port", e, "port_no"))
				if port == "" {
					port = m[1]
				}
				return "ata-" + port
			}
		}
	}
	// Default: the host number counts from the lowest SCSI host of the same parent.
	host, _ := strconv.Atoi(f[0])
	for j := i - 1; j >= 1; j-- {
		if hostRe.MatchString(elems[j]) {
			parent := filepath.Join(append([]string{root}, elems[:j]...)...)
			if ents, err := os.ReadDir(parent); err == nil {
				base := host
				for _, e := range ents {
					if m := hostRe.FindStringSubmatch(e.Name()); m != nil {
						if n, _ := strconv.Atoi(m[1]); n < base {
							base = n
						}
					}
				}
				host -= base
			}
			break
		}
	}
	return fmt.Sprintf("scsi-%d:%s:%s:%s", host, f[1], f[2], lun)
}

// byPathLinks maps kernel names to their /dev/disk/by-path link, when udev made them. Of
// several links it keeps the first in sorted order that is not udev's deprecated virtio-pci-
// form.
func byPathLinks(root string) map[string]string {
	dir := filepath.Join(root, "dev", "disk", "by-path")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		k := filepath.Base(target)
		if prev, ok := out[k]; ok && !strings.HasPrefix(filepath.Base(prev), "virtio-pci-") {
			continue
		}
		out[k] = "/dev/disk/by-path/" + e.Name()
	}
	return out
}

func readAttr(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
