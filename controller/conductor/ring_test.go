package conductor

import (
	"fmt"
	"testing"
)

func ringKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i*7919)
	}
	return keys
}

func TestHashRingBalance(t *testing.T) {
	tests := []struct {
		name  string
		hosts []string
	}{
		{"one", []string{"a"}},
		{"three", []string{"ctl-1", "ctl-2", "ctl-3"}},
		{"five", []string{"a", "b", "c", "d", "e"}},
	}
	keys := ringKeys(6000)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newHashRing(tc.hosts)
			count := map[string]int{}
			for _, k := range keys {
				count[r.owner(k)]++
			}
			want := len(keys) / len(tc.hosts)
			for _, h := range tc.hosts {
				if c := count[h]; c < want*3/4 || c > want*5/4 {
					t.Errorf("host %s owns %d of %d keys, want %d ± 25%%: %v", h, c, len(keys), want, count)
				}
			}
			if len(count) != len(tc.hosts) {
				t.Errorf("owners = %v, want only %v", count, tc.hosts)
			}
		})
	}
}

// TestHashRingStability: when a host leaves only its keys move, and every controller builds
// the same ring whatever the order it lists the hosts in.
func TestHashRingStability(t *testing.T) {
	keys := ringKeys(3000)
	full := newHashRing([]string{"c", "a", "b"})
	same := newHashRing([]string{"a", "b", "c"})
	less := newHashRing([]string{"a", "c"})
	moved := 0
	for _, k := range keys {
		o := full.owner(k)
		if same.owner(k) != o {
			t.Fatalf("owner(%s) depends on host order: %s vs %s", k, o, same.owner(k))
		}
		switch n := less.owner(k); {
		case o == "b":
			moved++
			if n == "b" {
				t.Fatalf("owner(%s) is still the departed host", k)
			}
		case n != o:
			t.Errorf("owner(%s) moved from %s to %s though %s stayed", k, o, n, o)
		}
	}
	if moved == 0 {
		t.Errorf("host b owned no key")
	}
	if got := (*hashRing)(nil).owner("x"); got != "" {
		t.Errorf("empty ring owner = %q, want \"\"", got)
	}
}
