package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/ferrumhq/ferrum/controller/node"
)

// apiError is an error the API raises itself, with the status and the text the client reads.
type apiError struct {
	status int
	msg    string
	// webob selects the {"code", "title", "description"} inner form that Ironic's framework
	// (webob/pecan) uses for routing and version errors; otherwise the wsme form
	// {"faultcode", "faultstring", "debuginfo"} is used.
	webob bool
	allow string // Allow header of a 405
}

func (e *apiError) Error() string { return e.msg }

// clientError is a wsme-form error with a formatted message.
func clientError(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// badRequest is Ironic's Invalid / InvalidParameterValue / ClientSideError (400).
func badRequest(format string, args ...any) *apiError {
	return clientError(http.StatusBadRequest, format, args...)
}

// notAcceptable is Ironic's NotAcceptable (406), raised for fields, filters and verbs newer
// than the requested microversion.
func notAcceptable() *apiError {
	return clientError(http.StatusNotAcceptable, "Request not acceptable.")
}

// notAcceptableMin is NotAcceptable with the minimum version spelled out.
func notAcceptableMin(minor int) *apiError {
	return clientError(http.StatusNotAcceptable,
		"Request not acceptable. The minimal required API version should be 1.%d", minor)
}

// webobError is a routing-level error in webob's form.
func webobError(status int, description string) *apiError {
	return &apiError{status: status, msg: description, webob: true}
}

// Generic texts for sentinel errors that arrive without a client-facing message.
const (
	msgNotFound  = "Resource could not be found."
	msgConflict  = "Conflict."
	msgInvalid   = "Unacceptable parameters."
	msgForbidden = "Forbidden."
	msgNoWorker  = "No free conductor workers available"
	msgInternal  = "An internal error occurred; the controller log has the details for request %s."
)

// errorStatus is the one error→status mapper of the API: it decides the status, the fault
// text the client sees, and whether the inner body uses the webob form.
func errorStatus(err error, reqID string) (status int, msg string, webob bool) {
	var ae *apiError
	var locked *node.LockedError
	var invState *node.InvalidStateError
	var ne *node.Error
	switch {
	case errors.As(err, &ae):
		return ae.status, ae.msg, ae.webob
	case errors.As(err, &locked):
		return http.StatusConflict, locked.Error(), false
	case errors.As(err, &invState):
		return http.StatusBadRequest, invState.Error(), false
	case errors.As(err, &ne):
		if errors.Is(ne.Kind, node.ErrHardware) {
			return http.StatusInternalServerError, ne.Msg, false
		}
		if status, generic := sentinelStatus(ne.Kind); status != http.StatusInternalServerError {
			if status == http.StatusServiceUnavailable || ne.Msg == "" {
				return status, generic, false
			}
			return status, ne.Msg, false
		}
	default:
		if status, generic := sentinelStatus(err); status != http.StatusInternalServerError {
			return status, generic, false
		}
	}
	return http.StatusInternalServerError, fmt.Sprintf(msgInternal, reqID), false
}

// sentinelStatus maps node's sentinels to a status and a generic text.
func sentinelStatus(err error) (int, string) {
	switch {
	case errors.Is(err, node.ErrNotFound):
		return http.StatusNotFound, msgNotFound
	case errors.Is(err, node.ErrConflict):
		return http.StatusConflict, msgConflict
	case errors.Is(err, node.ErrInvalid):
		return http.StatusBadRequest, msgInvalid
	case errors.Is(err, node.ErrForbidden):
		return http.StatusForbidden, msgForbidden
	case errors.Is(err, node.ErrNoWorker):
		return http.StatusServiceUnavailable, msgNoWorker
	}
	return http.StatusInternalServerError, ""
}

// errorBody renders Ironic's double-encoded error body.
func errorBody(status int, msg string, webob bool) []byte {
	var inner obj
	if webob {
		inner = obj{{"code", status}, {"title", http.StatusText(status)}, {"description", msg}}
	} else {
		code := "Client"
		if status >= 500 {
			code = "Server"
		}
		inner = obj{{"faultcode", code}, {"faultstring", msg}, {"debuginfo", nil}}
	}
	return pyJSON(obj{{"error_message", string(pyJSON(inner))}})
}
