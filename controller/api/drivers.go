package api

import (
	"context"
	"net/http"
	"slices"

	"github.com/ferrumhq/ferrum/controller/conductor"
)

// DriverPropertiesProvider is an optional Backend ability found by type assertion: the
// driver_info properties a hardware type understands, for GET /v1/drivers/{name}/properties.
// Without it that endpoint answers {} for every known driver.
type DriverPropertiesProvider interface {
	DriverProperties(ctx context.Context, driver string) (map[string]string, error)
}

// driverIfaceOrder is the order Ironic 21.4.4 lists interfaces in driver details.
var driverIfaceOrder = []struct {
	name  string
	since int
}{
	{"rescue", v38Rescue}, {"raid", 1}, {"console", 1}, {"deploy", 1}, {"bios", v40BiosInterface},
	{"vendor", 1}, {"storage", v33StorageInterface}, {"boot", 1}, {"network", 1},
	{"management", 1}, {"inspect", 1}, {"power", 1},
}

// renderDriver is the driver convert_with_links.
func (c *call) renderDriver(d conductor.DriverInfo, detail bool, fields []string) obj {
	o := obj{
		{"name", d.Name},
		{"hosts", stringsOrEmpty(d.Hosts)},
		{"links", c.links("drivers", d.Name)},
	}
	if c.ver >= v14StatesLinks {
		o = append(o, field{"properties", c.links("drivers", d.Name+"/properties")})
	}
	if c.ver >= v30DynamicDrivers {
		o = append(o, field{"type", "dynamic"})
		if detail {
			for _, it := range driverIfaceOrder {
				if c.ver < it.since {
					continue
				}
				names := d.Supported[it.name]
				var def any
				if len(names) > 0 {
					def = names[0]
				}
				o = append(o, field{"default_" + it.name + "_interface", def},
					field{"enabled_" + it.name + "_interfaces", stringsOrEmpty(names)})
			}
		}
	}
	if fields != nil {
		o = o.keep(fields)
	}
	return o
}

// driverFieldsError is check_for_invalid_fields after the driver was trimmed to fields.
func driverFieldsError(o obj, fields []string) error {
	return checkFieldNames(fields, func(f string) bool { _, ok := o.get(f); return ok })
}

// listDrivers serves GET /v1/drivers.
func (s *server) listDrivers(c *call) error {
	q, err := c.query("type", "detail", "fields")
	if err != nil {
		return err
	}
	detail, err := q.boolean("detail")
	if err != nil {
		return err
	}
	fields := q.list("fields")
	typ, hasType := q.str("type")
	if len(fields) > 0 && detail != nil && *detail {
		return badRequest("Can not specify ?detail=True and fields in the same request.")
	}
	if detail != nil && c.ver < v30DynamicDrivers {
		return notAcceptableMin(v30DynamicDrivers)
	}
	if hasType && c.ver < v30DynamicDrivers {
		return notAcceptableMin(v30DynamicDrivers)
	}
	if fields != nil && c.ver < v77DriverFields {
		return notAcceptable()
	}
	if hasType && typ != "classic" && typ != "dynamic" {
		return badRequest("\"type\" filter must be one of \"classic\" or \"dynamic\", if specified.")
	}
	drivers, err := s.be.Drivers(c.r.Context())
	if err != nil {
		return err
	}
	items := []obj{}
	if typ != "classic" {
		for _, d := range drivers {
			o := c.renderDriver(d, detail != nil && *detail, fields)
			if err := driverFieldsError(o, fields); err != nil {
				return err
			}
			items = append(items, o)
		}
	}
	return c.json(http.StatusOK, obj{{"drivers", items}})
}

// findDriver returns the driver called name.
func (s *server) findDriver(c *call, name string) (conductor.DriverInfo, bool, error) {
	drivers, err := s.be.Drivers(c.r.Context())
	if err != nil {
		return conductor.DriverInfo{}, false, err
	}
	i := slices.IndexFunc(drivers, func(d conductor.DriverInfo) bool { return d.Name == name })
	if i < 0 {
		return conductor.DriverInfo{}, false, nil
	}
	return drivers[i], true, nil
}

// getDriver serves GET /v1/drivers/{driver}.
func (s *server) getDriver(c *call) error {
	q, err := c.query("fields")
	if err != nil {
		return err
	}
	fields := q.list("fields")
	if fields != nil && c.ver < v77DriverFields {
		return notAcceptable()
	}
	name := c.r.PathValue("driver")
	d, ok, err := s.findDriver(c, name)
	if err != nil {
		return err
	}
	if !ok {
		return clientError(http.StatusNotFound,
			"Could not find the following driver(s) or hardware type(s): %s.", name)
	}
	o := c.renderDriver(d, true, fields)
	if err := driverFieldsError(o, fields); err != nil {
		return err
	}
	return c.json(http.StatusOK, o)
}

// getDriverProperties serves GET /v1/drivers/{driver}/properties.
func (s *server) getDriverProperties(c *call) error {
	name := c.r.PathValue("driver")
	_, ok, err := s.findDriver(c, name)
	if err != nil {
		return err
	}
	if !ok {
		return clientError(http.StatusNotFound, "The driver '%s' is unknown.", name)
	}
	props := map[string]any{}
	if pp, ok := s.be.(DriverPropertiesProvider); ok {
		m, err := pp.DriverProperties(c.r.Context(), name)
		if err != nil {
			return err
		}
		for k, v := range m {
			props[k] = v
		}
	}
	return c.json(http.StatusOK, props)
}
