package boot

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
)

func rrq(name, mode string, opts ...string) []byte {
	b := []byte{0, opRRQ}
	for _, s := range append([]string{name, mode}, opts...) {
		b = append(append(b, s...), 0)
	}
	return b
}

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pkt     []byte
		want    Request
		wantErr string
	}{
		{name: "plain", pkt: rrq("boot.ipxe", "octet"), want: Request{Filename: "boot.ipxe", Mode: "octet"}},
		{name: "options", pkt: rrq("/undionly.kpxe", "OCTET", "tsize", "0", "BLKSIZE", "1432"),
			want: Request{Filename: "/undionly.kpxe", Mode: "octet", Options: map[string]string{"tsize": "0", "blksize": "1432"}}},
		{name: "netascii", pkt: rrq("a", "netascii"), want: Request{Filename: "a", Mode: "netascii"}},
		{name: "bad/write", pkt: append([]byte{0, opWRQ}, "x\x00octet\x00"...), wantErr: "write requests"},
		{name: "bad/data", pkt: []byte{0, opDATA, 0, 1}, wantErr: "not a request"},
		{name: "bad/short", pkt: []byte{0}, wantErr: "short"},
		{name: "bad/unterminated", pkt: []byte("\x00\x01file\x00octet"), wantErr: "NUL-terminated"},
		{name: "bad/no-mode", pkt: []byte("\x00\x01file\x00"), wantErr: "NUL-terminated"},
		{name: "bad/mail", pkt: rrq("f", "mail"), wantErr: "mode"},
		{name: "bad/empty-name", pkt: rrq("", "octet"), wantErr: "empty"},
		{name: "bad/binary-name", pkt: rrq("a\x01b", "octet"), wantErr: "printable"},
		{name: "bad/odd-options", pkt: rrq("f", "octet", "tsize"), wantErr: "without a value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRequest(tc.pkt)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseRequest(%q) = %+v, %v, want error %q", tc.pkt, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseRequest (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add(rrq("boot.ipxe", "octet"))
	f.Add(rrq("undionly.kpxe", "octet", "tsize", "0", "blksize", "1432"))
	f.Add([]byte{0, 2, 'x', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			return
		}
		if r.Filename == "" || (r.Mode != "octet" && r.Mode != "netascii") {
			t.Errorf("ParseRequest(%q) accepted %+v", b, r)
		}
		// A parsed request re-encodes to one that parses the same.
		var opts []string
		for k, v := range r.Options {
			opts = append(opts, k, v)
		}
		again, err := ParseRequest(rrq(r.Filename, r.Mode, opts...))
		if err != nil || !cmp.Equal(r, again) {
			t.Errorf("re-encoded %+v parses as %+v, %v", r, again, err)
		}
	})
}

func startTFTP(t *testing.T, files map[string]TFTPFile) *TFTP {
	t.Helper()
	srv, err := ListenTFTP(TFTPConfig{Addr: "127.0.0.1:0", Files: files, Timeout: 200 * time.Millisecond,
		Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// client is a minimal TFTP reader for tests: it sends req and collects DATA blocks, acking
// each (twice for the first, to exercise duplicate ACKs), until a short block.
func client(t *testing.T, srv net.Addr, req []byte, abortAfterOACK bool) (data []byte, oack map[string]string, errMsg string) {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteTo(req, srv); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 70000)
	var want uint16 = 1
	for {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("tftp client: %v", err)
		}
		ack := func(block uint16) {
			p := []byte{0, opACK, 0, 0}
			binary.BigEndian.PutUint16(p[2:], block)
			c.WriteTo(p, from)
		}
		switch binary.BigEndian.Uint16(buf) {
		case opERROR:
			return data, oack, string(bytes.TrimRight(buf[4:n], "\x00"))
		case opOACK:
			oack = map[string]string{}
			f := bytes.Split(buf[2:n-1], []byte{0})
			for i := 0; i+1 < len(f); i += 2 {
				oack[string(f[i])] = string(f[i+1])
			}
			if abortAfterOACK {
				c.WriteTo(errorPacket(errBadOption, "just wanted the size"), from)
				return nil, oack, ""
			}
			ack(0)
		case opDATA:
			block := binary.BigEndian.Uint16(buf[2:])
			if block == want {
				data = append(data, buf[4:n]...)
				want++
			}
			ack(block)
			if block == 1 {
				ack(block) // a duplicate: the server must not send block 2 twice
			}
			blk := 512
			if v, ok := oack["blksize"]; ok {
				blk = atoi(v)
			}
			if n-4 < blk {
				return data, oack, ""
			}
		}
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestTFTPTransfers(t *testing.T) {
	big := make([]byte, 3*1468+100)
	rand.Read(big)
	exact := bytes.Repeat([]byte("x"), 1024) // a multiple of 512: ends with an empty block
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "undionly.kpxe"), big, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startTFTP(t, map[string]TFTPFile{"boot.ipxe": {Data: []byte("#!ipxe\nchain http://x/boot/ipxe?mac=${net0/mac}\n")},
		"undionly.kpxe": {Path: filepath.Join(dir, "undionly.kpxe")}, "exact": {Data: exact},
		"gone": {Path: filepath.Join(dir, "gone")}})
	for _, tc := range []struct {
		name    string
		req     []byte
		abort   bool
		data    []byte
		oack    map[string]string
		errWant string
	}{
		{name: "chain-script/no-options", req: rrq("boot.ipxe", "octet"), data: []byte("#!ipxe\nchain http://x/boot/ipxe?mac=${net0/mac}\n")},
		{name: "binary/blksize-capped-and-tsize", req: rrq("/undionly.kpxe", "octet", "blksize", "65464", "tsize", "0"),
			data: big, oack: map[string]string{"blksize": "1468", "tsize": "4504"}},
		{name: "pxe-rom/tsize-then-abort", req: rrq("undionly.kpxe", "octet", "tsize", "0"), abort: true,
			oack: map[string]string{"tsize": "4504"}},
		{name: "exact-multiple/empty-last-block", req: rrq("exact", "octet"), data: exact},
		{name: "unknown-option/ignored", req: rrq("exact", "octet", "windowsize", "8"), data: exact},
		{name: "not-found", req: rrq("../../etc/passwd", "octet"), errWant: "file not found"},
		{name: "listed-but-missing", req: rrq("gone", "octet"), errWant: "file not found"},
		{name: "write-refused", req: append([]byte{0, opWRQ}, "boot.ipxe\x00octet\x00"...), errWant: "write requests"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, oack, errMsg := client(t, srv.Addr(), tc.req, tc.abort)
			if !strings.Contains(errMsg, tc.errWant) || (tc.errWant == "" && errMsg != "") {
				t.Fatalf("error %q, want %q", errMsg, tc.errWant)
			}
			if !bytes.Equal(data, tc.data) {
				t.Errorf("got %d bytes, want %d", len(data), len(tc.data))
			}
			if diff := cmp.Diff(tc.oack, oack); diff != "" {
				t.Errorf("OACK (-want +got):\n%s", diff)
			}
		})
	}
}

// A client that stops answering: the transfer is abandoned after its retries, and Close does
// not wait for it longer than that.
func TestTFTPCloseDuringTransfer(t *testing.T) {
	srv, err := ListenTFTP(TFTPConfig{Addr: "127.0.0.1:0", Files: map[string]TFTPFile{"f": {Data: make([]byte, 5000)}},
		Timeout: 10 * time.Second, Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteTo(rrq("f", "octet"), srv.Addr())
	buf := make([]byte, 600)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.ReadFrom(buf); err != nil {
		t.Fatalf("first block: %v", err)
	}
	start := time.Now()
	srv.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %s with a stalled transfer", d)
	}
}

// curl is a real, independent TFTP client (Debian's curl has tftp).
func TestTFTPWithCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("FERRUM_SLOW") != "" {
			t.Fatalf("FERRUM_SLOW is set but curl is missing: %v", err)
		}
		t.Skip("curl not installed; make test (FERRUM_SLOW=1) requires it")
	}
	big := make([]byte, 200_000) // 391 blocks of 512, 137 of 1468
	rand.Read(big)
	script := []byte("#!ipxe\nchain http://10.0.2.2:8080/boot/ipxe?mac=${net0/mac}\n")
	srv := startTFTP(t, map[string]TFTPFile{"boot.ipxe": {Data: script}, "ipxe.efi": {Data: big}})
	url := "tftp://" + srv.Addr().String()
	for _, tc := range []struct {
		name string
		args []string
		want []byte
	}{
		{"script/curl-defaults", []string{url + "/boot.ipxe"}, script},
		{"binary/no-options", []string{"--tftp-no-options", url + "/ipxe.efi"}, big},
		{"binary/blksize", []string{"--tftp-blksize", "1468", url + "/ipxe.efi"}, big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command("curl", append([]string{"-sS", "--max-time", "20"}, tc.args...)...).Output()
			if err != nil {
				t.Fatalf("curl %v: %v", tc.args, err)
			}
			if !bytes.Equal(out, tc.want) {
				t.Errorf("curl %v: %d bytes, want %d", tc.args, len(out), len(tc.want))
			}
		})
	}
	if out, err := exec.Command("curl", "-sS", "--max-time", "10", url+"/nope").CombinedOutput(); err == nil {
		t.Errorf("curl of a missing file succeeded: %q", out)
	}
}
