package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/agent/diag"
	"github.com/ferrumhq/ferrum/agent/runner"
	"github.com/ferrumhq/ferrum/shared/proto"
)

func init() { subcommands["exec"] = execCommand }

// errCommandFailed is returned by exec when the command ran and reported an error; the
// Result (with its error code) has been printed already.
var errCommandFailed = errors.New("command failed")

// errNotJSON is returned when ARGS_JSON does not parse.
var errNotJSON = errors.New("arguments are not valid JSON")

// execCommand is `ferrum-agent exec [-timeout D] NAME [ARGS_JSON]`: it runs one registered
// command locally, exactly as the controller would have it run, prints the proto.Result as one
// JSON line on stdout and progress on stderr. It exits non-zero when the command fails.
// Debugging and the VM tests (initramfs/vmtest) use it.
func execCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ferrum-agent exec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 0, "cancel the command after this long (0: never)")
	verbose := fs.Bool("v", false, "agent logs on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ferrum-agent exec [-timeout D] [-v] NAME [ARGS_JSON]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fs.Usage()
		return flag.ErrHelp
	}
	cmd := proto.Command{ID: "local-1", Name: fs.Arg(0), TimeoutMs: timeout.Milliseconds()}
	if fs.NArg() == 2 {
		if !json.Valid([]byte(fs.Arg(1))) {
			return fmt.Errorf("exec %s: %w", cmd.Name, errNotJSON)
		}
		cmd.Args = json.RawMessage(fs.Arg(1))
	}
	log := zerolog.Nop()
	if *verbose {
		log = zerolog.New(stderr).With().Timestamp().Str("service", "ferrum-agent").Logger()
	}
	res, err := execLocal(ctx, log, cmd, func(p proto.Progress) {
		fmt.Fprintf(stderr, "progress %5.1f%% %s\n", p.Percent, p.Message)
	})
	if err != nil {
		return err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("exec %s: encode result: %w", cmd.Name, err)
	}
	fmt.Fprintf(stdout, "%s\n", b)
	if res.Error != nil {
		return fmt.Errorf("%w: %s: %s", errCommandFailed, res.Error.Code, res.Error.Message)
	}
	return nil
}

// execLocal runs cmd on a fresh runner with the same commands the agent registers, waits for
// it (cancelling it when ctx ends) and closes the runner.
func execLocal(ctx context.Context, log zerolog.Logger, cmd proto.Command, progress func(proto.Progress)) (proto.Result, error) {
	r := runner.New(runner.Config{Log: log})
	defer r.Close()
	diag.Register(r, diag.Info{AgentVersion: version, BootID: "local", Started: time.Now(), Running: r.Running}, nil)
	registerCapabilities(r, log)
	j, perr := r.Start(cmd, progress)
	if perr != nil {
		return proto.Result{ID: cmd.ID, Error: perr}, nil
	}
	select {
	case <-j.Done():
	case <-ctx.Done():
		r.Cancel(cmd.ID)
		<-j.Done()
	}
	return j.Result(), nil
}
