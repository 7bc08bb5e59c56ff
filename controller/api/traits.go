package api

import (
	"net/http"
	"slices"

	"github.com/ferrumhq/ferrum/controller/node"
)

// traitsAllowed: below 1.37 /traits does not exist, and Ironic's older routing answers
// GET with 406, PUT with 405 and DELETE with 404.
func (c *call) traitsAllowed() error {
	if c.ver >= v37Traits {
		return nil
	}
	switch c.r.Method {
	case http.MethodGet, http.MethodHead:
		return notAcceptable()
	case http.MethodPut:
		return webobError(http.StatusMethodNotAllowed, "")
	}
	return clientError(http.StatusNotFound, msgNotFound)
}

// getTraits serves GET /v1/nodes/{node}/traits.
func (s *server) getTraits(c *call) error {
	if err := c.traitsAllowed(); err != nil {
		return err
	}
	n, _, err := c.lookupNode()
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, obj{{"traits", traitList(n.Traits)}})
}

// setTraits serves PUT /v1/nodes/{node}/traits: replace every trait.
func (s *server) setTraits(c *call) error {
	if err := c.traitsAllowed(); err != nil {
		return err
	}
	body, err := c.readBody()
	if err != nil {
		return err
	}
	m, ok := body.(map[string]any)
	if !ok {
		return badRequest("Schema error for body: %s is not of type 'object'", pyRepr(body))
	}
	var extra []string
	for k := range m {
		if k != "traits" {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		return badRequest("Schema error for body: %s", additionalProps(extra))
	}
	raw, has := m["traits"]
	if has && raw != nil {
		l, ok := raw.([]any)
		if !ok {
			return badRequest("Schema error for body: %s", typeError(raw, []string{"array"}))
		}
		for _, t := range l {
			if msg := traitError(t); msg != "" {
				return badRequest("Schema error for body: %s", msg)
			}
		}
	}
	if !has || raw == nil {
		return badRequest("A single node trait may be added via PUT /v1/nodes/<node identifier>/traits/<trait> " +
			"with no body, or all node traits may be replaced via PUT /v1/nodes/<node identifier>/traits " +
			"with the list of traits specified in the request body.")
	}
	traits := uniqueSorted(anyStrings(raw))
	return s.updateTraits(c, func(*node.Node) ([]string, error) { return traits, nil })
}

// addTrait serves PUT /v1/nodes/{node}/traits/{trait}.
func (s *server) addTrait(c *call) error {
	if err := c.traitsAllowed(); err != nil {
		return err
	}
	trait := c.r.PathValue("trait")
	if msg := traitError(trait); msg != "" {
		return badRequest("Schema error for trait: %s", msg)
	}
	body, err := c.readBody()
	if err != nil {
		return err
	}
	if truthy(body) {
		return badRequest("No body should be provided when adding a trait")
	}
	return s.updateTraits(c, func(n *node.Node) ([]string, error) {
		return uniqueSorted(append(slices.Clone(n.Traits), trait)), nil
	})
}

// deleteTraits serves DELETE /v1/nodes/{node}/traits[/{trait}].
func (s *server) deleteTraits(c *call) error {
	if err := c.traitsAllowed(); err != nil {
		return err
	}
	trait := c.r.PathValue("trait")
	return s.updateTraits(c, func(n *node.Node) ([]string, error) {
		if trait == "" {
			return []string{}, nil
		}
		if !slices.Contains(n.Traits, trait) {
			return nil, clientError(http.StatusNotFound, "Node %s doesn't have a trait '%s'", n.UUID, trait)
		}
		return slices.DeleteFunc(slices.Clone(n.Traits), func(t string) bool { return t == trait }), nil
	})
}

// updateTraits sets the node's traits to what change returns, under the node's lock, and
// answers 204 (with a Location for a single added trait).
func (s *server) updateTraits(c *call, change func(n *node.Node) ([]string, error)) error {
	n, ident, err := c.lookupNode()
	if err != nil {
		return err
	}
	_, err = s.be.UpdateNode(c.r.Context(), n.UUID, func(n *node.Node) error {
		traits, err := change(n)
		if err != nil {
			return err
		}
		n.Traits = traits
		return nil
	})
	if err != nil {
		return err
	}
	if t := c.r.PathValue("trait"); t != "" && c.r.Method == http.MethodPut {
		c.w.Header().Set("Location", c.base+"/v1/nodes/"+ident+"/traits/"+t)
	}
	return c.empty(http.StatusNoContent)
}

// uniqueSorted sorts and deduplicates.
func uniqueSorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}
