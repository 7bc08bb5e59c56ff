package inspect

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ferrumhq/ferrum/shared/proto"
)

var pciAddrRe = regexp.MustCompile(`^[0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// ARP hardware types of interfaces worth reporting (if_arp.h).
const (
	arphrdEther      = "1"
	arphrdInfiniband = "32"
)

// interfaces lists the physical network interfaces under root's /sys/class/net, as IPA does:
// those with a device behind them (no lo, bridges, bonds, veth, ifb), Ethernet or InfiniBand.
func interfaces(root string, addrs func(string) (string, string)) ([]proto.Interface, error) {
	dir := filepath.Join(root, "sys", "class", "net")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := []proto.Interface{}
	for _, e := range ents {
		name := e.Name()
		base := filepath.Join(dir, name)
		if _, err := os.Stat(filepath.Join(base, "device")); err != nil {
			continue
		}
		if t := attr(base, "type"); t != arphrdEther && t != arphrdInfiniband {
			continue
		}
		ifc := proto.Interface{
			Name:       name,
			MACAddress: strings.ToLower(attr(base, "address")),
			HasCarrier: attr(base, "carrier") == "1",
			Vendor:     attr(base, "device/vendor"),
			Product:    attr(base, "device/device"),
		}
		if drv, err := os.Readlink(filepath.Join(base, "device", "driver")); err == nil {
			ifc.Driver = filepath.Base(drv)
		}
		if s, err := strconv.Atoi(attr(base, "speed")); err == nil && s > 0 {
			ifc.SpeedMbps = s
		}
		if real, err := filepath.EvalSymlinks(filepath.Join(base, "device")); err == nil {
			// the PCI function itself, or the nearest one above (virtio-net sits below it)
			for p := real; p != "." && p != "/" && len(p) >= len(root); p = filepath.Dir(p) {
				if pciAddrRe.MatchString(filepath.Base(p)) {
					ifc.PCIAddress = filepath.Base(p)
					break
				}
			}
		}
		if addrs != nil {
			ifc.IPv4Address, ifc.IPv6Address = addrs(name)
		}
		out = append(out, ifc)
	}
	slices.SortFunc(out, func(a, b proto.Interface) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// hostAddrs returns the interface's first IPv4 address and its first IPv6 address,
// preferring a global one to a link-local one.
func hostAddrs(name string) (v4, v6 string) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return "", ""
	}
	as, err := ifc.Addrs()
	if err != nil {
		return "", ""
	}
	var ll string
	for _, a := range as {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		switch ip := ipn.IP; {
		case ip.To4() != nil:
			if v4 == "" {
				v4 = ip.String()
			}
		case ip.IsLinkLocalUnicast():
			if ll == "" {
				ll = ip.String()
			}
		case v6 == "":
			v6 = ip.String()
		}
	}
	if v6 == "" {
		v6 = ll
	}
	return v4, v6
}

func attr(dir, rel string) string {
	b, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
