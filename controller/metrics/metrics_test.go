package metrics_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/metrics"
)

const (
	requestsTotal   = "ferrum_api_requests_total"
	requestDuration = "ferrum_api_request_duration_seconds"
)

func TestMiddleware(t *testing.T) {
	m := newMetrics(t, prometheus.NewRegistry())
	h := m.Middleware(fakeAPI())

	for _, req := range []struct{ method, path string }{
		{"GET", "/v1/nodes/node-1"},
		{"GET", "/v1/nodes/node-2"},
		{"GET", "/v1/nodes/no-such-node"},
		{"POST", "/v1/nodes"},
		{"PUT", "/v1/nodes/node-1/states/power"},
		{"GET", "/v1/nodes/node-1/stream"},
		{"GET", "/no/such/route"},
		{"DELETE", "/v1/nodes"}, // 405 from the mux
		{"BREW", "/v1/nodes"},   // unknown method
	} {
		serve(h, req.method, req.path)
	}

	scraped := scrape(t, m)
	want := map[string]float64{
		`{code="200",method="GET",route="GET /v1/nodes/{id}"}`:              2,
		`{code="404",method="GET",route="GET /v1/nodes/{id}"}`:              1,
		`{code="201",method="POST",route="POST /v1/nodes"}`:                 1,
		`{code="202",method="PUT",route="PUT /v1/nodes/{id}/states/power"}`: 1,
		`{code="200",method="GET",route="GET /v1/nodes/{id}/stream"}`:       1,
		`{code="404",method="GET",route="unmatched"}`:                       1,
		`{code="405",method="DELETE",route="unmatched"}`:                    1,
		`{code="405",method="OTHER",route="unmatched"}`:                     1,
	}
	if diff := cmp.Diff(want, series(t, scraped, requestsTotal)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", requestsTotal, diff)
	}
	wantCounts := map[string]float64{
		`{method="GET",route="GET /v1/nodes/{id}"}`:              3,
		`{method="POST",route="POST /v1/nodes"}`:                 1,
		`{method="PUT",route="PUT /v1/nodes/{id}/states/power"}`: 1,
		`{method="GET",route="GET /v1/nodes/{id}/stream"}`:       1,
		`{method="GET",route="unmatched"}`:                       1,
		`{method="DELETE",route="unmatched"}`:                    1,
		`{method="OTHER",route="unmatched"}`:                     1,
	}
	if diff := cmp.Diff(wantCounts, series(t, scraped, requestDuration)); diff != "" {
		t.Errorf("%s sample counts (-want +got):\n%s", requestDuration, diff)
	}
}

// TestCardinality checks that node identifiers and invented methods never become label values.
func TestCardinality(t *testing.T) {
	m := newMetrics(t, prometheus.NewRegistry())
	h := m.Middleware(fakeAPI())
	var ids []string
	for i := range 1000 {
		id := uuid.NewString()
		ids = append(ids, id)
		serve(h, "GET", "/v1/nodes/"+id)
		serve(h, fmt.Sprintf("X%d", i), "/v1/nodes/"+id)
	}

	text := scrapeText(t, m)
	for _, id := range ids {
		if strings.Contains(text, id) {
			t.Fatalf("scrape contains node id %s", id)
		}
	}
	scraped := parse(t, text)
	want := map[string]float64{
		`{code="200",method="GET",route="GET /v1/nodes/{id}"}`: 1000,
		`{code="405",method="OTHER",route="unmatched"}`:        1000,
	}
	if diff := cmp.Diff(want, series(t, scraped, requestsTotal)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", requestsTotal, diff)
	}
	if n := len(series(t, scraped, requestDuration)); n != 2 {
		t.Errorf("%s has %d series, want 2", requestDuration, n)
	}
}

// TestConnectRedirect covers ServeMux reporting the raw path as the pattern of a CONNECT
// redirect.
func TestConnectRedirect(t *testing.T) {
	m := newMetrics(t, prometheus.NewRegistry())
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/nodes/{id}/", func(http.ResponseWriter, *http.Request) {})
	h := m.Middleware(mux)
	id := uuid.NewString()
	r := httptest.NewRequest("CONNECT", "/", nil)
	r.URL.Path = "/v1/nodes/" + id // redirected to .../{id}/
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusTemporaryRedirect {
		t.Fatalf("CONNECT %s status = %d, want a redirect", r.URL.Path, w.Code)
	}
	if text := scrapeText(t, m); strings.Contains(text, id) {
		t.Errorf("the CONNECT request path leaked into labels:\n%s", text)
	}
}

func TestNew(t *testing.T) {
	t.Run("default-registry", func(t *testing.T) {
		m := newMetrics(t, nil)
		if m.Registry() == nil {
			t.Fatal("Registry() = nil")
		}
		text := scrapeText(t, m)
		for _, name := range []string{"go_goroutines", "process_"} {
			if !strings.Contains(text, name) {
				t.Errorf("default registry scrape lacks %s", name)
			}
		}
	})
	t.Run("given-registry", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		m := newMetrics(t, reg)
		if m.Registry() != reg {
			t.Errorf("Registry() is not the registry given in Config")
		}
		if strings.Contains(scrapeText(t, m), "go_goroutines") {
			t.Errorf("a given registry got the Go collector added")
		}
	})
	t.Run("registered-twice", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		newMetrics(t, reg)
		_, err := metrics.New(metrics.Config{Registry: reg})
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			t.Errorf("second New on one registry = %v, want an AlreadyRegisteredError", err)
		}
	})
}

// TestRegistry checks that collectors of other components are served too.
func TestRegistry(t *testing.T) {
	m := newMetrics(t, prometheus.NewRegistry())
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "ferrum_conductor_workers_busy", Help: "test"})
	m.Registry().MustRegister(g)
	g.Set(7)
	got := series(t, scrape(t, m), "ferrum_conductor_workers_busy")
	if diff := cmp.Diff(map[string]float64{"{}": 7}, got); diff != "" {
		t.Errorf("gauge (-want +got):\n%s", diff)
	}
}

func TestFlushPassesThrough(t *testing.T) {
	m := newMetrics(t, prometheus.NewRegistry())
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/v1/nodes/node-1/stream", nil)
	m.Middleware(fakeAPI()).ServeHTTP(w, r)
	if !w.Flushed {
		t.Errorf("Flush through the middleware did not reach the underlying writer")
	}
}

func newMetrics(t *testing.T, reg *prometheus.Registry) *metrics.Metrics {
	t.Helper()
	m, err := metrics.New(metrics.Config{Registry: reg, Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fakeAPI routes like the API: the handlers answer with the status codes the API would.
func fakeAPI() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/nodes/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "no-such-node" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		io.WriteString(w, "{}")
	})
	mux.HandleFunc("POST /v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("PUT /v1/nodes/{id}/states/power", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /v1/nodes/{id}/stream", func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush()
	})
	return mux
}

func serve(h http.Handler, method, path string) {
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, path, nil))
}

func scrapeText(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /metrics status = %d, want 200", w.Code)
	}
	return w.Body.String()
}

func scrape(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	return parse(t, scrapeText(t, m))
}

func parse(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse scrape: %v\n%s", err, text)
	}
	return fams
}

// series maps each series of a family, written as its sorted labels, to its value: the
// counter or gauge value, or a histogram's sample count.
func series(t *testing.T, fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	f, ok := fams[name]
	if !ok {
		return out
	}
	for _, m := range f.GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		sort.Strings(labels)
		key := "{" + strings.Join(labels, ",") + "}"
		switch {
		case m.Counter != nil:
			out[key] = m.GetCounter().GetValue()
		case m.Gauge != nil:
			out[key] = m.GetGauge().GetValue()
		case m.Histogram != nil:
			out[key] = float64(m.GetHistogram().GetSampleCount())
		default:
			t.Fatalf("%s: unexpected metric type", name)
		}
	}
	return out
}

// TestNestedMux shows the convention for a handler that routes a derived request with its own
// ServeMux: it copies the inner pattern back so that the label names the real route.
func TestNestedMux(t *testing.T) {
	m := newMetrics(t, prometheus.NewRegistry())
	inner := fakeAPI()
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.WithContext(r.Context())
		inner.ServeHTTP(w, r2)
		r.Pattern = r2.Pattern
	})
	outer := http.NewServeMux()
	outer.Handle("GET /metrics", m.Handler())
	outer.Handle("/", api)
	h := m.Middleware(outer)
	serve(h, "GET", "/v1/nodes/node-1")
	serve(h, "GET", "/v1/no/such/route")

	want := map[string]float64{
		`{code="200",method="GET",route="GET /v1/nodes/{id}"}`: 1,
		`{code="404",method="GET",route="unmatched"}`:          1,
	}
	if diff := cmp.Diff(want, series(t, scrape(t, m), requestsTotal)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", requestsTotal, diff)
	}
}
