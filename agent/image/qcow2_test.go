package image

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrumhq/ferrum/shared/proto"
)

// needQemuImg skips without FERRUM_QEMU_IMG (make test sets it and test-setup.sh installs
// qemu-utils); with it, a missing qemu-img fails the test.
func needQemuImg(t *testing.T) {
	t.Helper()
	if os.Getenv("FERRUM_QEMU_IMG") == "" {
		t.Skip("set FERRUM_QEMU_IMG=1 to build qcow2 fixtures with qemu-img (make test does; agent/image/test-setup.sh installs it)")
	}
	for _, tool := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("FERRUM_QEMU_IMG is set but %s is missing: run agent/image/test-setup.sh", tool)
		}
	}
}

func runCmd(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// scattered makes an image the way a VM writes one: small writes in no order, so data is
// not in guest order and L2 tables are allocated as they are first needed.
func scattered(t testing.TB, path, opts string, size string) {
	runCmd(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, path, size)
	var cmds []string
	for i, off := range []int{37, 3, 41, 11, 0, 29, 7, 19, 44, 23, 2, 31} {
		// Sector-sized pieces at odd offsets leave clusters and subclusters partly written.
		cmds = append(cmds, "-c", "write -P "+itoa(0x30+i)+" "+itoa(off*mib+i*4096+512)+" "+itoa(600*1024+i*512))
	}
	runCmd(t, "qemu-io", append(append([]string{"-f", "qcow2"}, cmds...), path)...)
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestWriteQCOW2 converts qcow2 images of every layout qemu-img makes, compared byte for byte
// with qemu-img's own conversion.
func TestWriteQCOW2(t *testing.T) {
	needQemuImg(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.raw")
	genDisk(t, disk, 48*mib+4096, 3)
	conv := func(name string, opts ...string) {
		runCmd(t, "qemu-img", append(append([]string{"convert", "-q", "-f", "raw", "-O", "qcow2"}, opts...), disk, filepath.Join(dir, name))...)
	}
	conv("plain.qcow2")
	conv("zlib.qcow2", "-c")
	conv("zstd.qcow2", "-c", "-o", "compression_type=zstd")
	conv("v2.qcow2", "-o", "compat=0.10")
	conv("v2-zlib.qcow2", "-c", "-o", "compat=0.10")
	conv("c2m.qcow2", "-o", "cluster_size=2M")
	conv("c512.qcow2", "-o", "cluster_size=512")
	conv("c512-zlib.qcow2", "-c", "-o", "cluster_size=512")
	conv("extl2.qcow2", "-o", "extended_l2=on,cluster_size=128k")
	conv("prealloc.qcow2", "-o", "preallocation=metadata")
	conv("unordered.qcow2", "-W", "-m", "16")
	scattered(t, filepath.Join(dir, "vm.qcow2"), "cluster_size=65536", "48M")
	scattered(t, filepath.Join(dir, "vm-extl2.qcow2"), "extended_l2=on,cluster_size=65536", "48M")
	// A resize that outgrows the L1 table moves it to the end: everything is then late.
	scattered(t, filepath.Join(dir, "l1-at-end.qcow2"), "cluster_size=512", "48M")
	runCmd(t, "qemu-img", "resize", "-q", filepath.Join(dir, "l1-at-end.qcow2"), "96M")
	// Compressed and late: zlib clusters, then an L1 that moved.
	runCmd(t, "qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=512", disk, filepath.Join(dir, "zlib-l1-at-end.qcow2"))
	runCmd(t, "qemu-img", "resize", "-q", filepath.Join(dir, "zlib-l1-at-end.qcow2"), "96M")

	srv := serve(t, dir, false, false)
	tests := []struct {
		file string
		late bool // needs Range re-reads
		gzip bool
	}{
		{file: "plain.qcow2"}, {file: "zlib.qcow2"}, {file: "zstd.qcow2"}, {file: "v2.qcow2"}, {file: "v2-zlib.qcow2"},
		{file: "c2m.qcow2"}, {file: "c512.qcow2"}, {file: "c512-zlib.qcow2"}, {file: "extl2.qcow2"},
		{file: "prealloc.qcow2"}, {file: "unordered.qcow2"}, {file: "vm.qcow2"}, {file: "vm-extl2.qcow2"},
		{file: "l1-at-end.qcow2", late: true}, {file: "zlib-l1-at-end.qcow2", late: true},
		{file: "plain.qcow2", gzip: true},
	}
	for _, tc := range tests {
		name := strings.TrimSuffix(tc.file, ".qcow2")
		if tc.gzip {
			name += "-gzip"
		}
		t.Run(name, func(t *testing.T) {
			src := filepath.Join(dir, tc.file)
			want := filepath.Join(t.TempDir(), "want.raw")
			runCmd(t, "qemu-img", "convert", "-q", "-f", "qcow2", "-O", "raw", src, want)
			url := srv.URL + "/" + tc.file
			if tc.gzip {
				compress(t, src, src+".gz", "gzip")
				src, url = src+".gz", url+".gz"
			}
			target := filepath.Join(t.TempDir(), "target")
			writeFile(t, target, []byte(strings.Repeat("old data", 3*mib)))
			before := srv.ranges.Load()
			res, err := newWriter(t).Write(context.Background(), proto.WriteImageArgs{URLs: []string{url},
				DiskFormat: "qcow2", OSHashAlgo: "sha256", OSHashValue: sha256File(t, src), Target: target}, nil)
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			sameFile(t, target, want)
			ranges := srv.ranges.Load() - before
			if tc.late != (ranges > 0) || int64(res.RangeRequests) != ranges {
				t.Errorf("%d Range requests (result says %d), want some: %v", ranges, res.RangeRequests, tc.late)
			}
		})
	}

	// A server whose file changes between the download and the re-reads (and which ignores
	// the conditional headers): the run hashes catch it.
	t.Run("changed-on-server", func(t *testing.T) {
		src := filepath.Join(dir, "l1-at-end.qcow2")
		orig, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		changed := bytes.Clone(orig)
		for i := 2 * mib; i < len(changed); i += 4096 {
			changed[i] ^= 0xff
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b := orig
			if r.Header.Get("Range") != "" {
				b = changed
				r.Header.Del("If-Unmodified-Since")
				r.Header.Del("If-Match")
			}
			http.ServeContent(w, r, "x.qcow2", time.Time{}, bytes.NewReader(b))
		}))
		defer srv.Close()
		target := filepath.Join(t.TempDir(), "target")
		_, err = newWriter(t).Write(context.Background(), proto.WriteImageArgs{URLs: []string{srv.URL + "/x.qcow2"},
			DiskFormat: "qcow2", OSHashAlgo: "sha256", OSHashValue: sha256File(t, src), Target: target}, nil)
		if proto.CodeOf(err) != proto.CodeFailed || !strings.Contains(err.Error(), "changed on the server") {
			t.Fatalf("Write = %v, want a failure saying the image changed", err)
		}
	})

	// The same late image from a server that ignores Range: a clear error naming the fix.
	t.Run("late-without-range", func(t *testing.T) {
		noRange := serve(t, dir, false, true)
		src := filepath.Join(dir, "l1-at-end.qcow2")
		target := filepath.Join(t.TempDir(), "target")
		_, err := newWriter(t).Write(context.Background(), proto.WriteImageArgs{URLs: []string{noRange.URL + "/l1-at-end.qcow2"},
			DiskFormat: "qcow2", OSHashAlgo: "sha256", OSHashValue: sha256File(t, src), Target: target}, nil)
		if proto.CodeOf(err) != proto.CodeFailed || !strings.Contains(err.Error(), "qemu-img convert") {
			t.Fatalf("Write = %v, want a failure that names qemu-img convert", err)
		}
	})
}

// TestQCOW2Refused: images that name other files, or are encrypted, are refused before
// anything is written, and the named files are never opened.
func TestQCOW2Refused(t *testing.T) {
	needQemuImg(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.raw")
	writeFile(t, secret, []byte(strings.Repeat("secret", 1000)))
	runCmd(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", secret, "-F", "raw", filepath.Join(dir, "backing.qcow2"))
	runCmd(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file="+secret+",data_file_raw=on", filepath.Join(dir, "datafile.qcow2"), "6000")
	runCmd(t, "qemu-img", "create", "-q", "-f", "qcow2", "--object", "secret,id=s0,data=pw", "-o", "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10",
		filepath.Join(dir, "luks.qcow2"), "8M")
	srv := serve(t, dir, false, false)
	tests := []struct{ file, msg string }{
		{"backing.qcow2", "backing file"},
		{"datafile.qcow2", "external data file"},
		{"luks.qcow2", "encrypt"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "target")
			writeFile(t, target, []byte("old"))
			_, err := newWriter(t).Write(context.Background(), proto.WriteImageArgs{URLs: []string{srv.URL + "/" + tc.file},
				DiskFormat: "qcow2", OSHashAlgo: "sha256", OSHashValue: sha256File(t, filepath.Join(dir, tc.file)), Target: target}, nil)
			if proto.CodeOf(err) != proto.CodeFailed || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Write = %v, want a failure about %q", err, tc.msg)
			}
			if b, _ := os.ReadFile(target); string(b) != "old" {
				t.Errorf("target changed: %q", b)
			}
		})
	}
}
