package api

import (
	"encoding/json"
	"maps"

	"github.com/ferrumhq/ferrum/controller/node"
)

// withAgentLink shows a node's agent link in driver_internal_info, where Ironic keeps what it
// knows of its agent: agent_last_heartbeat and agent_version under Ironic's names, and the
// boot path (network boot included) and session under "ferrum_agent". m is not modified.
func withAgentLink(m map[string]any, a *node.AgentLink) map[string]any {
	if a == nil {
		return m
	}
	out := maps.Clone(m)
	if out == nil {
		out = map[string]any{}
	}
	if !a.LastSeenAt.IsZero() {
		out["agent_last_heartbeat"] = isoTime(a.LastSeenAt)
	}
	if a.AgentVersion != "" {
		out["agent_version"] = a.AgentVersion
	}
	fa := map[string]any{
		"connected":        a.Connected(),
		"token_issued_at":  isoTime(a.TokenIssuedAt),
		"enrolled_at":      isoTime(a.EnrolledAt),
		"connected_at":     isoTime(a.ConnectedAt),
		"disconnected_at":  isoTime(a.DisconnectedAt),
		"last_seen_at":     isoTime(a.LastSeenAt),
		"cert_serial":      strOrNil(a.CertSerial),
		"cert_not_after":   isoTime(a.CertNotAfter),
		"boot_id":          strOrNil(a.BootID),
		"protocol_version": a.ProtocolVersion,
		// The network boot before the agent (controller/boot).
		"script_fetched_at": isoTime(a.ScriptFetchedAt),
		"kernel_fetched_at": isoTime(a.KernelFetchedAt),
		"initrd_fetched_at": isoTime(a.InitrdFetchedAt),
		"boot_client_addr":  strOrNil(a.BootClientAddr),
		"boot_mac":          strOrNil(a.BootMAC),
	}
	if len(a.Status) > 0 {
		var st any
		if json.Unmarshal(a.Status, &st) == nil {
			fa["status"] = st
		}
	}
	out["ferrum_agent"] = fa
	return out
}
