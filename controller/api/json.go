package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// obj is a JSON object that keeps Ironic's key order. Ironic's responses come from Python
// dicts, which keep insertion order; clients do not care, but golden comparisons and humans do.
type obj []field

type field struct {
	k string
	v any
}

// set replaces the value of k, or appends k.
func (o *obj) set(k string, v any) {
	for i := range *o {
		if (*o)[i].k == k {
			(*o)[i].v = v
			return
		}
	}
	*o = append(*o, field{k, v})
}

// get returns the value of k.
func (o obj) get(k string) (any, bool) {
	for _, f := range o {
		if f.k == k {
			return f.v, true
		}
	}
	return nil, false
}

// keep drops every key not in keys (and not "links").
func (o obj) keep(keys []string) obj {
	out := o[:0:0]
	for _, f := range o {
		if f.k == "links" || slices.Contains(keys, f.k) {
			out = append(out, f)
		}
	}
	return out
}

// pyJSON encodes v the way Python's json.dumps does with its defaults: ", " and ": "
// separators and every non-ASCII character escaped. Map keys are sorted.
func pyJSON(v any) []byte {
	var b bytes.Buffer
	writeJSON(&b, v)
	return b.Bytes()
}

func writeJSON(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case string:
		writeJSONString(b, v)
	case json.Number:
		writeNumber(b, v)
	case int:
		b.WriteString(strconv.Itoa(v))
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case float64:
		writeFloat(b, v)
	case obj:
		b.WriteByte('{')
		for i, f := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSONString(b, f.k)
			b.WriteString(": ")
			writeJSON(b, f.v)
		}
		b.WriteByte('}')
	case map[string]any:
		b.WriteByte('{')
		for i, k := range sortedKeys(v) {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSONString(b, k)
			b.WriteString(": ")
			writeJSON(b, v[k])
		}
		b.WriteByte('}')
	case []any:
		writeArray(b, v, writeJSON)
	case []string:
		writeArray(b, v, writeJSONString)
	case []obj:
		writeArray(b, v, func(b *bytes.Buffer, o obj) { writeJSON(b, o) })
	default:
		// Anything else (typed maps and slices from the backend) goes through encoding/json
		// and back into generic values.
		raw, err := json.Marshal(v)
		if err != nil {
			b.WriteString("null")
			return
		}
		var g any
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&g); err != nil {
			b.WriteString("null")
			return
		}
		writeJSON(b, g)
	}
}

func writeNumber(b *bytes.Buffer, n json.Number) {
	if _, err := strconv.ParseFloat(string(n), 64); err != nil {
		b.WriteString("null")
		return
	}
	b.WriteString(string(n))
}

func writeFloat(b *bytes.Buffer, f float64) {
	raw, err := json.Marshal(f)
	if err != nil { // NaN, Inf: not JSON
		b.WriteString("null")
		return
	}
	b.Write(raw)
}

// writeArray writes a JSON array with Python's ", " separator.
func writeArray[T any](b *bytes.Buffer, v []T, elem func(*bytes.Buffer, T)) {
	b.WriteByte('[')
	for i, e := range v {
		if i > 0 {
			b.WriteString(", ")
		}
		elem(b, e)
	}
	b.WriteByte(']')
}

// writeJSONString writes s as a JSON string with Python's ensure_ascii escaping. Runs of
// printable ASCII are copied in one go; everything else is escaped one rune at a time.
func writeJSONString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] >= 0x20 && s[j] < utf8.RuneSelf && s[j] != '"' && s[j] != '\\' {
			j++
		}
		b.WriteString(s[i:j])
		if j == len(s) {
			break
		}
		r, size := utf8.DecodeRuneInString(s[j:])
		i = j + size
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r > 0xffff {
				r -= 0x10000
				writeU4(b, 0xd800+(r>>10))
				writeU4(b, 0xdc00+(r&0x3ff))
			} else {
				writeU4(b, r)
			}
		}
	}
	b.WriteByte('"')
}

// writeU4 writes \uXXXX with lower-case hex digits, as Python does.
func writeU4(b *bytes.Buffer, r rune) {
	const hex = "0123456789abcdef"
	b.WriteString(`\u`)
	b.WriteByte(hex[(r>>12)&0xf])
	b.WriteByte(hex[(r>>8)&0xf])
	b.WriteByte(hex[(r>>4)&0xf])
	b.WriteByte(hex[r&0xf])
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// pyRepr renders a decoded JSON value the way Python's repr() shows it, for error messages
// that Ironic builds from jsonschema and jsonpatch exceptions.
func pyRepr(v any) string {
	var b strings.Builder
	writeRepr(&b, v)
	return b.String()
}

func writeRepr(b *strings.Builder, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if v {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case string:
		b.WriteString(pyStr(v))
	case json.Number:
		b.WriteString(string(v))
	case float64:
		b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	case int:
		b.WriteString(strconv.Itoa(v))
	case map[string]any:
		b.WriteByte('{')
		for i, k := range sortedKeys(v) {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(pyStr(k))
			b.WriteString(": ")
			writeRepr(b, v[k])
		}
		b.WriteByte('}')
	case obj:
		b.WriteByte('{')
		for i, f := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(pyStr(f.k))
			b.WriteString(": ")
			writeRepr(b, f.v)
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, e)
		}
		b.WriteByte(']')
	case []string:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(pyStr(e))
		}
		b.WriteByte(']')
	default:
		fmt.Fprint(b, v)
	}
}

// pyStr is Python's repr of a str: single quotes unless the text holds a single quote and
// no double quote.
func pyStr(s string) string {
	q := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(q):
			b.WriteByte('\\')
			b.WriteByte(q)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

// decodeJSON parses one JSON document, keeping numbers as json.Number.
func decodeJSON(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("unexpected data after the JSON value")
	}
	if _, err := d.Token(); err == nil {
		return nil, fmt.Errorf("unexpected data after the JSON value")
	}
	return v, nil
}

// jsonType names the JSON Schema type of a decoded value.
func jsonType(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if isInteger(v) {
			return "integer"
		}
		return "number"
	case float64, int, int64:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}

// isInteger reports whether n has no fractional part (JSON Schema's "integer").
func isInteger(n json.Number) bool {
	if _, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	return err == nil && f == float64(int64(f))
}

// deepCopy copies a decoded JSON value so patches never touch the backend's maps.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = deepCopy(e)
		}
		return s
	case []string:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = e
		}
		return s
	}
	return v
}

// copyMap deep-copies m; nil stays nil.
func copyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return deepCopy(m).(map[string]any)
}
