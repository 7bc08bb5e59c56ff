package node

import (
	"slices"
	"testing"
	"time"
)

func TestExpectsAgent(t *testing.T) {
	for _, s := range AllStates() {
		want := slices.Contains(AgentStates, s)
		if got := s.ExpectsAgent(); got != want {
			t.Errorf("%q.ExpectsAgent() = %v, want %v", s, got, want)
		}
	}
	for _, s := range []State{Enroll, Manageable, Available, Active, Verifying, Adopting, Deleting} {
		if s.ExpectsAgent() {
			t.Errorf("%q expects an agent", s)
		}
	}
	for _, s := range AgentStates {
		if !s.Known() {
			t.Errorf("AgentStates has unknown state %q", s)
		}
	}
}

func TestAgentLinkMerge(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := AgentLink{NodeUUID: "n", EnrolledAt: t0, CertSerial: "1", ProtocolVersion: 2}
	a.Merge(AgentLink{ConnectedAt: t0.Add(time.Second), CertSerial: "2"})
	if a.EnrolledAt != t0 || a.CertSerial != "2" || a.ProtocolVersion != 2 || !a.Connected() {
		t.Errorf("after merge: %+v", a)
	}
	a.Merge(AgentLink{DisconnectedAt: t0.Add(2 * time.Second)})
	if a.Connected() {
		t.Error("still connected after a later disconnect")
	}
	var nilLink *AgentLink
	if nilLink.Connected() {
		t.Error("nil link connected")
	}
	n := &Node{UUID: "n", Agent: &a}
	if c := n.Clone(); c.Agent == nil || c.Agent == n.Agent || c.Agent.CertSerial != "2" {
		t.Errorf("Clone did not copy the agent link: %+v", c.Agent)
	}
}
