package api

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// maxLimit is Ironic's [api]max_limit: the default and largest page.
const maxLimit = 1000

// query is the request's query string with Ironic's argument rules.
type query struct {
	v url.Values
}

// query parses the query string and refuses names outside allowed, as Ironic's
// args.validate does ("Unexpected arguments: …").
func (c *call) query(allowed ...string) (query, error) {
	v, err := url.ParseQuery(c.r.URL.RawQuery)
	if err != nil {
		return query{}, badRequest("Invalid query string: %v", err)
	}
	var extra []string
	for k := range v {
		if !slices.Contains(allowed, k) {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return query{}, badRequest("Unexpected arguments: %s", strings.Join(extra, ", "))
	}
	return query{v: v}, nil
}

// str returns a parameter's first value.
func (q query) str(name string) (string, bool) {
	vals, ok := q.v[name]
	if !ok || len(vals) == 0 {
		return "", false
	}
	return vals[0], true
}

// boolean is args.boolean; nil when absent.
func (q query) boolean(name string) (*bool, error) {
	s, ok := q.str(name)
	if !ok {
		return nil, nil
	}
	b, err := argBool(name, s)
	if err != nil {
		return nil, err
	}
	return &b, nil
}

// uuid is args.uuid; "" when absent.
func (q query) uuid(name string) (string, error) {
	s, ok := q.str(name)
	if !ok {
		return "", nil
	}
	return s, argUUID(name, s)
}

// uuidOrName is args.uuid_or_name; "" when absent.
func (q query) uuidOrName(name string) (string, error) {
	s, ok := q.str(name)
	if !ok {
		return "", nil
	}
	if !isValidLogicalName(s) && !isUUIDLike(s) {
		return "", badRequest("Expected UUID or name for %s: %s", name, s)
	}
	return s, nil
}

// list is args.string_list; nil when absent.
func (q query) list(name string) []string {
	s, ok := q.str(name)
	if !ok {
		return nil
	}
	l := stringList(s)
	if l == nil {
		l = []string{}
	}
	return l
}

// page is the pagination of a list request.
type page struct {
	limit   int
	marker  string
	sortKey string
	sortDir string
}

// pageSpec describes how a collection sorts.
type pageSpec struct {
	sortKeys   []string // keys the backend sorts on
	noSortKeys []string // Ironic's invalid_sort_key_list (JSON columns)
	marker     func(q query) (string, error)
}

// page reads limit, marker, sort_key and sort_dir with Ironic's checks.
func (q query) page(spec pageSpec) (page, error) {
	p := page{limit: maxLimit, sortKey: "id", sortDir: "asc"}
	var err error
	if spec.marker != nil {
		p.marker, err = spec.marker(q)
	} else {
		p.marker, err = q.uuid("marker")
	}
	if err != nil {
		return p, err
	}
	if s, ok := q.str("limit"); ok {
		n, err := argInteger("limit", s)
		if err != nil {
			return p, err
		}
		if n <= 0 {
			return p, badRequest("Limit must be positive")
		}
		p.limit = min(n, maxLimit)
	}
	if s, ok := q.str("sort_dir"); ok {
		if s != "asc" && s != "desc" {
			return p, badRequest("Invalid sort direction: %s. Acceptable values are 'asc' or 'desc'", s)
		}
		p.sortDir = s
	}
	if s, ok := q.str("sort_key"); ok {
		if slices.Contains(spec.noSortKeys, s) {
			return p, badRequest("The sort_key value %s is an invalid field for sorting", s)
		}
		if !slices.Contains(spec.sortKeys, s) {
			return p, badRequest("The sort_key value \"%s\" is an invalid field for sorting", s)
		}
		p.sortKey = s
	}
	return p, nil
}

// nextLink is the "next" URL of a full page: the same query with limit and marker after
// the last item, laid out as Ironic does (sort first, then filters, then the fields shown,
// then limit and marker); "" when the page is not full.
func (c *call) nextLink(resource string, count int, p page, lastKey string, fields []string) string {
	if count == 0 || count != p.limit {
		return ""
	}
	q, _ := url.ParseQuery(c.r.URL.RawQuery)
	var b strings.Builder
	fmt.Fprintf(&b, "%s/v1/%s?sort_key=%s&sort_dir=%s&", c.base, resource,
		queryEscape(p.sortKey), queryEscape(p.sortDir))
	for _, k := range sortedKeys(q) {
		switch k {
		case "limit", "marker", "sort_key", "sort_dir", "fields":
			continue
		}
		for _, v := range q[k] {
			fmt.Fprintf(&b, "%s=%s&", queryEscape(k), queryEscape(v))
		}
	}
	if len(fields) > 0 {
		fmt.Fprintf(&b, "fields=%s&", queryEscape(strings.Join(fields, ",")))
	}
	fmt.Fprintf(&b, "limit=%s&marker=%s", strconv.Itoa(p.limit), queryEscape(lastKey))
	return b.String()
}

// queryEscape escapes a query value but keeps the commas of field lists readable.
func queryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "%2C", ",")
}

// returnFields is get_request_return_fields: fields and detail are exclusive; neither gives
// the collection's default fields; detail gives everything (nil).
func (c *call) returnFields(fields []string, detail *bool, defaults []string) ([]string, error) {
	if detail != nil && c.ver < v43DetailQuery {
		return nil, badRequest("Invalid query parameter ?detail=%s received.", pyBool(*detail))
	}
	if fields != nil && detail != nil && *detail {
		return nil, badRequest("Can not specify ?detail=True and fields in the same request.")
	}
	if fields == nil && (detail == nil || !*detail) {
		return defaults, nil
	}
	return fields, nil
}

// pyBool is str() of a Python bool.
func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// checkFieldsAllowed is check_allow_specify_fields: ?fields= needs 1.8.
func (c *call) checkFieldsAllowed(fields []string) error {
	if fields != nil && c.ver < v8Fields {
		return notAcceptable()
	}
	return nil
}
