package proto

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func init() {
	v3Examples = append(v3Examples, func() []example {
		cfg := RAIDConfig{LogicalDisks: []LogicalDisk{
			{RAIDLevel: RAIDLevel1, SizeGB: RAIDSize{GB: 50}, Controller: RAIDControllerSoftware, IsRootVolume: true, VolumeName: "root",
				PhysicalDisks: []json.RawMessage{raw(`"/dev/sda"`), raw(`{"serial":"S2"}`)}},
			{RAIDLevel: RAIDLevel0, SizeGB: RAIDSize{Max: true}, Controller: RAIDControllerSoftware,
				PhysicalDisks: []json.RawMessage{raw(`"/dev/sda"`), raw(`{"serial":"S2"}`)}},
		}}
		return []example{
			{"create_raid.args", CreateRAIDArgs{TargetRAIDConfig: cfg, DeleteExisting: true, BootMode: BootModeUEFI}},
			{"create_raid.args.devices", CreateRAIDArgs{TargetRAIDConfig: RAIDConfig{LogicalDisks: []LogicalDisk{
				{RAIDLevel: RAIDLevel1, SizeGB: RAIDSize{Max: true}, Controller: RAIDControllerSoftware}}},
				BootMode: BootModeBIOS, Devices: []string{"/dev/vda", "/dev/vdb"}}},
			{"create_raid.result", RAIDStatus{RootDevice: "/dev/md0", RAIDConfig: &cfg, Arrays: []RAIDArray{
				{Name: "/dev/md0", RAIDLevel: RAIDLevel1, SizeBytes: 50 << 30, UUID: "3b2e0c8e:5a1f4d21:9c7e6b5a:0f1e2d3c",
					VolumeName: "root", Members: []string{"/dev/sda2", "/dev/sdb2"}, PhysicalDisks: []string{"/dev/sda", "/dev/sdb"},
					State: "clean", Metadata: "1.2"}}}},
			{"get_raid.result", RAIDStatus{Arrays: []RAIDArray{
				{Name: "/dev/md127", RAIDLevel: RAIDLevel10, SizeBytes: 200 << 30, UUID: "aa:bb:cc:dd", Members: []string{"/dev/nvme0n1p2", "/dev/nvme1n1p2"},
					PhysicalDisks: []string{"/dev/nvme0n1", "/dev/nvme1n1"}, State: "active", Metadata: "1.2"}}}},
			{"delete_raid.result", DeleteRAIDResult{Stopped: []string{"/dev/md0", "/dev/md1"}, Wiped: []string{"/dev/sda", "/dev/sdb"}}},
		}
	})
}

func TestRAIDSizeJSON(t *testing.T) {
	tests := []struct {
		in   string
		want RAIDSize
		ok   bool
	}{
		{`50`, RAIDSize{GB: 50}, true},
		{`0`, RAIDSize{}, true},
		{`"MAX"`, RAIDSize{Max: true}, true},
		{`"max"`, RAIDSize{}, false},
		{`-1`, RAIDSize{}, false},
		{`1.5`, RAIDSize{}, false},
		{`"50"`, RAIDSize{}, false},
		{`null`, RAIDSize{}, false},
	}
	for _, tc := range tests {
		var got RAIDSize
		err := json.Unmarshal([]byte(tc.in), &got)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("Unmarshal(%s) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok {
			b, _ := json.Marshal(got)
			if string(b) != tc.in {
				t.Errorf("Marshal(%+v) = %s, want %s", got, b, tc.in)
			}
		}
	}
}

func sw(level string, size string, extra string) string {
	return `{"raid_level":"` + level + `","size_gb":` + size + `,"controller":"software"` + extra + `}`
}

func TestCreateRAIDArgsValidate(t *testing.T) {
	tests := []struct {
		name string
		lds  []string
		devs []string
		boot string
		want string // "" valid
	}{
		{"ok/raid1", []string{sw("1", `"MAX"`, "")}, nil, "", ""},
		{"ok/raid1-then-0", []string{sw("1", "10", ""), sw("0", `"MAX"`, "")}, []string{"/dev/a", "/dev/b"}, "uefi", ""},
		{"ok/raid1-then-5", []string{sw("1", "10", ""), sw("5", "20", "")}, []string{"/dev/a", "/dev/b", "/dev/c"}, "bios", ""},
		{"ok/raid1-then-10", []string{sw("1", "10", ""), sw("1+0", `"MAX"`, "")}, []string{"/dev/a", "/dev/b", "/dev/c", "/dev/d"}, "", ""},
		{"ok/physical-disks", []string{sw("1", "10", `,"physical_disks":["/dev/a",{"name":"/dev/b"}]`)}, nil, "", ""},
		{"no-logical-disks", nil, nil, "", "no logical_disks"},
		{"hardware", []string{`{"raid_level":"1","size_gb":10,"controller":"megaraid"}`}, nil, "", "controller"},
		{"no-controller", []string{`{"raid_level":"1","size_gb":10}`}, nil, "", "controller"},
		{"first-not-raid1", []string{sw("0", "10", "")}, nil, "", "first logical disk must be RAID-1"},
		{"three", []string{sw("1", "10", ""), sw("0", "10", ""), sw("0", "10", "")}, nil, "", "at most 2"},
		{"jbod", []string{sw("1", "10", ""), sw("JBOD", "10", "")}, nil, "", "not supported"},
		{"level-7", []string{sw("7", "10", "")}, nil, "", "raid_level"},
		{"max-not-last", []string{sw("1", `"MAX"`, ""), sw("0", "10", "")}, nil, "", "MAX only on the last"},
		{"size-zero", []string{sw("1", "0", "")}, nil, "", "size_gb 0"},
		{"raid5-two-disks", []string{sw("1", "10", ""), sw("5", "10", "")}, []string{"/dev/a", "/dev/b"}, "", "at least 3"},
		{"raid10-three-disks", []string{sw("1", "10", ""), sw("1+0", "10", "")}, []string{"/dev/a", "/dev/b", "/dev/c"}, "", "at least 4"},
		{"one-physical-disk", []string{sw("1", "10", `,"physical_disks":["/dev/a"]`)}, nil, "", "at least 2"},
		{"physical-disks-differ", []string{sw("1", "10", `,"physical_disks":["/dev/a","/dev/b"]`), sw("0", "10", `,"physical_disks":["/dev/a","/dev/c"]`)}, nil, "", "differ"},
		{"bad-physical-disk", []string{sw("1", "10", `,"physical_disks":[5,6]`)}, nil, "", "physical_disks"},
		{"two-roots", []string{sw("1", "10", `,"is_root_volume":true`), sw("1", "10", `,"is_root_volume":true`)}, nil, "", "is_root_volume"},
		{"same-volume-name", []string{sw("1", "10", `,"volume_name":"a"`), sw("1", "10", `,"volume_name":"a"`)}, nil, "", "twice"},
		{"count-mismatch", []string{sw("1", "10", `,"number_of_physical_disks":3`)}, []string{"/dev/a", "/dev/b"}, "", "number_of_physical_disks"},
		{"bad-disk-type", []string{sw("1", "10", `,"disk_type":"tape"`)}, nil, "", "disk_type"},
		{"bad-boot-mode", []string{sw("1", "10", "")}, nil, "pxe", "boot_mode"},
		{"relative-device", []string{sw("1", "10", "")}, []string{"sda", "sdb"}, "", "absolute"},
		{"devices-and-physical", []string{sw("1", "10", `,"physical_disks":["/dev/a","/dev/b"]`)}, []string{"/dev/a", "/dev/b"}, "", "both"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"target_raid_config":{"logical_disks":[` + strings.Join(tc.lds, ",") + `]}}`
			var a CreateRAIDArgs
			if err := json.Unmarshal([]byte(body), &a); err != nil {
				t.Fatalf("unmarshal %s: %v", body, err)
			}
			a.Devices, a.BootMode = tc.devs, tc.boot
			err := a.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestParsePhysicalDisk(t *testing.T) {
	name, hints, err := ParsePhysicalDisk(raw(`{"serial":"S1","size":100}`))
	if err != nil || name != "" || !cmp.Equal(hints, map[string]any{"serial": "S1", "size": 100.0}) {
		t.Errorf("ParsePhysicalDisk(hints) = %q, %v, %v", name, hints, err)
	}
	if name, _, err := ParsePhysicalDisk(raw(`"/dev/sdb"`)); err != nil || name != "/dev/sdb" {
		t.Errorf("ParsePhysicalDisk(name) = %q, %v", name, err)
	}
	for _, bad := range []string{`""`, `{}`, `[]`, `{"a":{"b":1}}`, `7`} {
		if _, _, err := ParsePhysicalDisk(raw(bad)); err == nil {
			t.Errorf("ParsePhysicalDisk(%s) = nil error", bad)
		}
	}
	for _, c := range []string{CmdCreateRAID, CmdDeleteRAID, CmdGetRAID} {
		if CommandFeature(c) != FeatureRAID {
			t.Errorf("CommandFeature(%q) = %q", c, CommandFeature(c))
		}
	}
}

func FuzzCreateRAIDArgs(f *testing.F) {
	f.Add([]byte(`{"target_raid_config":{"logical_disks":[{"raid_level":"1","size_gb":10,"controller":"software"},{"raid_level":"0","size_gb":"MAX","controller":"software"}]},"devices":["/dev/a","/dev/b"]}`))
	f.Add([]byte(`{"target_raid_config":{"logical_disks":[{"raid_level":"1","size_gb":"MAX","controller":"software","physical_disks":["/dev/a",{"name":"/dev/b"}]}]}}`))
	f.Add([]byte(`{"target_raid_config":{"logical_disks":[]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var a CreateRAIDArgs
		if DecodeArgs(data, &a) != nil || a.Validate() != nil {
			return
		}
		lds := a.TargetRAIDConfig.LogicalDisks
		if len(lds) == 0 || len(lds) > SoftwareMaxLogicalDisks || lds[0].RAIDLevel != RAIDLevel1 {
			t.Fatalf("invalid config accepted: %s", data)
		}
		for _, ld := range lds {
			if ld.Controller != RAIDControllerSoftware || MinSoftwareRAIDDevices[ld.RAIDLevel] == 0 {
				t.Fatalf("invalid logical disk accepted: %+v", ld)
			}
		}
		if _, err := json.Marshal(a); err != nil {
			t.Fatal(err)
		}
	})
}
