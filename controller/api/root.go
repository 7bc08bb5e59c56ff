package api

import (
	"net/http"
)

// link is one entry of a "links" list.
func link(rel, href string) obj { return obj{{"href", href}, {"rel", rel}} }

// links is the self + bookmark pair Ironic puts on resources (link.make_link).
func (c *call) links(resource, args string) []obj {
	return []obj{
		link("self", c.base+"/v1/"+resource+"/"+args),
		link("bookmark", c.base+"/"+resource+"/"+args),
	}
}

// versionDoc is Ironic's default_version().
func (c *call) versionDoc() obj {
	return obj{
		{"id", "v1"},
		{"links", []obj{link("self", c.base+"/v1/")}},
		{"status", "CURRENT"},
		{"min_version", MinVersion},
		{"version", MaxVersion},
	}
}

// root serves GET / (no version negotiation, no version headers, as Ironic 21.4.4).
func (s *server) root(c *call) {
	if c.r.Method != http.MethodGet && c.r.Method != http.MethodHead {
		c.fail(&apiError{status: http.StatusMethodNotAllowed, webob: true, allow: "GET"})
		return
	}
	c.json(http.StatusOK, obj{ //nolint:errcheck // client gone
		{"name", "OpenStack Ironic API"},
		{"description", "Ironic is an OpenStack project which enables the provision and " +
			"management of baremetal machines."},
		{"default_version", c.versionDoc()},
		{"versions", []obj{c.versionDoc()}},
	})
}

// v1Links lists the resource links of GET /v1 with the microversion each needs. Ferrum
// keeps Ironic's document as is, including links to collections it does not serve
// (docs/api.md lists them).
var v1Links = []struct {
	name  string
	since int
}{
	{"chassis", 1}, {"nodes", 1}, {"ports", 1}, {"drivers", 1},
	{"portgroups", v23Portgroups}, {"volume", v32Volume},
	{"lookup", v22LookupHeartbeat}, {"heartbeat", v22LookupHeartbeat},
	{"conductors", v49Conductors}, {"allocations", v52Allocations},
	{"events", v54Events}, {"deploy_templates", v55DeployTemplates},
	{"shards", v82Shard},
}

// getV1 serves GET /v1 and /v1/.
func (s *server) getV1(c *call) error {
	doc := obj{
		{"id", "v1"},
		{"links", []obj{
			link("self", c.base+"/v1/"),
			{{"href", "https://docs.openstack.org//ironic/latest/contributor//webapi.html"},
				{"rel", "describedby"}, {"type", "text/html"}},
		}},
		{"media_types", obj{{"base", "application/json"},
			{"type", "application/vnd.openstack.ironic.v1+json"}}},
	}
	for i, l := range v1Links {
		if i == 4 {
			doc.set("version", c.versionDoc())
		}
		if c.ver >= l.since {
			doc.set(l.name, c.links(l.name, ""))
		}
	}
	return c.json(http.StatusOK, doc)
}

// v1NotGet answers other methods on /v1 as Ironic's index does.
func (s *server) v1NotGet(c *call) error {
	return clientError(http.StatusMethodNotAllowed, "The server could not comply with the "+
		"request since it is either malformed or otherwise incorrect.")
}
