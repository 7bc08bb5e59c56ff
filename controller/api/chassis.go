package api

import "net/http"

// Ferrum has no chassis. The collection exists and is always empty, so clients that list
// chassis (or follow the chassis link of GET /v1) get what an Ironic without chassis gives.

// listChassis serves GET /v1/chassis[/detail].
func (s *server) listChassis(c *call) error {
	q, err := c.query("marker", "limit", "sort_key", "sort_dir", "fields", "detail")
	if err != nil {
		return err
	}
	if _, err := q.page(pageSpec{sortKeys: []string{"id", "uuid", "created_at", "updated_at"}}); err != nil {
		return err
	}
	return c.json(http.StatusOK, obj{{"chassis", []obj{}}})
}

// getChassis serves GET /v1/chassis/{chassis}: never found.
func (s *server) getChassis(c *call) error {
	id := c.r.PathValue("chassis")
	if err := argUUID("chassis_uuid", id); err != nil {
		return err
	}
	return clientError(http.StatusNotFound, "Chassis %s could not be found.", id)
}
