package ipmi

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseInfo(t *testing.T) {
	base := Info{Address: "10.0.0.5", Port: 623, PrivLevel: "ADMINISTRATOR", Protocol: "2.0",
		CipherSuite: -1, DisableBootTimeout: true}
	with := func(f func(*Info)) Info { i := base; f(&i); return i }
	tests := []struct {
		name    string
		di      map[string]any
		want    Info
		wantErr string
	}{
		{"minimal", map[string]any{"ipmi_address": "10.0.0.5"}, base, ""},
		{"full", map[string]any{"ipmi_address": "bmc.example", "ipmi_port": json.Number("6230"),
			"ipmi_username": "root", "ipmi_password": "s3cret", "ipmi_priv_level": "OPERATOR",
			"ipmi_cipher_suite": "17", "ipmi_force_boot_device": "yes", "ipmi_disable_boot_timeout": false,
			"ipmi_bridging": "no", "ipmi_terminal_port": 8023},
			Info{Address: "bmc.example", Port: 6230, Username: "root", Password: "s3cret", PrivLevel: "OPERATOR",
				Protocol: "2.0", CipherSuite: 17, ForceBootDevice: true}, ""},
		{"port/float", map[string]any{"ipmi_address": "10.0.0.5", "ipmi_port": 16230.0}, with(func(i *Info) { i.Port = 16230 }), ""},
		{"protocol/1.5-number", map[string]any{"ipmi_address": "10.0.0.5", "ipmi_protocol_version": 1.5}, with(func(i *Info) { i.Protocol = "1.5" }), ""},
		{"password/number", map[string]any{"ipmi_address": "10.0.0.5", "ipmi_password": json.Number("1234")}, with(func(i *Info) { i.Password = "1234" }), ""},
		{"missing-address", map[string]any{"ipmi_username": "root"}, Info{},
			"Missing the following IPMI credentials in node's driver_info: ['ipmi_address']."},
		{"empty-address", map[string]any{"ipmi_address": ""}, Info{},
			"Missing the following IPMI credentials in node's driver_info: ['ipmi_address']."},
		{"bad-port", map[string]any{"ipmi_address": "a", "ipmi_port": "http"}, Info{}, `ipmi_port "http" is not a valid port.`},
		{"port-out-of-range", map[string]any{"ipmi_address": "a", "ipmi_port": 70000}, Info{}, `ipmi_port "70000" is not a valid port.`},
		{"bad-terminal-port", map[string]any{"ipmi_address": "a", "ipmi_terminal_port": -1}, Info{}, `ipmi_terminal_port "-1" is not a valid port.`},
		{"bad-protocol", map[string]any{"ipmi_address": "a", "ipmi_protocol_version": "3.0"}, Info{},
			"Invalid IPMI protocol version value 3.0, the valid value can be one of 2.0, 1.5"},
		{"bad-priv", map[string]any{"ipmi_address": "a", "ipmi_priv_level": "root"}, Info{},
			"Invalid privilege level value:root, the valid value can be one of ADMINISTRATOR, CALLBACK, OPERATOR, USER"},
		{"bridging/bad", map[string]any{"ipmi_address": "a", "ipmi_bridging": "triple"}, Info{},
			"Invalid value for ipmi_bridging: triple, the valid value can be one of: ['single', 'dual', 'no']"},
		{"bridging/unsupported", map[string]any{"ipmi_address": "a", "ipmi_bridging": "single"}, Info{},
			"Value for ipmi_bridging is provided as single, but IPMI bridging is not supported by Ferrum's IPMI driver"},
		{"kg/odd", map[string]any{"ipmi_address": "a", "ipmi_hex_kg_key": "abc"}, Info{}, "Number of ipmi_hex_kg_key characters is not even"},
		{"kg/unsupported", map[string]any{"ipmi_address": "a", "ipmi_hex_kg_key": "abcd"}, Info{}, "ipmi_hex_kg_key is not supported by Ferrum's IPMI driver"},
		{"cipher/not-number", map[string]any{"ipmi_address": "a", "ipmi_cipher_suite": "fast"}, Info{}, "Invalid cipher suite fast, expected a number"},
		{"cipher/unknown", map[string]any{"ipmi_address": "a", "ipmi_cipher_suite": 42}, Info{}, "Invalid cipher suite 42, not one of the RMCP+ cipher suites 0-19"},
		{"cipher/with-1.5", map[string]any{"ipmi_address": "a", "ipmi_cipher_suite": 3, "ipmi_protocol_version": "1.5"}, Info{},
			"Cipher suites cannot be used with IPMI 1.5"},
		{"force-boot/bad", map[string]any{"ipmi_address": "a", "ipmi_force_boot_device": "maybe"}, Info{},
			"Unrecognized value 'maybe' for ipmi_force_boot_device, acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"},
		{"user-too-long", map[string]any{"ipmi_address": "a", "ipmi_username": "a-very-long-user-name"}, Info{},
			"ipmi_username is longer than the 16 characters IPMI allows"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseInfo(tc.di)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("ParseInfo(%v) = %v, want error %q", tc.di, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseInfo(%v): %v", tc.di, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseInfo(%v) (-want +got):\n%s", tc.di, diff)
			}
		})
	}
}

// The password may be in the session key (it is part of what identifies a session) but never
// in anything printable.
func TestInfoEndpointHidesPassword(t *testing.T) {
	i, err := ParseInfo(map[string]any{"ipmi_address": "fe80::1", "ipmi_password": "hunter2"})
	if err != nil {
		t.Fatal(err)
	}
	if got := i.endpoint(); got != "[fe80::1]:623" {
		t.Errorf("endpoint() = %q, want [fe80::1]:623", got)
	}
}
