package api

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/ferrumhq/ferrum/shared/proto"
)

// v74BiosRegistry adds ?detail and ?fields to the BIOS list, and the registry fields.
const v74BiosRegistry = 74

var (
	biosDefaultFields  = []string{"name", "value"}
	biosRegistryFields = []string{"name", "value", "attribute_type", "allowable_values", "lower_bound",
		"max_length", "min_length", "read_only", "reset_required", "unique", "upper_bound"}
)

// nodeBIOS reads the node's BIOS settings cache (driver_internal_info.bios_settings, which the
// agent's BIOS steps and inspection fill) and when it was filled.
func nodeBIOS(dii map[string]any) ([]proto.BIOSSetting, any) {
	raw, err := json.Marshal(dii["bios_settings"])
	if err != nil {
		return nil, nil
	}
	var st proto.BIOSSettings
	if json.Unmarshal(raw, &st) != nil {
		return nil, nil
	}
	return st.Settings, dii["bios_settings_at"]
}

func (c *call) renderBIOS(node string, s proto.BIOSSetting, at any, fields []string) obj {
	o := obj{{"created_at", at}, {"updated_at", nil}}
	for _, f := range fields {
		switch f {
		case "name":
			o = append(o, field{f, s.Name})
		case "value":
			o = append(o, field{f, s.Value})
		case "attribute_type":
			o = append(o, field{f, nullIfEmpty(s.AttributeType)})
		case "allowable_values":
			if s.AllowableValues == nil {
				o = append(o, field{f, nil})
			} else {
				o = append(o, field{f, s.AllowableValues})
			}
		case "lower_bound":
			o = append(o, field{f, intOrNil(s.LowerBound)})
		case "upper_bound":
			o = append(o, field{f, intOrNil(s.UpperBound)})
		case "min_length":
			o = append(o, field{f, intOrNil(s.MinLength)})
		case "max_length":
			o = append(o, field{f, intOrNil(s.MaxLength)})
		case "read_only":
			o = append(o, field{f, s.ReadOnly})
		case "reset_required":
			o = append(o, field{f, s.ResetRequired})
		case "unique":
			o = append(o, field{f, s.Unique})
		}
	}
	return append(o, field{"links", c.links("nodes", node+"/bios/"+s.Name)})
}

func intOrNil(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// getBIOS serves GET /v1/nodes/{node}/bios (1.40; ?detail and ?fields 1.74).
func (s *server) getBIOS(c *call) error {
	if c.ver < v40BiosInterface {
		return webobError(http.StatusNotFound, "")
	}
	q, err := c.query("detail", "fields")
	if err != nil {
		return err
	}
	detail, err := q.boolean("detail")
	if err != nil {
		return err
	}
	fields := q.list("fields")
	if (detail != nil || fields != nil) && c.ver < v74BiosRegistry {
		return notAcceptable()
	}
	for _, f := range fields {
		if !slices.Contains(biosRegistryFields, f) {
			return badRequest("Field(s) \"%s\" are not valid", f)
		}
	}
	if fields, err = c.returnFields(fields, detail, biosDefaultFields); err != nil {
		return err
	}
	if detail != nil && *detail {
		fields = biosRegistryFields
	}
	n, ident, err := c.lookupNode()
	if err != nil {
		return err
	}
	settings, at := nodeBIOS(n.DriverInternalInfo)
	items := make([]obj, len(settings))
	for i, st := range settings {
		items[i] = c.renderBIOS(ident, st, at, fields)
	}
	return c.json(http.StatusOK, obj{{"bios", items}})
}

// getBIOSSetting serves GET /v1/nodes/{node}/bios/{setting} (1.40).
func (s *server) getBIOSSetting(c *call) error {
	if c.ver < v40BiosInterface {
		return webobError(http.StatusNotFound, "")
	}
	n, _, err := c.lookupNode()
	if err != nil {
		return err
	}
	name := c.r.PathValue("setting")
	settings, at := nodeBIOS(n.DriverInternalInfo)
	fields := biosDefaultFields
	if c.ver >= v74BiosRegistry {
		fields = biosRegistryFields
	}
	for _, st := range settings {
		if st.Name == name {
			return c.json(http.StatusOK, obj{{name, c.renderBIOS(n.UUID, st, at, fields)}})
		}
	}
	return clientError(http.StatusNotFound, "Node %s doesn't have a BIOS setting '%s'", n.UUID, name)
}
