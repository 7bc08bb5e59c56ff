package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/agent/image"
	"github.com/ferrumhq/ferrum/agent/inspect"
	"github.com/ferrumhq/ferrum/agent/inspect/hints"
	"github.com/ferrumhq/ferrum/agent/runner"
	"github.com/ferrumhq/ferrum/shared/proto"
)

func init() { subcommands["inventory"] = inventoryCommand }

// registerInspect registers inspect and resolve_root_device on the machine's own root.
func registerInspect(r *runner.Runner, log zerolog.Logger) {
	if err := inspect.Register(r, inspect.Config{Log: log}); err != nil {
		log.Error().Err(err).Msg("inspection unavailable")
	}
}

// rootResolver resolves root device hints on root's disks for agent/image: bad hints are a
// bad request, no matching disk a failure, each with hints' explanation.
func rootResolver(root string) image.TargetResolver {
	resolve := hints.Resolver(root)
	return func(ctx context.Context, m map[string]any) (string, string, error) {
		path, reason, err := resolve(ctx, m)
		switch {
		case errors.Is(err, hints.ErrBadHints):
			return "", "", proto.Errorf(proto.CodeBadRequest, "%v", err)
		case errors.Is(err, hints.ErrNoMatch):
			return "", "", proto.Errorf(proto.CodeFailed, "%v", err)
		}
		return path, reason, err
	}
}

// inventoryCommand is `ferrum-agent inventory [--root DIR] [--root-device JSON]`: it prints
// the inventory the inspect command would return, as indented JSON, for image builders and
// debugging. --root reads a captured tree instead of the machine (agent/inspect/testdata).
func inventoryCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ferrum-agent inventory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", "/", "directory holding sys/, proc/ and dev/ (a captured tree, for testing)")
	hintsJSON := fs.String("root-device", "", `Ironic root device hints as JSON, e.g. '{"size": ">= 100"}', to report the root disk they choose`)
	verbose := fs.Bool("v", false, "agent logs on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ferrum-agent inventory [--root DIR] [--root-device JSON] [-v]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	var m map[string]any
	if *hintsJSON != "" {
		if err := json.Unmarshal([]byte(*hintsJSON), &m); err != nil {
			return fmt.Errorf("inventory: --root-device is not a JSON object: %w", err)
		}
	}
	hs, err := hints.Parse(m)
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	log := zerolog.Nop()
	if *verbose {
		log = zerolog.New(stderr).With().Timestamp().Str("service", "ferrum-agent").Logger()
	}
	in, err := inspect.New(inspect.Config{Log: log, Root: *root})
	if err != nil {
		return err
	}
	inv, err := in.Inventory(ctx, hs)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(inv)
}
