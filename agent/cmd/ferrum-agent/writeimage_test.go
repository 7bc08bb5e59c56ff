package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/agent/runner"

	"github.com/ferrumhq/ferrum/shared/proto"
)

func TestWriteImageCommand(t *testing.T) {
	img := bytes.Repeat([]byte("ferrum disk image\n"), 300000)
	sum := sha256.Sum256(img)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "disk.raw", fileTime, bytes.NewReader(img))
	}))
	defer srv.Close()
	good := "sha256:" + hex.EncodeToString(sum[:])
	tests := []struct {
		name string
		args []string
		err  string // "" for success
	}{
		{"ok", []string{"--source", srv.URL + "/disk.raw", "--checksum", good, "-q"}, ""},
		{"ok-uppercase", []string{"--source", srv.URL + "/disk.raw", "--checksum", strings.ToUpper(good), "-q"}, ""},
		{"mismatch", []string{"--source", srv.URL + "/disk.raw", "--checksum", "sha256:" + strings.Repeat("0", 64)}, "checksum mismatch"},
		{"no-algo", []string{"--source", srv.URL + "/disk.raw", "--checksum", hex.EncodeToString(sum[:])}, "ALGO:HEX"},
		{"md5", []string{"--source", srv.URL + "/disk.raw", "--checksum", "md5:00"}, "os_hash_algo"},
		{"missing-source", []string{"--checksum", good}, "required"},
		{"qcow2-by-name", []string{"--source", srv.URL + "/disk.qcow2", "--checksum", good}, "no qcow2 header"},
		{"no-ca-file", []string{"--source", srv.URL + "/disk.raw", "--checksum", good, "--ca-bundle", "/nonexistent"}, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "disk")
			var stdout, stderr bytes.Buffer
			err := writeImageCommand(context.Background(), append(tc.args, "--target", target), &stdout, &stderr)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("write-image = %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("write-image: %v (stderr %s)", err, stderr.String())
			}
			got, _ := os.ReadFile(target)
			if !bytes.Equal(got, img) {
				t.Errorf("target holds %d bytes, want the %d of the image", len(got), len(img))
			}
			var res proto.WriteImageResult
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || res.WrittenBytes == 0 || res.OSHashValue != hex.EncodeToString(sum[:]) {
				t.Errorf("stdout %q: %+v, %v", stdout.String(), res, err)
			}
		})
	}
}

func TestGuessFormat(t *testing.T) {
	for in, want := range map[string]string{"http://h/a.qcow2": "qcow2", "http://h/a.qcow2.zst?x=1": "qcow2",
		"http://h/a.raw": "raw", "http://h/a.img": "raw", "http://h/a.raw.gz": "raw"} {
		if got := guessFormat(in); got != want {
			t.Errorf("guessFormat(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteImageRegistered(t *testing.T) {
	r := newTestRunner()
	defer r.Close()
	registerCapabilities(r, zerologNop)
	found := false
	for _, n := range r.Names() {
		found = found || n == proto.CmdWriteImage
	}
	if !found {
		t.Errorf("registerCapabilities did not register %s: %v", proto.CmdWriteImage, r.Names())
	}
}

var fileTime = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

var zerologNop = zerolog.Nop()

func newTestRunner() *runner.Runner { return runner.New(runner.Config{Log: zerologNop}) }
