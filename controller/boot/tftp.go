package boot

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// A read-only TFTP server (RFC 1350) with the option extension (RFC 2347) for blksize
// (RFC 2348), tsize and timeout (RFC 2349), which PXE ROMs and iPXE use. It serves a fixed set
// of files by name — nothing is looked up on disk by a client-chosen path.

// TFTP opcodes and error codes.
const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6

	errNotDefined = 0
	errNotFound   = 1
	errAccess     = 2
	errIllegalOp  = 4
	errUnknownTID = 5
	errBadOption  = 8
)

// maxBlockSize keeps DATA packets within a 1500-byte Ethernet frame (1468 + 4 + 8 + 20).
const maxBlockSize = 1468

// Request is a parsed read request.
type Request struct {
	Filename string
	Mode     string            // lower case: octet or netascii (served as octet: no CR/LF translation)
	Options  map[string]string // keys lower case, in the order irrelevant
}

// ParseRequest parses a TFTP RRQ packet. WRQ and other opcodes are refused with an error.
func ParseRequest(b []byte) (Request, error) {
	if len(b) < 2 {
		return Request{}, errors.New("tftp: short packet")
	}
	switch op := binary.BigEndian.Uint16(b); op {
	case opRRQ:
	case opWRQ:
		return Request{}, errWrite
	default:
		return Request{}, fmt.Errorf("tftp: opcode %d is not a request", op)
	}
	fields := bytes.Split(b[2:], []byte{0})
	// NUL-terminated strings: the last element after the final NUL is empty.
	if len(fields) < 3 || len(fields[len(fields)-1]) != 0 {
		return Request{}, errors.New("tftp: request not NUL-terminated")
	}
	fields = fields[:len(fields)-1]
	if len(fields)%2 != 0 {
		return Request{}, errors.New("tftp: option without a value")
	}
	r := Request{Filename: string(fields[0]), Mode: strings.ToLower(string(fields[1]))}
	if r.Filename == "" || len(r.Filename) > 255 {
		return Request{}, errors.New("tftp: file name empty or too long")
	}
	for _, c := range r.Filename {
		if c < ' ' || c > 0x7e {
			return Request{}, errors.New("tftp: file name not printable ASCII")
		}
	}
	if r.Mode != "octet" && r.Mode != "netascii" {
		return Request{}, fmt.Errorf("tftp: mode %q not supported", r.Mode)
	}
	for i := 2; i < len(fields); i += 2 {
		if r.Options == nil {
			r.Options = map[string]string{}
		}
		k := strings.ToLower(string(fields[i]))
		if k == "" {
			return Request{}, errors.New("tftp: empty option name")
		}
		r.Options[k] = string(fields[i+1])
	}
	return r, nil
}

var errWrite = errors.New("tftp: write requests are not accepted")

// TFTPConfig configures a TFTP server.
type TFTPConfig struct {
	// Addr is where to listen (UDP HOST:PORT). Required.
	Addr string
	// Files maps the names clients may ask for (a leading '/' is ignored) to their content:
	// Static bytes or a path read at each request.
	Files map[string]TFTPFile
	// Timeout is the retransmission interval, unless the client asks for another [2s];
	// Retries the retransmissions before a transfer is abandoned [5].
	Timeout time.Duration
	Retries int
	// MaxTransfers bounds the transfers in progress [64]; requests beyond are refused.
	MaxTransfers int
	Log          zerolog.Logger
}

// TFTPFile is one file the server offers: Data, or else the file at Path.
type TFTPFile struct {
	Data []byte
	Path string
}

// TFTP is a running read-only TFTP server. Close stops it and waits for its transfers.
type TFTP struct {
	cfg   TFTPConfig
	log   zerolog.Logger
	conn  *net.UDPConn
	slots chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// ListenTFTP checks cfg, binds the address and starts serving.
func ListenTFTP(cfg TFTPConfig) (*TFTP, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 5
	}
	if cfg.MaxTransfers <= 0 {
		cfg.MaxTransfers = 64
	}
	if len(cfg.Files) == 0 {
		return nil, errors.New("tftp: no files to serve")
	}
	ua, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("tftp: address %q: %w", cfg.Addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("tftp: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &TFTP{cfg: cfg, log: cfg.Log.With().Str("component", "tftp").Logger(), conn: conn,
		slots: make(chan struct{}, cfg.MaxTransfers), ctx: ctx, cancel: cancel}
	t.wg.Add(1)
	go t.serve()
	return t, nil
}

// Addr is the bound UDP address.
func (t *TFTP) Addr() net.Addr { return t.conn.LocalAddr() }

// Close stops listening, abandons transfers in progress and waits for them.
func (t *TFTP) Close() error {
	t.once.Do(func() {
		t.cancel()
		t.conn.Close()
	})
	t.wg.Wait()
	return nil
}

func (t *TFTP) serve() {
	defer t.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, peer, err := t.conn.ReadFromUDP(buf)
		if err != nil {
			if t.ctx.Err() != nil {
				return
			}
			t.log.Warn().Err(err).Msg("tftp: read failed")
			continue
		}
		req, err := ParseRequest(buf[:n])
		if err != nil {
			code := uint16(errIllegalOp)
			if errors.Is(err, errWrite) {
				code = errAccess
			}
			// Debug: a stray or hostile packet must not flood the log.
			t.log.Debug().Err(err).Str("client", peer.String()).Msg("tftp: request refused")
			t.conn.WriteToUDP(errorPacket(code, err.Error()), peer)
			continue
		}
		select {
		case t.slots <- struct{}{}:
		default:
			t.log.Warn().Str("client", peer.String()).Msg("tftp: too many transfers; request refused")
			t.conn.WriteToUDP(errorPacket(errNotDefined, "server busy"), peer)
			continue
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			defer func() { <-t.slots }()
			t.transfer(peer, req)
		}()
	}
}

func errorPacket(code uint16, msg string) []byte {
	b := make([]byte, 4, 5+len(msg))
	binary.BigEndian.PutUint16(b, opERROR)
	binary.BigEndian.PutUint16(b[2:], code)
	b = append(b, msg...)
	return append(b, 0)
}

func (t *TFTP) content(name string) ([]byte, error) {
	f, ok := t.cfg.Files[strings.TrimPrefix(name, "/")]
	if !ok {
		return nil, os.ErrNotExist
	}
	if f.Data != nil {
		return f.Data, nil
	}
	return os.ReadFile(f.Path)
}

// transfer sends one file to peer from a new port (the transfer ID), lock-step.
func (t *TFTP) transfer(peer *net.UDPAddr, req Request) {
	log := t.log.With().Str("client", peer.String()).Str("file", req.Filename).Logger()
	local := &net.UDPAddr{IP: t.conn.LocalAddr().(*net.UDPAddr).IP}
	conn, err := net.ListenUDP("udp", local)
	if err != nil {
		log.Error().Err(err).Msg("tftp: transfer socket")
		return
	}
	defer conn.Close()
	// Closing (not a deadline, which the next retransmission would push back) ends a blocked read.
	stop := context.AfterFunc(t.ctx, func() { conn.Close() })
	defer stop()

	data, err := t.content(req.Filename)
	if err != nil {
		code, msg := uint16(errNotFound), "file not found"
		if !errors.Is(err, os.ErrNotExist) {
			code, msg = errNotDefined, "file unavailable"
			log.Error().Err(err).Msg("tftp: reading the file failed")
		} else {
			log.Info().Msg("tftp: no such file")
		}
		conn.WriteToUDP(errorPacket(code, msg), peer)
		return
	}

	blk, timeout := 512, t.cfg.Timeout
	oack := []byte{0, opOACK}
	for _, k := range []string{"blksize", "tsize", "timeout"} {
		v, ok := req.Options[k]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			continue // an unusable option is ignored (RFC 2347)
		case k == "blksize" && n >= 8:
			blk = min(n, maxBlockSize)
			v = strconv.Itoa(blk)
		case k == "tsize":
			v = strconv.Itoa(len(data))
		case k == "timeout" && n >= 1 && n <= 255:
			timeout = time.Duration(n) * time.Second
		default:
			continue
		}
		oack = append(append(append(append(oack, k...), 0), v...), 0)
	}

	ack := make([]byte, 1500)
	// exchange sends pkt until peer acknowledges block want (or gives up).
	exchange := func(pkt []byte, want uint16) error {
		for try := 0; try <= t.cfg.Retries; try++ {
			if _, err := conn.WriteToUDP(pkt, peer); err != nil {
				return err
			}
			conn.SetReadDeadline(time.Now().Add(timeout))
			for {
				n, from, err := conn.ReadFromUDP(ack)
				if err != nil {
					if t.ctx.Err() != nil {
						return t.ctx.Err()
					}
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						break // retransmit
					}
					return err
				}
				if !from.IP.Equal(peer.IP) || from.Port != peer.Port {
					conn.WriteToUDP(errorPacket(errUnknownTID, "unknown transfer ID"), from)
					continue
				}
				if n < 4 {
					continue
				}
				switch binary.BigEndian.Uint16(ack) {
				case opACK:
					if binary.BigEndian.Uint16(ack[2:]) == want {
						return nil
					}
					// A duplicate ACK of an earlier block: keep waiting (no Sorcerer's Apprentice).
				case opERROR:
					return errPeerAborted
				}
			}
		}
		return errors.New("tftp: no acknowledgement")
	}

	start := time.Now()
	if len(oack) > 2 {
		if err := exchange(oack, 0); err != nil {
			t.ended(log, err)
			return
		}
	}
	for block, off := uint16(1), 0; ; block++ {
		end := min(off+blk, len(data))
		pkt := make([]byte, 4, 4+end-off)
		binary.BigEndian.PutUint16(pkt, opDATA)
		binary.BigEndian.PutUint16(pkt[2:], block)
		pkt = append(pkt, data[off:end]...)
		if err := exchange(pkt, block); err != nil {
			t.ended(log, err)
			return
		}
		if end-off < blk {
			break
		}
		off = end
	}
	log.Info().Int("bytes", len(data)).Int("blksize", blk).Dur("took", time.Since(start)).Msg("tftp: sent")
}

var errPeerAborted = errors.New("tftp: the client aborted the transfer")

func (t *TFTP) ended(log zerolog.Logger, err error) {
	switch {
	case errors.Is(err, errPeerAborted):
		// PXE ROMs ask for tsize, then abort: normal.
		log.Debug().Msg("tftp: the client ended the transfer")
	case t.ctx.Err() != nil:
	default:
		log.Warn().Err(err).Msg("tftp: transfer failed")
	}
}
