package image

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"

	"github.com/ferrumhq/ferrum/agent/internal/qcow2"
)

// batchBytes bounds the guest bytes of one batch of compressed clusters.
const batchBytes = 512 << 10

// cpart is one compressed cluster of a batch: in[lo:hi] decodes to n bytes.
type cpart struct {
	lo, hi int
	n      uint64
	off    uint64 // in the file, for errors
}

// cbatch is a run of compressed clusters that are contiguous on the guest: decoded into one
// buffer and written with one call.
type cbatch struct {
	in    []byte
	parts []cpart
	guest uint64
}

// decoders decompresses qcow2 clusters on GOMAXPROCS goroutines: deflate is the slow part of
// a compressed image, and each batch goes to its own guest offset, so order does not matter.
// The caller fills batches from one goroutine; stop waits for every write.
type decoders struct {
	t           *target
	compression uint8
	cs          uint64
	maxParts    int

	jobs chan *cbatch
	free chan *cbatch
	wg   sync.WaitGroup

	mu  sync.Mutex
	err error

	cur *cbatch // being filled
}

func newDecoders(t *target, h *qcow2.Header) *decoders {
	w := max(1, runtime.GOMAXPROCS(0))
	d := &decoders{t: t, compression: h.Compression, cs: h.ClusterSize(),
		maxParts: int(max(1, batchBytes/h.ClusterSize())),
		jobs:     make(chan *cbatch, w), free: make(chan *cbatch, 2*w+1)}
	for range 2*w + 1 {
		d.free <- &cbatch{}
	}
	for range w {
		d.wg.Add(1)
		go d.work()
	}
	return d
}

// add queues the compressed cluster b for guest bytes [guest, guest+n).
func (d *decoders) add(b []byte, off, guest, n uint64) error {
	if err := d.failed(); err != nil {
		return err
	}
	c := d.cur
	if c != nil && (len(c.parts) == d.maxParts || guest != c.guest+uint64(len(c.parts))*d.cs || c.parts[len(c.parts)-1].n != d.cs) {
		d.flush()
		c = nil
	}
	if c == nil {
		c = <-d.free
		c.in, c.parts, c.guest = c.in[:0], c.parts[:0], guest
		d.cur = c
	}
	lo := len(c.in)
	c.in = append(c.in, b...)
	c.parts = append(c.parts, cpart{lo: lo, hi: len(c.in), n: n, off: off})
	return nil
}

// flush sends the batch being filled.
func (d *decoders) flush() {
	if d.cur != nil {
		d.jobs <- d.cur
		d.cur = nil
	}
}

// stop flushes, waits for the workers and returns the first error.
func (d *decoders) stop() error {
	d.flush()
	close(d.jobs)
	d.wg.Wait()
	return d.failed()
}

func (d *decoders) failed() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

func (d *decoders) fail(err error) {
	d.mu.Lock()
	if d.err == nil {
		d.err = err
	}
	d.mu.Unlock()
}

func (d *decoders) work() {
	defer d.wg.Done()
	var (
		br  bytes.Reader
		fl  io.ReadCloser
		zd  *zstd.Decoder
		out = alignedBuf(d.maxParts * int(d.cs))
	)
	defer func() {
		if zd != nil {
			zd.Close()
		}
	}()
	for c := range d.jobs {
		if d.failed() == nil {
			if err := d.decode(c, &br, &fl, &zd, out); err != nil {
				d.fail(err)
			}
		}
		d.free <- c
	}
}

func (d *decoders) decode(c *cbatch, br *bytes.Reader, fl *io.ReadCloser, zd **zstd.Decoder, out []byte) error {
	var total uint64
	for i, p := range c.parts {
		br.Reset(c.in[p.lo:p.hi])
		var r io.Reader
		switch d.compression {
		case qcow2.CompressionZlib:
			if *fl == nil {
				*fl = flate.NewReader(br)
			} else if err := (*fl).(flate.Resetter).Reset(br, nil); err != nil {
				return fmt.Errorf("qcow2: deflate: %w", err)
			}
			r = *fl
		case qcow2.CompressionZstd:
			if *zd == nil {
				z, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(8<<20))
				if err != nil {
					return fmt.Errorf("qcow2: zstd: %w", err)
				}
				*zd = z
			}
			if err := (*zd).Reset(br); err != nil {
				return fmt.Errorf("qcow2: zstd: %w", err)
			}
			r = *zd
		default:
			return fmt.Errorf("qcow2: compression type %d", d.compression)
		}
		dst := out[uint64(i)*d.cs : uint64(i+1)*d.cs]
		if _, err := io.ReadFull(r, dst); err != nil {
			return fmt.Errorf("qcow2: compressed cluster at %#x (guest %#x): %w", p.off, c.guest+uint64(i)*d.cs, err)
		}
		total += p.n
	}
	return d.t.pwrite(out[:total], int64(c.guest))
}
