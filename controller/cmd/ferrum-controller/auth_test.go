package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestNoauthRefusedOffLoopback: without http_basic the daemon refuses a non-loopback address.
func TestNoauthRefusedOffLoopback(t *testing.T) {
	out, err := exec.Command(binary(t), "--api-addr", "0.0.0.0:0", "--data-dir", t.TempDir()).CombinedOutput()
	if err == nil {
		t.Fatalf("daemon started with noauth on 0.0.0.0:\n%s", out)
	}
	if !strings.Contains(string(out), "http_basic") {
		t.Fatalf("error does not tell the operator what to do:\n%s", out)
	}
}

// TestHTTPBasicOverTLS: credentials are required, wrong ones get Ironic's 401 body without
// revealing whether the node exists, and the API is served over TLS.
func TestHTTPBasicOverTLS(t *testing.T) {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("admin:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, pool := selfSigned(t, dir)
	d := startDaemonTLS(t, pool, "--auth", "http_basic", "--htpasswd-file", htpasswd,
		"--tls-cert-file", certFile, "--tls-key-file", keyFile)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	do := func(path, user, pass string) (int, string) {
		req, _ := http.NewRequest("GET", d+path, nil)
		req.Header.Set("X-OpenStack-Ironic-API-Version", "1.78")
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := do("/", "", ""); code != 200 {
		t.Errorf("version discovery without credentials: %d, want 200", code)
	}
	code1, body1 := do("/v1/nodes/no-such-node", "admin", "wrong")
	code2, body2 := do("/v1/nodes", "", "")
	if code1 != 401 || code2 != 401 || body1 != body2 {
		t.Fatalf("bad credentials: %d %q / %d %q; want identical 401s", code1, body1, code2, body2)
	}
	var outer struct {
		ErrorMessage string `json:"error_message"`
	}
	if err := json.Unmarshal([]byte(body1), &outer); err != nil || !strings.Contains(outer.ErrorMessage, "faultstring") {
		t.Fatalf("401 body is not Ironic's: %q", body1)
	}
	if code, body := do("/v1/nodes", "admin", "s3cret"); code != 200 || !strings.Contains(body, `"nodes"`) {
		t.Fatalf("good credentials: %d %s", code, body)
	}
}

// startDaemonTLS is startDaemon for an HTTPS daemon; it returns the base URL.
func startDaemonTLS(t *testing.T, pool *x509.CertPool, extra ...string) string {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(binary(t), append([]string{"--api-addr", addr, "--data-dir", t.TempDir()}, extra...)...)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("daemon logs:\n%s", logs.String())
		}
	})
	url := "https://" + addr
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := client.Get(url + "/")
		if err == nil {
			resp.Body.Close()
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("TLS daemon not answering: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
