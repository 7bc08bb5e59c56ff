package proto

import (
	"errors"
	"fmt"
)

// Code identifies an error on the wire. Peers branch on codes, never on messages.
type Code string

// Error codes. Append only.
const (
	// CodeBadRequest: the message or the command's arguments are malformed.
	CodeBadRequest Code = "bad_request"
	// CodeUnknownCommand: the agent has no such command.
	CodeUnknownCommand Code = "unknown_command"
	// CodeUnsupported: the peer's protocol version or features do not include this.
	CodeUnsupported Code = "unsupported"
	// CodeBusy: another mutating command is running; retry after it ends.
	CodeBusy Code = "busy"
	// CodeCancelled: the command was cancelled on request.
	CodeCancelled Code = "cancelled"
	// CodeTimeout: the command ran out of time.
	CodeTimeout Code = "timeout"
	// CodeFailed: the command ran and failed.
	CodeFailed Code = "failed"
	// CodeInternal: a bug or an unexpected condition in the peer.
	CodeInternal Code = "internal"
	// CodeNotConnected: the node has no agent connected.
	CodeNotConnected Code = "not_connected"
	// CodeLinkLost: the link dropped and the command's outcome is unknown (the agent did not
	// come back in time, or does not support resuming).
	CodeLinkLost Code = "link_lost"
	// CodeLost: the agent came back without any record of the command (it restarted).
	CodeLost Code = "lost"
	// CodeUnauthorized: the peer's identity does not allow this.
	CodeUnauthorized Code = "unauthorized"
)

// Error is an error as it travels on the wire.
type Error struct {
	Code      Code   `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable,omitempty"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Message
}

// Is matches another *Error with the same code and an empty message, so that
// errors.Is(err, &proto.Error{Code: proto.CodeBusy}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Retryable: code.retryable()}
}

func (c Code) retryable() bool {
	switch c {
	case CodeBusy, CodeNotConnected, CodeLinkLost, CodeTimeout:
		return true
	}
	return false
}

// CodeOf returns the code of the *Error in err's chain, or "" when there is none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
