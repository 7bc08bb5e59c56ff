package conductor

import (
	"encoding/binary"
	"hash/fnv"
	"slices"
	"strconv"
)

// ringReplicas is how many points each conductor has on a hash ring: enough that three
// conductors' shares stay within about ±15% of a third.
const ringReplicas = 128

// hashRing is a consistent hash ring (Ironic's hash_ring by conductor group and driver): a
// node belongs to the first conductor point at or after its UUID's hash. When a conductor
// joins or leaves, only the nodes between its points and their neighbours change owner.
type hashRing struct {
	points []ringPoint // sorted by hash, then host
}

type ringPoint struct {
	hash uint64
	host string
}

// newHashRing places ringReplicas points per host. Every controller builds the same ring
// from the same hosts: the hash is fixed (FNV-1a with a 64-bit finalizer), not seeded.
func newHashRing(hosts []string) *hashRing {
	r := &hashRing{points: make([]ringPoint, 0, len(hosts)*ringReplicas)}
	for _, h := range hosts {
		for i := range ringReplicas {
			r.points = append(r.points, ringPoint{ringHash(h + "#" + strconv.Itoa(i)), h})
		}
	}
	slices.SortFunc(r.points, func(a, b ringPoint) int {
		if a.hash != b.hash {
			if a.hash < b.hash {
				return -1
			}
			return 1
		}
		if a.host < b.host {
			return -1
		}
		if a.host > b.host {
			return 1
		}
		return 0
	})
	return r
}

// owner is the host key belongs to, or "" on an empty ring.
func (r *hashRing) owner(key string) string {
	if r == nil || len(r.points) == 0 {
		return ""
	}
	h := ringHash(key)
	i, _ := slices.BinarySearchFunc(r.points, h, func(p ringPoint, h uint64) int {
		switch {
		case p.hash < h:
			return -1
		case p.hash > h:
			return 1
		}
		return 0
	})
	if i == len(r.points) {
		i = 0
	}
	return r.points[i].host
}

func ringHash(s string) uint64 {
	f := fnv.New64a()
	f.Write([]byte(s))
	var b [8]byte
	x := binary.BigEndian.Uint64(f.Sum(b[:0]))
	// splitmix64's finalizer: FNV alone clusters keys that differ only in their last bytes.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
