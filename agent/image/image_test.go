package image

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/shared/proto"
)

const mib = 1 << 20

// genDisk writes a raw disk of size bytes with random, text-like and zero extents.
func genDisk(t testing.TB, path string, size int64, seed uint64) {
	t.Helper()
	r := mrand.New(mrand.NewPCG(seed, 1))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	// Extents at odd places and lengths: random bytes, hex text, a few lone sectors.
	buf := make([]byte, 3*mib+4096+512)
	for i := int64(0); i < size/(8*mib); i++ {
		off := i*8*mib + int64(r.IntN(4*mib))&^511
		n := min(int64(r.IntN(len(buf)))&^511+512, size-off)
		p := buf[:n]
		switch i % 3 {
		case 0:
			for j := range p {
				p[j] = byte(r.Uint32())
			}
		case 1:
			for j := range p {
				p[j] = "0123456789abcdef"[r.IntN(16)]
			}
		case 2:
			clear(p)
			p[len(p)-1] = 1
		}
		if _, err := f.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
	}
	// The last sector is data, so a disk that stops short shows.
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xaa}, 512), size-512); err != nil {
		t.Fatal(err)
	}
}

func sha256File(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sameFile fails the test unless a and b have the same size and bytes.
func sameFile(t testing.TB, got, want string) {
	t.Helper()
	fa, err := os.Stat(got)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.Stat(want)
	if err != nil {
		t.Fatal(err)
	}
	if fa.Size() != fb.Size() {
		t.Fatalf("%s is %d bytes, want %d", got, fa.Size(), fb.Size())
	}
	a, _ := os.Open(got)
	defer a.Close()
	b, _ := os.Open(want)
	defer b.Close()
	ba, bb := make([]byte, mib), make([]byte, mib)
	for off := int64(0); ; off += mib {
		na, _ := io.ReadFull(a, ba)
		nb, _ := io.ReadFull(b, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			for i := range min(na, nb) {
				if ba[i] != bb[i] {
					t.Fatalf("%s differs from %s at byte %d", got, want, off+int64(i))
				}
			}
			t.Fatalf("%s differs from %s near byte %d", got, want, off)
		}
		if na == 0 {
			return
		}
	}
}

// server serves dir; noRange makes it answer 200 to Range requests.
type server struct {
	*httptest.Server
	ranges atomic.Int64
}

func serve(t testing.TB, dir string, tlsServer, noRange bool) *server {
	t.Helper()
	s := &server{}
	fs := http.FileServer(http.Dir(dir))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			s.ranges.Add(1)
			if noRange {
				r.Header.Del("Range")
			}
		}
		if rest, ok := strings.CutPrefix(r.URL.Path, "/redirect/"); ok {
			http.Redirect(w, r, "/"+rest, http.StatusFound)
			return
		}
		if rest, ok := strings.CutPrefix(r.URL.Path, "/short/"); ok {
			// Promise the whole file, send half, hang up.
			b, err := os.ReadFile(filepath.Join(dir, rest))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Length", fmt.Sprint(len(b)))
			w.Write(b[:len(b)/2])
			return
		}
		fs.ServeHTTP(w, r)
	})
	if tlsServer {
		s.Server = httptest.NewTLSServer(h)
	} else {
		s.Server = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return s
}

func caPEM(s *httptest.Server) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}))
}

func newWriter(t testing.TB) *Writer {
	t.Helper()
	w, err := New(Config{Log: zerolog.New(zerolog.NewTestWriter(t)), ProgressInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func compress(t testing.TB, src, dst, kind string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var w io.WriteCloser
	if kind == "gzip" {
		w = gzip.NewWriter(out)
	} else {
		w, _ = zstd.NewWriter(out)
	}
	if _, err := io.Copy(w, in); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWriteRaw writes raw images, plain and compressed, over HTTP and HTTPS, to a file.
func TestWriteRaw(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.raw")
	genDisk(t, disk, 40*mib+512, 1)
	compress(t, disk, filepath.Join(dir, "disk.raw.gz"), "gzip")
	compress(t, disk, filepath.Join(dir, "disk.raw.zst"), "zstd")
	plain, tlsSrv := serve(t, dir, false, false), serve(t, dir, true, false)
	tests := []struct {
		name, url, file, ca, comp string
	}{
		{"plain", plain.URL + "/disk.raw", "disk.raw", "", ""},
		{"redirect", plain.URL + "/redirect/disk.raw", "disk.raw", "", ""},
		{"gzip-by-suffix", plain.URL + "/disk.raw.gz", "disk.raw.gz", "", ""},
		{"zstd-by-suffix", plain.URL + "/disk.raw.zst?sig=x", "disk.raw.zst", "", ""},
		{"zstd-named", plain.URL + "/redirect/disk.raw.zst", "disk.raw.zst", "", proto.CompressionZstd},
		{"https-ca-bundle", tlsSrv.URL + "/disk.raw", "disk.raw", caPEM(tlsSrv.Server), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "target")
			// A used disk: old data everywhere, longer than the image.
			writeFile(t, target, bytes.Repeat([]byte{0xee}, 48*mib))
			var reports []proto.WriteImageProgress
			res, err := newWriter(t).Write(context.Background(), proto.WriteImageArgs{
				URLs: []string{tc.url}, DiskFormat: "raw", OSHashAlgo: "sha256",
				OSHashValue: sha256File(t, filepath.Join(dir, tc.file)), CABundle: tc.ca, Compression: tc.comp, Target: target,
			}, func(p proto.WriteImageProgress) { reports = append(reports, p) })
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			sameFile(t, target, disk)
			fi, _ := os.Stat(filepath.Join(dir, tc.file))
			if res.DownloadBytes != fi.Size() || res.VirtualSize != 40*mib+512 || res.Target != target {
				t.Errorf("result = %+v, want %d bytes downloaded, virtual %d", res, fi.Size(), 40*mib+512)
			}
			if len(reports) == 0 || reports[len(reports)-1].Percent != 100 || reports[len(reports)-1].Bytes != fi.Size() {
				t.Errorf("progress reports = %+v, want a last one at 100%%", reports)
			}
		})
	}
}

// TestWriteRawSparse: all-zero ranges are zeroed, not written, and read back as zeros.
func TestWriteRawSparse(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.raw")
	f, _ := os.Create(disk)
	f.Truncate(64 * mib)
	f.WriteAt(bytes.Repeat([]byte{7}, mib), 10*mib)
	f.Close()
	srv := serve(t, dir, false, false)
	target := filepath.Join(t.TempDir(), "target")
	writeFile(t, target, bytes.Repeat([]byte{0xee}, 70*mib))
	res, err := newWriter(t).Write(context.Background(), proto.WriteImageArgs{URLs: []string{srv.URL + "/disk.raw"},
		DiskFormat: "raw", OSHashAlgo: "sha256", OSHashValue: sha256File(t, disk), Target: target}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, target, disk)
	if res.WrittenBytes != mib {
		t.Errorf("WrittenBytes = %d, want %d (only the data)", res.WrittenBytes, mib)
	}
}

// TestWriteFailures: every failure is a coded error with a clear message, and a disk that was
// written to is left without its first and last MiB.
func TestWriteFailures(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.raw")
	genDisk(t, disk, 16*mib, 2)
	notQcow := filepath.Join(dir, "notqcow.qcow2")
	writeFile(t, notQcow, bytes.Repeat([]byte{1}, 3*mib))
	sum := sha256File(t, disk)
	srv, tlsSrv := serve(t, dir, false, false), serve(t, dir, true, false)
	other, _ := rand.Prime(rand.Reader, 64)
	tests := []struct {
		name    string
		args    proto.WriteImageArgs
		code    proto.Code
		msg     string
		touched bool // the target was written to, so it must be wiped
	}{
		{"checksum-mismatch", proto.WriteImageArgs{URLs: []string{srv.URL + "/disk.raw"}, OSHashValue: strings.Repeat("0", 64)},
			proto.CodeFailed, "checksum mismatch", true},
		{"truncated", proto.WriteImageArgs{URLs: []string{srv.URL + "/short/disk.raw"}, OSHashValue: sum},
			proto.CodeFailed, "truncated", true},
		{"size-mismatch", proto.WriteImageArgs{URLs: []string{srv.URL + "/disk.raw"}, OSHashValue: sum, ImageSize: 5},
			proto.CodeFailed, "the image has 5", false},
		{"not-found", proto.WriteImageArgs{URLs: []string{srv.URL + "/nope", srv.URL + "/nope2"}, OSHashValue: sum},
			proto.CodeFailed, "404", false},
		{"unknown-ca", proto.WriteImageArgs{URLs: []string{tlsSrv.URL + "/disk.raw"}, OSHashValue: sum},
			proto.CodeFailed, "certificate", false},
		{"not-qcow2", proto.WriteImageArgs{URLs: []string{srv.URL + "/notqcow.qcow2"}, DiskFormat: "qcow2", OSHashValue: sum},
			proto.CodeFailed, "no qcow2 header", false},
		{"bad-args", proto.WriteImageArgs{URLs: []string{"ftp://x/y"}, OSHashValue: sum},
			proto.CodeBadRequest, "scheme", false},
		{"hints-without-resolver", proto.WriteImageArgs{URLs: []string{srv.URL + "/disk.raw"}, OSHashValue: sum,
			RootDeviceHints: map[string]any{"name": "/dev/sda"}}, proto.CodeUnsupported, "resolver", false},
		{"wrong-ca", proto.WriteImageArgs{URLs: []string{tlsSrv.URL + "/disk.raw"}, OSHashValue: sum,
			CABundle: "-----BEGIN CERTIFICATE-----\n" + other.String() + "\n-----END CERTIFICATE-----\n"},
			proto.CodeFailed, "ca_bundle", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "target")
			old := bytes.Repeat([]byte{0xee}, 20*mib)
			writeFile(t, target, old)
			a := tc.args
			if a.DiskFormat == "" {
				a.DiskFormat = "raw"
			}
			a.OSHashAlgo = "sha256"
			if a.RootDeviceHints == nil {
				a.Target = target
			}
			_, err := newWriter(t).Write(context.Background(), a, nil)
			if proto.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Write = %v, want code %s and %q", err, tc.code, tc.msg)
			}
			got, _ := os.ReadFile(target)
			if tc.touched {
				if n := len(got); n < 2*mib || !allZero(got[:mib]) || !allZero(got[n-mib:]) {
					t.Errorf("target not wiped: %d bytes, head zero %v", n, allZero(got[:min(n, mib)]))
				}
				if !strings.Contains(err.Error(), "zeroed") {
					t.Errorf("error %q does not say the disk was wiped", err)
				}
			} else if !bytes.Equal(got, old) {
				t.Errorf("target changed although nothing was written")
			}
		})
	}
}

// TestWriteCancel: a cancelled write ends with the cancelled code and wipes what it wrote.
func TestWriteCancel(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(64*mib))
		w.Write(bytes.Repeat([]byte{9}, 8*mib))
		w.(http.Flusher).Flush()
		<-block
	}))
	defer srv.Close()
	defer close(block)
	target := filepath.Join(t.TempDir(), "target")
	ctx, cancel := context.WithCancel(context.Background())
	var once atomic.Bool
	_, err := newWriter(t).Write(ctx, proto.WriteImageArgs{URLs: []string{srv.URL + "/x"}, DiskFormat: "raw",
		OSHashAlgo: "sha512", OSHashValue: strings.Repeat("0", 128), Target: target},
		func(p proto.WriteImageProgress) {
			if p.Bytes >= 4*mib && once.CompareAndSwap(false, true) {
				cancel()
			}
		})
	if proto.CodeOf(err) != proto.CodeCancelled {
		t.Fatalf("Write = %v, want code cancelled", err)
	}
}

func TestNewConfig(t *testing.T) {
	for _, cfg := range []Config{{ChunkSize: 1000}, {ChunkSize: 128 << 20}, {Depth: -1}, {ProgressInterval: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) = nil error", cfg)
		}
	}
	if _, err := New(Config{}); err != nil {
		t.Errorf("New(defaults) = %v", err)
	}
}

func TestProgressMessage(t *testing.T) {
	got := ProgressMessage(proto.WriteImageProgress{Bytes: 512 * mib, Total: 1 << 30, Percent: 50, BytesPerSec: 800 * mib})
	if want := "512.0 MiB of 1.0 GiB (50%) at 800.0 MiB/s"; got != want {
		t.Errorf("ProgressMessage = %q, want %q", got, want)
	}
}

var _ = errors.New
var _ = exec.Command
