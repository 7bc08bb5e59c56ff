package node

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAgentLinkMergeBootPath(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		have, upd AgentLink
		want      AgentLink
	}{
		{"script/first", AgentLink{NodeUUID: "n", EnrolledAt: t0},
			AgentLink{NodeUUID: "n", ScriptFetchedAt: t0.Add(time.Second), BootClientAddr: "10.0.2.15", BootMAC: "52:54:00:12:34:56"},
			AgentLink{NodeUUID: "n", EnrolledAt: t0, ScriptFetchedAt: t0.Add(time.Second), BootClientAddr: "10.0.2.15", BootMAC: "52:54:00:12:34:56"}},
		{"kernel-and-initrd/keep-script", AgentLink{NodeUUID: "n", ScriptFetchedAt: t0, BootClientAddr: "a", BootMAC: "m"},
			AgentLink{NodeUUID: "n", KernelFetchedAt: t0.Add(time.Second), InitrdFetchedAt: t0.Add(2 * time.Second)},
			AgentLink{NodeUUID: "n", ScriptFetchedAt: t0, KernelFetchedAt: t0.Add(time.Second), InitrdFetchedAt: t0.Add(2 * time.Second), BootClientAddr: "a", BootMAC: "m"}},
		{"new-client/replaces", AgentLink{NodeUUID: "n", BootClientAddr: "a"},
			AgentLink{NodeUUID: "n", BootClientAddr: "b"}, AgentLink{NodeUUID: "n", BootClientAddr: "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.have
			got.Merge(tc.upd)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Merge (-want +got):\n%s", diff)
			}
		})
	}
}

// The boot-path fields are omitted while unknown, so older records decode and encode alike.
func TestAgentLinkBootPathJSON(t *testing.T) {
	b, err := json.Marshal(AgentLink{NodeUUID: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"node_uuid":"n"}`; got != want {
		t.Errorf("Marshal(empty link) = %s, want %s", got, want)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	in := AgentLink{NodeUUID: "n", ScriptFetchedAt: t0, KernelFetchedAt: t0, InitrdFetchedAt: t0, BootClientAddr: "c", BootMAC: "m"}
	b, _ = json.Marshal(in)
	var out AgentLink
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}
