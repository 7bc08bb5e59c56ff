package ipmi

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/bougou/go-ipmi/pkg/types"
)

// Info is a node's BMC access parameters, parsed from driver_info with Ironic's ipmitool names
// and rules (ironic/drivers/modules/ipmitool.py _parse_driver_info).
type Info struct {
	Address   string
	Port      int
	Username  string
	Password  string
	PrivLevel string // ADMINISTRATOR, CALLBACK, OPERATOR or USER
	Protocol  string // "2.0" (RMCP+, lanplus) or "1.5" (lan)
	// CipherSuite is the RMCP+ cipher suite, -1 when unset (go-ipmi then asks the BMC).
	CipherSuite int
	// ForceBootDevice re-sends the recorded boot device before every power on.
	ForceBootDevice bool
	// DisableBootTimeout sends "don't clear the boot flags after 60 s" before a boot device.
	DisableBootTimeout bool
}

// key identifies one BMC session: the same endpoint with other credentials is another session.
func (i Info) key() sessionKey {
	return sessionKey{addr: i.Address, port: i.Port, user: i.Username, pass: i.Password,
		priv: i.PrivLevel, proto: i.Protocol, suite: i.CipherSuite}
}

// endpoint is host:port for messages.
func (i Info) endpoint() string {
	if strings.Contains(i.Address, ":") {
		return "[" + i.Address + "]:" + strconv.Itoa(i.Port)
	}
	return i.Address + ":" + strconv.Itoa(i.Port)
}

var privLevels = map[string]types.PrivilegeLevel{
	"ADMINISTRATOR": types.PrivilegeLevelAdministrator,
	"CALLBACK":      types.PrivilegeLevelCallback,
	"OPERATOR":      types.PrivilegeLevelOperator,
	"USER":          types.PrivilegeLevelUser,
}

// validPrivLevels is Ironic's VALID_PRIV_LEVELS, in its order (messages list them).
var validPrivLevels = []string{"ADMINISTRATOR", "CALLBACK", "OPERATOR", "USER"}

// properties are the driver_info keys this hardware type reads (GET /v1/drivers/ipmi/properties).
var properties = map[string]string{
	"ipmi_address":              "IP address or hostname of the node. Required.",
	"ipmi_password":             "password. Optional.",
	"ipmi_hex_kg_key":           "Kg key for IPMIv2 authentication. The key is expected in hexadecimal format. Not supported by Ferrum: setting it fails validation. Optional.",
	"ipmi_port":                 "remote IPMI RMCP port. Optional.",
	"ipmi_priv_level":           "privilege level; default is ADMINISTRATOR. One of ADMINISTRATOR, CALLBACK, OPERATOR, USER. Optional.",
	"ipmi_username":             "username; default is NULL user. Optional.",
	"ipmi_bridging":             "bridging_type; only \"no\" is supported by Ferrum. Optional.",
	"ipmi_protocol_version":     "the version of the IPMI protocol; default is \"2.0\". One of \"1.5\", \"2.0\". Optional.",
	"ipmi_force_boot_device":    "Whether Ferrum should specify the boot device to the BMC each time the server is turned on, eg. because the BMC is not capable of remembering the selected boot device across power cycles; default value is False. Optional.",
	"ipmi_disable_boot_timeout": "By default the driver sends a raw IPMI command to disable the 60 second timeout for booting. Setting this option to False will NOT send that command on this node. Optional.",
	"ipmi_cipher_suite":         "The number of a cipher suite to use. Only 3 (AES-128 with SHA1) or 17 (AES-128 with SHA256) should ever be used; 17 is preferred. Without it the BMC is asked for its list. Optional.",
	"ipmi_terminal_port":        "node's UDP port to connect to. Only required for console access.",
}

// ParseInfo reads and validates the IPMI fields of driver_info. Errors use Ironic's messages.
func ParseInfo(di map[string]any) (Info, error) {
	info := Info{Port: 623, PrivLevel: "ADMINISTRATOR", Protocol: "2.0", CipherSuite: -1,
		DisableBootTimeout: true}
	if !truthy(di["ipmi_address"]) {
		return info, fmt.Errorf("Missing the following IPMI credentials in node's driver_info: ['ipmi_address'].")
	}
	info.Address = pyStr(di["ipmi_address"])
	if v, ok := di["ipmi_username"]; ok && v != nil {
		info.Username = pyStr(v)
	}
	if v, ok := di["ipmi_password"]; ok && v != nil {
		info.Password = pyStr(v)
	}
	if len(info.Username) > 16 {
		return info, fmt.Errorf("ipmi_username is longer than the 16 characters IPMI allows")
	}
	if len(info.Password) > 20 {
		return info, fmt.Errorf("ipmi_password is longer than the 20 characters IPMI 2.0 allows")
	}
	if v, ok := di["ipmi_protocol_version"]; ok && v != nil {
		info.Protocol = pyStr(v)
	}
	if info.Protocol != "2.0" && info.Protocol != "1.5" {
		return info, fmt.Errorf("Invalid IPMI protocol version value %s, the valid value can be one of 2.0, 1.5", info.Protocol)
	}
	for _, k := range []string{"ipmi_terminal_port", "ipmi_port"} {
		v, ok := di[k]
		if !ok || v == nil {
			continue
		}
		p, ok := portNumber(v)
		if !ok {
			return info, fmt.Errorf("%s \"%s\" is not a valid port.", k, pyStr(v))
		}
		if k == "ipmi_port" {
			info.Port = p
		}
	}
	switch b := di["ipmi_bridging"]; {
	case b == nil, pyStr(b) == "no":
	case pyStr(b) == "single" || pyStr(b) == "dual":
		return info, fmt.Errorf("Value for ipmi_bridging is provided as %s, but IPMI bridging is not supported by Ferrum's IPMI driver", pyStr(b))
	default:
		return info, fmt.Errorf("Invalid value for ipmi_bridging: %s, the valid value can be one of: ['single', 'dual', 'no']", pyStr(b))
	}
	if v, ok := di["ipmi_priv_level"]; ok && v != nil {
		info.PrivLevel = pyStr(v)
	}
	if _, ok := privLevels[info.PrivLevel]; !ok {
		return info, fmt.Errorf("Invalid privilege level value:%s, the valid value can be one of %s", info.PrivLevel, strings.Join(validPrivLevels, ", "))
	}
	if kg := di["ipmi_hex_kg_key"]; truthy(kg) {
		if len(pyStr(kg))%2 != 0 {
			return info, fmt.Errorf("Number of ipmi_hex_kg_key characters is not even")
		}
		return info, fmt.Errorf("ipmi_hex_kg_key is not supported by Ferrum's IPMI driver")
	}
	if v, ok := di["ipmi_cipher_suite"]; ok && v != nil {
		n, ok := pyInt(v)
		if !ok {
			return info, fmt.Errorf("Invalid cipher suite %s, expected a number", pyStr(v))
		}
		if info.Protocol == "1.5" {
			return info, fmt.Errorf("Cipher suites cannot be used with IPMI 1.5")
		}
		if _, _, _, known := types.GetCipherSuiteAlgorithms(types.CipherSuiteID(n)); n < 0 || n > 0xfe || !known {
			return info, fmt.Errorf("Invalid cipher suite %s, not one of the RMCP+ cipher suites 0-19", pyStr(v))
		}
		info.CipherSuite = int(n)
	}
	var err error
	if info.ForceBootDevice, err = boolOption(di, "ipmi_force_boot_device", false); err != nil {
		return info, err
	}
	if info.DisableBootTimeout, err = boolOption(di, "ipmi_disable_boot_timeout", true); err != nil {
		return info, err
	}
	return info, nil
}

// boolOption is strutils.bool_from_string(strict) for an optional key.
func boolOption(di map[string]any, k string, def bool) (bool, error) {
	v, ok := di[k]
	if !ok || v == nil {
		return def, nil
	}
	if b, ok := v.(bool); ok {
		return b, nil
	}
	s := strings.ToLower(strings.TrimSpace(pyStr(v)))
	switch {
	case slices.Contains([]string{"1", "t", "true", "on", "y", "yes"}, s):
		return true, nil
	case slices.Contains([]string{"0", "f", "false", "off", "n", "no"}, s):
		return false, nil
	}
	return false, fmt.Errorf("Unrecognized value '%s' for %s, acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'", pyStr(v), k)
}

// portNumber accepts an integer 1–65535 given as a JSON number or a decimal string.
func portNumber(v any) (int, bool) {
	n, ok := pyInt(v)
	return int(n), ok && n >= 1 && n <= 65535
}

// pyInt is Python's int() of a decoded JSON value: integers, integral floats and decimal strings.
func pyInt(v any) (int64, bool) {
	switch v := v.(type) {
	case bool:
		return 0, false
	case int:
		return int64(v), true
	case int64:
		return v, true
	case float64:
		if v != math.Trunc(v) || math.IsInf(v, 0) || math.Abs(v) > 1<<53 {
			return 0, false
		}
		return int64(v), true
	case json.Number:
		n, err := v.Int64()
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// pyStr is Python's str() of a decoded JSON value, enough for messages and addresses.
func pyStr(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case string:
		return v
	case bool:
		if v {
			return "True"
		}
		return "False"
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1e16 {
			return strconv.FormatFloat(v, 'f', 1, 64)
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	case json.Number:
		return v.String()
	}
	return fmt.Sprint(v)
}

// truthy is Python's bool() for the values driver_info holds.
func truthy(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case string:
		return v != ""
	case bool:
		return v
	case float64:
		return v != 0
	case map[string]any:
		return len(v) > 0
	case []any:
		return len(v) > 0
	}
	return true
}
