package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
)

// compareValues orders two sort values of one key: "" first, the zero time first, false
// before true.
func compareValues(a, b any) int {
	switch x := a.(type) {
	case string:
		return strings.Compare(x, b.(string))
	case int64:
		y := b.(int64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case y:
			return -1
		}
		return 1
	case time.Time:
		// Compare at the stored precision.
		return x.Truncate(time.Microsecond).Compare(b.(time.Time).Truncate(time.Microsecond))
	}
	panic(fmt.Sprintf("storetest: no ordering for %T", a))
}

// listFunc lists one page.
type listFunc[T any] func(p node.Page) ([]T, error)

// entity tells the paging checks how to read an item.
type entity[T any] struct {
	id     func(T) int64
	uuid   func(T) string
	values map[string]func(T) any // sort key → the item's value for it
}

// walk lists every page with markers and returns the UUIDs in the order seen, failing when an
// item repeats or a page is longer than the limit.
func walk[T any](t *testing.T, e entity[T], list listFunc[T], p node.Page) []string {
	t.Helper()
	var got []string
	seen := map[string]bool{}
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatalf("walk(%+v): more than 1000 pages", p)
		}
		page, err := list(p)
		if err != nil {
			t.Fatalf("list(%+v) = %v", p, err)
		}
		if p.Limit > 0 && len(page) > p.Limit {
			t.Fatalf("list(%+v) returned %d items, more than the limit", p, len(page))
		}
		for _, it := range page {
			u := e.uuid(it)
			if seen[u] {
				t.Fatalf("list(%+v) returned %s again", p, u)
			}
			seen[u] = true
			got = append(got, u)
		}
		if p.Limit == 0 || len(page) < p.Limit {
			return got
		}
		p.Marker = e.uuid(page[len(page)-1])
	}
}

// wantOrder sorts items by (key value, id) in the direction.
func wantOrder[T any](e entity[T], items []T, key string, desc bool) []string {
	sorted := slices.Clone(items)
	val := e.values[key]
	slices.SortFunc(sorted, func(a, b T) int {
		c := compareValues(val(a), val(b))
		if c == 0 {
			c = compareValues(e.id(a), e.id(b))
		}
		if desc {
			c = -c
		}
		return c
	})
	out := make([]string, len(sorted))
	for i, it := range sorted {
		out[i] = e.uuid(it)
	}
	return out
}

// checkPaging walks every key of keys, both directions and several page sizes, and compares
// with the expected order.
func checkPaging[T any](t *testing.T, e entity[T], keys []string, items []T, list listFunc[T]) {
	t.Helper()
	for _, key := range keys {
		if e.values[key] == nil {
			t.Fatalf("storetest does not know sort key %q; add it to the suite", key)
		}
	}
	for _, key := range append([]string{""}, keys...) {
		for _, dir := range []string{"", "asc", "desc"} {
			k := key
			if k == "" {
				k = "id"
			}
			want := wantOrder(e, items, k, dir == "desc")
			d := dir
			if d == "" {
				d = "default"
			}
			for _, limit := range []int{0, 1, 3, 4, len(items), len(items) + 1} {
				p := node.Page{SortKey: key, SortDir: dir, Limit: limit}
				t.Run(fmt.Sprintf("%s/%s/limit-%d", k, d, limit), func(t *testing.T) {
					got := walk(t, e, list, p)
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("pages of %+v mismatch (-want +got):\n%s", p, diff)
					}
				})
			}
		}
	}
}

// checkListErrors checks the errors of a list's paging parameters. badKey is a field of the
// model that is not a sort key.
func checkListErrors(t *testing.T, kind, badKey string, list func(node.Page) error) {
	missing := newUUID()
	tests := []struct {
		name string
		p    node.Page
		kind error
		msg  string
	}{
		{"sort-key/unknown", node.Page{SortKey: "bogus"}, node.ErrInvalid, `The sort_key value "bogus" is an invalid field for sorting`},
		{"sort-key/not-sortable", node.Page{SortKey: badKey}, node.ErrInvalid, `The sort_key value "` + badKey + `" is an invalid field for sorting`},
		{"sort-dir/unknown", node.Page{SortDir: "up"}, node.ErrInvalid, "Invalid sort direction: up. Acceptable values are 'asc' or 'desc'"},
		{"sort-dir/upper-case", node.Page{SortDir: "ASC"}, node.ErrInvalid, "Invalid sort direction: ASC. Acceptable values are 'asc' or 'desc'"},
		{"marker/unknown", node.Page{Marker: missing, Limit: 1}, node.ErrNotFound, kind + " " + missing + " could not be found."},
		{"marker/malformed", node.Page{Marker: "not-a-uuid"}, node.ErrInvalid, "Expected UUID for marker: not-a-uuid"},
		{"limit/negative", node.Page{Limit: -1}, node.ErrInvalid, "Limit must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, fmt.Sprintf("list(%+v)", tc.p), list(tc.p), tc.kind, tc.msg)
		})
	}
}

var nodeEntity = entity[*node.Node]{
	id:   func(n *node.Node) int64 { return n.ID },
	uuid: func(n *node.Node) string { return n.UUID },
	values: map[string]func(*node.Node) any{
		"id":                   func(n *node.Node) any { return n.ID },
		"uuid":                 func(n *node.Node) any { return n.UUID },
		"name":                 func(n *node.Node) any { return n.Name },
		"created_at":           func(n *node.Node) any { return n.CreatedAt },
		"updated_at":           func(n *node.Node) any { return n.UpdatedAt },
		"provision_state":      func(n *node.Node) any { return string(n.ProvisionState) },
		"provision_updated_at": func(n *node.Node) any { return n.ProvisionUpdatedAt },
		"power_state":          func(n *node.Node) any { return n.PowerState },
		"driver":               func(n *node.Node) any { return n.Driver },
		"instance_uuid":        func(n *node.Node) any { return n.InstanceUUID },
		"maintenance":          func(n *node.Node) any { return n.Maintenance },
		"conductor_group":      func(n *node.Node) any { return n.ConductorGroup },
		"resource_class":       func(n *node.Node) any { return n.ResourceClass },
		"owner":                func(n *node.Node) any { return n.Owner },
		"lessee":               func(n *node.Node) any { return n.Lessee },
		"shard":                func(n *node.Node) any { return n.Shard },
	},
}

func testNodePaging(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	pick := func(i int, vals ...string) string { return vals[i%len(vals)] }
	var nodes []*node.Node
	for i := range 23 {
		n := &node.Node{
			UUID:           newUUID(),
			Driver:         pick(i, "ipmi", "redfish", "fake"),
			ProvisionState: node.State(pick(i, "available", "active", "enroll", "manageable")),
			PowerState:     pick(i, "", node.PowerOn, node.PowerOff),
			Maintenance:    i%2 == 0,
			ConductorGroup: pick(i, "", "a", "b"),
			ResourceClass:  pick(i, "gold", "", "silver", "gold"),
			Owner:          pick(i, "", "", "o1"),
			Lessee:         pick(i, "l2", "l1"),
			Shard:          pick(i, "", "s1", "s2", "s3", "s4"),
			CreatedAt:      base.Add(time.Duration(i%5) * time.Second),
		}
		if i%4 != 0 {
			n.Name = fmt.Sprintf("node%02d", (i*7)%23) // unique, not in id order
		}
		if i%3 != 0 {
			n.InstanceUUID = newUUID()
		}
		if i%3 != 0 {
			n.UpdatedAt = base.Add(time.Duration(i%4) * time.Minute)
		}
		if i%2 == 1 {
			n.ProvisionUpdatedAt = base.Add(time.Duration(i%3) * time.Hour)
		}
		must(t, "CreateNode", s.CreateNode(ctx, n))
		nodes = append(nodes, n)
	}
	checkPaging(t, nodeEntity, node.NodeSortKeys, nodes, func(p node.Page) ([]*node.Node, error) {
		return s.ListNodes(ctx, node.NodeQuery{Page: p})
	})

	// Paging within a filter.
	var ipmi []*node.Node
	for _, n := range nodes {
		if n.Driver == "ipmi" {
			ipmi = append(ipmi, n)
		}
	}
	t.Run("filtered", func(t *testing.T) {
		checkPaging(t, nodeEntity, []string{"name", "created_at"}, ipmi, func(p node.Page) ([]*node.Node, error) {
			return s.ListNodes(ctx, node.NodeQuery{Driver: "ipmi", Page: p})
		})
	})
}

func testNodeListErrors(t *testing.T, s conductor.Store) {
	createNode(t, s, "le")
	checkListErrors(t, "Node", "properties", func(p node.Page) error {
		_, err := s.ListNodes(t.Context(), node.NodeQuery{Page: p})
		return err
	})
}
