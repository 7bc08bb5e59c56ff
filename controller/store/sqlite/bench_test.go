package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/controller/store/internal/nodecache"
)

// benchNode is a node of a realistic size (about 1.5 KB of JSON).
func benchNode(i int) *node.Node {
	n := &node.Node{
		UUID:           uuid.NewString(),
		Name:           fmt.Sprintf("node-%05d", i),
		Driver:         []string{"ipmi", "redfish"}[i%2],
		ProvisionState: []node.State{node.Available, node.Active, node.Manageable}[i%3],
		PowerState:     node.PowerOn,
		ConductorGroup: []string{"", "east", "west"}[i%3],
		ResourceClass:  "baremetal",
		DriverInfo: map[string]any{"ipmi_address": fmt.Sprintf("10.0.%d.%d", i/256, i%256),
			"ipmi_username": "admin", "ipmi_password": "******", "deploy_kernel": "http://boot/ipa.kernel",
			"deploy_ramdisk": "http://boot/ipa.initramfs"},
		DriverInternalInfo: map[string]any{"agent_url": "https://10.1.0.1:9999", "agent_version": "10.0"},
		Properties: map[string]any{"cpus": float64(64), "memory_mb": float64(262144), "local_gb": float64(1800),
			"cpu_arch": "x86_64", "capabilities": "boot_mode:uefi"},
		Extra:        map[string]any{"rack": fmt.Sprintf("r%02d", i%40), "u": float64(i % 42)},
		InstanceInfo: map[string]any{},
		Traits:       []string{"CUSTOM_GPU", "CUSTOM_NVME"},
		Description:  fmt.Sprintf("rack %d", i%40),
		Interfaces: node.Interfaces{Boot: "ipxe", Deploy: "direct", Management: "ipmitool",
			Power: "ipmitool", Network: "noop", Inspect: "agent", Console: "no-console",
			Raid: "no-raid", Rescue: "no-rescue", Storage: "noop", Vendor: "no-vendor",
			Bios: "no-bios", Firmware: "no-firmware"},
		CreatedAt: time.Now(),
	}
	if i%3 == 1 {
		n.InstanceUUID = uuid.NewString()
	}
	return n
}

// fill inserts count nodes in one transaction, through the same mapping CreateNode uses.
func fill(b *testing.B, s *Store, count int) {
	b.Helper()
	ctx := context.Background()
	err := s.write(ctx, "fill", func(tx *sql.Tx) error {
		for i := range count {
			n := benchNode(i)
			normalizeNodeTimes(n)
			vals, err := nodeValues(n)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, nodeInsert, vals...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkListNodes lists 1000 of 10,000 nodes: go test -run '^$' -bench ListNodes ./controller/store/sqlite
func BenchmarkListNodes(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "bench.db"))
	fill(b, s, 10000)
	ctx := context.Background()
	mid, err := s.GetNode(ctx, "node-05000")
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name string
		q    node.NodeQuery
	}{
		{"first-page", node.NodeQuery{Page: node.Page{Limit: 1000}}},
		{"marker-page", node.NodeQuery{Page: node.Page{Limit: 1000, Marker: mid.UUID}}},
		{"sort-name-desc-marker", node.NodeQuery{Page: node.Page{Limit: 1000, SortKey: "name", SortDir: "desc", Marker: mid.UUID}}},
		{"filter-driver-state", node.NodeQuery{Driver: "ipmi", ProvisionState: node.Available, Page: node.Page{Limit: 1000}}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				ns, err := s.ListNodes(ctx, tc.q)
				if err != nil {
					b.Fatal(err)
				}
				if len(ns) == 0 {
					b.Fatal("no nodes")
				}
			}
		})
	}
	// Every body decoded again, as after a restart or when every node changed.
	b.Run("first-page-cold-cache", func(b *testing.B) {
		for b.Loop() {
			s.nodes = nodecache.Cache{}
			if _, err := s.ListNodes(ctx, cases[0].q); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCreateNode: one committed (fsynced) insert per op.
func BenchmarkCreateNode(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "bench.db"))
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if err := s.CreateNode(ctx, benchNode(i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkGetNode: one read by name.
func BenchmarkGetNode(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "bench.db"))
	fill(b, s, 10000)
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.GetNode(ctx, "node-04242"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSaveNode: one committed update of a reserved node per op.
func BenchmarkSaveNode(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "bench.db"))
	fill(b, s, 1000)
	ctx := context.Background()
	n, err := s.ReserveNode(ctx, "node-00500", "bench", time.Now().Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		n.DriverInternalInfo["agent_last_heartbeat"] = float64(i)
		if err := s.SaveNode(ctx, n, "bench"); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
