package node

import (
	"errors"
	"fmt"
)

// Sentinels for conditions callers branch on. The API maps them to status codes in one place;
// the message text of the wrapping error is what the client reads.
var (
	// ErrNotFound: the resource does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: a uniqueness or association conflict (409).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the request is malformed or not allowed with these values (400).
	ErrInvalid = errors.New("invalid")
	// ErrNoWorker: no free worker to start the task (503).
	ErrNoWorker = errors.New("no free conductor worker")
	// ErrForbidden: the operation is refused for this resource, e.g. a protected node (403).
	ErrForbidden = errors.New("forbidden")
	// ErrLockLost: the caller no longer holds the node's reservation.
	ErrLockLost = errors.New("node reservation lost")
	// ErrHardware: the machine or its BMC failed the request (500, the message is shown).
	ErrHardware = errors.New("hardware failure")
)

// Error carries a client-facing message for one of the sentinels above.
type Error struct {
	Kind error  // one of the sentinels
	Msg  string // Ironic's wording where Ironic has one
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

// Errorf builds an *Error of kind with a formatted message.
func Errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// NotFound is Ironic's "<Kind> <id> could not be found." message.
func NotFound(kind, id string) error {
	return Errorf(ErrNotFound, "%s %s could not be found.", kind, id)
}

// LockedError: the node is reserved by another holder (409 NodeLocked).
type LockedError struct {
	Node   string
	Holder string
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("Node %s is locked by host %s, please retry after the current operation is completed.", e.Node, e.Holder)
}

// Is makes errors.Is(err, ErrConflict) true for a locked node.
func (e *LockedError) Is(target error) bool { return target == ErrConflict }

// InvalidStateError: a provision verb that the node's state does not allow (400).
type InvalidStateError struct {
	Node  string
	Verb  string
	State State
}

func (e *InvalidStateError) Error() string {
	return fmt.Sprintf("The requested action %q can not be performed on node %q while it is in state %q.", e.Verb, e.Node, e.State)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidStateError) Is(target error) bool { return target == ErrInvalid }
