// Command ferrum-agent is the ramdisk agent: it reads the controller's address, the PKI root
// fingerprint and its one-time enrollment token from the kernel command line, enrolls, and
// keeps a mutual-TLS tunnel to the controller, running the commands it sends.
//
// Kernel command-line parameters:
//
//	ferrum.controller=HOST:PORT   the controller's agent address (ferrum-controller --agent-addr)
//	ferrum.fingerprint=HEX        SHA-256 of the PKI root certificate (ferrum-certs fingerprint)
//	ferrum.token=JWT              one-time enrollment token bound to this node
//
// Flags override the address and fingerprint (for testing); the token is read only from the
// command line file or FERRUM_TOKEN, never from argv.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/agent/diag"
	"github.com/ferrumhq/ferrum/agent/link"
	"github.com/ferrumhq/ferrum/agent/runner"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// version is set by the build (-ldflags "-X main.version=...").
var version = "dev"

// Kernel command-line parameter names.
const (
	ParamController  = "ferrum.controller"
	ParamFingerprint = "ferrum.fingerprint"
	ParamToken       = "ferrum.token"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "ferrum-agent:", err)
		os.Exit(1)
	}
}

// subcommands run one capability locally, for image builders and debugging; each lives in its
// own file. Without a subcommand the agent dials its controller.
var subcommands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) > 0 {
		if sub, ok := subcommands[args[0]]; ok {
			return sub(ctx, args[1:], os.Stdout, stderr)
		}
	}
	// The ramdisk has no swap: keep the heap near what is live (image writes need ~25 MiB,
	// a config drive up to its 64 MiB ISO). A soft limit: the GC works harder, nothing fails.
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(96 << 20)
	}
	fs := flag.NewFlagSet("ferrum-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cmdline := fs.String("cmdline", "/proc/cmdline", "file with the kernel command line")
	controller := fs.String("controller", "", "controller address HOST:PORT (overrides "+ParamController+")")
	fingerprint := fs.String("fingerprint", "", "root fingerprint (overrides "+ParamFingerprint+")")
	logFormat := fs.String("log-format", "json", "json or console")
	protocol := fs.Int("protocol", proto.Version, "highest protocol version to speak (testing)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(*cmdline)
	if err != nil {
		return fmt.Errorf("kernel command line: %w", err)
	}
	params := parseCmdline(string(b))
	if *controller == "" {
		*controller = params[ParamController]
	}
	if *fingerprint == "" {
		*fingerprint = params[ParamFingerprint]
	}
	token := params[ParamToken]
	if t := getenv("FERRUM_TOKEN"); t != "" {
		token = t
	}

	logs := diag.NewRing(1 << 20)
	var out io.Writer = stderr
	if *logFormat == "console" {
		out = zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.RFC3339}
	}
	log := zerolog.New(io.MultiWriter(out, logs)).With().Timestamp().Str("service", "ferrum-agent").Logger()

	r := runner.New(runner.Config{Log: log})
	defer r.Close()
	a, err := link.New(link.Config{Controller: *controller, Fingerprint: *fingerprint, Token: token,
		Runner: r, AgentVersion: version, ProtocolVersion: *protocol, Log: log})
	if err != nil {
		return err
	}
	diag.Register(r, diag.Info{AgentVersion: version, BootID: a.BootID(), Started: time.Now(), Running: r.Running}, logs)
	registerCapabilities(r, log)
	log.Info().Str("controller", *controller).Str("node_id", a.Node()).Str("version", version).Msg("ferrum-agent starting")
	err = a.Run(ctx)
	log.Info().Msg("ferrum-agent stopped")
	return err
}

// registerCapabilities registers the machine capabilities (inspect, write_image, RAID, BIOS,
// cleaning, ...) on r. Local subcommands use it too, so they run exactly what the controller
// would.
func registerCapabilities(r *runner.Runner, log zerolog.Logger) {
	registerImage(r, log)
	registerInspect(r, log)
	registerMachine(r, log)
	_ = r
	_ = log
}

// parseCmdline splits a kernel command line into key=value parameters; a bare word maps to "".
// Double quotes group a value with spaces, as the kernel does.
func parseCmdline(s string) map[string]string {
	out := map[string]string{}
	var cur strings.Builder
	quoted := false
	flush := func() {
		if cur.Len() == 0 {
			return
		}
		k, v, _ := strings.Cut(cur.String(), "=")
		out[k] = v
		cur.Reset()
	}
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case !quoted && (r == ' ' || r == '\t' || r == '\n'):
			flush()
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	return out
}
