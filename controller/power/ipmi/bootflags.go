package ipmi

import (
	"fmt"
	"strings"
)

// Boot devices, with Ironic's names (ironic/common/boot_devices.py).
const (
	DevicePXE   = "pxe"
	DeviceDisk  = "disk"
	DeviceCDROM = "cdrom"
	DeviceBIOS  = "bios"
	DeviceSafe  = "safe"
)

// SupportedBootDevices is what the ipmitool management interface offers, in Ironic's order.
var SupportedBootDevices = []string{DevicePXE, DeviceDisk, DeviceCDROM, DeviceBIOS, DeviceSafe}

// Boot device selectors of the boot flags parameter (IPMI 2.0 table 28-14, data 2 bits 5:2).
const (
	selNone       uint8 = 0x0
	selPXE        uint8 = 0x1
	selDisk       uint8 = 0x2
	selSafe       uint8 = 0x3
	selCDROM      uint8 = 0x5
	selBIOS       uint8 = 0x6
	selRemoteDisk uint8 = 0x9 // Supermicro's UEFI hard disk (Ironic sends 0x24 = 9<<2)
)

// bootFlags is the boot flags parameter (Set/Get System Boot Options, parameter 5).
type bootFlags struct {
	Valid      bool
	Persistent bool
	EFI        bool
	Selector   uint8 // 4 bits
}

// bootFlagsParam is the parameter selector of the boot flags.
const bootFlagsParam = 5

// encode packs the flags as the 5 data bytes of the parameter; the other bits are zero, like
// Ironic's raw "0x00 0x08 0x05 0xe0 0x04 0x00 0x00 0x00".
func (f bootFlags) encode() []byte {
	var b1 byte
	if f.Valid {
		b1 |= 0x80
	}
	if f.Persistent {
		b1 |= 0x40
	}
	if f.EFI {
		b1 |= 0x20
	}
	return []byte{b1, (f.Selector & 0x0f) << 2, 0, 0, 0}
}

// decodeBootFlags reads a Get System Boot Options reply: the parameter selector it names
// (bit 7, "locked", ignored) and the parameter data. A reply for another parameter or with
// fewer than the 5 data bytes of the boot flags is an error; extra bytes are ignored.
func decodeBootFlags(selector byte, data []byte) (bootFlags, error) {
	if selector&0x7f != bootFlagsParam {
		return bootFlags{}, fmt.Errorf("bad boot options reply: parameter %d, want %d", selector&0x7f, bootFlagsParam)
	}
	if len(data) < 5 {
		return bootFlags{}, fmt.Errorf("bad boot options reply: %d bytes of boot flags, want 5", len(data))
	}
	return bootFlags{
		Valid:      data[0]&0x80 != 0,
		Persistent: data[0]&0x40 != 0,
		EFI:        data[0]&0x20 != 0,
		Selector:   data[1] >> 2 & 0x0f,
	}, nil
}

// selectorFor maps an Ironic boot device to the selector sent, with Ironic's Supermicro
// exception: under UEFI its BMCs want the remote-disk selector for the local disk.
func selectorFor(device string, efi bool, vendor string) (uint8, error) {
	switch device {
	case DevicePXE:
		return selPXE, nil
	case DeviceDisk:
		if efi && strings.EqualFold(vendor, "supermicro") {
			return selRemoteDisk, nil
		}
		return selDisk, nil
	case DeviceCDROM:
		return selCDROM, nil
	case DeviceBIOS:
		return selBIOS, nil
	case DeviceSafe:
		return selSafe, nil
	}
	return 0, fmt.Errorf("Invalid boot device %s specified.", device)
}

// deviceFor maps a selector read back to an Ironic boot device; "" when none or unknown
// (Ironic answers null then).
func deviceFor(sel uint8) string {
	switch sel {
	case selPXE:
		return DevicePXE
	case selDisk, selRemoteDisk:
		return DeviceDisk
	case selSafe:
		return DeviceSafe
	case selCDROM:
		return DeviceCDROM
	case selBIOS:
		return DeviceBIOS
	}
	return ""
}
