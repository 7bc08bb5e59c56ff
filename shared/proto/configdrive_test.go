package proto

import (
	"encoding/json"
	"strings"
	"testing"
)

func init() {
	v3Examples = append(v3Examples, func() []example {
		return []example{
			{"write_configdrive.args", ConfigDriveArgs{Device: "/dev/sda", ConfigDrive: raw(`"H4sIAAAAAAAA/wMAAAAAAAAAAAA="`)}},
			{"write_configdrive.args.content", ConfigDriveArgs{Device: "/dev/nvme0n1", ConfigDrive: raw(
				`{"meta_data":{"hostname":"node-1","public_keys":{"0":"ssh-ed25519 AAAA"},"uuid":"7d0d3b3e-5a36-4a47-9d7e-3d1a3f5b9c10"},` +
					`"network_data":{"links":[],"networks":[],"services":[]},"user_data":"#cloud-config\n","vendor_data":{"x":1}}`)}},
			{"write_configdrive.result", ConfigDriveResult{Device: "/dev/sda", Partition: "/dev/sda3", PartitionNumber: 3,
				PartitionTable: "gpt", PartitionUUID: "0e3c3f1a-2b4d-4c5e-8f60-718293a4b5c6", Offset: 10670309376, Size: MaxConfigDriveBytes,
				ISOBytes: 370688}},
		}
	})
}

func TestConfigDriveArgs(t *testing.T) {
	tests := []struct {
		name    string
		device  string
		cd      string
		want    string // "" valid, else a substring of the error
		content bool
	}{
		{"ok/string", "/dev/sda", `"aGVsbG8="`, "", false},
		{"ok/object", "/dev/sda", `{"meta_data":{"uuid":"x"},"user_data":{"a":1}}`, "", true},
		{"ok/object-user-data-string", "/dev/sda", `{"user_data":"#!/bin/sh"}`, "", true},
		{"ok/object-empty", "/dev/sda", `{}`, "", true},
		{"no-device", "", `"aGVsbG8="`, "device", false},
		{"relative-device", "sda", `"aGVsbG8="`, "absolute", false},
		{"no-configdrive", "/dev/sda", ``, "no configdrive", false},
		{"null", "/dev/sda", `null`, "no configdrive", false},
		{"empty-string", "/dev/sda", `""`, "empty", false},
		{"url", "/dev/sda", `"https://swift/cd"`, "URL", false},
		{"number", "/dev/sda", `42`, "string or an object", false},
		{"unknown-key", "/dev/sda", `{"meta":{}}`, "unknown field", false},
		{"user-data-number", "/dev/sda", `{"user_data":5}`, "user_data", false},
		{"meta-data-string", "/dev/sda", `{"meta_data":"x"}`, "object", false},
		{"too-large", "/dev/sda", `"` + strings.Repeat("A", MaxConfigDriveArg) + `"`, "at most", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := ConfigDriveArgs{Device: tc.device, ConfigDrive: json.RawMessage(tc.cd)}
			err := a.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			case tc.want != "":
				return
			}
			enc, c, err := a.Parse()
			if err != nil || (c != nil) != tc.content || (enc != "") == tc.content {
				t.Errorf("Parse() = %q, %v, %v; want content %v", enc, c, err, tc.content)
			}
		})
	}
	if CommandFeature(CmdWriteConfigDrive) != FeatureConfigDrive {
		t.Errorf("CommandFeature(%q) = %q", CmdWriteConfigDrive, CommandFeature(CmdWriteConfigDrive))
	}
}

func FuzzConfigDriveArgs(f *testing.F) {
	f.Add([]byte(`{"device":"/dev/sda","configdrive":"aGVsbG8="}`))
	f.Add([]byte(`{"device":"/dev/sda","configdrive":{"meta_data":{"uuid":"x"},"user_data":[1]}}`))
	f.Add([]byte(`{"device":"/dev/sda","configdrive":{"user_data":"x","vendor_data":{}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var a ConfigDriveArgs
		if DecodeArgs(data, &a) != nil {
			return
		}
		if a.Validate() != nil {
			return
		}
		enc, c, err := a.Parse()
		if err != nil || (enc == "") == (c == nil) {
			t.Fatalf("valid args parse to %q, %v, %v", enc, c, err)
		}
	})
}
