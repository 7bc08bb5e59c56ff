// Package direct calls an http.Handler in process through an ordinary *http.Client, as
// OpenStack Placement's "direct" interface does: a request runs through the handler's whole
// middleware stack (authentication, versioning, metrics, error rendering) but no listener,
// socket or network is involved. It is meant for tools and tests that want to speak Ferrum's
// REST API to a controller in the same process, with any HTTP client library (gophercloud
// takes an *http.Client).
//
// Nothing is dialled, so any URL works; BaseURL is the conventional one. The handler sees a
// server-side request like net/http's server would give it (RequestURI, Host, RemoteAddr set
// to RemoteAddr, a context cancelled when the client gives up). The response is buffered until
// the handler returns: it does not stream, and trailers and Hijack are not supported.
//
// Tools and tests import this package; the controller's serving path does not.
package direct

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync"
)

// BaseURL is the conventional base URL of a direct client, e.g. BaseURL + "/v1/nodes".
const BaseURL = "http://ferrum.direct"

// RemoteAddr is the r.RemoteAddr handlers see: the caller is in the same process.
const RemoteAddr = "127.0.0.1:0"

// Client returns an *http.Client whose requests are served by h in process. It is safe for
// concurrent use, as h must be.
func Client(h http.Handler) *http.Client {
	if h == nil {
		panic("direct: nil handler")
	}
	return &http.Client{Transport: &transport{h: h}}
}

// PanicError is the error a request gets when the handler panics, wrapped in a *url.Error
// by http.Client. A real server would log the panic and drop the connection.
type PanicError struct {
	Value any    // what the handler panicked with
	Stack []byte // the handler goroutine's stack at the panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("direct: handler panicked: %v", e.Value) }

// Unwrap returns the panic value if it is an error, such as http.ErrAbortHandler.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

type transport struct{ h http.Handler }

// RoundTrip serves req with the handler. Like every RoundTripper it closes req.Body, also
// on errors.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	defer func() {
		if req.Body != nil {
			req.Body.Close()
		}
	}()
	if req.URL == nil {
		return nil, errors.New("direct: request has no URL")
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}

	// The handler's context is cancelled when the client's is or when the handler returns,
	// as on a server; it does not carry the client's context values.
	ctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(req.Context(), cancel)
	sreq, err := serverRequest(ctx, req)
	if err != nil {
		stop()
		cancel()
		return nil, err
	}
	rec := &recorder{header: http.Header{}, head: sreq.Method == http.MethodHead}
	done := make(chan *PanicError, 1)
	go func() {
		defer stop()
		defer cancel()
		defer func() {
			if v := recover(); v != nil {
				done <- &PanicError{Value: v, Stack: debug.Stack()}
			}
		}()
		t.h.ServeHTTP(rec, sreq)
		rec.finish()
		done <- nil
	}()

	select {
	case perr := <-done:
		if err := req.Context().Err(); err != nil {
			return nil, err
		}
		if perr != nil {
			return nil, perr
		}
		return rec.response(req), nil
	case <-req.Context().Done():
		// The handler may go on until it notices; its results are dropped.
		return nil, req.Context().Err()
	}
}

// serverRequest builds what a server would hand the handler for req.
func serverRequest(ctx context.Context, req *http.Request) (*http.Request, error) {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	requestURI := req.URL.RequestURI()
	u, err := url.ParseRequestURI(requestURI)
	if err != nil {
		return nil, fmt.Errorf("direct: request URI %q: %w", requestURI, err)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	header := req.Header.Clone()
	if header == nil {
		header = http.Header{}
	}
	sreq := &http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     header,
		Body:       http.NoBody,
		Host:       host,
		RemoteAddr: RemoteAddr,
		RequestURI: requestURI,
	}
	if req.Body != nil && req.Body != http.NoBody {
		// The transport closes the client's body once the handler returns.
		sreq.Body = io.NopCloser(req.Body)
		sreq.ContentLength = req.ContentLength
		if sreq.ContentLength == 0 {
			sreq.ContentLength = -1 // a client's 0 with a body means unknown
		}
	}
	return sreq.WithContext(ctx), nil
}

// recorder is the handler's ResponseWriter. It keeps what net/http's server would send: the
// headers as they were at WriteHeader, a sniffed Content-Type, no body for HEAD, 204 and 304.
// A mutex guards it against handlers that write from other goroutines.
type recorder struct {
	header http.Header // the handler's map
	head   bool

	mu      sync.Mutex
	code    int
	sent    http.Header // header at WriteHeader
	body    bytes.Buffer
	sniffed bool
	done    bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code)) // as net/http does
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writeHeaderLocked(code)
}

func (r *recorder) writeHeaderLocked(code int) {
	if r.code != 0 || r.done || code < 200 {
		return // superfluous, too late, or informational (1xx are not passed on)
	}
	r.code = code
	r.sent = r.header.Clone()
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return 0, errors.New("direct: write after the handler returned")
	}
	r.writeHeaderLocked(http.StatusOK)
	if !bodyAllowed(r.code) {
		return 0, http.ErrBodyNotAllowed
	}
	if len(p) > 0 && !r.sniffed {
		r.sniffed = true
		if _, ok := r.sent["Content-Type"]; !ok && r.sent.Get("Transfer-Encoding") == "" {
			r.sent.Set("Content-Type", http.DetectContentType(p))
		}
	}
	if r.head {
		return len(p), nil
	}
	return r.body.Write(p)
}

// Flush commits the status; the body is delivered when the handler returns.
func (r *recorder) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writeHeaderLocked(http.StatusOK)
}

func (r *recorder) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writeHeaderLocked(http.StatusOK)
	r.done = true
}

func (r *recorder) response(req *http.Request) *http.Response {
	r.mu.Lock()
	defer r.mu.Unlock()
	text := http.StatusText(r.code)
	if text == "" {
		text = "status code " + strconv.Itoa(r.code)
	}
	resp := &http.Response{
		Status:        strconv.Itoa(r.code) + " " + text,
		StatusCode:    r.code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        r.sent,
		Body:          http.NoBody,
		ContentLength: int64(r.body.Len()),
		Request:       req,
	}
	if r.body.Len() > 0 {
		resp.Body = io.NopCloser(bytes.NewReader(r.body.Bytes()))
	}
	if r.head {
		resp.ContentLength = -1
		if n, err := strconv.ParseInt(r.sent.Get("Content-Length"), 10, 64); err == nil {
			resp.ContentLength = n
		}
	}
	return resp
}

// bodyAllowed reports whether a response with this status may have a body (RFC 9110 §6.4.1).
func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}
