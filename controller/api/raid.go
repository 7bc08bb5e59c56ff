package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// RAID target configuration: ironic/drivers/raid_config_schema.json (JSON Schema draft 4),
// written out by hand, plus raid.py's one-root-volume rule.

var (
	raidLevels     = []string{"JBOD", "0", "1", "2", "5", "6", "1+0", "5+0", "6+0"}
	raidDiskTypes  = []string{"hdd", "ssd"}
	raidInterfaces = []string{"sata", "scsi", "sas"}
	// raidDiskKeys is the order of the schema's logical disk properties.
	raidDiskKeys = []string{"raid_level", "size_gb", "volume_name", "is_root_volume",
		"share_physical_disks", "disk_type", "interface_type", "number_of_physical_disks",
		"controller", "physical_disks"}
)

// validateRAIDConfig checks a non-empty target_raid_config.
func validateRAIDConfig(cfg map[string]any) error {
	if msg := raidSchemaError(cfg); msg != "" {
		return badRequest("RAID config validation error: %s", msg)
	}
	roots := 0
	for _, d := range cfg["logical_disks"].([]any) {
		if truthy(d.(map[string]any)["is_root_volume"]) {
			roots++
		}
	}
	if roots > 1 {
		return badRequest("Raid config cannot have more than one root volume. %d root volumes were specified", roots)
	}
	return nil
}

// raidSchemaError returns the message of the error jsonschema reports first, or "".
func raidSchemaError(cfg map[string]any) string {
	if _, ok := cfg["logical_disks"]; !ok {
		return "'logical_disks' is a required property"
	}
	var extra []string
	for k := range cfg {
		if k != "logical_disks" {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		return additionalProps(extra)
	}
	disks, ok := cfg["logical_disks"].([]any)
	if !ok {
		return typeError(cfg["logical_disks"], []string{"array"})
	}
	if len(disks) == 0 {
		return "[] is too short"
	}
	for _, d := range disks {
		if msg := raidDiskError(d); msg != "" {
			return msg
		}
	}
	for _, d := range disks {
		m := d.(map[string]any)
		for _, k := range raidDiskKeys {
			if v, ok := m[k]; ok {
				if msg := raidPropError(k, v); msg != "" {
					return msg
				}
			}
		}
	}
	return ""
}

// raidDiskError checks a logical disk as a whole: type, required, extra keys, dependencies.
func raidDiskError(d any) string {
	m, ok := d.(map[string]any)
	if !ok {
		return fmt.Sprintf("%s is not of type 'object'", pyRepr(d))
	}
	for _, k := range []string{"raid_level", "size_gb"} {
		if _, ok := m[k]; !ok {
			return fmt.Sprintf("%s is a required property", pyStr(k))
		}
	}
	var extra []string
	for k := range m {
		if !slices.Contains(raidDiskKeys, k) {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		return additionalProps(extra)
	}
	if _, ok := m["physical_disks"]; ok {
		if _, ok := m["controller"]; !ok {
			return "'controller' is a dependency of 'physical_disks'"
		}
	}
	return ""
}

// raidPropError checks one logical disk property.
func raidPropError(k string, v any) string {
	enum := func(values []string) string {
		if !typeIn(v, tString) {
			return typeError(v, tString)
		}
		if !slices.Contains(values, v.(string)) {
			return fmt.Sprintf("%s is not one of %s", pyRepr(v), pyRepr(values))
		}
		return ""
	}
	anyOf := func() string {
		return fmt.Sprintf("%s is not valid under any of the given schemas", pyRepr(v))
	}
	switch k {
	case "raid_level":
		return enum(raidLevels)
	case "disk_type":
		return enum(raidDiskTypes)
	case "interface_type":
		return enum(raidInterfaces)
	case "volume_name", "controller":
		if !typeIn(v, tString) {
			return typeError(v, tString)
		}
	case "is_root_volume", "share_physical_disks":
		if !typeIn(v, []string{"boolean"}) {
			return typeError(v, []string{"boolean"})
		}
	case "size_gb":
		if v == "MAX" {
			return ""
		}
		if n, ok := v.(json.Number); !ok || !isIntLiteral(n) || strings.HasPrefix(string(n), "-") {
			return anyOf()
		}
	case "number_of_physical_disks":
		n, ok := v.(json.Number)
		if !ok || !isIntLiteral(n) {
			return typeError(v, []string{"integer"})
		}
		if strings.HasPrefix(string(n), "-") || strings.TrimLeft(string(n), "0") == "" {
			return fmt.Sprintf("%s is less than or equal to the minimum of 0", pyRepr(v))
		}
	case "physical_disks":
		l, ok := v.([]any)
		if !ok {
			return anyOf()
		}
		allStrings, allObjects := true, true
		for _, e := range l {
			allStrings = allStrings && typeIn(e, tString)
			allObjects = allObjects && typeIn(e, tObject)
		}
		if !allStrings && !(allObjects && len(l) >= 2) {
			return anyOf()
		}
	}
	return ""
}

// isIntLiteral is draft 4's integer: a number written without fraction or exponent.
func isIntLiteral(n json.Number) bool {
	return !strings.ContainsAny(string(n), ".eE")
}
