package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/agent/image"
	"github.com/ferrumhq/ferrum/agent/runner"
	"github.com/ferrumhq/ferrum/shared/proto"
)

func init() { subcommands["write-image"] = writeImageCommand }

// registerImage registers write_image; root device hints choose the target (rootResolver).
func registerImage(r *runner.Runner, log zerolog.Logger) {
	w, err := image.New(image.Config{Log: log, Resolve: rootResolver("/")})
	if err != nil {
		panic(err) // the defaults are valid
	}
	r.Register(proto.CmdWriteImage, w.Handler(), true)
}

// writeImageCommand is `ferrum-agent write-image --source URL --checksum ALGO:HEX --target
// PATH`: it writes an image to a device or file as write_image would, prints progress on
// stderr and the result as JSON on stdout, and fails with a clear message.
func writeImageCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ferrum-agent write-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	source := fs.String("source", "", "image URL (http or https)")
	checksum := fs.String("checksum", "", "ALGO:HEX of the image file as served (sha256 or sha512)")
	target := fs.String("target", "", "device or file to write")
	format := fs.String("format", "", "raw or qcow2 (default: qcow2 when the URL path ends in .qcow2[.gz|.zst], else raw)")
	compression := fs.String("compression", "", "none, gzip or zstd (default: from the URL's .gz or .zst suffix)")
	caFile := fs.String("ca-bundle", "", "PEM file of the CAs to trust for https (default: the system's)")
	size := fs.Int64("size", 0, "expected size of the image file in bytes (0: unknown)")
	verbose := fs.Bool("v", false, "agent logs on stderr")
	quiet := fs.Bool("q", false, "no progress on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ferrum-agent write-image --source URL --checksum ALGO:HEX --target PATH [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *source == "" || *checksum == "" || *target == "" {
		fs.Usage()
		return fmt.Errorf("write-image: --source, --checksum and --target are required")
	}
	algo, value, ok := strings.Cut(*checksum, ":")
	if !ok {
		return fmt.Errorf("write-image: --checksum %q is not ALGO:HEX", *checksum)
	}
	a := proto.WriteImageArgs{URLs: []string{*source}, DiskFormat: *format, OSHashAlgo: strings.ToLower(algo),
		OSHashValue: strings.ToLower(value), Target: *target, Compression: *compression, ImageSize: *size}
	if a.DiskFormat == "" {
		a.DiskFormat = guessFormat(*source)
	}
	if *caFile != "" {
		b, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("write-image: %w", err)
		}
		a.CABundle = string(b)
	}
	if !strings.HasPrefix(a.Target, "/") {
		if wd, err := os.Getwd(); err == nil {
			a.Target = wd + "/" + a.Target
		}
	}
	// Go's GC lets the heap grow to twice what is live; the writer's working set is ~20 MiB.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(48 << 20)
	}
	log := zerolog.Nop()
	if *verbose {
		log = zerolog.New(stderr).With().Timestamp().Str("service", "ferrum-agent").Logger()
	}
	w, err := image.New(image.Config{Log: log, ProgressInterval: 2 * time.Second})
	if err != nil {
		return err
	}
	res, err := w.Write(ctx, a, func(p proto.WriteImageProgress) {
		if !*quiet {
			fmt.Fprintln(stderr, "write-image:", image.ProgressMessage(p))
		}
	})
	if err != nil {
		return err
	}
	b, _ := json.Marshal(res)
	fmt.Fprintf(stdout, "%s\n", b)
	return nil
}

// guessFormat names the disk format a URL's path suggests; the image's header must agree.
func guessFormat(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	for _, s := range []string{".gz", ".zst"} {
		u = strings.TrimSuffix(u, s)
	}
	if strings.HasSuffix(u, ".qcow2") || strings.HasSuffix(u, ".img.qcow2") {
		return proto.DiskFormatQCOW2
	}
	return proto.DiskFormatRaw
}
