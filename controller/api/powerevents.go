package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/ferrumhq/ferrum/controller/node"
)

// PowerEventReporter is an optional Backend ability found by type assertion: the Nova
// power-update outbox (*conductor.Conductor has it when its store keeps one). Without it
// GET /v1/power_events answers 404.
type PowerEventReporter interface {
	PowerEvents(ctx context.Context, q node.PowerEventQuery) (node.PowerEventStats, []*node.PowerEvent, error)
}

// listPowerEvents serves GET /v1/power_events, a Ferrum extension: the outbox counts by status
// and its newest rows, filtered by status and node (UUID or name), at most limit (≤ 1000).
func (s *server) listPowerEvents(c *call) error {
	rep, ok := s.be.(PowerEventReporter)
	if !ok {
		return webobError(http.StatusNotFound, "")
	}
	q, err := c.query("status", "node", "limit")
	if err != nil {
		return err
	}
	var pq node.PowerEventQuery
	if st, ok := q.str("status"); ok {
		switch st {
		case node.EventPending, node.EventDelivered, node.EventFailed, node.EventSuperseded:
			pq.Status = st
		default:
			return badRequest("Invalid status %s: expected pending, delivered, failed or superseded", st)
		}
	}
	if l, ok := q.str("limit"); ok {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("Invalid limit %s: expected an integer from 1 to 1000", l)
		}
		pq.Limit = n
	}
	if ident, ok := q.str("node"); ok {
		n, err := c.findNode(ident)
		if err != nil {
			return err
		}
		pq.NodeUUID = n.UUID
	}
	st, evs, err := rep.PowerEvents(c.r.Context(), pq)
	if err != nil {
		return err
	}
	items := make([]obj, len(evs))
	for i, ev := range evs {
		items[i] = obj{{"id", ev.ID}, {"node_uuid", ev.NodeUUID}, {"instance_uuid", ev.InstanceUUID},
			{"power_state", ev.PowerState}, {"status", ev.Status}, {"attempts", ev.Attempts}, {"code", ev.Code},
			{"last_error", nullIfEmpty(ev.LastError)}, {"created_at", isoTime(ev.CreatedAt)},
			{"next_attempt", isoTime(ev.NextAttempt)}, {"finished_at", isoTime(ev.FinishedAt)}}
		if ev.Status != node.EventPending {
			items[i].set("next_attempt", nil)
		}
	}
	stats := obj{{"pending", st.Pending}, {"failed", st.Failed}, {"delivered", st.Delivered},
		{"superseded", st.Superseded}, {"oldest_pending", isoTime(st.OldestPending)}}
	return c.json(http.StatusOK, obj{{"stats", stats}, {"power_events", items}})
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
