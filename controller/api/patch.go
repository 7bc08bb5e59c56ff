package api

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// patchOp is one RFC 6902 operation of the subset Ironic accepts (add, replace, remove).
type patchOp struct {
	op       string
	path     string
	value    any
	hasValue bool
}

// repr is the operation as Python prints the dict in PatchError messages.
func (p patchOp) repr() string {
	o := obj{{"op", p.op}, {"path", p.path}}
	if p.hasValue {
		v := maskIfMap(p.value)
		if keyIsSecret(p.path[strings.LastIndex(p.path, "/")+1:]) {
			v = secret
		}
		o = append(o, field{"value", v})
	}
	return pyRepr(o)
}

// patchPathRE is Ironic's '^(/[\w-]+)+$' with Python's Unicode \w.
var patchPathRE = regexp.MustCompile(`^(/[\p{L}\p{N}_-]+)+$`)

const patchPathPattern = `^(/[\w-]+)+$`

var patchOpNames = []string{"add", "replace", "remove"}

// decodePatch validates a PATCH body against Ironic's patch schema (args.patch).
func decodePatch(body any) ([]patchOp, error) {
	fail := func(msg string) error { return badRequest("Schema error for patch: %s", msg) }
	items, ok := body.([]any)
	if !ok {
		return nil, fail(fmt.Sprintf("%s is not of type 'array'", pyRepr(body)))
	}
	// best_match reports item-level errors before errors inside an item, first item first.
	for _, deep := range []bool{false, true} {
		for _, it := range items {
			if msg := checkPatchItem(it, deep); msg != "" {
				return nil, fail(msg)
			}
		}
	}
	ops := make([]patchOp, len(items))
	for i, it := range items {
		m := it.(map[string]any)
		v, has := m["value"]
		ops[i] = patchOp{op: m["op"].(string), path: m["path"].(string), value: v, hasValue: has}
	}
	return ops, nil
}

// checkPatchItem checks one operation: the item itself, or (deep) its members.
func checkPatchItem(it any, deep bool) string {
	m, ok := it.(map[string]any)
	if !ok {
		if deep {
			return ""
		}
		return fmt.Sprintf("%s is not of type 'object'", pyRepr(it))
	}
	if deep {
		return checkPatchMembers(m)
	}
	var extra []string
	for k := range m {
		if k != "op" && k != "path" && k != "value" {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		return additionalProps(extra)
	}
	for _, k := range []string{"op", "path"} {
		if _, ok := m[k]; !ok {
			return fmt.Sprintf("%s is a required property", pyStr(k))
		}
	}
	return ""
}

// checkPatchMembers checks path, then op.
func checkPatchMembers(m map[string]any) string {
	if p, ok := m["path"].(string); !ok {
		return typeError(m["path"], tString)
	} else if !patchPathRE.MatchString(p) {
		return fmt.Sprintf("%s does not match %s", pyStr(p), pyStr(patchPathPattern))
	}
	if op, ok := m["op"].(string); !ok {
		return typeError(m["op"], tString)
	} else if !slices.Contains(patchOpNames, op) {
		return fmt.Sprintf("%s is not one of %s", pyStr(op), pyRepr(patchOpNames))
	}
	return ""
}

// root is the top-level attribute a path names ("/properties/cpus" → "properties").
func (p patchOp) root() string {
	r, _, _ := strings.Cut(strings.TrimPrefix(p.path, "/"), "/")
	return r
}

// checkAllowed is Ironic's patch_validate_allowed_fields.
func checkAllowed(ops []patchOp, allowed []string) error {
	for _, p := range ops {
		if !slices.Contains(allowed, p.root()) {
			return badRequest("Cannot patch %s. Only the following can be updated: %s",
				p.path, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// patchValues is get_patch_values: the values set on exactly path, in order.
func patchValues(ops []patchOp, path string) []any {
	var out []any
	for _, p := range ops {
		if p.path == path && p.op != "remove" {
			out = append(out, p.value)
		}
	}
	return out
}

// touches reports whether an operation changes path or something below it.
func touches(ops []patchOp, path string) bool {
	for _, p := range ops {
		if p.path == path || strings.HasPrefix(p.path, path+"/") {
			return true
		}
	}
	return false
}

// removes reports whether an operation removes path or something below it.
func removes(ops []patchOp, path string) bool {
	for _, p := range ops {
		if p.op == "remove" && (p.path == path || strings.HasPrefix(p.path, path+"/")) {
			return true
		}
	}
	return false
}

// applyPatch applies ops one at a time to doc (modified in place), as Ironic's
// apply_jsonpatch does; a failing operation is a 400 naming it.
func applyPatch(doc map[string]any, ops []patchOp) error {
	for _, p := range ops {
		if p.op == "add" && strings.Count(p.path, "/") == 1 {
			if _, ok := doc[p.root()]; !ok {
				return badRequest("Adding a new attribute (%s) to the root of the resource is not allowed", p.path)
			}
		}
	}
	for _, p := range ops {
		if err := applyOp(doc, p); err != "" {
			return badRequest("Couldn't apply patch '%s'. Reason: %s", p.repr(), err)
		}
	}
	return nil
}

// applyOp applies one operation and returns jsonpatch's reason on failure.
func applyOp(doc map[string]any, p patchOp) string {
	if (p.op == "add" || p.op == "replace") && !p.hasValue {
		return "The operation does not contain a 'value' member"
	}
	parts := strings.Split(p.path[1:], "/")
	var parent any = doc
	for _, part := range parts[:len(parts)-1] {
		next, reason := walk(parent, part, p.path)
		if reason != "" {
			return reason
		}
		parent = next
	}
	last := parts[len(parts)-1]
	var reason string
	switch c := parent.(type) {
	case map[string]any:
		reason = applyToMap(c, last, p)
	case []any:
		var updated []any
		updated, reason = applyToList(c, last, p)
		if reason == "" {
			reason = replaceList(doc, parts[:len(parts)-1], updated)
		}
	case string:
		if _, reason = listIndex(last); reason == "" || last == "-" {
			reason = fmt.Sprintf("unable to fully resolve json pointer %s, part %s", p.path, last)
		}
	default:
		reason = notIndexable(c)
	}
	return reason
}

// walk steps from a container to its member part.
func walk(c any, part, path string) (any, string) {
	switch c := c.(type) {
	case map[string]any:
		v, ok := c[part]
		if !ok {
			return nil, fmt.Sprintf("member '%s' not found in %s", part, pyRepr(maskDict(c)))
		}
		return v, ""
	case []any:
		i, reason := listIndex(part)
		if reason != "" {
			return nil, reason
		}
		if i >= len(c) {
			return nil, fmt.Sprintf("index '%d' is out of bounds", i)
		}
		return c[i], ""
	case string:
		// Python strings are sequences: a valid index gets as far as the operation.
		if _, reason := listIndex(part); reason != "" {
			return nil, reason
		}
		return nil, fmt.Sprintf("unable to fully resolve json pointer %s, part %s", path, part)
	}
	return nil, notIndexable(c)
}

// notIndexable is jsonpointer's message for stepping into a scalar.
func notIndexable(v any) string {
	t := map[string]string{"null": "NoneType", "boolean": "bool", "integer": "int",
		"number": "float"}[jsonType(v)]
	if f, ok := v.(float64); ok && f == float64(int64(f)) {
		t = "int" // the backend's float64 was a JSON integer
	}
	return fmt.Sprintf("Document '<class '%s'>' does not support indexing, must be "+
		"mapping/sequence or support __getitem__", t)
}

var listIndexRE = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)

func listIndex(part string) (int, string) {
	if !listIndexRE.MatchString(part) {
		return 0, fmt.Sprintf("'%s' is not a valid sequence index", part)
	}
	i, err := strconv.Atoi(part)
	if err != nil {
		return 0, fmt.Sprintf("'%s' is not a valid sequence index", part)
	}
	return i, ""
}

func applyToMap(m map[string]any, key string, p patchOp) string {
	switch p.op {
	case "add":
		m[key] = deepCopy(p.value)
	case "replace":
		if _, ok := m[key]; !ok {
			return fmt.Sprintf("can't replace a non-existent object '%s'", key)
		}
		m[key] = deepCopy(p.value)
	case "remove":
		if _, ok := m[key]; !ok {
			return fmt.Sprintf("can't remove a non-existent object '%s'", key)
		}
		delete(m, key)
	}
	return ""
}

func applyToList(l []any, part string, p patchOp) ([]any, string) {
	if part == "-" {
		if p.op == "add" {
			return append(l, deepCopy(p.value)), ""
		}
		if p.op == "replace" {
			return nil, "'path' with '-' can't be applied to 'replace' operation"
		}
		return nil, "can't remove a non-existent object '-'"
	}
	i, reason := listIndex(part)
	if reason != "" {
		return nil, reason
	}
	switch p.op {
	case "add":
		if i > len(l) {
			return nil, "can't insert outside of list"
		}
		return slices.Insert(l, i, deepCopy(p.value)), ""
	case "replace":
		if i >= len(l) {
			return nil, "can't replace outside of list"
		}
		l[i] = deepCopy(p.value)
		return l, ""
	default:
		if i >= len(l) {
			return nil, fmt.Sprintf("can't remove a non-existent object '%d'", i)
		}
		return slices.Delete(l, i, i+1), ""
	}
}

// replaceList stores a list that changed length back at its path (Go slices are values).
func replaceList(doc map[string]any, parts []string, l []any) string {
	var c any = doc
	for i, part := range parts {
		if i == len(parts)-1 {
			switch c := c.(type) {
			case map[string]any:
				c[part] = l
			case []any:
				idx, _ := listIndex(part)
				c[idx] = l
			}
			return ""
		}
		c, _ = walk(c, part, "")
	}
	return ""
}

// maskIfMap masks a dict value shown in an error message.
func maskIfMap(v any) any {
	if m, ok := v.(map[string]any); ok {
		return maskDict(m)
	}
	return v
}
