package proto

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Message types, the "type" of an Envelope. Append only.
const (
	TypeHello         = "hello"
	TypeHelloAck      = "hello_ack"
	TypeHeartbeat     = "heartbeat"
	TypeEvent         = "event"
	TypeCommand       = "command"
	TypeAck           = "ack"
	TypeProgress      = "progress"
	TypeResult        = "result"
	TypeCancel        = "cancel"
	TypeRenewRequest  = "renew_request"
	TypeRenewResponse = "renew_response"
)

// Message is any message of this package.
type Message interface {
	MessageType() string
	// Validate reports a message a peer must refuse.
	Validate() error
}

// Streams. The opener of a stream writes the first message; its type says what the stream is.
//
//	agent opens:      hello → hello_ack                  first stream of a session
//	                  heartbeat                          one per interval, then close
//	                  event                              one, then close
//	                  progress* result → ack             report of an accepted command
//	                  renew_request → renew_response     certificate renewal (FeatureRenew)
//	controller opens: command → result | ack             ack: it runs, a report stream follows
//	                  cancel → ack
//
// Each stream carries frames of one envelope each (see Write and Read).

// Hello is the agent's first message on a new session.
type Hello struct {
	Version      int      `json:"version"`
	MinVersion   int      `json:"min_version"`
	Features     []string `json:"features"`
	AgentVersion string   `json:"agent_version,omitempty"`
	// BootID is random per agent process: a new one means the agent restarted.
	BootID string `json:"boot_id,omitempty"`
	// Pending lists commands accepted but not yet reported (v2, FeatureResume).
	Pending []Pending `json:"pending,omitempty"`
}

// Pending is one command the agent still runs, or whose result the controller has not
// acknowledged yet.
type Pending struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Done bool   `json:"done,omitempty"`
}

// HelloAck is the controller's answer. With Error set, the controller closes the session.
type HelloAck struct {
	Version  int      `json:"version"`
	Features []string `json:"features"`
	Node     string   `json:"node"`
	// HeartbeatMs is how often the agent should send a heartbeat.
	HeartbeatMs int64  `json:"heartbeat_ms"`
	Error       *Error `json:"error,omitempty"`
}

// Heartbeat tells the controller the agent is alive.
type Heartbeat struct {
	Time time.Time `json:"time"`
	Seq  uint64    `json:"seq"`
	// Running is the ID of the mutating command the agent runs, if any.
	Running string `json:"running,omitempty"`
}

// Event is something the agent wants the controller to know, outside any command.
type Event struct {
	Kind    string          `json:"kind"`
	Time    time.Time       `json:"time"`
	Message string          `json:"message,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Command asks the agent to run Name with Args.
type Command struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Args      json.RawMessage `json:"args,omitempty"`
	TimeoutMs int64           `json:"timeout_ms,omitempty"`
}

// Ack acknowledges a command (the agent accepted it and will report), a cancel, or a result.
type Ack struct {
	ID string `json:"id"`
}

// Progress reports how far a command got.
type Progress struct {
	ID      string          `json:"id"`
	Time    time.Time       `json:"time"`
	Percent float64         `json:"percent,omitempty"`
	Message string          `json:"message,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Result is how a command ended: Data on success, Error otherwise.
type Result struct {
	ID    string          `json:"id"`
	Data  json.RawMessage `json:"data,omitempty"`
	Error *Error          `json:"error,omitempty"`
	// StartedAt and FinishedAt are the agent's clock (v2).
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// Cancel asks the agent to cancel a running command.
type Cancel struct {
	ID string `json:"id"`
}

// RenewRequest asks for a new client certificate for a fresh key (FeatureRenew).
type RenewRequest struct {
	CSR string `json:"csr"` // PEM
}

// RenewResponse carries the new certificate chain (PEM, leaf first), or Error.
type RenewResponse struct {
	Chain []string `json:"chain,omitempty"`
	Error *Error   `json:"error,omitempty"`
}

func (Hello) MessageType() string         { return TypeHello }
func (HelloAck) MessageType() string      { return TypeHelloAck }
func (Heartbeat) MessageType() string     { return TypeHeartbeat }
func (Event) MessageType() string         { return TypeEvent }
func (Command) MessageType() string       { return TypeCommand }
func (Ack) MessageType() string           { return TypeAck }
func (Progress) MessageType() string      { return TypeProgress }
func (Result) MessageType() string        { return TypeResult }
func (Cancel) MessageType() string        { return TypeCancel }
func (RenewRequest) MessageType() string  { return TypeRenewRequest }
func (RenewResponse) MessageType() string { return TypeRenewResponse }

// MaxIDLen bounds command IDs.
const MaxIDLen = 64

func checkID(id string) error {
	if id == "" || len(id) > MaxIDLen || !utf8.ValidString(id) {
		return fmt.Errorf("id must be 1-%d bytes of UTF-8", MaxIDLen)
	}
	return nil
}

func (m Hello) Validate() error {
	if m.Version < 1 || m.MinVersion < 1 || m.MinVersion > m.Version {
		return fmt.Errorf("hello: bad versions %d..%d", m.MinVersion, m.Version)
	}
	for _, p := range m.Pending {
		if err := checkID(p.ID); err != nil {
			return fmt.Errorf("hello: pending: %w", err)
		}
	}
	return nil
}

func (m HelloAck) Validate() error {
	if m.Error != nil {
		return m.Error.validate()
	}
	if m.Version < 1 {
		return fmt.Errorf("hello_ack: bad version %d", m.Version)
	}
	if m.HeartbeatMs < 0 {
		return errors.New("hello_ack: negative heartbeat")
	}
	return nil
}

func (m Heartbeat) Validate() error { return nil }

func (m Event) Validate() error {
	if m.Kind == "" {
		return errors.New("event: kind is required")
	}
	return nil
}

func (m Command) Validate() error {
	if err := checkID(m.ID); err != nil {
		return fmt.Errorf("command: %w", err)
	}
	if m.Name == "" {
		return errors.New("command: name is required")
	}
	if m.TimeoutMs < 0 {
		return errors.New("command: negative timeout")
	}
	return nil
}

func (m Ack) Validate() error    { return checkID(m.ID) }
func (m Cancel) Validate() error { return checkID(m.ID) }

func (m Progress) Validate() error {
	if err := checkID(m.ID); err != nil {
		return fmt.Errorf("progress: %w", err)
	}
	return nil
}

func (m Result) Validate() error {
	if err := checkID(m.ID); err != nil {
		return fmt.Errorf("result: %w", err)
	}
	if m.Error != nil {
		return m.Error.validate()
	}
	return nil
}

func (m RenewRequest) Validate() error {
	if m.CSR == "" {
		return errors.New("renew_request: csr is required")
	}
	return nil
}

func (m RenewResponse) Validate() error {
	if m.Error != nil {
		return m.Error.validate()
	}
	if len(m.Chain) == 0 {
		return errors.New("renew_response: chain or error is required")
	}
	return nil
}

func (e *Error) validate() error {
	if e.Code == "" {
		return errors.New("error: code is required")
	}
	return nil
}
