package inspect

import (
	"errors"
	"fmt"
	"strings"

	"github.com/u-root/u-root/pkg/smbios"
)

// dmiInfo is what inspection takes from SMBIOS.
type dmiInfo struct {
	manufacturer, product, serial, uuid string
	biosVendor, biosVersion, biosDate   string
	memoryBytes                         uint64 // sum of the memory devices' sizes; 0: none listed
	sockets                             int    // populated processor sockets
	cpuModel                            string // first processor's version string
	cpuMaxMHz                           int
}

// parseSMBIOS decodes the tables of /sys/firmware/dmi/tables (smbios_entry_point and DMI)
// with u-root's smbios package.
func parseSMBIOS(entry, dmi []byte) (info dmiInfo, err error) {
	defer func() {
		// smbios parses untrusted firmware data; never let a malformed table take the agent down.
		if r := recover(); r != nil {
			info, err = dmiInfo{}, fmt.Errorf("smbios: malformed tables: %v", r)
		}
	}()
	si, err := smbios.ParseInfo(entry, dmi)
	if err != nil {
		return dmiInfo{}, fmt.Errorf("smbios: %w", err)
	}
	if sys, err := si.GetSystemInfo(); err == nil {
		info.manufacturer, info.product, info.serial = clean(sys.Manufacturer), clean(sys.ProductName), clean(sys.SerialNumber)
		if u := sys.UUID; u != (smbios.UUID{}) && u != (smbios.UUID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
			info.uuid = strings.ToLower(u.String())
		}
	} else if !errors.Is(err, smbios.ErrTableNotFound) {
		return dmiInfo{}, fmt.Errorf("smbios: system information: %w", err)
	}
	if bios, err := si.GetBIOSInfo(); err == nil {
		info.biosVendor, info.biosVersion, info.biosDate = clean(bios.Vendor), clean(bios.Version), clean(bios.ReleaseDate)
	}
	if mds, err := si.GetMemoryDevices(); err == nil {
		for _, md := range mds {
			if md.Size == 0xffff { // unknown size
				continue
			}
			info.memoryBytes += md.GetSizeBytes()
		}
	}
	if ps, err := si.GetProcessorInfo(); err == nil {
		for _, p := range ps {
			if p.Status&0x40 == 0 { // socket not populated
				continue
			}
			info.sockets++
			if info.cpuModel == "" {
				info.cpuModel = clean(p.Version)
				info.cpuMaxMHz = int(p.MaxSpeed)
			}
		}
	}
	return info, nil
}

// placeholders firmware writes where a string was never set.
var placeholders = map[string]bool{
	"to be filled by o.e.m.": true, "default string": true, "not specified": true,
	"system serial number": true, "system product name": true,
}

func clean(s string) string {
	s = strings.TrimSpace(s)
	if placeholders[strings.ToLower(s)] {
		return ""
	}
	return s
}
