package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/ferrumhq/ferrum/shared/proto"
)

// pair returns both ends of a session over loopback TCP.
func pair(t *testing.T, c Config) (agent, controller *yamux.Session) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		conn, _ := ln.Accept()
		ch <- conn
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := <-ch
	agent, err = Client(cc, c)
	if err != nil {
		t.Fatal(err)
	}
	controller, err = Server(sc, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Close(); controller.Close() })
	return agent, controller
}

// countingWriter records yamux's log lines.
type countingWriter struct {
	mu    sync.Mutex
	lines []string
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, string(p))
	return len(p), nil
}

func TestStreamsBothWays(t *testing.T) {
	agent, ctrl := pair(t, Config{})
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	// Both ends open streams; big bodies cross the coalescing writer intact.
	for _, dir := range []struct {
		name           string
		opener, accept *yamux.Session
	}{{"controller-opens", ctrl, agent}, {"agent-opens", agent, ctrl}} {
		t.Run(dir.name, func(t *testing.T) {
			errc := make(chan error, 1)
			go func() {
				st, err := dir.accept.AcceptStream()
				if err != nil {
					errc <- err
					return
				}
				_, err = io.Copy(st, st) // echo
				st.Close()
				errc <- err
			}()
			st, err := dir.opener.OpenStream()
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				st.Write(payload)
				st.Close()
			}()
			got, err := io.ReadAll(st)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("echo of %d bytes came back as %d different bytes", len(payload), len(got))
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestHello(t *testing.T) {
	tests := []struct {
		name         string
		agentVersion int
		ctrlVersion  int
		wantVersion  int
		wantFeatures []string
		wantCode     proto.Code
	}{
		{"same", proto.Version, proto.Version, proto.Version, proto.Features(proto.Version), ""},
		{"old-agent", 1, proto.Version, 1, proto.Features(1), ""},
		{"old-controller", proto.Version, 1, 1, proto.Features(1), ""},
		{"agent-from-the-future", 99, proto.Version, proto.Version, proto.Features(proto.Version), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			agent, ctrl := pair(t, Config{})
			go func() {
				st, h, err := AcceptHello(context.Background(), ctrl)
				if err != nil {
					return
				}
				ack := Negotiate(h, tc.ctrlVersion)
				ack.Node = "n"
				proto.Write(st, ack)
				st.Close()
			}()
			feat := proto.Features(min(tc.agentVersion, proto.Version))
			if tc.agentVersion > proto.Version {
				feat = append(slices.Clone(feat), "teleport")
			}
			ack, err := Hello(context.Background(), agent, proto.Hello{Version: tc.agentVersion, MinVersion: 1, Features: feat})
			if tc.wantCode != "" {
				if proto.CodeOf(err) != tc.wantCode {
					t.Fatalf("Hello = %v, want code %s", err, tc.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ack.Version != tc.wantVersion || !slices.Equal(ack.Features, tc.wantFeatures) {
				t.Errorf("ack = v%d %v, want v%d %v", ack.Version, ack.Features, tc.wantVersion, tc.wantFeatures)
			}
		})
	}
	t.Run("too-old", func(t *testing.T) {
		ack := Negotiate(proto.Hello{Version: 0, MinVersion: 0}, proto.Version)
		if ack.Error == nil || ack.Error.Code != proto.CodeUnsupported {
			t.Errorf("Negotiate(v0) = %+v, want unsupported", ack)
		}
	})
}

func TestHelloTimesOut(t *testing.T) {
	agent, ctrl := pair(t, Config{})
	go ctrl.AcceptStream() // accepts, never answers
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Hello(ctx, agent, proto.Hello{Version: 1, MinVersion: 1})
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("Hello = %v after %v, want a timeout", err, time.Since(start))
	}
}

func TestKeepaliveNoticesDeadPeer(t *testing.T) {
	logs := &countingWriter{}
	c := Config{KeepAliveInterval: 50 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, Log: logs}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		time.Sleep(5 * time.Second) // a peer that never answers pings
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := Client(conn, c)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.CloseChan():
	case <-time.After(3 * time.Second):
		t.Fatal("session to a silent peer still open after 3s")
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if !slices.ContainsFunc(logs.lines, func(l string) bool { return strings.Contains(l, "keepalive") }) {
		t.Errorf("yamux did not log the keepalive failure into Config.Log: %q", logs.lines)
	}
}

func TestYamuxConfigValid(t *testing.T) {
	for _, c := range []Config{{}, {KeepAliveInterval: time.Second, StreamWindow: 1 << 20, AcceptBacklog: 8, Log: io.Discard}} {
		if err := yamux.VerifyConfig(c.Yamux()); err != nil {
			t.Errorf("VerifyConfig(%+v) = %v", c, err)
		}
	}
}
