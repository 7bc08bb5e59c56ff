package inspect

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/u-root/u-root/pkg/ipmi"
)

// BMCAddress is what the in-band IPMI interface reports of the BMC's LAN channel.
type BMCAddress struct {
	IPv4 string
	IPv6 string
	MAC  string
}

// lanConfigGetter is the one IPMI call inspection makes (u-root's *ipmi.IPMI has it).
type lanConfigGetter interface {
	GetLanConfig(channel byte, param byte) ([]byte, error)
}

// IPMI LAN configuration parameters (IPMI 2.0 table 23-4).
const (
	lanParamIP         = 3
	lanParamMAC        = 5
	lanParamIPv6Static = 56 // set selector, source, address[16], prefix length, status
	lanParamIPv6SLAAC  = 59 // same layout, addresses the BMC learnt
)

// readBMCIPMI asks the BMC behind the IPMI device at path for its LAN address, as IPA's
// get_bmc_address does with ipmitool: channels 1 to 11, the first with an address that is not
// 0.0.0.0. A missing device returns os.ErrNotExist.
func readBMCIPMI(_ context.Context, path string) (BMCAddress, error) {
	if _, err := os.Stat(path); err != nil {
		return BMCAddress{}, err
	}
	dev, err := ipmi.OpenPath(path)
	if err != nil {
		return BMCAddress{}, fmt.Errorf("bmc: open %s: %w", path, err)
	}
	defer dev.Close()
	return bmcFromLAN(dev)
}

// bmcFromLAN walks the LAN channels. Replies are u-root's: completion code, parameter
// revision, then the parameter's data.
func bmcFromLAN(dev lanConfigGetter) (BMCAddress, error) {
	var firstErr error
	answered := false
	for ch := byte(1); ch <= 11; ch++ {
		b, err := dev.GetLanConfig(ch, lanParamIP)
		if err != nil || len(b) < 6 {
			// channels that are not LAN channels answer with an error
			if firstErr == nil {
				firstErr = fmt.Errorf("bmc: channel %d: %w", ch, errOr(err, "short reply"))
			}
			continue
		}
		answered = true
		ip := net.IP(b[2:6])
		if ip.IsUnspecified() {
			continue
		}
		out := BMCAddress{IPv4: ip.String(), IPv6: bmcIPv6(dev, ch)}
		if m, err := dev.GetLanConfig(ch, lanParamMAC); err == nil && len(m) >= 8 {
			out.MAC = net.HardwareAddr(m[2:8]).String()
		}
		return out, nil
	}
	if !answered {
		return BMCAddress{}, firstErr
	}
	return BMCAddress{}, nil // a BMC without a LAN address
}

// bmcIPv6 returns the channel's first active IPv6 address, static or learnt, or "". BMCs
// without IPv6 support answer with an error.
func bmcIPv6(dev lanConfigGetter, ch byte) string {
	for _, param := range []byte{lanParamIPv6Static, lanParamIPv6SLAAC} {
		b, err := dev.GetLanConfig(ch, param)
		// completion code, revision, set selector, source, address, prefix length, status
		if err != nil || len(b) < 22 {
			continue
		}
		ip := net.IP(b[4:20])
		if ip.IsUnspecified() || ip.To4() != nil || b[21] != 0 { // status 0: active
			continue
		}
		return ip.String()
	}
	return ""
}

func errOr(err error, s string) error {
	if err != nil {
		return err
	}
	return errors.New(s)
}
