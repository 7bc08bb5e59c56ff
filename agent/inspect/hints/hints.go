// Package hints parses Ironic's root device hints (node.properties.root_device) and chooses
// the disk an image is written to, with a sentence saying why that disk.
//
// The semantics are ironic_lib's parse_root_device_hints and match_root_device_hints (with
// oslo.utils' specs_matcher operators): every hint must match; the first matching disk in
// name order wins; string values are lower-cased and URL-quoted on both sides before they are
// compared; size is in GiB; without hints the smallest disk of at least 4 GiB is chosen. Where
// Python would raise at match time or never match (a string operator on size, <or> on size,
// <in> on a number) Parse fails at once with a clear error instead. <all-in> has no meaning
// for a single string; here it means every listed word is a substring of the value.
//
// Ferrum's choices beyond Ironic: read-only disks are never chosen; without hints,
// removable disks and md arrays are not chosen either (hints may still name them, e.g.
// {"name": "/dev/md0"}); a name without /dev/ gets it.
//
// It is part of the agent: cmd/ferrum-agent, agent/inspect and the capabilities that write to
// disks (through Resolver) import it.
package hints

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/ferrumhq/ferrum/agent/internal/blockdev"
)

// ErrBadHints is wrapped by every error of Parse: the hints themselves are wrong.
var ErrBadHints = errors.New("bad root device hints")

// ErrNoMatch is wrapped by Select's error when no disk qualifies.
var ErrNoMatch = errors.New("no disk matches")

// MinDefaultSize is the smallest disk chosen without hints (IPA's 4 GiB).
const MinDefaultSize = 4 << 30

const gib = 1 << 30

type kind int

const (
	kindString kind = iota
	kindInt
	kindBool
)

// keys are Ironic's hints (plus tran, which IPA accepts) and their types.
var keys = map[string]kind{
	"size": kindInt, "model": kindString, "vendor": kindString, "serial": kindString, "wwn": kindString,
	"wwn_with_extension": kindString, "wwn_vendor_extension": kindString, "hctl": kindString,
	"by_path": kindString, "name": kindString, "rotational": kindBool, "tran": kindString,
}

// Operators, longest first so that "s==" is found before "s=" would be and "<=" before "<".
var (
	stringOps = []string{"s==", "s!=", "s<=", "s>=", "s<", "s>"}
	numberOps = []string{"==", "!=", "<=", ">=", "=", "<", ">"}
	listOps   = []string{"<in>", "<or>", "<all-in>", "<range-in>"}
)

// Hint is one parsed hint.
type Hint struct {
	Key string
	// Op is the operator: the default (s== for strings, == for size) when none was given;
	// empty for rotational.
	Op string
	// Values are the normalized (lower-cased, URL-quoted) strings or the numbers as written.
	Values []string
	// Bool is rotational's value.
	Bool bool

	nums       []float64 // numeric values
	loIncl     bool      // <range-in> bounds
	hiIncl     bool
	expression string // as given, for messages
}

// String is the hint as a reader would write it, e.g. `size >= 100` or `serial s== "abc"`.
func (h Hint) String() string {
	switch {
	case h.Key == "rotational":
		return fmt.Sprintf("rotational %t", h.Bool)
	case h.Op == "<range-in>":
		return fmt.Sprintf("size <range-in> %s", strings.TrimSpace(strings.TrimPrefix(strings.ToLower(h.expression), "<range-in>")))
	case h.Key == "size":
		return fmt.Sprintf("size %s %s", h.Op, strings.Join(h.Values, " "+h.Op+" "))
	}
	q := make([]string, len(h.Values))
	for i, v := range h.Values {
		q[i] = strconv.Quote(v)
	}
	if h.Op == "<or>" {
		return fmt.Sprintf("%s <or> %s", h.Key, strings.Join(q, " <or> "))
	}
	return fmt.Sprintf("%s %s %s", h.Key, h.Op, strings.Join(q, " "))
}

// Hints are parsed root device hints, sorted by key. The zero value has none.
type Hints []Hint

// String lists the hints, e.g. `model <in> "ssd", size >= 100`.
func (hs Hints) String() string {
	s := make([]string, len(hs))
	for i, h := range hs {
		s[i] = h.String()
	}
	return strings.Join(s, ", ")
}

// Parse checks and normalizes Ironic root device hints. Values are what JSON decodes to:
// strings, numbers (float64 or json.Number) and booleans.
func Parse(m map[string]any) (Hints, error) {
	var out Hints
	for _, key := range slices.Sorted(mapKeys(m)) {
		h, err := parseOne(key, m[key])
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadHints, err)
		}
		out = append(out, h)
	}
	return out, nil
}

func mapKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func parseOne(key string, v any) (Hint, error) {
	k, ok := keys[key]
	if !ok {
		valid := slices.Sorted(func(yield func(string) bool) {
			for k := range keys {
				if !yield(k) {
					return
				}
			}
		})
		return Hint{}, fmt.Errorf("unknown hint %q; valid hints are %s", key, strings.Join(valid, ", "))
	}
	switch k {
	case kindBool:
		b, err := parseBool(v)
		if err != nil {
			return Hint{}, fmt.Errorf("hint %q: %w", key, err)
		}
		return Hint{Key: key, Bool: b, expression: fmt.Sprint(v)}, nil
	case kindInt:
		return parseSize(v)
	}
	s, ok := v.(string)
	if !ok {
		return Hint{}, fmt.Errorf("hint %q is not a string: %v", key, v)
	}
	return parseString(key, s)
}

// parseBool accepts what oslo's bool_from_string(strict=True) accepts.
func parseBool(v any) (bool, error) {
	var s string
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		s = x
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		s = x.String()
	default:
		return false, fmt.Errorf("not a boolean: %v", v)
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "t", "true", "on", "y", "yes":
		return true, nil
	case "0", "f", "false", "off", "n", "no":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean: %q", s)
}

// splitOp returns the expression's operator (one of ops, followed by a space or the end) and
// the rest, or "" and the whole expression.
func splitOp(expr string) (op, rest string) {
	for _, group := range [][]string{listOps, stringOps, numberOps} {
		for _, o := range group {
			if r, ok := strings.CutPrefix(expr, o); ok {
				return o, strings.TrimSpace(r)
			}
		}
	}
	return "", expr
}

func parseSize(v any) (Hint, error) {
	var expr string
	switch x := v.(type) {
	case string:
		expr = x
	case float64:
		expr = strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		expr = x.String()
	case int:
		expr = strconv.Itoa(x)
	case int64:
		expr = strconv.FormatInt(x, 10)
	default:
		return Hint{}, fmt.Errorf("hint \"size\" is not an integer: %v", v)
	}
	expr = strings.ToLower(strings.TrimSpace(expr))
	if expr == "" {
		return Hint{}, errors.New(`hint "size" is empty`)
	}
	h := Hint{Key: "size", expression: expr}
	op, rest := splitOp(expr)
	switch {
	case op == "":
		h.Op, h.Values = "==", []string{expr}
	case slices.Contains(numberOps, op):
		h.Op, h.Values = op, []string{rest}
	case op == "<or>":
		h.Op = op
		for _, p := range strings.Split(rest, "<or>") {
			if p = strings.TrimSpace(p); p != "" {
				h.Values = append(h.Values, p)
			}
		}
	case op == "<range-in>":
		return parseRange(h, rest)
	default:
		return Hint{}, fmt.Errorf("hint \"size\": operator %s does not apply to a number; use ==, !=, >=, >, <=, <, <or> or <range-in>", op)
	}
	if len(h.Values) == 0 {
		return Hint{}, fmt.Errorf("hint \"size\" %q has no value", expr)
	}
	for _, s := range h.Values {
		n, err := positiveInt(s)
		if err != nil {
			return Hint{}, fmt.Errorf("hint \"size\" %q: %w", expr, err)
		}
		h.nums = append(h.nums, n)
	}
	return h, nil
}

func positiveInt(s string) (float64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer (GiB)", s)
	}
	if n <= 0 {
		return 0, fmt.Errorf("%d is not a positive integer (GiB)", n)
	}
	return float64(n), nil
}

// parseRange parses "[10 100)" (oslo's <range-in>: [ or ( then two numbers then ] or )).
func parseRange(h Hint, rest string) (Hint, error) {
	h.Op = "<range-in>"
	bad := fmt.Errorf("hint \"size\": <range-in> wants [MIN MAX], with ( or ) for an open end: %q", rest)
	if len(rest) < 2 {
		return Hint{}, bad
	}
	lo, hi := rest[0], rest[len(rest)-1]
	if (lo != '[' && lo != '(') || (hi != ']' && hi != ')') {
		return Hint{}, bad
	}
	f := strings.Fields(rest[1 : len(rest)-1])
	if len(f) != 2 {
		return Hint{}, bad
	}
	for _, s := range f {
		n, err := positiveInt(s)
		if err != nil {
			return Hint{}, fmt.Errorf("hint \"size\" <range-in>: %w", err)
		}
		h.nums = append(h.nums, n)
	}
	if h.nums[0] > h.nums[1] {
		return Hint{}, fmt.Errorf("hint \"size\" <range-in>: empty range %q", rest)
	}
	h.Values, h.loIncl, h.hiIncl = f, lo == '[', hi == ']'
	return h, nil
}

func parseString(key, raw string) (Hint, error) {
	expr := strings.ToLower(strings.TrimSpace(raw))
	if expr == "" {
		return Hint{}, fmt.Errorf("hint %q is empty", key)
	}
	h := Hint{Key: key, expression: raw}
	op, rest := splitOp(expr)
	var vals []string
	switch {
	case op == "":
		h.Op, vals = "s==", []string{expr}
	case slices.Contains(stringOps, op), op == "<in>":
		h.Op, vals = op, []string{rest}
	case op == "<or>":
		h.Op = op
		vals = strings.Split(rest, "<or>")
	case op == "<all-in>":
		h.Op, vals = op, strings.Fields(rest)
	default:
		return Hint{}, fmt.Errorf("hint %q: operator %s compares numbers; %s is a string (use s==, s!=, s<, s<=, s>, s>=, <in>, <or> or <all-in>)", key, op, key)
	}
	for _, v := range vals {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if key == "name" && !strings.HasPrefix(v, "/dev/") && (h.Op == "s==" || h.Op == "s!=" || h.Op == "<or>") {
			v = "/dev/" + v
		}
		h.Values = append(h.Values, quote(v))
	}
	if len(h.Values) == 0 {
		return Hint{}, fmt.Errorf("hint %q %q has no value", key, raw)
	}
	return h, nil
}

// quote is Python's urllib.parse.quote(s) (safe "/"): unreserved bytes stay, others are %XX.
func quote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_.-~/", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// value returns the disk's attribute a string hint compares with.
func value(d blockdev.Disk, key string) string {
	switch key {
	case "model":
		return d.Model
	case "vendor":
		return d.Vendor
	case "serial":
		return d.Serial
	case "wwn":
		return d.WWN
	case "wwn_with_extension":
		return d.WWNWithExtension
	case "wwn_vendor_extension":
		return d.WWNVendorExtension
	case "hctl":
		return d.HCTL
	case "by_path":
		return d.ByPath
	case "name":
		return d.Name
	case "tran":
		return d.Tran
	}
	return ""
}

// Match reports whether the disk satisfies the hint; when not, why says what differs.
func (h Hint) Match(d blockdev.Disk) (ok bool, why string) {
	switch h.Key {
	case "rotational":
		if d.Rotational == h.Bool {
			return true, ""
		}
		return false, fmt.Sprintf("rotational is %t", d.Rotational)
	case "size":
		gb := float64(d.Size) / gib
		if h.matchNumber(gb) {
			return true, ""
		}
		return false, fmt.Sprintf("size is %s GiB", strconv.FormatFloat(gb, 'f', -1, 64))
	}
	raw := value(d, h.Key)
	if raw == "" {
		return false, h.Key + " is empty"
	}
	v := quote(strings.ToLower(strings.TrimSpace(raw)))
	if h.matchString(v) {
		return true, ""
	}
	return false, fmt.Sprintf("%s is %q", h.Key, raw)
}

func (h Hint) matchNumber(x float64) bool {
	y := h.nums[0]
	switch h.Op {
	case "==":
		return x == y
	case "!=":
		return x != y
	case ">=", "=": // "=" is oslo's legacy "at least"
		return x >= y
	case ">":
		return x > y
	case "<=":
		return x <= y
	case "<":
		return x < y
	case "<or>":
		return slices.Contains(h.nums, x)
	case "<range-in>":
		lo := x > h.nums[0] || h.loIncl && x == h.nums[0]
		hi := x < h.nums[1] || h.hiIncl && x == h.nums[1]
		return lo && hi
	}
	return false
}

func (h Hint) matchString(x string) bool {
	y := h.Values[0]
	switch h.Op {
	case "s==":
		return x == y
	case "s!=":
		return x != y
	case "s<":
		return x < y
	case "s<=":
		return x <= y
	case "s>":
		return x > y
	case "s>=":
		return x >= y
	case "<in>":
		return strings.Contains(x, y)
	case "<or>":
		return slices.Contains(h.Values, x)
	case "<all-in>":
		for _, v := range h.Values {
			if !strings.Contains(x, v) {
				return false
			}
		}
		return true
	}
	return false
}

// Match reports whether the disk satisfies every hint; when not, why names the first that
// fails.
func (hs Hints) Match(d blockdev.Disk) (ok bool, why string) {
	for _, h := range hs {
		if ok, why := h.Match(d); !ok {
			return false, fmt.Sprintf("%s (wants %s)", why, h)
		}
	}
	return true, ""
}

// Select chooses the root disk among disks (in their order, as blockdev.List returns them) by
// Ironic root device hints m, and says why. Errors wrap ErrBadHints or ErrNoMatch.
func Select(disks []blockdev.Disk, m map[string]any) (blockdev.Disk, string, error) {
	hs, err := Parse(m)
	if err != nil {
		return blockdev.Disk{}, "", err
	}
	return SelectParsed(disks, hs)
}

// SelectParsed is Select with parsed hints.
func SelectParsed(disks []blockdev.Disk, hs Hints) (blockdev.Disk, string, error) {
	if len(hs) == 0 {
		return selectDefault(disks)
	}
	var matched []blockdev.Disk
	var rejected []string
	for _, d := range disks {
		ok, why := hs.Match(d)
		switch {
		case !ok:
			rejected = append(rejected, d.Name+": "+why)
		case d.ReadOnly:
			rejected = append(rejected, d.Name+": read-only")
		default:
			matched = append(matched, d)
		}
	}
	if len(matched) == 0 {
		if len(disks) == 0 {
			return blockdev.Disk{}, "", fmt.Errorf("%w the root device hints (%s): the machine has no disks", ErrNoMatch, hs)
		}
		return blockdev.Disk{}, "", fmt.Errorf("%w the root device hints (%s): %s", ErrNoMatch, hs, strings.Join(rejected, "; "))
	}
	d := matched[0]
	names := make([]string, len(matched))
	for i, m := range matched {
		names[i] = m.Name
	}
	reason := fmt.Sprintf("%s matches all %d root device hints (%s); first in name order of %d matching disks (%s)",
		d.Name, len(hs), hs, len(matched), strings.Join(names, ", "))
	if len(hs) == 1 {
		reason = fmt.Sprintf("%s matches the root device hint %s; first in name order of %d matching disks (%s)",
			d.Name, hs, len(matched), strings.Join(names, ", "))
	}
	return d, reason, nil
}

// selectDefault is IPA's choice without hints: the smallest disk of at least 4 GiB (the first
// in name order among equals), leaving out read-only and removable disks and md arrays.
func selectDefault(disks []blockdev.Disk) (blockdev.Disk, string, error) {
	var best *blockdev.Disk
	var skipped []string
	for i := range disks {
		d := &disks[i]
		switch {
		case d.ReadOnly:
			skipped = append(skipped, d.Name+" read-only")
		case d.Removable:
			skipped = append(skipped, d.Name+" removable")
		case d.Type != "disk":
			skipped = append(skipped, d.Name+" "+d.Type+" array")
		case d.Size < MinDefaultSize:
			skipped = append(skipped, fmt.Sprintf("%s %s < 4 GiB", d.Name, human(d.Size)))
		case best == nil || d.Size < best.Size:
			best = d
		}
	}
	tail := ""
	if len(skipped) > 0 {
		tail = "; not considered: " + strings.Join(skipped, ", ")
	}
	if best == nil {
		return blockdev.Disk{}, "", fmt.Errorf("%w: no root device hints and no writable fixed disk of at least 4 GiB among %d disks%s", ErrNoMatch, len(disks), tail)
	}
	return *best, fmt.Sprintf("no root device hints: %s (%s) is the smallest writable fixed disk of at least 4 GiB%s",
		best.Name, human(best.Size), tail), nil
}

func human(b int64) string {
	g := float64(b) / gib
	if g == math.Trunc(g) {
		return fmt.Sprintf("%d GiB", int64(g))
	}
	return fmt.Sprintf("%.1f GiB", g)
}

// Resolver returns a function that lists root's disks and selects one by hints, the shape of
// agent/image's TargetResolver. root is "/" on a machine.
func Resolver(root string) func(ctx context.Context, hints map[string]any) (path, reason string, err error) {
	return func(ctx context.Context, m map[string]any) (string, string, error) {
		if err := ctx.Err(); err != nil {
			return "", "", err
		}
		disks, err := blockdev.List(root)
		if err != nil {
			return "", "", fmt.Errorf("root device: %w", err)
		}
		d, reason, err := Select(disks, m)
		if err != nil {
			return "", "", err
		}
		return d.Name, reason, nil
	}
}
