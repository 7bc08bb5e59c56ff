package proto

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxFrame is the largest frame either side writes or accepts.
const MaxFrame = 4 << 20

// ErrFrameTooLarge is returned for a frame over MaxFrame.
var ErrFrameTooLarge = errors.New("proto: frame too large")

// Envelope is one frame: the message type and its JSON body.
type Envelope struct {
	Type string          `json:"type"`
	Body json.RawMessage `json:"body,omitempty"`
}

// Marshal encodes m in an envelope (without the frame header).
func Marshal(m Message) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("proto: encode %s: %w", m.MessageType(), err)
	}
	return json.Marshal(Envelope{Type: m.MessageType(), Body: body})
}

// Write writes m as one frame: a 4-byte big-endian length, then the envelope's JSON. It makes
// a single Write call.
func Write(w io.Writer, m Message) error {
	b, err := Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > MaxFrame {
		return fmt.Errorf("proto: write %s: %w", m.MessageType(), ErrFrameTooLarge)
	}
	buf := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("proto: write %s: %w", m.MessageType(), err)
	}
	return nil
}

// Read reads one frame. io.EOF means the stream ended cleanly before a frame began.
func Read(r io.Reader) (Envelope, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Envelope{}, fmt.Errorf("proto: read frame header: %w", err)
		}
		return Envelope{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrame {
		return Envelope{}, fmt.Errorf("proto: frame of %d bytes: %w", n, ErrFrameTooLarge)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return Envelope{}, fmt.Errorf("proto: read frame: %w", noEOF(err))
	}
	return Unmarshal(b)
}

// Unmarshal decodes an envelope (a frame without its header).
func Unmarshal(b []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return Envelope{}, fmt.Errorf("proto: decode envelope: %w", err)
	}
	if e.Type == "" {
		return Envelope{}, errors.New("proto: envelope without type")
	}
	return e, nil
}

// Decode fills m from the envelope's body and validates it. The envelope's type must be m's.
// Unknown fields are ignored: they come from a newer peer.
func (e Envelope) Decode(m Message) error {
	if e.Type != m.MessageType() {
		return fmt.Errorf("proto: got %q, want %q: %w", e.Type, m.MessageType(), ErrUnexpected)
	}
	body := e.Body
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, m); err != nil {
		return fmt.Errorf("proto: decode %s: %w", e.Type, err)
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("proto: invalid %s: %w", e.Type, err)
	}
	return nil
}

// ErrUnexpected is wrapped by Decode when the frame holds another message type.
var ErrUnexpected = errors.New("unexpected message type")

// ReadAs reads one frame and decodes it into m.
func ReadAs(r io.Reader, m Message) error {
	e, err := Read(r)
	if err != nil {
		return err
	}
	return e.Decode(m)
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
