package clean

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// NVMeFormat is a SecureEraser for NVMe namespaces: Format NVM with the Secure Erase Setting
// "cryptographic erase" when the controller supports it, else "user data erase", keeping the
// namespace's LBA format and protection information, as ironic-python-agent does with
// nvme-cli. Other devices are not its business (Erase returns false).
type NVMeFormat struct {
	// Timeout bounds the Format NVM command [2h].
	Timeout time.Duration
}

// Name implements SecureEraser.
func (NVMeFormat) Name() string { return "nvme-format" }

// Linux NVMe ioctls (linux/nvme_ioctl.h).
const (
	nvmeIoctlID       = 0x4E40     // _IO('N', 0x40): the namespace ID of a namespace device
	nvmeIoctlAdminCmd = 0xC0484E41 // _IOWR('N', 0x41, struct nvme_passthru_cmd)
	nvmeOpIdentify    = 0x06
	nvmeOpFormat      = 0x80
)

// nvmePassthru is struct nvme_passthru_cmd (72 bytes).
type nvmePassthru struct {
	Opcode      uint8
	Flags       uint8
	Rsvd1       uint16
	NSID        uint32
	Cdw2, Cdw3  uint32
	Metadata    uint64
	Addr        uint64
	MetadataLen uint32
	DataLen     uint32
	Cdw10       uint32
	Cdw11       uint32
	Cdw12       uint32
	Cdw13       uint32
	Cdw14       uint32
	Cdw15       uint32
	TimeoutMs   uint32
	Result      uint32
}

// Erase implements SecureEraser.
func (n NVMeFormat) Erase(ctx context.Context, device string) (bool, error) {
	f, err := os.OpenFile(device, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	nsid, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), nvmeIoctlID, 0)
	if errno != 0 {
		return false, nil // not an NVMe namespace
	}
	ctrl := make([]byte, 4096)
	if err := nvmeAdmin(f, &nvmePassthru{Opcode: nvmeOpIdentify, Cdw10: 1}, ctrl); err != nil {
		return false, fmt.Errorf("nvme identify controller: %w", err)
	}
	ns := make([]byte, 4096)
	if err := nvmeAdmin(f, &nvmePassthru{Opcode: nvmeOpIdentify, NSID: uint32(nsid)}, ns); err != nil {
		return false, fmt.Errorf("nvme identify namespace %d: %w", nsid, err)
	}
	cdw10, err := formatCdw10(ctrl, ns)
	if err != nil {
		return false, err
	}
	timeout := n.Timeout
	if timeout == 0 {
		timeout = 2 * time.Hour
	}
	cmd := &nvmePassthru{Opcode: nvmeOpFormat, NSID: uint32(nsid), Cdw10: cdw10, TimeoutMs: uint32(timeout.Milliseconds())}
	if err := nvmeAdmin(f, cmd, nil); err != nil {
		return false, fmt.Errorf("nvme format (cdw10 %#x): %w", cdw10, err)
	}
	return true, nil
}

// formatCdw10 builds Format NVM's command dword 10 from Identify Controller and Identify
// Namespace data: the current LBA format, metadata setting and protection information, and
// Secure Erase Settings 2 (cryptographic) when FNA bit 2 says it is supported, else 1.
func formatCdw10(ctrl, ns []byte) (uint32, error) {
	if len(ctrl) < 4096 || len(ns) < 4096 {
		return 0, errors.New("nvme: short identify data")
	}
	fna := ctrl[524]
	flbas := ns[26]
	dps := ns[29]
	lbaf := uint32(flbas&0x0f) | uint32(flbas>>5&0x03)<<4
	if nlbaf := uint32(ns[25]); lbaf > nlbaf {
		return 0, fmt.Errorf("nvme: current LBA format %d beyond the %d the namespace has", lbaf, nlbaf+1)
	}
	ses := uint32(1)
	if fna&0x04 != 0 {
		ses = 2
	}
	mset := uint32(flbas>>4) & 1
	pi := uint32(dps & 0x07)
	pil := uint32(dps>>3) & 1
	return lbaf&0x0f | mset<<4 | pi<<5 | pil<<8 | ses<<9 | (lbaf>>4)<<12, nil
}

func nvmeAdmin(f *os.File, cmd *nvmePassthru, data []byte) error {
	if len(data) > 0 {
		cmd.Addr = uint64(uintptr(unsafe.Pointer(&data[0])))
		cmd.DataLen = uint32(len(data))
	}
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), nvmeIoctlAdminCmd, uintptr(unsafe.Pointer(cmd)))
	runtime.KeepAlive(data)
	if errno != 0 {
		return errno
	}
	if r != 0 {
		return fmt.Errorf("nvme status %#x", r)
	}
	return nil
}
