package node

import "time"

// Power event statuses: a pending event waits for delivery; the others are final.
const (
	EventPending    = "pending"    // not yet accepted by Nova; retried with backoff
	EventDelivered  = "delivered"  // Nova answered 200 for it
	EventFailed     = "failed"     // Nova refused it for good (per-event 400, 404, 422)
	EventSuperseded = "superseded" // a newer event for the same node and instance replaced it
)

// PowerEvent is one row of the power-change outbox: a node's power changed while it had an
// instance, and Nova must hear of it (a power-update external event). Rows are written in the
// same transaction as the node's new power state, so none is lost on a crash, and delivered
// per node in ID order.
type PowerEvent struct {
	ID           int64     `json:"id"`
	NodeUUID     string    `json:"node_uuid"`
	InstanceUUID string    `json:"instance_uuid"`
	PowerState   string    `json:"power_state"` // PowerOn or PowerOff
	Status       string    `json:"status"`
	Attempts     int       `json:"attempts"`
	Code         int       `json:"code,omitempty"` // Nova's per-event (or HTTP) code of the last answer
	LastError    string    `json:"last_error,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	NextAttempt  time.Time `json:"next_attempt,omitzero"` // pending: not before this time
	FinishedAt   time.Time `json:"finished_at,omitzero"`  // final statuses: when it became final
}

// PowerEventQuery selects outbox rows, newest first. Zero fields do not filter; Limit 0 means
// the store's default (100).
type PowerEventQuery struct {
	Status   string
	NodeUUID string
	Limit    int
}

// PowerEventStats counts outbox rows by status.
type PowerEventStats struct {
	Pending    int `json:"pending"`
	Delivered  int `json:"delivered"`
	Failed     int `json:"failed"`
	Superseded int `json:"superseded"`
	// OldestPending is when the oldest pending event was created (zero when none).
	OldestPending time.Time `json:"oldest_pending,omitzero"`
}
