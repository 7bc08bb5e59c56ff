// Package metrics exports the controller's Prometheus metrics: API request counts and
// latencies recorded by Middleware, served in the text exposition format by Handler, and a
// Registry that other components add their own collectors to (the conductor's task and worker
// gauges, for example).
//
// Only the controller's wiring (cmd/ferrum-controller) imports this package. Components that
// export metrics take a prometheus.Registerer in their Config and get Registry() from the
// wiring; they do not import this package.
package metrics

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// Label values used when the request does not give a bounded one.
const (
	RouteUnmatched = "unmatched" // no ServeMux pattern matched (404, 405, auth rejected first)
	MethodOther    = "OTHER"     // a method outside the standard ones
)

// Config configures Metrics.
type Config struct {
	// Registry receives the API collectors. Nil: a new registry with the Go runtime and
	// process collectors.
	Registry *prometheus.Registry
	Log      zerolog.Logger // scrape errors
}

// Metrics holds the API collectors and the registry they are in.
type Metrics struct {
	reg      *prometheus.Registry
	log      zerolog.Logger
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// New registers the API collectors in cfg.Registry (or a new registry).
func New(cfg Config) (*Metrics, error) {
	m := &Metrics{
		reg: cfg.Registry,
		log: cfg.Log.With().Str("component", "metrics").Logger(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrum_api_requests_total",
			Help: "API requests answered, by method, status code and route (the matched ServeMux pattern).",
		}, []string{"method", "code", "route"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ferrum_api_request_duration_seconds",
			Help:    "Time from receiving an API request until its handler returned, by method and route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	cs := []prometheus.Collector{m.requests, m.duration}
	if m.reg == nil {
		m.reg = prometheus.NewRegistry()
		cs = append(cs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register collector: %w", err)
		}
	}
	return m, nil
}

// Registry returns the registry Handler serves, for other components' collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats. A collector that fails is
// logged and left out; the other metrics are still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      promLogger{m.log},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// Middleware counts and times the requests next handles. The route label is r.Pattern as
// set by a ServeMux inside next, read after next returns; RouteUnmatched if none matched.
// A ServeMux sets the pattern on the request it is given, so a handler that hands a derived
// request (r.WithContext, r.Clone) to a ServeMux must copy the pattern back after it returns
// (r.Pattern = r2.Pattern), or its requests are labelled with an outer pattern such as "/".
// Requests whose handler panics are not counted.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		method, route := methodLabel(r.Method), routeLabel(r)
		m.requests.WithLabelValues(method, strconv.Itoa(sw.code()), route).Inc()
		m.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
	})
}

// methodLabel bounds the method label: clients can send any token as a method.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return MethodOther
}

// routeLabel is the matched pattern. For CONNECT, ServeMux reports the raw request path as
// the pattern of its redirects, so CONNECT requests are never labelled with a pattern.
func routeLabel(r *http.Request) string {
	if r.Pattern == "" || r.Method == http.MethodConnect {
		return RouteUnmatched
	}
	return r.Pattern
}

// statusWriter remembers the status code sent. Unwrap lets http.ResponseController reach
// the underlying writer's optional methods.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code // 1xx other than 101 are informational; the final code follows
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps streaming handlers working through the wrapper.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK // the server sends 200 for a handler that wrote nothing
	}
	return w.status
}

// promLogger adapts zerolog to promhttp's Logger.
type promLogger struct{ log zerolog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Error().Msg(fmt.Sprint(v...))
}
