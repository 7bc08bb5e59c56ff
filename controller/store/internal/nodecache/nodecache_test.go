package nodecache

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/controller/node"
)

// clonedFields are the node.Node fields holding references that Clone copies.
var clonedFields = []string{"DriverInfo", "DriverInternalInfo", "Properties", "Extra",
	"InstanceInfo", "NetworkData", "RaidConfig", "TargetRaidConfig", "CleanStep", "DeployStep",
	"ServiceStep", "Traits", "Inventory", "AutomatedClean", "SecureBoot", "Agent"}

// TestCloneNodeCoversEveryField fails when node.Node gains a map, slice, pointer or other
// reference field: Clone must learn to copy it, or cached nodes would be shared.
func TestCloneNodeCoversEveryField(t *testing.T) {
	var check func(t reflect.Type)
	check = func(typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			switch {
			case f.Type == reflect.TypeFor[time.Time]():
			case f.Anonymous && f.Type.Kind() == reflect.Struct:
				check(f.Type)
			case f.Type.Kind() == reflect.Map, f.Type.Kind() == reflect.Slice, f.Type.Kind() == reflect.Pointer,
				f.Type.Kind() == reflect.Interface, f.Type.Kind() == reflect.Struct, f.Type.Kind() == reflect.Chan,
				f.Type.Kind() == reflect.Func, f.Type.Kind() == reflect.Array:
				found := false
				for _, name := range clonedFields {
					found = found || name == f.Name
				}
				if !found {
					t.Errorf("node.Node.%s (%s) is not deep-copied by Clone", f.Name, f.Type)
				}
			}
		}
	}
	check(reflect.TypeFor[node.Node]())
}

// TestCloneNodeSharesNothing clones a node decoded from JSON and checks that no map, slice or
// pointer of the copy is the original's, and that the copy is equal.
func TestCloneNodeSharesNothing(t *testing.T) {
	deep := func(i int) map[string]any {
		return map[string]any{"s": fmt.Sprint(i), "n": float64(i), "b": true, "null": nil,
			"m": map[string]any{"l": []any{map[string]any{"x": "y"}, []any{"z"}}}}
	}
	in := &node.Node{UUID: "u", DriverInfo: deep(1), DriverInternalInfo: deep(2), Properties: deep(3),
		Extra: deep(4), InstanceInfo: deep(5), NetworkData: deep(6), RaidConfig: deep(7),
		TargetRaidConfig: deep(8), CleanStep: deep(9), DeployStep: deep(10), ServiceStep: deep(11),
		Traits: []string{"A"}, Inventory: json.RawMessage(`{"a":1}`), AutomatedClean: new(true),
		SecureBoot: new(false)}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	orig := new(node.Node)
	if err := json.Unmarshal(b, orig); err != nil {
		t.Fatal(err)
	}
	c := Clone(orig)
	if diff := cmp.Diff(orig, c); diff != "" {
		t.Fatalf("Clone changed the node (-orig +clone):\n%s", diff)
	}
	var walk func(path string, a, b reflect.Value)
	walk = func(path string, a, b reflect.Value) {
		switch a.Kind() {
		case reflect.Interface:
			if !a.IsNil() {
				walk(path, a.Elem(), b.Elem())
			}
		case reflect.Pointer, reflect.Map, reflect.Slice:
			if a.IsNil() {
				return
			}
			if a.UnsafePointer() == b.UnsafePointer() {
				t.Errorf("%s is shared between the node and its clone", path)
			}
			switch a.Kind() {
			case reflect.Pointer:
				walk(path, a.Elem(), b.Elem())
			case reflect.Map:
				for _, k := range a.MapKeys() {
					walk(path+"."+k.String(), a.MapIndex(k), b.MapIndex(k))
				}
			case reflect.Slice:
				for i := 0; i < a.Len(); i++ {
					walk(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i))
				}
			}
		case reflect.Struct:
			for i := 0; i < a.NumField(); i++ {
				walk(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i))
			}
		}
	}
	walk("Node", reflect.ValueOf(orig).Elem(), reflect.ValueOf(c).Elem())
}
