// Command imagewrite benchmarks agent/image against the ways images are usually written, side
// by side in one run, over loopback HTTP (docs/benchmarks.md, `make bench-image`):
//
//  1. raw: ferrum-agent write-image (sha256 verified) vs `curl | dd oflag=direct` to the same
//     target vs download + sha256 without a write vs sha256 alone (the ceiling);
//  2. qcow2 of 10 GiB virtual size (plain and zstd-compressed clusters, built with qemu-img):
//     ferrum-agent write-image vs Ironic's way (download to tmpfs, sha256sum, qemu-img convert);
//  3. a sparse raw image: ferrum-agent write-image vs `curl | dd`.
//
// Images are served by a child process (http.FileServer). Every method runs as a subprocess;
// wall time is the median of -runs, peak RSS the largest
// Maxrss of the process tree. Every ferrum result is checked against its source with
// qemu-img compare. It needs qemu-img, curl and dd (agent/image/test-setup.sh) and the
// ferrum-agent binary (-agent). Only for benchmarks; nothing imports it.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

const (
	mib = 1 << 20
	gib = 1 << 30
)

type config struct {
	dir, agent, dev string
	runs            int
	rawSize         int64
	sparseSize      int64
	qcowVirtual     int64
	qcowData        int64
	keep            bool
	zlib            bool
	cases           string
}

func main() {
	var c config
	flag.StringVar(&c.dir, "dir", "/var/tmp/ferrum-bench-image", "work directory on the disk under test (images and file targets)")
	flag.StringVar(&c.agent, "agent", "bin/ferrum-agent", "the ferrum-agent binary")
	flag.StringVar(&c.dev, "target-dev", "", "write to this block device instead of files in -dir (its contents are destroyed)")
	flag.IntVar(&c.runs, "runs", 3, "runs per method (the median is reported)")
	flag.Int64Var(&c.rawSize, "raw-size", 2*gib, "size of the random raw image")
	flag.Int64Var(&c.sparseSize, "sparse-size", 2*gib, "size of the sparse raw image (10% data)")
	flag.Int64Var(&c.qcowVirtual, "qcow2-virtual", 10*gib, "virtual size of the qcow2 images")
	flag.Int64Var(&c.qcowData, "qcow2-data", 1536*mib, "data in the qcow2 images (2/3 random, 1/3 hex text)")
	flag.BoolVar(&c.keep, "keep", false, "keep the generated images")
	flag.BoolVar(&c.zlib, "zlib", false, "also a zlib-compressed qcow2 (slow: deflate)")
	flag.StringVar(&c.cases, "cases", "raw,qcow2,sparse", "which comparisons to run")
	serveDir := flag.String("serve", "", "internal: serve this directory on loopback and print the address")
	flag.Parse()
	if *serveDir != "" {
		serve(*serveDir)
		return
	}
	if err := run(context.Background(), c); err != nil {
		fmt.Fprintln(os.Stderr, "imagewrite:", err)
		os.Exit(1)
	}
}

// result is one method's measurements.
type result struct {
	name     string
	walls    []time.Duration
	rss      int64 // KiB, max over runs
	virtual  int64 // bytes the disk receives, for MiB/s
	note     string
	verified string
}

func (r result) median() time.Duration {
	w := slices.Clone(r.walls)
	slices.Sort(w)
	return w[len(w)/2]
}

func (r result) mibps() float64 { return float64(r.virtual) / mib / r.median().Seconds() }

func run(ctx context.Context, c config) error {
	for _, tool := range []string{"qemu-img", "curl", "dd", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s missing: run agent/image/test-setup.sh", tool)
		}
	}
	agent, err := filepath.Abs(c.agent)
	if err != nil {
		return err
	}
	if _, err := os.Stat(agent); err != nil {
		return fmt.Errorf("ferrum-agent binary: %w (make build)", err)
	}
	c.agent = agent
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	if !c.keep {
		defer os.RemoveAll(c.dir)
	}
	img := filepath.Join(c.dir, "img")
	if err := os.MkdirAll(img, 0o755); err != nil {
		return err
	}
	// The image server is a child process, as a real one would be: in this process it would
	// share a scheduler with the measurements.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	srv := exec.Command(self, "-serve", img)
	out, err := srv.StdoutPipe()
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	line := make([]byte, 64)
	n, err := out.Read(line)
	if err != nil {
		return fmt.Errorf("image server: %w", err)
	}
	base := "http://" + strings.TrimSpace(string(line[:n])) + "/"

	fmt.Printf("# imagewrite: %s, %d CPUs (%s), kernel %s, Go %s, target %s; load average %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		runtime.NumCPU(), cpuModel(), kernel(), runtime.Version(), targetDesc(c), loadavg())
	defer func() { fmt.Printf("\nload average at the end: %s\n", loadavg()) }()

	log("generating images in %s", img)
	want := func(name string) bool { return slices.Contains(strings.Split(c.cases, ","), name) }
	raw := filepath.Join(img, "random.raw")
	if want("raw") {
		if err := genRandom(raw, c.rawSize, 1); err != nil {
			return err
		}
	}
	sparse := filepath.Join(img, "sparse.raw")
	if want("sparse") {
		if err := genExtents(sparse, c.sparseSize, c.sparseSize/10, 2); err != nil {
			return err
		}
	}
	qsrc := filepath.Join(c.dir, "qcow2-source.raw")
	qcows := []struct{ name, file string }{{"plain", "disk.qcow2"}, {"zstd clusters", "disk-zstd.qcow2"}}
	if want("qcow2") {
		if err := genExtents(qsrc, c.qcowVirtual, c.qcowData, 3); err != nil {
			return err
		}
		if err := sh("qemu-img", "convert", "-f", "raw", "-O", "qcow2", qsrc, filepath.Join(img, "disk.qcow2")); err != nil {
			return err
		}
		if err := sh("qemu-img", "convert", "-c", "-o", "compression_type=zstd", "-f", "raw", "-O", "qcow2", qsrc, filepath.Join(img, "disk-zstd.qcow2")); err != nil {
			return err
		}
	}
	if c.zlib && want("qcow2") {
		qcows = append(qcows, struct{ name, file string }{"zlib clusters", "disk-zlib.qcow2"})
		if err := sh("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", qsrc, filepath.Join(img, "disk-zlib.qcow2")); err != nil {
			return err
		}
	}
	sums := map[string]string{}
	for _, f := range []string{"random.raw", "sparse.raw", "disk.qcow2", "disk-zstd.qcow2", "disk-zlib.qcow2"} {
		if _, err := os.Stat(filepath.Join(img, f)); err == nil {
			if sums[f], err = sha256File(filepath.Join(img, f)); err != nil {
				return err
			}
		}
	}
	target := filepath.Join(c.dir, "target")
	shm := fmt.Sprintf("/dev/shm/ferrum-bench-%d", os.Getpid())
	defer os.Remove(shm)
	fresh := func(size int64) func() error {
		return func() error {
			if c.dev != "" {
				return nil
			}
			os.Remove(target)
			if err := os.WriteFile(target, nil, 0o644); err != nil {
				return err
			}
			return os.Truncate(target, size)
		}
	}
	if c.dev != "" {
		target = c.dev
	}
	agentCmd := func(file string) []string {
		return []string{c.agent, "write-image", "-q", "--source", base + file, "--checksum", "sha256:" + sums[file], "--target", target}
	}
	ddCmd := func(file string) []string {
		return []string{"bash", "-c", fmt.Sprintf("set -o pipefail; curl -sf %s | dd of=%s bs=4M iflag=fullblock oflag=direct conv=notrunc,fsync status=none", base+file, target)}
	}
	ironicCmd := func(file string) []string {
		return []string{"bash", "-c", fmt.Sprintf("set -e; curl -sf -o %[1]s %[2]s; sha256sum %[1]s >/dev/null; qemu-img convert -f qcow2 -O raw -n -t none %[1]s %[3]s; rm -f %[1]s", shm, base+file, target)}
	}

	if want("raw") {
		if err := benchRaw(c, raw, target, sums, fresh, agentCmd, ddCmd, base); err != nil {
			return err
		}
	}
	if want("qcow2") {
		if err := benchQCOW2(c, img, qsrc, target, qcows, fresh, agentCmd, ironicCmd); err != nil {
			return err
		}
	}
	if want("sparse") {
		if err := benchSparse(c, sparse, target, fresh, agentCmd, ddCmd); err != nil {
			return err
		}
	}
	return nil
}

type cmdFunc func(file string) []string

func benchRaw(c config, raw, target string, sums map[string]string, fresh func(int64) func() error, agentCmd, ddCmd cmdFunc, base string) error {
	fi, _ := os.Stat(raw)
	rawRes := []result{
		{name: "ferrum-agent write-image (sha256 verified, O_DIRECT)", virtual: fi.Size()},
		{name: "curl \\| dd bs=4M oflag=direct conv=fsync (no checksum)", virtual: fi.Size()},
		{name: "download + sha256, no write", virtual: fi.Size()},
		{name: "sha256 alone over the file in page cache (the ceiling)", virtual: fi.Size()},
	}
	for i := range c.runs {
		log("raw run %d", i+1)
		if err := measure(&rawRes[0], fresh(fi.Size()), agentCmd("random.raw")); err != nil {
			return err
		}
		if i == 0 {
			rawRes[0].verified = verify(raw, target, fi.Size())
		}
		if err := measure(&rawRes[1], fresh(fi.Size()), ddCmd("random.raw")); err != nil {
			return err
		}
		if i == 0 {
			rawRes[1].verified = verify(raw, target, fi.Size())
		}
		start := time.Now()
		if err := hashOnly(base+"random.raw", sums["random.raw"]); err != nil {
			return err
		}
		rawRes[2].walls = append(rawRes[2].walls, time.Since(start))
		rawRes[2].note = "Go, in the benchmark process"
		start = time.Now()
		if sum, err := sha256File(raw); err != nil || sum != sums["random.raw"] {
			return fmt.Errorf("sha256 of %s: %v", raw, err)
		}
		rawRes[3].walls = append(rawRes[3].walls, time.Since(start))
		rawRes[3].note = "Go, one core"
	}
	printTable(fmt.Sprintf("1. Raw image, %d MiB of random data", fi.Size()/mib), rawRes, 1)
	fmt.Printf("ferrum vs dd: **%.2f×**; ferrum vs sha256 alone: **%.0f %%**\n\n",
		rawRes[1].median().Seconds()/rawRes[0].median().Seconds(), 100*rawRes[3].median().Seconds()/rawRes[0].median().Seconds())

	return nil
}

func benchQCOW2(c config, img, qsrc, target string, qcows []struct{ name, file string }, fresh func(int64) func() error, agentCmd, ironicCmd cmdFunc) error {
	for _, q := range qcows {
		qfi, _ := os.Stat(filepath.Join(img, q.file))
		res := []result{
			{name: "ferrum-agent write-image (single pass, sha256 verified)", virtual: c.qcowVirtual},
			{name: "Ironic's way: curl to tmpfs, sha256sum, qemu-img convert -t none", virtual: c.qcowVirtual,
				note: fmt.Sprintf("+ %d MiB in tmpfs", qfi.Size()/mib)},
		}
		for i := range c.runs {
			log("qcow2 %s run %d", q.name, i+1)
			if err := measure(&res[0], fresh(c.qcowVirtual), agentCmd(q.file)); err != nil {
				return err
			}
			if i == 0 {
				res[0].verified = verify(qsrc, target, c.qcowVirtual)
			}
			if err := measure(&res[1], fresh(c.qcowVirtual), ironicCmd(q.file)); err != nil {
				return err
			}
			if i == 0 {
				res[1].verified = verify(qsrc, target, c.qcowVirtual)
			}
		}
		printTable(fmt.Sprintf("2. qcow2, %s: %d GiB virtual, %d MiB of data, %d MiB file", q.name, c.qcowVirtual/gib, c.qcowData/mib, qfi.Size()/mib), res, 1)
		fmt.Printf("ferrum vs Ironic's way: **%.2f×**, ferrum peak RSS **%.1f MiB**\n\n",
			res[1].median().Seconds()/res[0].median().Seconds(), float64(res[0].rss)/1024)
	}

	return nil
}

func benchSparse(c config, sparse, target string, fresh func(int64) func() error, agentCmd, ddCmd cmdFunc) error {
	sres := []result{
		{name: "ferrum-agent write-image (zero MiBs zeroed, not written)", virtual: c.sparseSize},
		{name: "curl \\| dd bs=4M oflag=direct conv=fsync", virtual: c.sparseSize},
	}
	for i := range c.runs {
		log("sparse run %d", i+1)
		if err := measure(&sres[0], fresh(c.sparseSize), agentCmd("sparse.raw")); err != nil {
			return err
		}
		if i == 0 {
			sres[0].verified = verify(sparse, target, c.sparseSize)
		}
		if err := measure(&sres[1], fresh(c.sparseSize), ddCmd("sparse.raw")); err != nil {
			return err
		}
	}
	printTable(fmt.Sprintf("3. Sparse raw image, %d MiB with %d MiB of data", c.sparseSize/mib, c.sparseSize/10/mib), sres, 1)
	fmt.Printf("ferrum vs dd: **%.2f×**\n", sres[1].median().Seconds()/sres[0].median().Seconds())
	return nil
}

// serve is the image server: http.FileServer (Range support, sendfile) on a loopback port.
func serve(dir string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "imagewrite serve:", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	http.Serve(ln, http.FileServer(http.Dir(dir)))
}

func log(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "imagewrite: "+format+"\n", args...)
}

// measure runs argv after prepare, recording wall time and the process tree's peak RSS.
func measure(r *result, prepare func() error, argv []string) error {
	if err := prepare(); err != nil {
		return err
	}
	syscall.Sync()
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
	}
	r.walls = append(r.walls, wall)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.rss = max(r.rss, ru.Maxrss)
	}
	return nil
}

// verify compares the first size bytes of target with want (qemu-img compare skips holes).
func verify(want, target string, size int64) string {
	out, err := exec.Command("qemu-img", "compare", "-q", "-f", "raw", "-F", "raw", want, target).CombinedOutput()
	if err != nil {
		return "MISMATCH " + strings.TrimSpace(string(out))
	}
	return "identical"
}

func printTable(title string, rs []result, ref int) {
	fmt.Printf("### %s\n\n| Method | Wall (median of %d) | MiB/s | Peak RSS | Output | Note |\n|---|---|---|---|---|---|\n", title, len(rs[0].walls))
	for _, r := range rs {
		rss := "—"
		if r.rss > 0 {
			rss = fmt.Sprintf("%.1f MiB", float64(r.rss)/1024)
		}
		v := r.verified
		if v == "" {
			v = "—"
		}
		fmt.Printf("| %s | %.2f s | %.0f | %s | %s | %s |\n", r.name, r.median().Seconds(), r.mibps(), rss, v, r.note)
	}
	fmt.Println()
}

func sh(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// genRandom writes size random bytes.
func genRandom(path string, size int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := mrand.NewChaCha8([32]byte{byte(seed)})
	buf := make([]byte, 4*mib)
	for off := int64(0); off < size; off += int64(len(buf)) {
		p := buf[:min(int64(len(buf)), size-off)]
		r.Read(p)
		if _, err := f.Write(p); err != nil {
			return err
		}
	}
	return f.Close()
}

// genExtents writes a sparse disk of size bytes holding data bytes in 6 extents spread over
// it: the first two thirds random, the rest random hex text (compresses about 2:1, a stand-in
// for OS files).
func genExtents(path string, size, data int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	r := mrand.NewChaCha8([32]byte{byte(seed)})
	const extents = 6
	per := data / extents &^ (mib - 1)
	buf := make([]byte, 4*mib)
	for e := int64(0); e < extents; e++ {
		off := e * (size / extents) &^ (mib - 1)
		text := e >= extents*2/3
		for done := int64(0); done < per; done += int64(len(buf)) {
			p := buf[:min(int64(len(buf)), per-done)]
			r.Read(p)
			if text {
				for i := range p {
					p[i] = "0123456789abcdef"[p[i]&15]
				}
			}
			if _, err := f.WriteAt(p, off+done); err != nil {
				return err
			}
		}
	}
	return f.Close()
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, make([]byte, 4*mib)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashOnly downloads url and hashes it, writing nothing: what the pipeline cannot beat.
func hashOnly(url, want string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	h := sha256.New()
	buf := make([]byte, 4*mib)
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{resp.Body}, buf); err != nil { // no WriterTo: 4 MiB reads
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return errors.New("hash-only download: checksum mismatch")
	}
	return nil
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func targetDesc(c config) string {
	if c.dev != "" {
		return "block device " + c.dev
	}
	out, _ := exec.Command("df", "--output=fstype,source", c.dir).Output()
	f := strings.Fields(string(out))
	if len(f) >= 4 {
		return fmt.Sprintf("a regular file on %s (%s)", f[2], f[3])
	}
	return "a regular file in " + c.dir
}
