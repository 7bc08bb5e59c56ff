package node

import (
	"encoding/json"
	"slices"
	"time"
)

// AgentLink is the controller's record of a node's ramdisk agent: the timestamps along its boot
// path (token minted → certificate issued → tunnel connected → last heartbeat) and what its
// latest session said. Zero values are unknown.
type AgentLink struct {
	NodeUUID        string          `json:"node_uuid"`
	TokenIssuedAt   time.Time       `json:"token_issued_at,omitzero"`
	EnrolledAt      time.Time       `json:"enrolled_at,omitzero"`
	ConnectedAt     time.Time       `json:"connected_at,omitzero"`
	DisconnectedAt  time.Time       `json:"disconnected_at,omitzero"`
	LastSeenAt      time.Time       `json:"last_seen_at,omitzero"`
	CertSerial      string          `json:"cert_serial,omitempty"`
	CertNotAfter    time.Time       `json:"cert_not_after,omitzero"`
	AgentVersion    string          `json:"agent_version,omitempty"`
	BootID          string          `json:"boot_id,omitempty"`
	ProtocolVersion int             `json:"protocol_version,omitempty"`
	Status          json.RawMessage `json:"status,omitempty"` // the agent's latest get_status

	// The network boot before the agent, recorded by the boot server: when the node's iPXE
	// script, kernel and initramfs were last requested, from which client address, and the MAC
	// the script was asked for.
	ScriptFetchedAt time.Time `json:"script_fetched_at,omitzero"`
	KernelFetchedAt time.Time `json:"kernel_fetched_at,omitzero"`
	InitrdFetchedAt time.Time `json:"initrd_fetched_at,omitzero"`
	BootClientAddr  string    `json:"boot_client_addr,omitempty"`
	BootMAC         string    `json:"boot_mac,omitempty"`
}

// Connected reports whether the latest session is still open.
func (a *AgentLink) Connected() bool {
	return a != nil && !a.ConnectedAt.IsZero() && a.ConnectedAt.After(a.DisconnectedAt)
}

// Merge copies the known (non-zero) fields of u into a.
func (a *AgentLink) Merge(u AgentLink) {
	setT := func(dst *time.Time, v time.Time) {
		if !v.IsZero() {
			*dst = v
		}
	}
	setT(&a.TokenIssuedAt, u.TokenIssuedAt)
	setT(&a.EnrolledAt, u.EnrolledAt)
	setT(&a.ConnectedAt, u.ConnectedAt)
	setT(&a.DisconnectedAt, u.DisconnectedAt)
	setT(&a.LastSeenAt, u.LastSeenAt)
	setT(&a.CertNotAfter, u.CertNotAfter)
	setT(&a.ScriptFetchedAt, u.ScriptFetchedAt)
	setT(&a.KernelFetchedAt, u.KernelFetchedAt)
	setT(&a.InitrdFetchedAt, u.InitrdFetchedAt)
	if u.BootClientAddr != "" {
		a.BootClientAddr = u.BootClientAddr
	}
	if u.BootMAC != "" {
		a.BootMAC = u.BootMAC
	}
	if u.CertSerial != "" {
		a.CertSerial = u.CertSerial
	}
	if u.AgentVersion != "" {
		a.AgentVersion = u.AgentVersion
	}
	if u.BootID != "" {
		a.BootID = u.BootID
	}
	if u.ProtocolVersion != 0 {
		a.ProtocolVersion = u.ProtocolVersion
	}
	if len(u.Status) > 0 {
		a.Status = u.Status
	}
}

// AgentStates are the provision states in which a node runs the ramdisk agent and may hold a
// tunnel to the controller: the agent-driven operations, their wait and hold states, rescue,
// and their failure states (so the agent's logs can still be fetched).
var AgentStates = []State{Inspecting, InspectWait, InspectFail, Cleaning, CleanWait, CleanHold, CleanFail,
	Deploying, DeployWait, DeployHold, DeployFail, Rescuing, RescueWait, Rescue, RescueFail,
	Servicing, ServiceWait, ServiceHold, ServiceFail}

// ExpectsAgent reports whether a node in state s may have an agent connected.
func (s State) ExpectsAgent() bool { return slices.Contains(AgentStates, s) }
