package image

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrumhq/ferrum/shared/proto"
)

// zeroUnit is the granularity at which raw images skip all-zero data: such ranges are zeroed
// on the target (cheap on devices that offload it, a hole in a file) instead of written.
const zeroUnit = 1 << 20

// writeRaw writes the stream as is, skipping all-zero units, with writers chunks in flight
// (chunks go to distinct offsets, so their order does not matter). length is the download's
// size when known, which for an uncompressed file is the disk's.
func writeRaw(ctx context.Context, src *source, t *target, length int64, plain bool, writers int, rep *reporter) (int64, error) {
	if !plain {
		length = -1 // the download's size is not the disk's
	}
	if err := t.setSize(length); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan chunk)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		end      atomic.Int64
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				if err := writeChunk(t, c); err != nil {
					fail(err)
				}
				src.put(c)
			}
		}()
	}
	for {
		c, ok := src.next(ctx)
		if !ok {
			break
		}
		if e := c.off + int64(c.n); e > end.Load() {
			end.Store(e)
		}
		select {
		case work <- c:
		case <-ctx.Done():
			src.put(c)
		}
		rep.tick()
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return end.Load(), firstErr
	}
	if err := ctx.Err(); err != nil {
		return end.Load(), err
	}
	if !t.block && length < 0 {
		if err := t.setSize(end.Load()); err != nil {
			return end.Load(), err
		}
	}
	return end.Load(), nil
}

// writeChunk writes one chunk: runs of data units with one call each, straight from the
// chunk, and all-zero units zeroed.
func writeChunk(t *target, c chunk) error {
	p := c.buf[:c.n]
	runStart := -1
	for i := 0; i < len(p); i += zeroUnit {
		u := p[i:min(i+zeroUnit, len(p))]
		if !allZero(u) {
			if runStart < 0 {
				runStart = i
			}
			continue
		}
		if runStart >= 0 {
			if err := t.pwrite(p[runStart:i], c.off+int64(runStart)); err != nil {
				return err
			}
			runStart = -1
		}
		if err := t.zero(c.off+int64(i), int64(len(u))); err != nil {
			return err
		}
	}
	if runStart >= 0 {
		return t.pwrite(p[runStart:], c.off+int64(runStart))
	}
	return nil
}

// reporter sends progress at most once per interval.
type reporter struct {
	every    time.Duration
	total    int64
	read     *atomic.Int64
	send     func(proto.WriteImageProgress)
	start    time.Time
	last     time.Time
	lastSeen int64
}

func newReporter(every time.Duration, total int64, read *atomic.Int64, send func(proto.WriteImageProgress)) *reporter {
	now := time.Now()
	return &reporter{every: every, total: total, read: read, send: send, start: now, last: now}
}

func (r *reporter) tick() {
	if now := time.Now(); now.Sub(r.last) >= r.every {
		r.report(now, false)
	}
}

func (r *reporter) final() { r.report(time.Now(), true) }

func (r *reporter) report(now time.Time, final bool) {
	n := r.read.Load()
	p := proto.WriteImageProgress{Bytes: n, Total: max(r.total, 0)}
	if dt := now.Sub(r.last).Seconds(); dt > 0 && !final {
		p.BytesPerSec = int64(float64(n-r.lastSeen) / dt)
	} else if dt := now.Sub(r.start).Seconds(); dt > 0 {
		p.BytesPerSec = int64(float64(n) / dt)
	}
	if r.total > 0 {
		p.Percent = min(100, float64(n)*100/float64(r.total))
	}
	if final {
		p.Percent = 100
	}
	r.last, r.lastSeen = now, n
	r.send(p)
}
