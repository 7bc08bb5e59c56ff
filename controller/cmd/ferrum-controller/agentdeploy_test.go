package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	bin "encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mbrImage builds a raw disk image of size bytes with an MBR and one Linux partition of
// partMiB MiB at 1 MiB holding random data, as a whole-disk image would have.
func mbrImage(t *testing.T, size int64, partMiB int) []byte {
	t.Helper()
	img := make([]byte, size)
	mbr := img[:512]
	entry := mbr[446:462]
	entry[4] = 0x83
	bin.LittleEndian.PutUint32(entry[8:], 2048)
	bin.LittleEndian.PutUint32(entry[12:], uint32(partMiB)<<11)
	mbr[510], mbr[511] = 0x55, 0xAA
	rand.Read(img[1<<20 : 1<<20+4<<20])
	return img
}

func (d *daemon) callAt(version, method, path string, body, out any) (int, string) {
	d.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, d.URL+path, r)
	req.Header.Set("X-OpenStack-Ironic-API-Version", version)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			d.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode, string(b)
}

// TestAgentLifecycleWithIpmiSim: a node behind a real ipmi_sim BMC with the agent deploy.
// inspect → the controller sets PXE and powers on through IPMI, the node waits; the real
// agent dials in → inventory stored, properties set, ports created, powered off. provide,
// then deploy an image with a config drive: written byte-exact by the agent (to a file: the
// agent runs on this host), config-2 partition at the end, boot device disk on the BMC,
// rebooted → active. undeploy → powered off → available. Automated cleaning is off: the agent
// runs on this machine, whose disks must not be erased.
func TestAgentLifecycleWithIpmiSim(t *testing.T) {
	sim, ipmitool := startIpmiSim(t)
	agentBin, certsBin := agentBinaries(t)
	agentAddr := freeAddr(t)
	d := startDaemon(t, "", "--agent-addr", agentAddr, "--power-sync-interval", "0", "--agent-heartbeat-interval", "1s")

	var n apiNode
	code, _, body := d.call("POST", "/v1/nodes", map[string]any{"name": "agent-ipmi", "driver": "ipmi",
		"deploy_interface": "direct", "inspect_interface": "agent", "automated_clean": false,
		"driver_info": map[string]any{"ipmi_address": sim.Host, "ipmi_port": sim.Port, "ipmi_username": "admin",
			"ipmi_password": bmcPassword, "ipmi_cipher_suite": 3}}, &n)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	d.manage(n.UUID)
	provision := func(target string, extra map[string]any) {
		t.Helper()
		req := map[string]any{"target": target}
		for k, v := range extra {
			req[k] = v
		}
		if code, _, body := d.call("PUT", "/v1/nodes/"+n.UUID+"/states/provision", req, nil); code != 202 {
			t.Fatalf("%s: %d %s", target, code, body)
		}
	}

	// Inspection: the BMC is told to PXE-boot and powered on; the node waits for its agent.
	provision("inspect", nil)
	d.waitNode(n.UUID, "inspect wait", func(x apiNode) bool { return x.ProvisionState == "inspect wait" && x.Reservation == nil })
	if out := ipmitool("chassis", "bootparam", "get", "5"); !strings.Contains(out, "Force PXE") {
		t.Errorf("boot device for the agent:\n%s", out)
	}
	if out := ipmitool("power", "status"); !strings.Contains(out, "on") {
		t.Errorf("power for the agent: %s", out)
	}
	// The "machine" boots the ramdisk: the agent with the node's kernel parameters.
	out, err := exec.Command(certsBin, "kernel-params", "-dir", filepath.Join(d.DataDir, "pki"), "-node", n.UUID,
		"-controller", agentAddr).Output()
	if err != nil {
		t.Fatalf("ferrum-certs kernel-params: %v", err)
	}
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	if err := os.WriteFile(cmdline, []byte("console=ttyS0 "+strings.TrimSpace(string(out))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startAgentProc(t, agentBin, cmdline)
	got := d.waitNode(n.UUID, "inspected", func(x apiNode) bool { return x.ProvisionState == "manageable" && x.Reservation == nil })
	if str(got.LastError) != "" {
		t.Fatalf("inspection failed: %s", str(got.LastError))
	}
	if cpus, _ := got.Properties["cpus"].(float64); cpus < 1 {
		t.Errorf("properties after inspection: %v", got.Properties)
	}
	for _, k := range []string{"memory_mb", "cpu_arch"} {
		if got.Properties[k] == nil {
			t.Errorf("properties lack %s: %v", k, got.Properties)
		}
	}
	var inv struct {
		Inventory struct {
			CPU struct {
				Count int `json:"count"`
			} `json:"cpu"`
			Interfaces []struct {
				MAC string `json:"mac_address"`
			} `json:"interfaces"`
		} `json:"inventory"`
	}
	if code, body := d.callAt("1.81", "GET", "/v1/nodes/"+n.UUID+"/inventory", nil, &inv); code != 200 || inv.Inventory.CPU.Count < 1 {
		t.Fatalf("inventory: %d %s", code, body)
	}
	var ports struct {
		Ports []struct {
			Address string `json:"address"`
		} `json:"ports"`
	}
	d.call("GET", "/v1/ports?node_uuid="+n.UUID, nil, &ports)
	if len(ports.Ports) == 0 || len(ports.Ports) > len(inv.Inventory.Interfaces) {
		t.Errorf("ports from inspection: %+v, interfaces %+v", ports.Ports, inv.Inventory.Interfaces)
	}
	if out := ipmitool("power", "status"); !strings.Contains(out, "off") {
		t.Errorf("after inspection the BMC says %s, want off", out)
	}

	// Deploy an MBR image of 96 MiB (a 16 MiB partition) with a config drive, fast track.
	provision("provide", nil)
	d.waitNode(n.UUID, "available", func(x apiNode) bool { return x.ProvisionState == "available" && x.Reservation == nil })
	img := mbrImage(t, 96<<20, 16)
	sum := sha256.Sum256(img)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "disk.raw", time.Time{}, bytes.NewReader(img))
	}))
	t.Cleanup(srv.Close)
	target := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	setImage := func(checksum string) {
		t.Helper()
		patch := []map[string]any{
			{"op": "add", "path": "/instance_info/image_source", "value": srv.URL + "/disk.raw"},
			{"op": "add", "path": "/instance_info/image_disk_format", "value": "raw"},
			{"op": "add", "path": "/instance_info/image_os_hash_algo", "value": "sha256"},
			{"op": "add", "path": "/instance_info/image_os_hash_value", "value": checksum},
			{"op": "add", "path": "/instance_info/ferrum_target", "value": target},
		}
		if code, _, body := d.call("PATCH", "/v1/nodes/"+n.UUID, patch, nil); code != 200 {
			t.Fatalf("instance_info: %d %s", code, body)
		}
	}
	// A bad checksum first: the deploy fails with the agent's reason, the disk is left
	// unbootable, the node never becomes active.
	setImage(hex.EncodeToString(make([]byte, 32)))
	provision("active", nil)
	got = d.waitNode(n.UUID, "deploy failed", func(x apiNode) bool {
		return (x.ProvisionState == "active" || strings.HasSuffix(x.ProvisionState, "failed")) && x.Reservation == nil
	})
	if got.ProvisionState != "deploy failed" || !strings.Contains(strings.ToLower(str(got.LastError)), "checksum") {
		t.Fatalf("deploy of a corrupt image: %s, last_error %q", got.ProvisionState, str(got.LastError))
	}
	if disk, err := os.ReadFile(target); err != nil || (len(disk) >= 512 && disk[510] == 0x55 && disk[511] == 0xAA) {
		t.Errorf("after a failed write the disk still has a boot signature (read error %v)", err)
	}
	provision("deleted", nil)
	d.waitNode(n.UUID, "available", func(x apiNode) bool { return x.ProvisionState == "available" && x.Reservation == nil })
	setImage(hex.EncodeToString(sum[:])) // undeploy cleared instance_info, as Ironic does

	provision("active", map[string]any{"configdrive": map[string]any{
		"meta_data": map[string]any{"hostname": "deployed"}, "user_data": "#cloud-config\n"}})
	got = d.waitNode(n.UUID, "active", func(x apiNode) bool {
		return (x.ProvisionState == "active" || strings.HasSuffix(x.ProvisionState, "failed")) && x.Reservation == nil
	})
	if got.ProvisionState != "active" {
		t.Fatalf("deploy ended %s: %s", got.ProvisionState, str(got.LastError))
	}
	disk, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	partEnd := (1 + 16) << 20
	if len(disk) < partEnd || !bytes.Equal(disk[512:partEnd], img[512:partEnd]) || !bytes.Equal(disk[:446], img[:446]) {
		t.Fatalf("the image on the disk differs from the image served")
	}
	// The config drive: a second MBR partition holding an ISO 9660 labelled config-2.
	e2 := disk[462:478]
	start := int64(bin.LittleEndian.Uint32(e2[8:])) * 512
	if start == 0 || start+0x8030 > int64(len(disk)) {
		t.Fatalf("no second partition for the config drive: entry % x", e2)
	}
	pvd := disk[start+0x8000 : start+0x8000+0x30]
	if string(pvd[1:6]) != "CD001" || !strings.HasPrefix(string(pvd[0x28:]), "config-2") {
		t.Errorf("config drive partition at %d: % x", start, pvd)
	}
	if out := ipmitool("chassis", "bootparam", "get", "5"); !strings.Contains(out, "Hard-Drive") {
		t.Errorf("boot device after deploy:\n%s", out)
	}
	if out := ipmitool("power", "status"); !strings.Contains(out, "on") {
		t.Errorf("after deploy the BMC says %s, want on", out)
	}
	var full map[string]any
	d.call("GET", "/v1/nodes/"+n.UUID, nil, &full)
	dii, _ := full["driver_internal_info"].(map[string]any)
	if rd, _ := dii["root_device"].(map[string]any); rd["path"] != target {
		t.Errorf("driver_internal_info.root_device = %v", dii["root_device"])
	}

	provision("deleted", nil)
	d.waitNode(n.UUID, "available again", func(x apiNode) bool { return x.ProvisionState == "available" && x.Reservation == nil })
	if out := ipmitool("power", "status"); !strings.Contains(out, "off") {
		t.Errorf("after undeploy the BMC says %s, want off", out)
	}
	d.noSecretsInLogs()
}
