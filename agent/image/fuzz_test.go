package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"

	"github.com/ferrumhq/ferrum/agent/internal/qcow2"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// tinyQCOW2 builds a version 3 image of 512-byte clusters by hand: 64 KiB virtual, two L2
// tables, two data clusters, a zero cluster, a deflate-compressed cluster, and — when late —
// a data cluster stored before the L2 table that maps it (served from the window). It returns the image and the raw
// disk it describes.
func tinyQCOW2(t testing.TB, late bool) (img, disk []byte) {
	t.Helper()
	const cs = 512
	be := binary.BigEndian
	img = make([]byte, 16*cs)
	disk = make([]byte, 64<<10)
	copy(img, qcow2.Magic)
	be.PutUint32(img[4:], 3)
	be.PutUint32(img[20:], 9)
	be.PutUint64(img[24:], uint64(len(disk)))
	be.PutUint32(img[36:], 2)    // L1: 2 entries of 32 KiB
	be.PutUint64(img[40:], 1*cs) // L1
	be.PutUint64(img[48:], 2*cs) // refcount table
	be.PutUint32(img[56:], 1)    //
	be.PutUint32(img[96:], 4)    // refcount_order
	be.PutUint32(img[100:], 104) // header_length
	l2a, l2b, d1, d2, comp := uint64(3*cs), uint64(5*cs), uint64(4*cs), uint64(6*cs), uint64(7*cs)
	if late {
		l2a, d1 = 4*cs, 3*cs // the data before its table
	}
	be.PutUint64(img[1*cs:], 1<<63|l2a)
	be.PutUint64(img[1*cs+8:], 1<<63|l2b)
	fill := func(off uint64, b byte) []byte {
		p := bytes.Repeat([]byte{b}, cs)
		copy(img[off:], p)
		return p
	}
	// L2 a: entry 0 → d1, entry 3 → zero flag, entry 5 → compressed.
	be.PutUint64(img[l2a:], 1<<63|d1)
	be.PutUint64(img[l2a+3*8:], 1)
	copy(disk[0:], fill(d1, 0x11))
	var cbuf bytes.Buffer
	fw, _ := flate.NewWriter(&cbuf, flate.BestCompression)
	plain := bytes.Repeat([]byte("compressed cluster "), 27)[:cs]
	fw.Write(plain)
	fw.Close()
	copy(img[comp:], cbuf.Bytes())
	sectors := uint64((int(comp%512)+cbuf.Len()+511)/512) - 1
	be.PutUint64(img[l2a+5*8:], 1<<62|sectors<<(62-1)|comp)
	copy(disk[5*cs:], plain)
	// L2 b (guest 32 KiB): entry 1 → d2.
	be.PutUint64(img[l2b+8:], 1<<63|d2)
	copy(disk[32<<10+cs:], fill(d2, 0x22))
	return img, disk
}

func TestWriteQCOW2Handmade(t *testing.T) {
	for _, late := range []bool{false, true} {
		img, disk := tinyQCOW2(t, late)
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "tiny.qcow2"), img)
		srv := serve(t, dir, false, false)
		target := filepath.Join(dir, "target")
		writeFile(t, target, bytes.Repeat([]byte{0xee}, 100<<10))
		sum := sha256.Sum256(img)
		res, err := newWriter(t).Write(context.Background(), proto.WriteImageArgs{URLs: []string{srv.URL + "/tiny.qcow2"},
			DiskFormat: "qcow2", OSHashAlgo: "sha256", OSHashValue: hex.EncodeToString(sum[:]), Target: target}, nil)
		if err != nil {
			t.Fatalf("late %v: Write: %v", late, err)
		}
		got, _ := os.ReadFile(target)
		if !bytes.Equal(got, disk) {
			t.Errorf("late %v: target differs from the disk (%d bytes, want %d)", late, len(got), len(disk))
		}
		if res.VirtualSize != int64(len(disk)) || res.WrittenBytes != 3*512 {
			t.Errorf("late %v: result %+v, want virtual %d and 3 clusters written", late, res, len(disk))
		}
	}
}

// FuzzQCOW2Stream feeds mutated qcow2 files to the streamer over HTTP: it must end with nil
// or a coded error, never panic or hang, whatever the tables say. Each input is a whole
// download; run with -fuzzminimizetime 0 (or a few seconds) so minimizing does not eat the time.
func FuzzQCOW2Stream(f *testing.F) {
	for _, late := range []bool{false, true} {
		img, _ := tinyQCOW2(f, late)
		f.Add(img)
	}
	f.Add([]byte(qcow2.Magic))
	var cur atomic.Pointer[[]byte]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "f.qcow2", time.Time{}, bytes.NewReader(*cur.Load()))
	}))
	defer srv.Close()
	dir := f.TempDir()
	w, err := New(Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cur.Store(&data)
		sum := sha256.Sum256(data)
		target := filepath.Join(dir, "target")
		os.Remove(target)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := w.Write(ctx, proto.WriteImageArgs{URLs: []string{srv.URL + "/f.qcow2"}, DiskFormat: "qcow2",
			OSHashAlgo: "sha256", OSHashValue: hex.EncodeToString(sum[:]), Target: target}, nil)
		if err != nil && proto.CodeOf(err) == "" {
			t.Fatalf("Write error without a code: %v", err)
		}
		if proto.CodeOf(err) == proto.CodeTimeout {
			t.Fatalf("Write hung: %v", err)
		}
	})
}
