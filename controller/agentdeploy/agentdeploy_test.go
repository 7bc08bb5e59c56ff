package agentdeploy

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// agents is an in-memory conductor.Agents: a connected flag and canned results per command.
type agents struct {
	mu        sync.Mutex
	connected bool
	calls     []string
	args      map[string]json.RawMessage
	results   map[string]any
	fail      map[string]*proto.Error
}

func newAgents() *agents {
	return &agents{args: map[string]json.RawMessage{}, results: map[string]any{}, fail: map[string]*proto.Error{}}
}

func (a *agents) Run(_ context.Context, _ string, cmd proto.Command, progress func(proto.Progress)) (proto.Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.connected {
		return proto.Result{}, proto.Errorf(proto.CodeNotConnected, "no agent")
	}
	a.calls = append(a.calls, cmd.Name)
	a.args[cmd.Name] = cmd.Args
	if e := a.fail[cmd.Name]; e != nil {
		return proto.Result{ID: cmd.ID, Error: e}, nil
	}
	if cmd.Name == proto.CmdWriteImage && progress != nil {
		data, _ := json.Marshal(proto.WriteImageProgress{Bytes: 512, Total: 1024, Percent: 50, BytesPerSec: 100})
		progress(proto.Progress{ID: cmd.ID, Percent: 50, Data: data})
	}
	data, _ := json.Marshal(a.results[cmd.Name])
	return proto.Result{ID: cmd.ID, Data: data}, nil
}

func (a *agents) BootParams(context.Context, string) (string, error) { return "", nil }

// hw records power and boot device calls.
type hw struct {
	state string
	calls []string
}

func (h *hw) Validate(context.Context, *node.Node) error { return nil }
func (h *hw) PowerState(context.Context, *node.Node) (string, error) {
	return h.state, nil
}
func (h *hw) SetPowerState(_ context.Context, _ *node.Node, target string, _ time.Duration) error {
	h.calls = append(h.calls, "power "+target)
	h.state = node.PowerOn
	if strings.Contains(target, "off") {
		h.state = node.PowerOff
	}
	return nil
}
func (h *hw) SupportedBootDevices(context.Context, *node.Node) ([]string, error) {
	return []string{"pxe", "disk"}, nil
}
func (h *hw) SetBootDevice(_ context.Context, _ *node.Node, dev string, persistent bool) error {
	h.calls = append(h.calls, "boot "+dev+map[bool]string{true: " persistent", false: " once"}[persistent])
	return nil
}
func (h *hw) GetBootDevice(context.Context, *node.Node) (conductor.BootDevice, error) {
	return conductor.BootDevice{}, nil
}

func setup(t *testing.T, ifaces map[string]string) (*conductor.Driver, *agents, *hw, *node.Node) {
	t.Helper()
	ag, h := newAgents(), &hw{state: node.PowerOff}
	a, err := New(Config{Agents: ag})
	if err != nil {
		t.Fatal(err)
	}
	n := &node.Node{UUID: "7d0d3b3e-5a36-4a47-9d7e-3d1a3f5b9c10", Name: "n1"}
	n.Normalize()
	for k, v := range ifaces {
		n.SetIface(k, v)
	}
	d := &conductor.Driver{Power: h, Management: h}
	a.Fill(n, d)
	return d, ag, h, n
}

const sha = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"

func TestDeployBootsThenWritesWhenTheAgentIsThere(t *testing.T) {
	d, ag, h, n := setup(t, map[string]string{"deploy": "direct"})
	n.InstanceInfo = map[string]any{"image_source": "http://10.0.2.2:8080/img.qcow2", "image_disk_format": "qcow2",
		"image_os_hash_algo": "sha256", "image_os_hash_value": sha, "image_size": float64(1024),
		"configdrive": map[string]any{"user_data": "#cloud-config\n"}}
	n.Properties["root_device"] = map[string]any{"serial": "s== disk0"}
	ctx := context.Background()

	out, err := d.Deploy.Deploy(ctx, n)
	if err != nil || out != conductor.Wait {
		t.Fatalf("Deploy without an agent = %v, %v; want Wait", out, err)
	}
	if diff := cmp.Diff([]string{"boot pxe once", "power power on"}, h.calls); diff != "" {
		t.Errorf("booting the agent (-want +got):\n%s", diff)
	}
	if n.DriverInternalInfo["agent_boot_requested_at"] == nil {
		t.Error("no agent_boot_requested_at")
	}

	// The agent dialled in: the conductor runs Deploy again.
	h.calls = nil
	ag.connected = true
	ag.results[proto.CmdWriteImage] = proto.WriteImageResult{Target: "/dev/vda", Reason: "serial matched", DownloadBytes: 1024}
	ag.results[proto.CmdWriteConfigDrive] = proto.ConfigDriveResult{Device: "/dev/vda", Partition: "/dev/vda2"}
	out, err = d.Deploy.Deploy(ctx, n)
	if err != nil || out != conductor.Done {
		t.Fatalf("Deploy with the agent = %v, %v; want Done", out, err)
	}
	if diff := cmp.Diff([]string{proto.CmdGetStatus, proto.CmdWriteImage, proto.CmdWriteConfigDrive}, ag.calls); diff != "" {
		t.Errorf("agent commands (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"boot disk persistent", "power rebooting"}, h.calls); diff != "" {
		t.Errorf("after writing (-want +got):\n%s", diff)
	}
	var args proto.WriteImageArgs
	json.Unmarshal(ag.args[proto.CmdWriteImage], &args)
	want := proto.WriteImageArgs{ID: "http://10.0.2.2:8080/img.qcow2", URLs: []string{"http://10.0.2.2:8080/img.qcow2"}, DiskFormat: "qcow2",
		OSHashAlgo: "sha256", OSHashValue: sha, ImageSize: 1024, RootDeviceHints: map[string]any{"serial": "s== disk0"}}
	if diff := cmp.Diff(want, args); diff != "" {
		t.Errorf("write_image args (-want +got):\n%s", diff)
	}
	var cd proto.ConfigDriveArgs
	json.Unmarshal(ag.args[proto.CmdWriteConfigDrive], &cd)
	if cd.Device != "/dev/vda" || !strings.Contains(string(cd.ConfigDrive), `"uuid":"`+n.UUID) || !strings.Contains(string(cd.ConfigDrive), `"name":"n1"`) {
		t.Errorf("write_configdrive args = %s %s; want the written disk and meta_data with uuid and name", cd.Device, cd.ConfigDrive)
	}
	if n.DeployStep["step"] != "reboot" || n.DriverInternalInfo["configdrive_partition"] != "/dev/vda2" {
		t.Errorf("deploy_step %v, internal %v", n.DeployStep, n.DriverInternalInfo)
	}
	if rd, _ := n.DriverInternalInfo["root_device"].(map[string]any); rd["reason"] != "serial matched" {
		t.Errorf("root_device = %v", n.DriverInternalInfo["root_device"])
	}
}

func TestDeployFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		ii   map[string]any
		fail *proto.Error
		want string
	}{
		{"no image", map[string]any{}, nil, "image_source is required"},
		{"bare md5", map[string]any{"image_source": "http://x/i", "image_checksum": "d41d8cd98f00b204e9800998ecf8427e"}, nil, "bare md5"},
		{"bad scheme", map[string]any{"image_source": "file:///etc/shadow", "image_os_hash_algo": "sha256", "image_os_hash_value": sha}, nil, "scheme"},
		{"checksum mismatch", map[string]any{"image_source": "http://x/i", "image_os_hash_algo": "sha256", "image_os_hash_value": sha},
			&proto.Error{Code: proto.CodeFailed, Message: "checksum mismatch: got 00, want b9"}, "checksum mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, ag, h, n := setup(t, map[string]string{"deploy": "direct"})
			ag.connected = true
			n.InstanceInfo = tc.ii
			if tc.fail != nil {
				ag.fail[proto.CmdWriteImage] = tc.fail
			}
			_, err := d.Deploy.Deploy(context.Background(), n)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Deploy = %v, want an error with %q", err, tc.want)
			}
			for _, c := range h.calls {
				if strings.HasPrefix(c, "boot disk") {
					t.Errorf("a failed deploy set the boot device to disk: %v", h.calls)
				}
			}
		})
	}
}

func TestCleaning(t *testing.T) {
	d, ag, h, n := setup(t, map[string]string{"deploy": "direct", "raid": "agent"})
	ctx := context.Background()
	if out, err := d.Deploy.Clean(ctx, n, nil); err != nil || out != conductor.Wait {
		t.Fatalf("Clean without an agent = %v, %v; want Wait (boot)", out, err)
	}
	ag.connected = true
	h.calls = nil
	if out, err := d.Deploy.Clean(ctx, n, nil); err != nil || out != conductor.Done {
		t.Fatalf("automated Clean = %v, %v", out, err)
	}
	if diff := cmp.Diff([]string{proto.CmdGetStatus, proto.CmdEraseDevicesMetadata, proto.CmdEraseDevices}, ag.calls); diff != "" {
		t.Errorf("automated steps, highest priority first (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"power power off"}, h.calls); diff != "" {
		t.Errorf("after cleaning (-want +got):\n%s", diff)
	}

	// Manual: RAID from target_raid_config, BIOS settings.
	ag.calls = nil
	n.TargetRaidConfig = map[string]any{"logical_disks": []any{map[string]any{"size_gb": "MAX", "raid_level": "1", "controller": "software", "is_root_volume": true}}}
	ag.results[proto.CmdCreateRAID] = proto.RAIDStatus{RootDevice: "/dev/md0", RAIDConfig: &proto.RAIDConfig{}}
	steps := []node.Step{
		{"interface": "raid", "step": "create_configuration"},
		{"interface": "bios", "step": "apply_configuration", "args": map[string]any{"settings": []any{map[string]any{"name": "BootMode", "value": "uefi"}}}},
	}
	if out, err := d.Deploy.Clean(ctx, n, steps); err != nil || out != conductor.Done {
		t.Fatalf("manual Clean = %v, %v", out, err)
	}
	if diff := cmp.Diff([]string{proto.CmdGetStatus, proto.CmdCreateRAID, proto.CmdApplyBIOSSettings}, ag.calls); diff != "" {
		t.Errorf("manual steps (-want +got):\n%s", diff)
	}
	if n.DriverInternalInfo["raid_root_device"] != "/dev/md0" {
		t.Errorf("raid root device = %v", n.DriverInternalInfo["raid_root_device"])
	}
	// erase_devices_express is erase_devices with its fixed arguments.
	ag.calls = nil
	if _, err := d.Deploy.Clean(ctx, n, []node.Step{{"interface": "deploy", "step": "erase_devices_express"}}); err != nil {
		t.Fatal(err)
	}
	var ea proto.EraseArgs
	json.Unmarshal(ag.args[proto.CmdEraseDevices], &ea)
	if !ea.Express || ag.calls[len(ag.calls)-1] != proto.CmdEraseDevices {
		t.Errorf("express step sent %v with %s", ag.calls, ag.args[proto.CmdEraseDevices])
	}
	_, err := d.Deploy.Clean(ctx, n, []node.Step{{"interface": "deploy", "step": "format_everything"}})
	if err == nil || !strings.Contains(err.Error(), "no clean step deploy.format_everything") {
		t.Errorf("unknown step = %v", err)
	}
	ag.fail[proto.CmdEraseDevicesMetadata] = &proto.Error{Code: proto.CodeFailed, Message: "device busy"}
	if _, err := d.Deploy.Clean(ctx, n, nil); err == nil || !errors.Is(err, ag.fail[proto.CmdEraseDevicesMetadata]) && !strings.Contains(err.Error(), "device busy") {
		t.Errorf("failing step = %v", err)
	}
}

func TestInspect(t *testing.T) {
	d, ag, h, n := setup(t, map[string]string{"inspect": "agent"})
	ag.connected = true
	inv := map[string]any{
		"cpu":    map[string]any{"model_name": "QEMU", "frequency": "2400", "count": 4, "architecture": "x86_64", "flags": []string{}},
		"memory": map[string]any{"total": 2 << 30, "physical_mb": 2048},
		"disks": []any{map[string]any{"name": "/dev/vda", "size": 20 << 30}, map[string]any{"name": "/dev/vdb", "size": 10 << 30},
			map[string]any{"name": "/dev/sr0", "size": 1 << 20}},
		"interfaces":    []any{map[string]any{"name": "eth0", "mac_address": "52:54:00:12:34:56"}},
		"system_vendor": map[string]any{"product_name": "Standard PC", "serial_number": "S1", "manufacturer": "QEMU"},
		"boot":          map[string]any{"current_boot_mode": "uefi", "pxe_interface": "52:54:00:12:34:56"},
		"hostname":      "ramdisk",
		"ferrum":        map[string]any{"system_uuid": "4c4c4544-0000"},
	}
	ag.results[proto.CmdInspect] = inv
	n.Properties["capabilities"] = "secure_boot:false"
	out, err := d.Inspect.Inspect(context.Background(), n)
	if err != nil || out != conductor.Done {
		t.Fatalf("Inspect = %v, %v", out, err)
	}
	want := map[string]any{"cpus": 4, "cpu_arch": "x86_64", "memory_mb": int64(2048), "local_gb": int64(9),
		"capabilities": "secure_boot:false,boot_mode:uefi"}
	if diff := cmp.Diff(want, n.Properties); diff != "" {
		t.Errorf("properties (-want +got):\n%s", diff)
	}
	if strings.Contains(string(n.Inventory), "ferrum") || !strings.Contains(string(n.Inventory), "52:54:00:12:34:56") {
		t.Errorf("stored inventory = %s; want Ironic's keys only", n.Inventory)
	}
	if n.DriverInternalInfo["system_uuid"] != "4c4c4544-0000" {
		t.Errorf("system_uuid = %v", n.DriverInternalInfo["system_uuid"])
	}
	if diff := cmp.Diff([]string{"power power off"}, h.calls); diff != "" {
		t.Errorf("after inspection (-want +got):\n%s", diff)
	}
	// An inventory without interfaces is refused.
	delete(inv, "interfaces")
	if _, err := d.Inspect.Inspect(context.Background(), n); err == nil {
		t.Error("an inventory without interfaces was accepted")
	}
}

func TestFillChoosesByInterfaceName(t *testing.T) {
	d, _, _, _ := setup(t, map[string]string{"deploy": "ramdisk", "inspect": "no-inspect"})
	if d.Deploy != nil || d.Inspect != nil || d.Raid != nil || d.Bios != nil {
		t.Errorf("Fill set interfaces the node did not ask for: %+v", d)
	}
	d, _, _, _ = setup(t, map[string]string{"deploy": "direct", "inspect": "agent", "raid": "agent", "bios": "agent"})
	if d.Deploy == nil || d.Inspect == nil || d.Raid == nil || d.Bios == nil {
		t.Errorf("Fill missed an agent interface: %+v", d)
	}
}
