// Command ferrum-certs manages Ferrum's PKI directory offline: create the root and
// intermediate CAs, issue the controller's certificate, mint a node's enrollment token, print
// the root fingerprint or a node's kernel command-line parameters.
//
//	ferrum-certs init            [-dir DIR] [-name NAME] [-ca-host HOST]
//	ferrum-certs controller-cert [-dir DIR] -names HOST,IP,... [-ttl 8760h]
//	ferrum-certs token           [-dir DIR] -node UUID [-ttl 2h]
//	ferrum-certs fingerprint     [-dir DIR]
//	ferrum-certs kernel-params   [-dir DIR] -node UUID -controller HOST:PORT [-ttl 2h]
//
// DIR defaults to ferrum-data/pki, where ferrum-controller keeps it. Tokens are secrets: they go
// to stdout only.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ferrumhq/ferrum/certs"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "ferrum-certs:", err)
		}
		os.Exit(2)
	}
}

const usage = "usage: ferrum-certs init|controller-cert|token|fingerprint|kernel-params [flags]"

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet("ferrum-certs "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "ferrum-data/pki", "PKI directory")
	switch args[0] {
	case "init":
		name := fs.String("name", certs.DefaultName, "CA name prefix")
		host := fs.String("ca-host", certs.DefaultCAHost, "host of the tokens' audience https://HOST/1.0/sign")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		p, err := certs.Init(*dir, certs.InitOptions{Name: *name, CAHost: *host})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "PKI created in %s\nroot fingerprint %s\nkeep %s/%s offline: only init needs it\n",
			*dir, p.Fingerprint(), *dir, certs.RootKeyFile)
		return nil

	case "controller-cert":
		names := fs.String("names", "", "comma-separated DNS names and IP addresses of the controller")
		ttl := fs.Duration("ttl", 365*24*time.Hour, "lifetime")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		p, err := certs.Load(*dir)
		if err != nil {
			return err
		}
		var list []string
		for _, n := range strings.Split(*names, ",") {
			if n = strings.TrimSpace(n); n != "" {
				list = append(list, n)
			}
		}
		c, err := p.IssueController(certs.ControllerOptions{DNSNames: list, TTL: *ttl})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "controller certificate %s valid until %s\n", c.Leaf.SerialNumber, c.Leaf.NotAfter.Format(time.RFC3339))
		return nil

	case "token", "kernel-params":
		node := fs.String("node", "", "node UUID")
		ttl := fs.Duration("ttl", 2*time.Hour, "token lifetime")
		controller := fs.String("controller", "", "controller's agent address HOST:PORT (kernel-params)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		p, err := certs.Load(*dir)
		if err != nil {
			return err
		}
		tok, err := p.Minter(*ttl).Mint(*node)
		if err != nil {
			return err
		}
		if args[0] == "token" {
			fmt.Fprintln(stdout, tok)
			return nil
		}
		if *controller == "" {
			return errors.New("kernel-params needs -controller")
		}
		fmt.Fprintf(stdout, "ferrum.controller=%s ferrum.fingerprint=%s ferrum.token=%s\n", *controller, p.Fingerprint(), tok)
		return nil

	case "fingerprint":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		p, err := certs.Load(*dir)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, p.Fingerprint())
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
