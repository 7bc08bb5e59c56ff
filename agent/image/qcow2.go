package image

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"sort"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/agent/internal/qcow2"
)

// qcow2 streaming limits.
const (
	qcow2Chunk = 1 << 20 // read unit; the window holds two
	// runMax bounds a run of unclaimed bytes kept as one hash for a Range re-read.
	runMax = 1 << 20
	// maxRuns and maxPending bound the bookkeeping of hostile or scattered images (about
	// 12 MiB and 160 MiB worst case); past them the image must be re-converted.
	maxRuns    = 1 << 18
	maxPending = 4 << 20
	maxRounds  = 4 // late L1 → late L2 → late data, and one spare
)

// What a pending range of the file is.
const (
	kindL1 uint8 = iota
	kindL2
	kindData
	kindCompressed
)

var kindName = [...]string{"L1 table", "L2 table", "data cluster", "compressed cluster"}

// item is a range of the file still to be acted on when its bytes stream past.
type item struct {
	off, n       uint64 // in the file
	guest        uint64 // data: its guest offset; L2: the guest offset of its first entry
	alloc, zeros uint32 // data: subcluster bitmaps
	kind         uint8
}

type itemHeap []item

func (h itemHeap) Len() int           { return len(h) }
func (h itemHeap) Less(i, j int) bool { return h[i].off < h[j].off }
func (h itemHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *itemHeap) Push(x any)        { *h = append(*h, x.(item)) }
func (h *itemHeap) Pop() any          { o := *h; x := o[len(o)-1]; *h = o[:len(o)-1]; return x }

// window is a chunk still held: items may be served from it.
type window struct {
	c          chunk
	start, end uint64
	claimed    []bool // per unit: consumed by metadata or a data cluster, no re-read needed
}

// partial is an item whose bytes straddle the chunk being read.
type partial struct {
	it     item
	buf    []byte
	filled uint64
}

// run is a stretch of bytes that streamed past unclaimed; its hash checks a Range re-read.
type run struct {
	off, n uint64
	sum    [sha256.Size]byte
}

// qstream converts a qcow2 stream to raw in one pass (see image-streaming.md in the design
// notes): a min-heap of pending file ranges, fed by the header, L1 and L2 tables, is served
// from a two-chunk window as the file streams past. Ranges behind the window ("late": their
// metadata came after them) are re-read with Range requests after the download's checksum has
// passed, each checked against the hash of the run it was taken from.
type qstream struct {
	t      *target
	client *http.Client
	d      *download
	log    zerolog.Logger

	h     *qcow2.Header
	cs    uint64
	vsize uint64
	unit  uint64

	pending   itemHeap
	late      []item
	streaming bool
	prev, cur *window
	spare     []*window
	partials  []*partial
	freeBufs  [][]byte // partials' buffers, reused: no garbage per straddling item
	scratch   []byte
	eof       uint64

	runs    []run
	open    bool
	openRun run
	runHash hash.Hash

	span          []byte // the last Range re-read
	spanOff       uint64
	rangeRequests int

	dec *decoders // started at the first compressed cluster
}

func newQStream(t *target, c *http.Client, d *download, log zerolog.Logger) *qstream {
	return &qstream{t: t, client: c, d: d, log: log, runHash: sha256.New(), streaming: true}
}

// run streams the whole file through. It returns errStreamEnded (wrapped) when the stream
// ended before the image was complete, so that the download's own error can take precedence.
func (q *qstream) run(ctx context.Context, src *source, rep *reporter) error {
	c, ok := src.next(ctx)
	if !ok {
		return fmt.Errorf("qcow2: %w before the header", errStreamEnded)
	}
	h, err := qcow2.Parse(c.buf[:c.n])
	if err != nil {
		src.put(c)
		if errors.Is(err, qcow2.ErrNotQCOW2) {
			return fmt.Errorf("disk_format is qcow2 but the image has no qcow2 header")
		}
		return err
	}
	q.h, q.cs, q.vsize = h, h.ClusterSize(), h.VirtualSize
	q.unit = min(q.cs, qcow2Chunk)
	if err := q.t.setSize(int64(q.vsize)); err != nil {
		src.put(c)
		return err
	}
	if h.L1Size > 0 {
		if err := q.push(item{off: h.L1Offset, n: uint64(h.L1Size) * 8, kind: kindL1}); err != nil {
			src.put(c)
			return err
		}
	}
	first := true
	for {
		w := q.newWindow(c)
		if first {
			w.claimed[0] = true // the header
			first = false
		}
		if err := q.feed(w, src); err != nil {
			return err
		}
		rep.tick()
		if c, ok = src.next(ctx); !ok {
			break
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return q.endStream(src)
}

func (q *qstream) newWindow(c chunk) *window {
	var w *window
	if n := len(q.spare); n > 0 {
		w, q.spare = q.spare[n-1], q.spare[:n-1]
	} else {
		w = &window{}
	}
	units := int((uint64(c.n) + q.unit - 1) / q.unit)
	w.c, w.start, w.end = c, uint64(c.off), uint64(c.off)+uint64(c.n)
	w.claimed = append(w.claimed[:0], make([]bool, units)...)
	return w
}

// feed takes the next chunk into the window and serves every item it completes.
func (q *qstream) feed(w *window, src *source) error {
	if q.prev != nil {
		q.retire(q.prev, src)
	}
	q.prev, q.cur = q.cur, w
	// Items that began in earlier chunks.
	kept := q.partials[:0]
	for _, p := range q.partials {
		from := p.it.off + p.filled
		to := min(p.it.off+p.it.n, w.end)
		if from < to {
			copy(p.buf[p.filled:], w.c.buf[from-w.start:to-w.start])
			p.filled += to - from
			q.claim(p.it, from, to)
		}
		if p.filled < p.it.n {
			kept = append(kept, p)
			continue
		}
		if err := q.act(p.it, p.buf); err != nil {
			return err
		}
		q.freeBufs = append(q.freeBufs, p.buf)
	}
	q.partials = kept
	for len(q.pending) > 0 && q.pending[0].off < w.end {
		it := heap.Pop(&q.pending).(item)
		if err := q.serve(it); err != nil {
			return err
		}
	}
	return nil
}

func (q *qstream) windowStart() uint64 {
	switch {
	case q.prev != nil:
		return q.prev.start
	case q.cur != nil:
		return q.cur.start
	}
	return 0
}

// serve acts on an item whose start is in or behind the window.
func (q *qstream) serve(it item) error {
	if it.off < q.windowStart() {
		return q.addLate(it)
	}
	end := it.off + it.n
	if end <= q.cur.end {
		q.claim(it, it.off, end)
		return q.act(it, q.windowBytes(it.off, it.n))
	}
	p := &partial{it: it, buf: q.getBuf(it.n)}
	p.filled = uint64(copy(p.buf, q.windowBytes(it.off, q.cur.end-it.off)))
	q.claim(it, it.off, q.cur.end)
	q.partials = append(q.partials, p)
	return nil
}

// getBuf returns a buffer of n bytes, reusing one that a finished partial gave back.
func (q *qstream) getBuf(n uint64) []byte {
	for i, b := range q.freeBufs {
		if uint64(cap(b)) >= n {
			q.freeBufs[i] = q.freeBufs[len(q.freeBufs)-1]
			q.freeBufs = q.freeBufs[:len(q.freeBufs)-1]
			return b[:n]
		}
	}
	return make([]byte, n, max(n, 2*q.cs))
}

// windowBytes returns [off, off+n) from the window, copying only when it spans both chunks.
func (q *qstream) windowBytes(off, n uint64) []byte {
	c := q.cur
	if off >= c.start {
		return c.c.buf[off-c.start : off-c.start+n]
	}
	p := q.prev
	if off+n <= p.end {
		return p.c.buf[off-p.start : off-p.start+n]
	}
	if uint64(cap(q.scratch)) < n {
		q.scratch = make([]byte, n)
	}
	b := q.scratch[:n]
	k := copy(b, p.c.buf[off-p.start:p.end-p.start])
	copy(b[k:], c.c.buf[:n-uint64(k)])
	return b
}

// claim marks the window's units inside [from, to) as consumed, except for compressed
// chunks, which share their clusters with others.
func (q *qstream) claim(it item, from, to uint64) {
	if it.kind == kindCompressed {
		return
	}
	for _, w := range []*window{q.prev, q.cur} {
		if w == nil {
			continue
		}
		lo, hi := max(from, w.start), min(to, w.end)
		if lo >= hi {
			continue
		}
		for u := (lo - w.start + q.unit - 1) / q.unit; u < uint64(len(w.claimed)); u++ {
			if min(w.start+(u+1)*q.unit, w.end) > hi {
				break
			}
			w.claimed[u] = true
		}
	}
}

// retire drops a chunk from the window: its unclaimed units are hashed into runs, in case a
// late item needs them.
func (q *qstream) retire(w *window, src *source) {
	for u := range w.claimed {
		if w.claimed[u] {
			q.closeRun()
			continue
		}
		lo := uint64(u) * q.unit
		hi := min(lo+q.unit, w.end-w.start)
		q.addRun(w.start+lo, w.c.buf[lo:hi])
	}
	src.put(w.c)
	w.c = chunk{}
	q.spare = append(q.spare, w)
}

func (q *qstream) addRun(off uint64, b []byte) {
	if q.open && q.openRun.off+q.openRun.n == off && q.openRun.n+uint64(len(b)) <= runMax {
		q.runHash.Write(b)
		q.openRun.n += uint64(len(b))
		return
	}
	q.closeRun()
	q.open, q.openRun = true, run{off: off, n: uint64(len(b))}
	q.runHash.Reset()
	q.runHash.Write(b)
}

func (q *qstream) closeRun() {
	if !q.open {
		return
	}
	q.open = false
	q.runHash.Sum(q.openRun.sum[:0])
	if len(q.runs) < maxRuns {
		q.runs = append(q.runs, q.openRun)
	}
	// Past maxRuns the bytes cannot be re-read; a late item needing them fails clearly.
}

func (q *qstream) push(it item) error {
	if len(q.pending)+len(q.late) >= maxPending {
		return fmt.Errorf("qcow2: more than %d clusters pending; re-run qemu-img convert -O qcow2 on the image", maxPending)
	}
	if !q.streaming || it.off < q.windowStart() {
		q.late = append(q.late, it)
		return nil
	}
	heap.Push(&q.pending, it)
	return nil
}

func (q *qstream) addLate(it item) error {
	if len(q.pending)+len(q.late) >= maxPending {
		return fmt.Errorf("qcow2: more than %d clusters pending; re-run qemu-img convert -O qcow2 on the image", maxPending)
	}
	q.late = append(q.late, it)
	return nil
}

// endStream handles what the end of the file leaves: compressed chunks whose length bound runs
// past it, and ranges the file does not reach.
func (q *qstream) endStream(src *source) error {
	q.eof = q.cur.end
	for _, p := range q.partials {
		switch {
		case p.it.kind == kindCompressed:
		case p.it.kind == kindData && q.dataEnd(p.it) <= p.filled:
			clear(p.buf[p.filled:]) // unallocated subclusters past the end of the file
			p.filled = p.it.n
		default:
			return fmt.Errorf("qcow2: %w: %s at %#x needs %d bytes, the file ends at %#x", errStreamEnded,
				kindName[p.it.kind], p.it.off, p.it.n, q.eof)
		}
		if err := q.act(p.it, p.buf[:p.filled]); err != nil {
			return err
		}
	}
	q.partials = nil
	if len(q.pending) > 0 {
		it := q.pending[0]
		return fmt.Errorf("qcow2: %w: %d ranges point past the end of the file (first: %s at %#x, file ends at %#x)",
			errStreamEnded, len(q.pending), kindName[it.kind], it.off, q.eof)
	}
	q.streaming = false
	for _, w := range []*window{q.prev, q.cur} {
		if w != nil {
			q.retire(w, src)
		}
	}
	q.prev, q.cur = nil, nil
	q.closeRun()
	if len(q.late) > 0 {
		q.log.Info().Int("late", len(q.late)).Int("runs", len(q.runs)).Msg("qcow2 metadata follows data; re-reading after the checksum")
	}
	return nil
}

// finish serves the late items from hash-checked Range re-reads; call it only once the
// whole file's checksum has passed.
func (q *qstream) finish(ctx context.Context) error {
	for round := 0; len(q.late) > 0; round++ {
		if round == maxRounds {
			return fmt.Errorf("qcow2: metadata chain deeper than L1 → L2 → data")
		}
		items := q.late
		q.late = nil
		sort.Slice(items, func(i, j int) bool { return items[i].off < items[j].off })
		for _, it := range items {
			if err := ctx.Err(); err != nil {
				return err
			}
			b, err := q.reread(ctx, it)
			if err != nil {
				return err
			}
			if err := q.act(it, b); err != nil {
				return err
			}
		}
	}
	return nil
}

// reread returns the item's bytes from the runs that cover them, fetched with one Range
// request and checked against their hashes.
func (q *qstream) reread(ctx context.Context, it item) ([]byte, error) {
	if it.off >= q.eof {
		return nil, fmt.Errorf("qcow2: %s at %#x is past the end of the file", kindName[it.kind], it.off)
	}
	n := it.n
	if it.kind == kindCompressed {
		n = min(n, q.eof-it.off)
	} else if it.kind == kindData && it.off+n > q.eof && it.off+q.dataEnd(it) <= q.eof {
		n = q.eof - it.off // the rest is unallocated subclusters; actData does not read them
	} else if it.off+n > q.eof {
		return nil, fmt.Errorf("qcow2: %s at %#x runs past the end of the file", kindName[it.kind], it.off)
	}
	i := sort.Search(len(q.runs), func(i int) bool { return q.runs[i].off+q.runs[i].n > it.off })
	if i == len(q.runs) || q.runs[i].off > it.off {
		return nil, fmt.Errorf("qcow2: %s at %#x is behind its metadata and its bytes were not kept; re-run qemu-img convert -O qcow2 on the image", kindName[it.kind], it.off)
	}
	j, end := i, q.runs[i].off+q.runs[i].n
	for end < it.off+n && j+1 < len(q.runs) && q.runs[j+1].off == end {
		j++
		end += q.runs[j].n
	}
	if end < it.off+n {
		if it.kind != kindCompressed {
			return nil, fmt.Errorf("qcow2: %s at %#x is behind its metadata and its bytes were not kept; re-run qemu-img convert -O qcow2 on the image", kindName[it.kind], it.off)
		}
		n = end - it.off // a compressed chunk's length is only a bound
	}
	lo := q.runs[i].off
	if !(q.span != nil && q.spanOff <= lo && end <= q.spanOff+uint64(len(q.span))) {
		if uint64(cap(q.span)) < end-lo {
			q.span = make([]byte, end-lo)
		}
		q.span, q.spanOff = q.span[:end-lo], lo
		if err := rangeGet(ctx, q.client, q.d, int64(lo), int64(end-lo), q.span); err != nil {
			return nil, err
		}
		q.rangeRequests++
		for k := i; k <= j; k++ {
			r := q.runs[k]
			if sha256.Sum256(q.span[r.off-lo:r.off-lo+r.n]) != r.sum {
				return nil, fmt.Errorf("range re-read of %#x+%d differs from the download; the image changed on the server", r.off, r.n)
			}
		}
	}
	return q.span[it.off-q.spanOff : it.off-q.spanOff+n], nil
}

// act does what an item's bytes call for.
func (q *qstream) act(it item, b []byte) error {
	switch it.kind {
	case kindL1:
		return q.actL1(b)
	case kindL2:
		return q.actL2(it, b)
	case kindData:
		return q.actData(it, b)
	case kindCompressed:
		return q.actCompressed(it, b)
	}
	return fmt.Errorf("qcow2: unknown item kind %d", it.kind)
}

func (q *qstream) actL1(b []byte) error {
	span := q.h.L2Span()
	for i := uint64(0); i < uint64(q.h.L1Size); i++ {
		base := i * span
		if base >= q.vsize {
			break
		}
		off, err := q.h.L2Offset(binary.BigEndian.Uint64(b[8*i:]))
		if err != nil {
			return err
		}
		if off == 0 {
			if err := q.t.Zero(int64(base), int64(min(span, q.vsize-base))); err != nil {
				return err
			}
			continue
		}
		if err := q.push(item{off: off, n: q.cs, kind: kindL2, guest: base}); err != nil {
			return err
		}
	}
	return nil
}

func (q *qstream) actL2(it item, b []byte) error {
	for j := uint64(0); j < q.h.L2Entries(); j++ {
		g := it.guest + j*q.cs
		if g >= q.vsize {
			break
		}
		e, err := q.h.Entry(b, int(j))
		if err != nil {
			return fmt.Errorf("%w (L2 table at %#x, entry %d)", err, it.off, j)
		}
		switch e.Kind {
		case qcow2.Unallocated, qcow2.Zero:
			err = q.t.Zero(int64(g), int64(min(q.cs, q.vsize-g)))
		case qcow2.Data:
			err = q.push(item{off: e.Offset, n: q.cs, kind: kindData, guest: g, alloc: e.Alloc, zeros: e.Zeros})
		case qcow2.Compressed:
			err = q.push(item{off: e.Offset, n: e.Length, kind: kindCompressed, guest: g})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// dataEnd is how many bytes of a data cluster hold its allocated subclusters (qemu ends a
// file after the last written subcluster).
func (q *qstream) dataEnd(it item) uint64 {
	n := min(q.cs, q.vsize-it.guest)
	if it.alloc == ^uint32(0) {
		return n
	}
	sc := q.h.SubclusterSize()
	for k := 31; k >= 0; k-- {
		if it.alloc&(1<<k) != 0 {
			return min(uint64(k+1)*sc, n)
		}
	}
	return 0
}

func (q *qstream) actData(it item, b []byte) error {
	n := min(q.cs, q.vsize-it.guest)
	if it.alloc == ^uint32(0) {
		return q.t.WriteAt(b[:n], int64(it.guest))
	}
	sc := q.h.SubclusterSize()
	for k := uint64(0); k < 32 && k*sc < n; k++ {
		lo, l := k*sc, min(sc, n-k*sc)
		var err error
		if it.alloc&(1<<k) != 0 {
			err = q.t.WriteAt(b[lo:lo+l], int64(it.guest+lo))
		} else {
			err = q.t.Zero(int64(it.guest+lo), int64(l))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (q *qstream) actCompressed(it item, b []byte) error {
	if q.dec == nil {
		q.dec = newDecoders(q.t, q.h)
	}
	return q.dec.add(b, it.off, it.guest, min(q.cs, q.vsize-it.guest))
}

// stop waits for the decoders' writes and returns their first error. Call it before the
// target is synced or wiped.
func (q *qstream) stop() error {
	if q.dec == nil {
		return nil
	}
	err := q.dec.stop()
	q.dec = nil
	return err
}
