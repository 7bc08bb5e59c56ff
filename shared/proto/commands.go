package proto

import (
	"encoding/json"
	"fmt"
	"time"
)

// Command names. Append only.
const (
	// CmdGetStatus returns Status. Not mutating.
	CmdGetStatus = "get_status"
	// CmdPing echoes PingArgs as Pong. Not mutating.
	CmdPing = "ping"
	// CmdGetLogs returns the agent's recent log as Logs (v2, FeatureLogs). Not mutating.
	CmdGetLogs = "get_logs"
)

// commandFeatures maps a command to the feature a peer must announce for it. Each capability
// file (inspect.go, image.go, ...) adds its commands in an init function.
var commandFeatures = map[string]string{CmdGetLogs: FeatureLogs}

// registerCommands records that the named commands need feature f. Called from init only.
func registerCommands(f string, names ...string) {
	for _, n := range names {
		commandFeatures[n] = f
	}
}

// CommandFeature returns the feature a peer must announce for command name, or "".
func CommandFeature(name string) string { return commandFeatures[name] }

// Status is get_status's result.
type Status struct {
	AgentVersion string    `json:"agent_version"`
	BootID       string    `json:"boot_id"`
	Hostname     string    `json:"hostname,omitempty"`
	Time         time.Time `json:"time"`
	UptimeMs     int64     `json:"uptime_ms"`
	// Running is the mutating command in progress, if any.
	Running *Running `json:"running,omitempty"`
}

// Running describes a command in progress.
type Running struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	StartedAt time.Time `json:"started_at"`
}

// PingArgs are ping's arguments.
type PingArgs struct {
	Payload string `json:"payload,omitempty"`
}

// Pong is ping's result.
type Pong struct {
	Payload string    `json:"payload,omitempty"`
	Time    time.Time `json:"time"`
}

// LogsArgs are get_logs's arguments. MaxBytes 0 means the agent's default.
type LogsArgs struct {
	MaxBytes int `json:"max_bytes,omitempty"`
}

// Logs is get_logs's result: the newest log lines, at most MaxBytes of them.
type Logs struct {
	Text      string `json:"text"`
	Truncated bool   `json:"truncated,omitempty"`
}

// Args marshals command arguments; nil gives none.
func Args(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("proto: encode arguments: %w", err)
	}
	return b, nil
}

// DecodeArgs decodes a command's arguments into v; absent arguments leave v as it is.
func DecodeArgs(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return Errorf(CodeBadRequest, "arguments: %v", err)
	}
	return nil
}
