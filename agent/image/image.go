// Package image is the agent's write_image capability: it streams a raw or qcow2 image
// (optionally gzip- or zstd-compressed) from HTTP(S) onto a disk in one pass, hashing the file
// as downloaded on the way, with memory that does not grow with the image. qcow2 is converted
// on the fly from its L1/L2 tables (agent/internal/qcow2), with hash-checked Range re-reads for
// the rare layouts whose metadata follows the data it maps. Nothing is staged in RAM or on
// disk, and no local file named by an image is ever opened.
//
// On any failure after writing started the target's first and last MiB are zeroed, so a node
// never boots a half-written or tampered image. It knows nothing of the transport:
// cmd/ferrum-agent registers Handler with the runner and runs Write for `write-image`.
package image

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/agent/runner"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// TargetResolver picks the disk that root device hints name, and says why.
type TargetResolver func(ctx context.Context, hints map[string]any) (path, reason string, err error)

// Config configures a Writer.
type Config struct {
	Log zerolog.Logger
	// Resolve resolves root device hints; nil: requests must name their target.
	Resolve TargetResolver
	// ChunkSize is the read and write unit of raw images [2 MiB]; qcow2 reads 1 MiB chunks.
	ChunkSize int
	// Depth is how many chunks the download may run ahead of the writes [6].
	Depth int
	// Writers is how many raw chunks are written at once [2].
	Writers int
	// ProgressInterval is the time between progress reports [1s].
	ProgressInterval time.Duration
	// HeaderTimeout bounds the wait for the image server's response headers [60s].
	HeaderTimeout time.Duration
}

// Writer writes images. Its methods are safe for concurrent use (each call is independent).
type Writer struct {
	cfg Config
	log zerolog.Logger
}

// New validates cfg and fills in its defaults.
func New(cfg Config) (*Writer, error) {
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = 2 << 20
	}
	if cfg.Depth == 0 {
		cfg.Depth = 6
	}
	if cfg.Writers == 0 {
		cfg.Writers = 2
	}
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = time.Second
	}
	if cfg.HeaderTimeout == 0 {
		cfg.HeaderTimeout = 60 * time.Second
	}
	switch {
	case cfg.ChunkSize < 1<<20 || cfg.ChunkSize > 64<<20 || cfg.ChunkSize%align != 0:
		return nil, fmt.Errorf("image: chunk size %d not a multiple of %d in [1 MiB, 64 MiB]", cfg.ChunkSize, align)
	case cfg.Depth < 1 || cfg.Depth > 64:
		return nil, fmt.Errorf("image: depth %d not in [1, 64]", cfg.Depth)
	case cfg.Writers < 1 || cfg.Writers > cfg.Depth:
		return nil, fmt.Errorf("image: writers %d not in [1, depth]", cfg.Writers)
	case cfg.ProgressInterval < 0 || cfg.HeaderTimeout < 0:
		return nil, errors.New("image: negative interval")
	}
	return &Writer{cfg: cfg, log: cfg.Log.With().Str("component", "image").Logger()}, nil
}

// Handler returns the runner handler of proto.CmdWriteImage. Progress reports carry a
// proto.WriteImageProgress as data and a message for people, e.g.
// "512.0 MiB of 1.0 GiB (50%) at 800.0 MiB/s".
func (w *Writer) Handler() runner.Handler {
	return runner.HandlerFunc(func(ctx context.Context, raw json.RawMessage, progress func(float64, string)) (any, error) {
		var args proto.WriteImageArgs
		if err := proto.DecodeArgs(raw, &args); err != nil {
			return nil, err
		}
		return w.Write(ctx, args, func(p proto.WriteImageProgress) {
			runner.ReportData(ctx, p.Percent, ProgressMessage(p), p)
		})
	})
}

// ProgressMessage renders p for people.
func ProgressMessage(p proto.WriteImageProgress) string {
	if p.Total > 0 {
		return fmt.Sprintf("%s of %s (%.0f%%) at %s/s", size(p.Bytes), size(p.Total), p.Percent, size(p.BytesPerSec))
	}
	return fmt.Sprintf("%s at %s/s", size(p.Bytes), size(p.BytesPerSec))
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d B", n)
}

// Write downloads the image args name and writes it to its target. Every error is a
// *proto.Error: bad_request for arguments, unsupported for hints without a resolver,
// cancelled or timeout when ctx ends, failed otherwise — with a message fit for last_error.
func (w *Writer) Write(ctx context.Context, args proto.WriteImageArgs, progress func(proto.WriteImageProgress)) (proto.WriteImageResult, error) {
	if progress == nil {
		progress = func(proto.WriteImageProgress) {}
	}
	if err := args.Validate(); err != nil {
		return proto.WriteImageResult{}, proto.Errorf(proto.CodeBadRequest, "%v", err)
	}
	want, _ := proto.CheckHash(args.OSHashAlgo, args.OSHashValue)
	path, reason := args.Target, "explicit target"
	if path == "" {
		if w.cfg.Resolve == nil {
			return proto.WriteImageResult{}, proto.Errorf(proto.CodeUnsupported,
				"write_image: root device hints need a disk resolver, which this agent lacks; name the target")
		}
		var err error
		if path, reason, err = w.cfg.Resolve(ctx, args.RootDeviceHints); err != nil {
			return proto.WriteImageResult{}, toProto(ctx, fmt.Errorf("root device: %w", err))
		}
	}
	log := w.log.With().Str("target", path).Str("image", args.ID).Str("url", redact(args.URLs[0])).
		Str("disk_format", args.DiskFormat).Logger()
	log.Info().Str("reason", reason).Msg("writing image")
	start := time.Now()
	res, err := w.write(ctx, args, path, want, progress)
	res.Target, res.Reason, res.DurationMs = path, reason, time.Since(start).Milliseconds()
	if err != nil {
		log.Error().Err(err).Msg("write image failed")
		return res, toProto(ctx, err)
	}
	log.Info().Int64("bytes", res.DownloadBytes).Int64("written", res.WrittenBytes).Int64("ms", res.DurationMs).
		Int("range_requests", res.RangeRequests).Msg("image written")
	return res, nil
}

func toProto(ctx context.Context, err error) *proto.Error {
	var pe *proto.Error
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return proto.Errorf(proto.CodeTimeout, "write_image: %v", err)
	case errors.Is(ctx.Err(), context.Canceled):
		return proto.Errorf(proto.CodeCancelled, "write_image: %v", err)
	}
	return proto.Errorf(proto.CodeFailed, "write_image: %v", err)
}

// compression is the wrapper args names, or the URL's suffix implies.
func compression(args proto.WriteImageArgs) string {
	if args.Compression != "" {
		return args.Compression
	}
	p := args.URLs[0]
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	switch path.Ext(p) {
	case ".gz":
		return proto.CompressionGzip
	case ".zst":
		return proto.CompressionZstd
	}
	return proto.CompressionNone
}

func (w *Writer) write(ctx context.Context, args proto.WriteImageArgs, path string, want []byte,
	progress func(proto.WriteImageProgress)) (res proto.WriteImageResult, err error) {
	res.OSHashAlgo = args.OSHashAlgo
	client, err := newClient(args.CABundle, w.cfg.HeaderTimeout)
	if err != nil {
		return res, err
	}
	defer client.CloseIdleConnections()
	t, err := openTarget(path, w.cfg.ChunkSize)
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil && t.touched.Load() {
			if werr := t.Wipe(); werr != nil {
				err = fmt.Errorf("%w (and wiping the partition tables failed: %v)", err, werr)
			} else {
				err = fmt.Errorf("%w; the disk's first and last MiB were zeroed", err)
			}
		}
		t.Close()
	}()
	d, err := get(ctx, client, args.URLs)
	if err != nil {
		return res, err
	}
	if args.ImageSize > 0 && d.length >= 0 && d.length != args.ImageSize {
		d.resp.Body.Close()
		return res, fmt.Errorf("the server sends %d bytes, the image has %d", d.length, args.ImageSize)
	}
	if d.length < 0 && args.ImageSize > 0 {
		d.length = args.ImageSize
	}
	h, err := newHash(args.OSHashAlgo)
	if err != nil {
		d.resp.Body.Close()
		return res, err
	}
	comp := compression(args)
	chunkSize := w.cfg.ChunkSize
	if args.DiskFormat == proto.DiskFormatQCOW2 {
		chunkSize = qcow2Chunk
	}
	src, err := startSource(ctx, d, h, comp, chunkSize, w.cfg.Depth)
	if err != nil {
		return res, err
	}
	rep := newReporter(w.cfg.ProgressInterval, d.length, &src.read, progress)
	var ferr error
	var q *qstream
	switch args.DiskFormat {
	case proto.DiskFormatRaw:
		res.VirtualSize, ferr = writeRaw(ctx, src, t, d.length, comp == proto.CompressionNone, w.cfg.Writers, rep)
	case proto.DiskFormatQCOW2:
		q = newQStream(t, client, d, w.log)
		defer q.stop() // before the wipe, deferred earlier
		ferr = q.run(ctx, src, rep)
		res.VirtualSize = int64(q.vsize)
	}
	derr := src.wait() // stops and waits for the reader
	res.DownloadBytes = src.read.Load()
	switch {
	case derr != nil && (ferr == nil || errors.Is(ferr, errStreamEnded)):
		return res, derr
	case ferr != nil:
		return res, ferr
	case ctx.Err() != nil:
		return res, ctx.Err()
	}
	res.OSHashValue = hex.EncodeToString(src.sum)
	if !equalHash(src.sum, want) {
		return res, fmt.Errorf("checksum mismatch: %s of the download is %s, want %s", args.OSHashAlgo, res.OSHashValue, hex.EncodeToString(want))
	}
	if q != nil {
		// Data whose metadata followed it is re-read now that the whole file is known good.
		err := q.finish(ctx)
		res.RangeRequests = q.rangeRequests
		if err != nil {
			return res, err
		}
		if err := q.stop(); err != nil {
			return res, err
		}
	}
	if err := t.Finish(); err != nil {
		return res, err
	}
	res.WrittenBytes = t.written.Load()
	rep.final()
	return res, nil
}

func equalHash(a, b []byte) bool { return len(a) == len(b) && string(a) == string(b) }

// errStreamEnded: the stream ended before the format was complete; the download's own
// error, if any, explains why.
var errStreamEnded = errors.New("image stream ended early")
