package api

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// isUUIDLike is oslo's uuidutils.is_uuid_like: 32 hex digits once "urn:", "uuid:", braces
// and dashes are stripped.
func isUUIDLike(s string) bool {
	t := strings.ReplaceAll(s, "urn:", "")
	t = strings.ReplaceAll(t, "uuid:", "")
	t = strings.Trim(t, "{}")
	t = strings.ReplaceAll(t, "-", "")
	if len(t) != 32 {
		return false
	}
	for _, r := range t {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

var (
	logicalNameRE  = regexp.MustCompile(`^[A-Za-z0-9\-._~]+$`)
	hostnameSafeRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?(\.[a-z0-9\-_]{0,62}[a-z0-9])*\.?$`)
	macRE          = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)
)

// isValidLogicalName is Ironic's utils.is_valid_logical_name: RFC 3986 unreserved
// characters, at most 255.
func isValidLogicalName(s string) bool {
	return len(s) <= 255 && logicalNameRE.MatchString(s)
}

// isValidNameAt applies the name rule of the microversion (hostname-safe below 1.10).
func isValidNameAt(s string, ver int) bool {
	if ver < v10UnrestrictedName {
		return len(s) <= 255 && hostnameSafeRE.MatchString(s)
	}
	return isValidLogicalName(s)
}

// isValidNodeName is a valid name that is not a UUID.
func isValidNodeName(s string, ver int) bool {
	return isValidNameAt(s, ver) && !isUUIDLike(s)
}

// normalizeMAC validates a colon-separated MAC and lower-cases it.
func normalizeMAC(s string) (string, bool) {
	l := strings.ToLower(s)
	return l, macRE.MatchString(l)
}

var (
	trueStrings  = []string{"1", "t", "true", "on", "y", "yes"}
	falseStrings = []string{"0", "f", "false", "off", "n", "no"}
)

// boolFromString is oslo's strict bool_from_string.
func boolFromString(v any) (bool, error) {
	var s string
	switch v := v.(type) {
	case bool:
		return v, nil
	case string:
		s = v
	case json.Number:
		s = string(v)
	default:
		s = pyRepr(v)
	}
	l := strings.ToLower(strings.TrimSpace(s))
	switch {
	case slices.Contains(trueStrings, l):
		return true, nil
	case slices.Contains(falseStrings, l):
		return false, nil
	}
	return false, fmt.Errorf("Unrecognized value '%s', acceptable values are: '0', '1', 'f', "+
		"'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'", s)
}

// argBool is args.boolean: "Invalid <name>: <reason>".
func argBool(name string, v any) (bool, error) {
	b, err := boolFromString(v)
	if err != nil {
		return false, badRequest("Invalid %s: %v", name, err)
	}
	return b, nil
}

// argString is args.string.
func argString(name string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", badRequest("Expected string for %s: %s", name, pyText(v))
	}
	return s, nil
}

// argUUID is args.uuid.
func argUUID(name, v string) error {
	if !isUUIDLike(v) {
		return badRequest("Expected UUID for %s: %s", name, v)
	}
	return nil
}

// argInteger is args.integer: Python's int() of a JSON value or a query string.
func argInteger(name string, v any) (int, error) {
	bad := badRequest("Expected an integer for %s: %s", name, pyText(v))
	switch v := v.(type) {
	case bool:
		if v {
			return 1, nil
		}
		return 0, nil
	case json.Number:
		if i, err := strconv.Atoi(string(v)); err == nil {
			return i, nil
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || math.IsInf(f, 0) || math.Abs(f) > 1<<53 {
			return 0, bad
		}
		return int(f), nil
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, bad
		}
		return i, nil
	}
	return 0, bad
}

// pyText is str() of a JSON value as Python formats it in "%s".
func pyText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return pyRepr(v)
}

// stringList is args.string_list: comma separated, trimmed, lower-cased, deduplicated.
func stringList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		v = strings.ToLower(strings.TrimSpace(v))
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// prop is the JSON Schema of one property: allowed types (in Ironic's order) and limits.
type prop struct {
	types  []string
	maxLen int
}

// objSchema is the subset of JSON Schema Ironic's body schemas use: an object with typed
// properties, required keys and additionalProperties false.
type objSchema struct {
	props    map[string]prop
	required []string
}

// check validates v and returns the message of the error jsonschema 4.10's best_match
// reports (top-level errors first, then the first bad property in schema order, which is
// alphabetical in Ironic's schemas), or "".
func (s objSchema) check(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Sprintf("%s is not of type 'object'", pyRepr(v))
	}
	for _, k := range s.required {
		if _, ok := m[k]; !ok {
			return fmt.Sprintf("%s is a required property", pyStr(k))
		}
	}
	var extra []string
	for k := range m {
		if _, ok := s.props[k]; !ok {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		return additionalProps(extra)
	}
	for _, k := range sortedKeys(m) {
		if msg := s.props[k].check(m[k]); msg != "" {
			return msg
		}
	}
	return ""
}

// additionalProps is jsonschema's additionalProperties message.
func additionalProps(extra []string) string {
	slices.Sort(extra)
	quoted := make([]string, len(extra))
	for i, k := range extra {
		quoted[i] = pyStr(k)
	}
	verb := "was"
	if len(extra) > 1 {
		verb = "were"
	}
	return fmt.Sprintf("Additional properties are not allowed (%s %s unexpected)",
		strings.Join(quoted, ", "), verb)
}

// check validates one property value.
func (p prop) check(v any) string {
	if !typeIn(v, p.types) {
		return typeError(v, p.types)
	}
	if s, ok := v.(string); ok && p.maxLen > 0 && utf8.RuneCountInString(s) > p.maxLen {
		return fmt.Sprintf("%s is too long", pyRepr(v))
	}
	return ""
}

// typeIn reports whether v has one of the JSON Schema types.
func typeIn(v any, types []string) bool {
	t := jsonType(v)
	for _, want := range types {
		if want == t || (want == "number" && t == "integer") {
			return true
		}
	}
	return false
}

// typeError is jsonschema's type message: "[1] is not of type 'object', 'null'".
func typeError(v any, types []string) string {
	quoted := make([]string, len(types))
	for i, t := range types {
		quoted[i] = pyStr(t)
	}
	return fmt.Sprintf("%s is not of type %s", pyRepr(v), strings.Join(quoted, ", "))
}

// Frequently used type lists.
var (
	tString        = []string{"string"}
	tStringNull    = []string{"string", "null"}
	tObjectNull    = []string{"object", "null"}
	tStrBoolNull   = []string{"string", "boolean", "null"}
	tNullObject    = []string{"null", "object"}
	tArrayNull     = []string{"array", "null"}
	tObject        = []string{"object"}
	tStringOrArray = []string{"object", "array", "string", "null"}
)
