package vmtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// qmpConn is one QMP session; VM.QMP serializes its use.
type qmpConn struct {
	conn net.Conn
	rd   *bufio.Reader
}

// dialQMP connects to QEMU's QMP socket (retrying while QEMU creates it) and leaves
// capabilities negotiation mode.
func dialQMP(ctx context.Context, path string, exited <-chan struct{}) (*qmpConn, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			c := &qmpConn{conn: conn, rd: bufio.NewReader(conn)}
			if _, err := c.read(ctx); err != nil { // the greeting
				conn.Close()
				return nil, err
			}
			if _, err := c.do(ctx, "qmp_capabilities", nil); err != nil {
				conn.Close()
				return nil, err
			}
			return c, nil
		}
		select {
		case <-exited:
			return nil, errors.New("vmtest: qmp: QEMU has exited")
		case <-ctx.Done():
			return nil, fmt.Errorf("vmtest: qmp: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type qmpMessage struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string          `json:"event"`
	QMP   json.RawMessage `json:"QMP"`
}

func (c *qmpConn) read(ctx context.Context) (qmpMessage, error) {
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetReadDeadline(dl)
	} else {
		c.conn.SetReadDeadline(time.Time{})
	}
	line, err := c.rd.ReadBytes('\n')
	if err != nil {
		return qmpMessage{}, fmt.Errorf("vmtest: qmp: %w", err)
	}
	var m qmpMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("vmtest: qmp: %q: %w", line, err)
	}
	return m, nil
}

// do sends a command and returns its "return", skipping events.
func (c *qmpConn) do(ctx context.Context, command string, args any) ([]byte, error) {
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("vmtest: qmp %s: %w", command, err)
	}
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("vmtest: qmp %s: %w", command, err)
	}
	for {
		m, err := c.read(ctx)
		if err != nil {
			if command == "quit" { // QEMU may close before answering
				return nil, nil
			}
			return nil, err
		}
		switch {
		case m.Event != "":
			continue
		case m.Error != nil:
			return nil, fmt.Errorf("vmtest: qmp %s: %s: %s", command, m.Error.Class, m.Error.Desc)
		default:
			return m.Return, nil
		}
	}
}

func (c *qmpConn) close() { c.conn.Close() }
