package nova

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// metrics are the Sender's Prometheus collectors. A nil *metrics records nothing.
type metrics struct {
	reg      prometheus.Registerer
	requests *prometheus.CounterVec
	events   *prometheus.CounterVec
	outbox   *outboxCollector
}

func newMetrics(reg prometheus.Registerer, o Outbox, log zerolog.Logger) (*metrics, error) {
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrum_nova_requests_total",
			Help: "os-server-external-events requests, by result: ok (every event accepted), partial (some refused for good or retried), error (no answer, or an HTTP error).",
		}, []string{"result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrum_nova_events_total",
			Help: "power-update event outcomes: delivered, failed (final), retried.",
		}, []string{"outcome"}),
		outbox: &outboxCollector{o: o, log: log, desc: prometheus.NewDesc("ferrum_nova_outbox_events",
			"Power events in the outbox, by status (pending, failed, delivered, superseded; final ones until pruned).", []string{"status"}, nil),
			oldest: prometheus.NewDesc("ferrum_nova_outbox_oldest_pending_seconds",
				"Age of the oldest pending power event (0 when none).", nil, nil)},
	}
	for _, c := range []prometheus.Collector{m.requests, m.events, m.outbox} {
		if err := reg.Register(c); err != nil {
			m.unregister()
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) unregister() {
	for _, c := range []prometheus.Collector{m.requests, m.events, m.outbox} {
		m.reg.Unregister(c)
	}
}

func (m *metrics) request(result string) {
	if m != nil {
		m.requests.WithLabelValues(result).Inc()
	}
}

func (m *metrics) event(outcome string) {
	if m != nil {
		m.events.WithLabelValues(outcome).Inc()
	}
}

// outboxCollector reads the outbox counts at scrape time.
type outboxCollector struct {
	o      Outbox
	log    zerolog.Logger
	desc   *prometheus.Desc
	oldest *prometheus.Desc
}

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- c.oldest
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.o.PowerEventStats(ctx)
	if err != nil {
		c.log.Error().Err(err).Msg("reading outbox counts for metrics failed")
		return
	}
	for status, n := range map[string]int{"pending": st.Pending, "failed": st.Failed, "delivered": st.Delivered, "superseded": st.Superseded} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), status)
	}
	age := 0.0
	if !st.OldestPending.IsZero() {
		age = time.Since(st.OldestPending).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}
