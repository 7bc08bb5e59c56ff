package main

import (
	"bytes"
	"flag"
	stdlog "log"

	"github.com/rs/zerolog"
)

var flagHelp = flag.ErrHelp

// newStdLogger adapts zerolog for APIs that want a *log.Logger (net/http's ErrorLog).
func newStdLogger(l zerolog.Logger) *stdlog.Logger {
	return stdlog.New(zlWriter{l.With().Str("component", "http").Logger()}, "", 0)
}

type zlWriter struct{ l zerolog.Logger }

func (w zlWriter) Write(p []byte) (int, error) {
	w.l.Warn().Msg(string(bytes.TrimSpace(p)))
	return len(p), nil
}
