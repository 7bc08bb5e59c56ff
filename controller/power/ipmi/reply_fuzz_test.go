package ipmi

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/controller/power/ipmi/bmcsim"
)

// garbageBMC answers every datagram with reply.
func garbageBMC(t testing.TB, reply []byte) (int, func()) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			_, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(reply, addr)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).Port, func() { pc.Close(); <-done }
}

// FuzzBMCReply: whatever a BMC sends back, a power status read ends in an error (or a state),
// never a panic or a hang.
func FuzzBMCReply(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x06, 0x00, 0xff, 0x07})
	// A Get Channel Authentication Capabilities reply, IPMI 1.5 framing.
	f.Add([]byte{0x06, 0x00, 0xff, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
		0x81, 0x1c, 0x63, 0x20, 0x04, 0x38, 0x00, 0x01, 0x97, 0x04, 0x03, 0x00, 0x00, 0x00, 0x00, 0xaf})
	// An RMCP+ open session response header with a short body.
	f.Add([]byte{0x06, 0x00, 0xff, 0x07, 0x06, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0x04, 0x00, 0x00, 0x04, 0x00, 0x00})
	d, err := New(Config{Log: zerolog.Nop(), ExchangeTimeout: 20 * time.Millisecond, Attempts: 1,
		CallTimeout: 500 * time.Millisecond, FailureThreshold: 1 << 30})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.Close() })
	f.Fuzz(func(t *testing.T, reply []byte) {
		port, stop := garbageBMC(t, reply)
		defer stop()
		n := &node.Node{DriverInfo: map[string]any{"ipmi_address": "127.0.0.1", "ipmi_port": strconv.Itoa(port),
			"ipmi_username": "admin", "ipmi_password": "password", "ipmi_cipher_suite": 3}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = d.Power().PowerState(context.Background(), n)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("PowerState hung on reply %x", reply)
		}
	})
}

// corruptingProxy forwards between clients and a real BMC and corrupts the k-th reply: with
// mode 0 it sends data instead, with mode 1 it XORs data into the reply, with mode 2 it cuts
// the reply to len(data) bytes. Later replies pass unchanged.
func corruptingProxy(t testing.TB, bmcPort int, k int, mode byte, data []byte) (int, func()) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: bmcPort})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		rep := make([]byte, 2048)
		for i := 0; ; i++ {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			up.Write(buf[:n])
			up.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			m, err := up.Read(rep)
			if err != nil {
				continue
			}
			out := rep[:m]
			if i == k {
				switch mode % 3 {
				case 0:
					out = data
				case 1:
					for j := range out {
						if len(data) > 0 {
							out[j] ^= data[j%len(data)]
						}
					}
				case 2:
					out = out[:min(len(out), len(data))]
				}
			}
			pc.WriteTo(out, addr)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).Port, func() { pc.Close(); up.Close(); <-done }
}

// FuzzCorruptedReply: a real session whose k-th reply (Get Channel Authentication
// Capabilities, Open Session, RAKP 2, RAKP 4, Set Session Privilege, Get Chassis Status, …) is
// replaced, flipped or cut ends in an error or a state, never a panic or a hang.
func FuzzCorruptedReply(f *testing.F) {
	for k := range 7 {
		for mode := range 3 {
			f.Add(uint8(k), uint8(mode), []byte{0x01, 0x80, 0x00, 0xff})
		}
	}
	f.Add(uint8(1), uint8(2), []byte{})
	d, err := New(Config{Log: zerolog.Nop(), ExchangeTimeout: 50 * time.Millisecond, Attempts: 1,
		CallTimeout: time.Second, FailureThreshold: 1 << 30})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.Close() })
	b := startBMC(f, bmcsimOptionsOn())
	f.Fuzz(func(t *testing.T, k, mode uint8, data []byte) {
		port, stop := corruptingProxy(t, b.Port, int(k%8), mode, data)
		defer stop()
		n := &node.Node{DriverInfo: map[string]any{"ipmi_address": "127.0.0.1", "ipmi_port": port,
			"ipmi_username": "admin", "ipmi_password": "password", "ipmi_cipher_suite": 3}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range 2 { // the second read reuses (or replaces) the session
				_, _ = d.Power().PowerState(context.Background(), n)
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("PowerState hung with reply %d corrupted (mode %d, %x)", k, mode, data)
		}
	})
}

func bmcsimOptionsOn() bmcsim.Options { return bmcsim.Options{PowerOn: true} }
