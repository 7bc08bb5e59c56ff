package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/controller/node"
)

func TestWithAgentLink(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 500000000, time.UTC)
	stored := map[string]any{"clean_steps": []any{}}
	got := withAgentLink(stored, &node.AgentLink{NodeUUID: "n", TokenIssuedAt: t0, EnrolledAt: t0.Add(time.Second),
		ConnectedAt: t0.Add(2 * time.Second), LastSeenAt: t0.Add(3 * time.Second), CertSerial: "42",
		CertNotAfter: t0.Add(time.Hour), AgentVersion: "1.0", BootID: "b", ProtocolVersion: 2,
		Status: json.RawMessage(`{"hostname":"ramdisk"}`)})
	want := map[string]any{
		"clean_steps":          []any{},
		"agent_last_heartbeat": "2026-11-22T10:00:03.500000+00:00",
		"agent_version":        "1.0",
		"ferrum_agent": map[string]any{
			"connected": true, "token_issued_at": "2026-11-22T10:00:00.500000+00:00",
			"enrolled_at": "2026-11-22T10:00:01.500000+00:00", "connected_at": "2026-11-22T10:00:02.500000+00:00",
			"disconnected_at": nil, "last_seen_at": "2026-11-22T10:00:03.500000+00:00", "cert_serial": "42",
			"cert_not_after": "2026-11-22T11:00:00.500000+00:00", "boot_id": "b", "protocol_version": 2,
			"status": map[string]any{"hostname": "ramdisk"}, "script_fetched_at": nil, "kernel_fetched_at": nil,
			"initrd_fetched_at": nil, "boot_client_addr": nil, "boot_mac": nil,
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("withAgentLink (-want +got):\n%s", diff)
	}
	if len(stored) != 1 {
		t.Errorf("the stored map was modified: %v", stored)
	}
	if m := withAgentLink(stored, nil); len(m) != 1 {
		t.Errorf("without a link: %v", m)
	}
}

func TestWithAgentLinkBootPath(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	got := withAgentLink(nil, &node.AgentLink{NodeUUID: "n", ScriptFetchedAt: t0, KernelFetchedAt: t0.Add(time.Second),
		InitrdFetchedAt: t0.Add(2 * time.Second), BootClientAddr: "10.0.2.15", BootMAC: "52:54:00:12:34:56"})
	fa, _ := got["ferrum_agent"].(map[string]any)
	want := map[string]any{"script_fetched_at": "2026-11-22T10:00:00+00:00", "kernel_fetched_at": "2026-11-22T10:00:01+00:00",
		"initrd_fetched_at": "2026-11-22T10:00:02+00:00", "boot_client_addr": "10.0.2.15", "boot_mac": "52:54:00:12:34:56",
		"connected": false}
	for k, v := range want {
		if diff := cmp.Diff(v, fa[k]); diff != "" {
			t.Errorf("ferrum_agent.%s (-want +got):\n%s", k, diff)
		}
	}
}
