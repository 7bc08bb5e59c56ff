package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

// DefaultMaxBodyBytes is the request body limit when Config.MaxBodyBytes is zero.
const DefaultMaxBodyBytes int64 = 1 << 20

// Config configures the API handler.
type Config struct {
	// Backend does the work; *conductor.Conductor in production.
	Backend Backend
	// Log receives a debug line per request and an error line per 5xx.
	Log zerolog.Logger
	// MaxBodyBytes caps request bodies (413 above it); 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Hostname is the conductor name shown in a node's "conductor" field.
	Hostname string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// server is the http.Handler New returns.
type server struct {
	be       Backend
	log      zerolog.Logger
	maxBody  int64
	hostname string
	now      func() time.Time
	mux      *http.ServeMux
}

// New validates cfg and returns the Ironic v1 API handler.
func New(cfg Config) (http.Handler, error) {
	if cfg.Backend == nil {
		return nil, errors.New("api: Config.Backend is required")
	}
	if cfg.Hostname == "" {
		return nil, errors.New("api: Config.Hostname is required")
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("api: Config.MaxBodyBytes is negative (%d)", cfg.MaxBodyBytes)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &server{
		be:       cfg.Backend,
		log:      cfg.Log.With().Str("component", "api").Logger(),
		maxBody:  cfg.MaxBodyBytes,
		hostname: cfg.Hostname,
		now:      cfg.Now,
		mux:      http.NewServeMux(),
	}
	s.routes()
	return s, nil
}

// call is one request in flight.
type call struct {
	s     *server
	w     *statusWriter
	r     *http.Request
	ver   int    // negotiated minor version
	base  string // scheme://host the links are built from
	reqID string
	log   zerolog.Logger
	cause error // the error behind a 5xx, for the log
}

type callKey struct{}

// handlerFunc is a v1 endpoint; a returned error goes through the one error mapper.
type handlerFunc func(c *call) error

// route registers a v1 endpoint with a ServeMux pattern.
func (s *server) route(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		c := r.Context().Value(callKey{}).(*call)
		c.r = r
		if err := h(c); err != nil {
			c.fail(err)
		}
	})
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{s: s, w: &statusWriter{ResponseWriter: w}, r: r, base: publicURL(r),
		reqID: "req-" + uuid.NewString()}
	c.log = s.log.With().Str("request_id", c.reqID).Logger()
	start := s.now()
	c.w.Header().Set(hdrRequestID, c.reqID)
	defer s.finish(c, start)

	if r.Body != nil {
		r.Body = http.MaxBytesReader(c.w, r.Body, s.maxBody)
	}
	escaped, root := v1Path(r.URL.EscapedPath())
	if root {
		s.root(c)
		return
	}
	minor, withRange, verr := negotiate(r.Header)
	if withRange {
		c.w.Header().Set(hdrMinVersion, MinVersion)
		c.w.Header().Set(hdrMaxVersion, MaxVersion)
	}
	if verr != nil {
		c.fail(verr)
		return
	}
	c.ver = minor
	c.w.Header().Set(hdrVersion, versionString(minor))

	r2, err := withPath(r, escaped)
	if err != nil {
		c.fail(webobError(http.StatusNotFound, ""))
		return
	}
	r2 = r2.WithContext(context.WithValue(r.Context(), callKey{}, c))
	if h, pattern := s.mux.Handler(r2); pattern == "" {
		rec := &recorder{header: http.Header{}}
		h.ServeHTTP(rec, r2)
		if rec.status == http.StatusMethodNotAllowed {
			c.fail(&apiError{status: rec.status, webob: true, allow: rec.header.Get("Allow")})
		} else {
			c.fail(webobError(http.StatusNotFound, ""))
		}
		return
	}
	s.mux.ServeHTTP(c.w, r2)
	r.Pattern = r2.Pattern // outer middleware (metrics) labels by the matched route
}

// finish recovers a panic into a 500 and logs the request.
func (s *server) finish(c *call, start time.Time) {
	if p := recover(); p != nil {
		c.fail(fmt.Errorf("panic: %v", p))
	}
	status := c.w.status
	if status == 0 {
		status = http.StatusOK
	}
	if status >= 500 {
		c.log.Error().Err(c.cause).Str("method", c.r.Method).Str("path", c.r.URL.Path).
			Int("status", status).Msg("request failed")
	}
	c.log.Debug().Str("method", c.r.Method).Str("path", c.r.URL.Path).
		Str("query", c.r.URL.RawQuery).Int("status", status).
		Dur("duration", s.now().Sub(start)).Msg("request")
}

// v1Path maps a request path onto the v1 tree as Ironic's root controller does: "/" is the
// root document, "/nodes" is "/v1/nodes", and a trailing "/" is dropped except on "/v1/".
func v1Path(escaped string) (string, bool) {
	if escaped == "" || escaped == "/" {
		return "", true
	}
	if escaped != "/v1" && !strings.HasPrefix(escaped, "/v1/") {
		escaped = "/v1" + escaped
	}
	if escaped == "/v1" {
		return "/v1/", false
	}
	if len(escaped) > len("/v1/") {
		escaped = strings.TrimSuffix(escaped, "/")
	}
	return escaped, false
}

// withPath returns a shallow copy of r with its URL path replaced by escaped.
func withPath(r *http.Request, escaped string) (*http.Request, error) {
	p, err := url.PathUnescape(escaped)
	if err != nil {
		return nil, err
	}
	u := *r.URL
	u.Path, u.RawPath = p, ""
	if u.EscapedPath() != escaped {
		u.RawPath = escaped
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.URL = &u
	return r2, nil
}

// publicURL is the scheme and host that links are built from (Ironic's request.host_url).
func publicURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if fp := r.Header.Get("X-Forwarded-Proto"); fp != "" {
		first, _, _ := strings.Cut(fp, ",")
		switch p := strings.ToLower(strings.TrimSpace(first)); p {
		case "http", "https":
			scheme = p
		}
	}
	host := r.Host
	if host == "" {
		host = "localhost"
	}
	return scheme + "://" + host
}

// json writes v as Ironic's JSON.
func (c *call) json(status int, v any) error {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(status)
	b := bufPool.Get().(*bytes.Buffer)
	defer func() {
		if b.Cap() <= 16<<20 { // don't keep huge buffers alive
			b.Reset()
			bufPool.Put(b)
		}
	}()
	writeJSON(b, v)
	_, err := c.w.Write(b.Bytes())
	return err
}

// bufPool recycles response buffers: a 1000-node page is ~3 MB of JSON.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// empty writes a status without a body (202, 204).
func (c *call) empty(status int) error {
	c.w.WriteHeader(status)
	return nil
}

// fail writes err as Ironic's error body through the one error mapper.
func (c *call) fail(err error) {
	status, msg, webob := errorStatus(err, c.reqID)
	if status >= 500 {
		c.cause = err
	}
	if c.w.status != 0 {
		c.log.Warn().Err(err).Msg("error after the response started")
		return
	}
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	var ae *apiError
	if errors.As(err, &ae) && ae.allow != "" {
		h.Set("Allow", ae.allow)
	}
	c.w.WriteHeader(status)
	c.w.Write(errorBody(status, msg, webob)) //nolint:errcheck // nothing to do if the client left
}

// fieldsParam reads ?fields= and has check refuse names the resource does not have.
func (c *call) fieldsParam(check func([]string) error) ([]string, error) {
	q, err := c.query("fields")
	if err != nil {
		return nil, err
	}
	fields := q.list("fields")
	return fields, check(fields)
}

// readBody reads the request body as one JSON value; an empty body is {}, as Ironic sees it.
func (c *call) readBody() (any, error) {
	if c.r.Body == nil {
		return map[string]any{}, nil
	}
	data, err := io.ReadAll(c.r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, clientError(http.StatusRequestEntityTooLarge,
				"Request body is larger than %d bytes.", tooBig.Limit)
		}
		return nil, badRequest("Could not read the request body.")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return map[string]any{}, nil // an empty body is {} to Ironic
	}
	v, err := decodeJSON(data)
	if err != nil {
		return nil, badRequest("Malformed JSON in the request body: %v", err)
	}
	return v, nil
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// recorder captures what ServeMux's own 404/405 handlers would write.
type recorder struct {
	header http.Header
	status int
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return len(b), nil
}
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}
