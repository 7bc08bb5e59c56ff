package api

import (
	"cmp"
	"net/http"
	"slices"
	"strings"

	"github.com/ferrumhq/ferrum/controller/node"
)

var (
	conductorFields        = []string{"created_at", "updated_at", "hostname", "conductor_group", "drivers", "alive"}
	defaultConductorFields = []string{"hostname", "conductor_group", "alive"}
	conductorSortKeys      = []string{"id", "hostname", "conductor_group", "created_at", "updated_at"}
)

// conductorsAllowed: below 1.49 the collection does not exist.
func (c *call) conductorsAllowed() error {
	if c.ver < v49Conductors {
		return clientError(http.StatusNotFound, msgNotFound)
	}
	return nil
}

// renderConductor is the conductor convert_with_links.
func (c *call) renderConductor(cd *node.Conductor, fields []string) obj {
	o := obj{
		{"created_at", isoTime(cd.CreatedAt)},
		{"updated_at", isoTime(cd.UpdatedAt)},
		{"hostname", cd.Hostname},
		{"conductor_group", cd.ConductorGroup},
		{"drivers", stringsOrEmpty(cd.Drivers)},
		{"links", c.links("conductors", cd.Hostname)},
		{"alive", cd.Online},
	}
	if fields != nil {
		o = o.keep(fields)
	}
	return o
}

// checkConductorFields validates ?fields= of conductor requests.
func (c *call) checkConductorFields(fields []string) error {
	if err := c.checkFieldsAllowed(fields); err != nil {
		return err
	}
	return checkFieldNames(fields, func(f string) bool { return slices.Contains(conductorFields, f) })
}

// listConductors serves GET /v1/conductors. The backend returns every conductor; sorting and
// paging happen here.
func (s *server) listConductors(c *call) error {
	q, err := c.query("marker", "limit", "sort_key", "sort_dir", "fields", "detail")
	if err != nil {
		return err
	}
	marker := func(q query) (string, error) {
		m, ok := q.str("marker")
		if ok && !isValidLogicalName(m) {
			return "", badRequest("Expected name for marker: %s", m)
		}
		return m, nil
	}
	detail, err := q.boolean("detail")
	if err != nil {
		return err
	}
	if err := c.conductorsAllowed(); err != nil {
		return err
	}
	fields := q.list("fields")
	if err := c.checkConductorFields(fields); err != nil {
		return err
	}
	if fields, err = c.returnFields(fields, detail, defaultConductorFields); err != nil {
		return err
	}
	p, err := q.page(pageSpec{sortKeys: conductorSortKeys, noSortKeys: []string{"alive", "drivers"}, marker: marker})
	if err != nil {
		return err
	}
	all, err := s.be.ListConductors(c.r.Context())
	if err != nil {
		return err
	}
	page, err := pageConductors(all, p)
	if err != nil {
		return err
	}
	items := make([]obj, len(page))
	for i, cd := range page {
		items[i] = c.renderConductor(cd, fields)
	}
	out := obj{{"conductors", items}}
	if len(page) > 0 {
		if next := c.nextLink("conductors", len(page), p, page[len(page)-1].Hostname, fields); next != "" {
			out = append(out, field{"next", next})
		}
	}
	return c.json(http.StatusOK, out)
}

// pageConductors sorts, applies the marker (a hostname) and the limit.
func pageConductors(all []*node.Conductor, p page) ([]*node.Conductor, error) {
	key := func(cd *node.Conductor) string {
		switch p.sortKey {
		case "conductor_group":
			return cd.ConductorGroup
		case "created_at":
			return cd.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000000")
		case "updated_at":
			return cd.UpdatedAt.UTC().Format("2006-01-02T15:04:05.000000000")
		}
		return cd.Hostname
	}
	sorted := slices.Clone(all)
	slices.SortStableFunc(sorted, func(a, b *node.Conductor) int {
		r := cmp.Or(strings.Compare(key(a), key(b)), strings.Compare(a.Hostname, b.Hostname))
		if p.sortDir == "desc" {
			return -r
		}
		return r
	})
	if p.marker != "" {
		i := slices.IndexFunc(sorted, func(cd *node.Conductor) bool { return cd.Hostname == p.marker })
		if i < 0 {
			return nil, node.NotFound("Conductor", p.marker)
		}
		sorted = sorted[i+1:]
	}
	if len(sorted) > p.limit {
		sorted = sorted[:p.limit]
	}
	return sorted, nil
}

// getConductor serves GET /v1/conductors/{hostname}.
func (s *server) getConductor(c *call) error {
	q, err := c.query("fields")
	if err != nil {
		return err
	}
	host := c.r.PathValue("hostname")
	if !isValidLogicalName(host) {
		return badRequest("Expected name for hostname: %s", host)
	}
	if err := c.conductorsAllowed(); err != nil {
		return err
	}
	fields := q.list("fields")
	if err := c.checkConductorFields(fields); err != nil {
		return err
	}
	cd, err := s.be.GetConductor(c.r.Context(), host)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, c.renderConductor(cd, fields))
}
