package image

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/ferrumhq/ferrum/shared/proto"
)

// newClient returns an HTTP client that trusts caPEM (when set) instead of the system roots,
// follows redirects, and never asks for a transfer encoding that would change the bytes
// hashed.
func newClient(caPEM string, headerTimeout time.Duration) (*http.Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(caPEM)) {
			return nil, errors.New("ca_bundle: no certificate could be parsed")
		}
		tlsCfg.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: headerTimeout,
		DisableCompression:    true,
		MaxIdleConnsPerHost:   4,
		ReadBufferSize:        256 << 10,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{Transport: tr}, nil
}

// redact drops the user info and query (signatures, tokens) from a URL for logs and errors.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable url)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// download is the one GET of the image file.
type download struct {
	resp     *http.Response
	url      string // after redirects, for Range re-reads
	etag     string
	modified string
	length   int64 // Content-Length, or -1
}

// get tries each URL in order until one answers 200.
func get(ctx context.Context, c *http.Client, urls []string) (*download, error) {
	var errs []error
	for _, u := range urls {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", redact(u), err))
			continue
		}
		resp, err := c.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			errs = append(errs, fmt.Errorf("GET %s: %w", redact(u), unwrapURLError(err)))
			continue
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			errs = append(errs, fmt.Errorf("GET %s: %s", redact(u), resp.Status))
			continue
		}
		d := &download{resp: resp, url: resp.Request.URL.String(), etag: resp.Header.Get("ETag"),
			modified: resp.Header.Get("Last-Modified"), length: resp.ContentLength}
		if strings.HasPrefix(d.etag, "W/") {
			d.etag = ""
		}
		return d, nil
	}
	return nil, fmt.Errorf("download image: %w", errors.Join(errs...))
}

// unwrapURLError drops *url.Error's repetition of the full URL (it may carry credentials).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// newHash returns the hash named by os_hash_algo.
func newHash(algo string) (hash.Hash, error) {
	switch algo {
	case proto.HashSHA256:
		return sha256.New(), nil
	case proto.HashSHA512:
		return newSHA512(), nil
	}
	return nil, fmt.Errorf("os_hash_algo %q not supported", algo)
}

// chunk is one buffer of the decoded stream: buf[:n] is at stream offset off.
type chunk struct {
	buf []byte
	n   int
	off int64
}

// source reads the body in its own goroutine into a small ring of aligned buffers, hashing the
// bytes as downloaded and decompressing a compressed file, so that download, hash and the
// caller's writes overlap. The caller takes chunks with next and gives them back with put.
type source struct {
	out   chan chunk
	free  chan []byte // depth+2 buffers
	err   error       // valid once out is closed
	read  atomic.Int64
	sum   []byte // valid once out is closed, without err
	size  int    // chunk size
	close func()
	wg    sync.WaitGroup
}

// stallTimeout is how long a download may deliver nothing before it fails.
const stallTimeout = 60 * time.Second

func startSource(ctx context.Context, d *download, h hash.Hash, compression string, size, depth int) (*source, error) {
	ctx, cancelCause := context.WithCancelCause(ctx)
	cancel := func() { cancelCause(context.Canceled) }
	s := &source{out: make(chan chunk, depth), free: make(chan []byte, depth+2), size: size}
	for range depth + 2 {
		s.free <- alignedBuf(size)
	}
	body := &countingReader{r: d.resp.Body, n: &s.read}
	stall := time.AfterFunc(stallTimeout, func() { cancelCause(errStalled) })
	body.tick = func() { stall.Reset(stallTimeout) }
	var r io.Reader
	var closeDec func()
	hashed := io.TeeReader(body, h)
	switch compression {
	case proto.CompressionGzip:
		zr, err := gzip.NewReader(hashed)
		if err != nil {
			cancel()
			stall.Stop()
			d.resp.Body.Close()
			return nil, fmt.Errorf("gzip: %w", err)
		}
		r = zr
	case proto.CompressionZstd:
		zr, err := zstd.NewReader(hashed, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20),
			zstd.WithDecoderLowmem(true))
		if err != nil {
			cancel()
			stall.Stop()
			d.resp.Body.Close()
			return nil, fmt.Errorf("zstd: %w", err)
		}
		r, closeDec = zr, zr.Close
	default:
		r = nil // read the body and hash whole chunks
	}
	s.close = func() {
		cancel()
		s.wg.Wait()
		stall.Stop()
		d.resp.Body.Close()
		if closeDec != nil {
			closeDec()
		}
	}
	// The reader fills buffers; without a decompressor a second goroutine hashes them, so
	// that the copy from the socket and the hash run on different cores.
	toHash := s.out
	if r == nil {
		toHash = make(chan chunk, 1)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(toHash)
		s.err = s.run(ctx, r, body, toHash, d.length)
		if s.err == nil && r != nil {
			s.sum = h.Sum(nil)
		}
	}()
	if r == nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(s.out)
			for c := range toHash {
				h.Write(c.buf[:c.n])
				select {
				case s.out <- c:
				case <-ctx.Done():
					s.free <- c.buf
				}
			}
			if s.err == nil {
				s.sum = h.Sum(nil)
			}
		}()
	}
	return s, nil
}

// errTruncated is a body that ended before its Content-Length or last chunk.
var errTruncated = errors.New("download truncated: the connection ended early")

// errStalled ends a download that delivered nothing for stallTimeout.
var errStalled = fmt.Errorf("no data for %v", stallTimeout)

func (s *source) run(ctx context.Context, dec io.Reader, body io.Reader, out chan<- chunk, length int64) error {
	var off int64
	for {
		var buf []byte
		select {
		case buf = <-s.free:
		case <-ctx.Done():
			return ctx.Err()
		}
		var n int
		var err error
		if dec != nil {
			n, err = io.ReadFull(dec, buf)
		} else {
			n, err = io.ReadFull(body, buf)
		}
		last := false
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF && n < len(buf):
			// io.ReadFull's short read at the end; a body shorter than its Content-Length
			// fails in its Read with a distinct error, and the length is checked below.
			last = true
		case err != nil:
			if ctx.Err() != nil {
				return fmt.Errorf("download after %d bytes: %w", s.read.Load(), context.Cause(ctx))
			}
			return fmt.Errorf("download after %d bytes: %w", s.read.Load(), err)
		}
		if n > 0 {
			select {
			case out <- chunk{buf: buf, n: n, off: off}:
			case <-ctx.Done():
				return ctx.Err()
			}
			off += int64(n)
		}
		if last {
			break
		}
	}
	if dec != nil {
		// Drain what follows the compressed stream so the whole file is hashed.
		if _, err := io.Copy(io.Discard, body); err != nil {
			return fmt.Errorf("download after %d bytes: %w", s.read.Load(), err)
		}
	}
	if got := s.read.Load(); length >= 0 && got != length {
		return fmt.Errorf("download truncated: %d of %d bytes", got, length)
	}
	return nil
}

// next returns the next chunk, or ok false at the end of the stream (then s.err says how it
// ended).
func (s *source) next(ctx context.Context) (chunk, bool) {
	select {
	case c, ok := <-s.out:
		return c, ok
	case <-ctx.Done():
		return chunk{}, false
	}
}

// put gives a chunk's buffer back.
func (s *source) put(c chunk) {
	if c.buf != nil {
		s.free <- c.buf[:cap(c.buf)]
	}
}

// wait ends the reader goroutine and returns how the download ended.
func (s *source) wait() error {
	s.close()
	return s.err
}

type countingReader struct {
	r    io.Reader
	n    *atomic.Int64
	tick func()
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n.Add(int64(n))
		c.tick()
	}
	if err == io.ErrUnexpectedEOF {
		err = errTruncated // net/http: the connection ended before the body did
	}
	return n, err
}

// rangeGet fetches [off, off+n) of the downloaded file with a conditional Range request, so
// that a changed object fails rather than mixing versions.
func rangeGet(ctx context.Context, c *http.Client, d *download, off, n int64, dst []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(off+n-1, 10))
	if d.etag != "" {
		req.Header.Set("If-Match", d.etag)
	} else if d.modified != "" {
		req.Header.Set("If-Unmodified-Since", d.modified)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("range re-read: %w", unwrapURLError(err))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		return fmt.Errorf("range re-read: the server ignores Range requests, and this qcow2 has metadata after the data it maps; re-run qemu-img convert -O qcow2 on it")
	case http.StatusPreconditionFailed:
		return fmt.Errorf("range re-read: the image changed on the server during the deploy")
	default:
		return fmt.Errorf("range re-read: %s", resp.Status)
	}
	if cr := resp.Header.Get("Content-Range"); !strings.HasPrefix(cr, "bytes "+strconv.FormatInt(off, 10)+"-") {
		return fmt.Errorf("range re-read: Content-Range %q for offset %d", cr, off)
	}
	if _, err := io.ReadFull(resp.Body, dst[:n]); err != nil {
		return fmt.Errorf("range re-read: %w", err)
	}
	return nil
}
