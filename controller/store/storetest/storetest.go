// Package storetest is the conformance suite every conductor.Store implementation passes
// (store/sqlite now, store/postgres later). It fixes the behaviour the Store doc leaves open,
// so that backends agree:
//
//   - Errors: a *node.Error of the documented kind with Ironic's message, a *node.LockedError,
//     or an error wrapping node.ErrLockLost; checked with errors.Is and errors.As only.
//   - Times come back in UTC, equal to what was written at microsecond precision (the suite
//     tolerates less than 1µs of difference, so a backend may truncate or round nanoseconds).
//     Create* stores a zero CreatedAt as now; Save* sets UpdatedAt to now.
//   - Nodes come back Normalized (no nil maps or slices); nil maps and lists of ports,
//     portgroups, allocations and conductors may come back empty.
//   - CreateNode creates the node unreserved. Reservations are not re-entrant. SaveNode and
//     DeleteNode need the caller's reservation, expired or not, as long as nobody took it
//     since; otherwise ErrLockLost, or NotFound when the node is gone.
//   - Lists sort by (sort key, id), both in the requested direction; empty values (NULL or "")
//     and the zero time sort first ascending and last descending. The marker is the UUID of
//     the previous page's last item: a malformed one is ErrInvalid ("Expected UUID for
//     marker: X", as Ironic's API), an unknown one NotFound ("Node X could not be found.",
//     as Ironic's get_by_uuid of the marker). Limit 0 means no limit.
//   - MAC addresses are stored lower-case, and address filters ignore case.
//   - DescriptionContains is a case-sensitive substring match.
//   - DeletePortgroup refuses a portgroup that ports still belong to (ErrInvalid, Ironic's
//     PortgroupNotEmpty); DeleteNode removes the node's ports and portgroups.
//
// Import it from tests only.
package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
)

// Run runs the suite. newStore must return a new, empty store for each call; the suite calls it
// once per subtest and does not close the store (use t.Cleanup).
func Run(t *testing.T, newStore func(t *testing.T) conductor.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s conductor.Store)
	}{
		{"node/crud", testNodeCRUD},
		{"node/round-trip-every-field", testNodeRoundTrip},
		{"node/errors", testNodeErrors},
		{"node/empty-unique-fields-coexist", testNodeEmptyUnique},
		{"node/reserve-release-save", testReserve},
		{"node/reserve-expired", testReserveExpired},
		{"node/reserve-race-one-winner", testReserveRace},
		{"node/renew-and-release-all", testRenewRelease},
		{"node/filters", testNodeFilters},
		{"node/sort-and-page", testNodePaging},
		{"node/list-errors", testNodeListErrors},
		{"node/delete-removes-ports-and-portgroups", testDeleteCascade},
		{"port/crud", testPortCRUD},
		{"port/errors", testPortErrors},
		{"port/filters", testPortFilters},
		{"port/sort-and-page", testPortPaging},
		{"portgroup/crud", testPortgroupCRUD},
		{"portgroup/errors", testPortgroupErrors},
		{"portgroup/filters", testPortgroupFilters},
		{"portgroup/sort-and-page", testPortgroupPaging},
		{"allocation/crud", testAllocationCRUD},
		{"allocation/errors", testAllocationErrors},
		{"allocation/filters", testAllocationFilters},
		{"allocation/sort-and-page", testAllocationPaging},
		{"conductor/register-unregister-list", testConductors},
		{"agentlink/merge-close-cascade", testAgentLinks},
		{"agentlink/tokens-and-revocations", testTokensAndRevocations},
		{"powerevent/enqueue-supersede-order", testPowerEventQueue},
		{"powerevent/outcomes-stats-prune", testPowerEventOutcomes},
		{"powerevent/save-needs-lock", testPowerEventNeedsLock},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// cmpOpts compares stored values: times within a microsecond, JSON by meaning, empty
// collections equal to nil.
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b time.Time) bool {
		d := a.Sub(b)
		return -time.Microsecond < d && d < time.Microsecond
	}),
	cmp.Comparer(func(a, b json.RawMessage) bool {
		if len(a) == 0 || len(b) == 0 {
			return len(a) == len(b)
		}
		var x, y any
		if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
			return bytes.Equal(a, b)
		}
		return reflect.DeepEqual(x, y)
	}),
	cmp.FilterPath(func(p cmp.Path) bool { return p.Last().Type() != reflect.TypeFor[json.RawMessage]() },
		cmpopts.EquateEmpty()),
}

// wantErr checks that err is a *node.Error of kind with message msg.
func wantErr(t *testing.T, call string, err error, kind error, msg string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("%s = %v, want an error that is %v", call, err, kind)
		return
	}
	var e *node.Error
	if !errors.As(err, &e) {
		t.Errorf("%s = %v (%T), want a *node.Error", call, err, err)
		return
	}
	if e.Msg != msg {
		t.Errorf("%s message = %q, want %q", call, e.Msg, msg)
	}
}

// wantLockLost checks that err wraps node.ErrLockLost.
func wantLockLost(t *testing.T, call string, err error) {
	t.Helper()
	if !errors.Is(err, node.ErrLockLost) {
		t.Errorf("%s = %v, want node.ErrLockLost", call, err)
	}
}

// wantLocked checks that err is a *node.LockedError for node uuid held by holder.
func wantLocked(t *testing.T, call string, err error, uuid, holder string) {
	t.Helper()
	var le *node.LockedError
	if !errors.As(err, &le) {
		t.Errorf("%s = %v, want a *node.LockedError", call, err)
		return
	}
	if le.Node != uuid || le.Holder != holder {
		t.Errorf("%s = LockedError{Node: %q, Holder: %q}, want {%q, %q}", call, le.Node, le.Holder, uuid, holder)
	}
	if !errors.Is(err, node.ErrConflict) {
		t.Errorf("%s: errors.Is(err, node.ErrConflict) = false, want true", call)
	}
}

// must fails the test now when err is not nil.
func must(t *testing.T, call string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s = %v, want nil", call, err)
	}
}

// wantUTC checks that every non-zero time is in UTC.
func wantUTC(t *testing.T, what string, times ...time.Time) {
	t.Helper()
	for i, tm := range times {
		if !tm.IsZero() && tm.Location() != time.UTC {
			t.Errorf("%s: time %d = %v, want it in UTC", what, i, tm)
		}
	}
}

// wantRecent checks that tm is within a few seconds of now.
func wantRecent(t *testing.T, what string, tm time.Time) {
	t.Helper()
	if d := time.Since(tm); d < -5*time.Second || d > time.Minute {
		t.Errorf("%s = %v, want about now (%v)", what, tm, time.Now().UTC())
	}
}

// wantAllSet fails when a field of the struct v (recursing into embedded structs) is zero,
// except those named in except. It keeps the round-trip fixtures complete when fields are
// added to the model.
func wantAllSet(t *testing.T, v any, except ...string) {
	t.Helper()
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	for i := 0; i < rv.NumField(); i++ {
		f := rv.Type().Field(i)
		if contains(except, f.Name) {
			continue
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			wantAllSet(t, rv.Field(i).Interface(), except...)
			continue
		}
		fv := rv.Field(i)
		if fv.IsZero() || (fv.Kind() == reflect.Map || fv.Kind() == reflect.Slice) && fv.Len() == 0 {
			t.Errorf("fixture %s.%s is empty; set it so the round trip covers it", rv.Type().Name(), f.Name)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func newUUID() string { return uuid.NewString() }

func ptr[T any](v T) *T { return &v }

// base is a fixture time with nanoseconds and a non-UTC zone, to see both normalized.
var base = time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.FixedZone("UTC+1", 3600))
