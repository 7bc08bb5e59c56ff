package agentdeploy

import (
	"encoding/json"
	"strings"

	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/shared/proto"
)

const gib = 1 << 30

// applyInventory stores the inventory as Ironic would (Ferrum's extras apart) and sets the
// properties Ironic's inspection sets: cpus, memory_mb, local_gb (the root disk's GiB less
// one, for partitioning), cpu_arch and the boot_mode capability.
func applyInventory(n *node.Node, inv *proto.Inventory, raw json.RawMessage) {
	var doc map[string]json.RawMessage
	if json.Unmarshal(raw, &doc) == nil {
		delete(doc, "ferrum")
		if b, err := json.Marshal(doc); err == nil {
			n.Inventory = b
		}
	}
	if extra := inv.Ferrum; extra != nil && extra.SystemUUID != "" {
		n.DriverInternalInfo["system_uuid"] = extra.SystemUUID
	}
	p := n.Properties
	if inv.CPU.Count > 0 {
		p["cpus"] = inv.CPU.Count
	}
	if inv.CPU.Architecture != "" {
		p["cpu_arch"] = inv.CPU.Architecture
	}
	if inv.Memory.PhysicalMB > 0 {
		p["memory_mb"] = inv.Memory.PhysicalMB
	}
	if size := rootDiskSize(inv); size > 0 {
		p["local_gb"] = max(size/gib-1, 0)
	}
	if mode := inv.Boot.CurrentBootMode; mode != "" {
		p["capabilities"] = setCapability(p["capabilities"], "boot_mode", mode)
	}
}

// rootDiskSize is the size of the disk the hints chose, else IPA's default root disk: the
// smallest disk of at least 4 GiB.
func rootDiskSize(inv *proto.Inventory) int64 {
	if inv.Ferrum != nil && inv.Ferrum.RootDisk != nil && inv.Ferrum.RootDisk.Disk.Size > 0 {
		return inv.Ferrum.RootDisk.Disk.Size
	}
	var best int64
	for _, d := range inv.Disks {
		if d.Size >= 4*gib && (best == 0 || d.Size < best) {
			best = d.Size
		}
	}
	return best
}

// setCapability sets key:value in Ironic's capabilities string ("k1:v1,k2:v2") or map.
func setCapability(caps any, key, value string) any {
	if m, ok := caps.(map[string]any); ok {
		m[key] = value
		return m
	}
	s, _ := caps.(string)
	var out []string
	found := false
	for _, kv := range strings.Split(s, ",") {
		if kv == "" {
			continue
		}
		if k, _, _ := strings.Cut(kv, ":"); k == key {
			kv, found = key+":"+value, true
		}
		out = append(out, kv)
	}
	if !found {
		out = append(out, key+":"+value)
	}
	return strings.Join(out, ",")
}
