// Command demo runs Ferrum's whole provisioning lifecycle on a QEMU machine behind an ipmi_sim
// BMC (the same run as `make e2e`, package initramfs/e2e) and prints its progress as it goes:
//
//	make demo                     # or: go run ./initramfs/e2e/cmd/demo [-image-mib 1024] [-keep]
//
// It needs what initramfs/e2e/test-setup.sh installs and the ramdisk (`make initramfs`).
// Everything it starts is stopped before it exits; -keep leaves the work directory (controller
// log, the machine's console log, the BMC's files) for reading.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ferrumhq/ferrum/initramfs/e2e"
	"github.com/rs/zerolog"
)

func main() {
	imageMiB := flag.Int64("image-mib", 1024, "size of the deployed raw image in MiB")
	format := flag.String("format", "qcow2", "how the image is served: qcow2 or raw")
	keep := flag.Bool("keep", false, "keep the work directory")
	verbose := flag.Bool("v", false, "also log the machine's power events")
	flag.Parse()

	work, err := os.MkdirTemp("", "ferrum-demo-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	level := zerolog.WarnLevel
	if *verbose {
		level = zerolog.InfoLevel
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}).Level(level).With().Timestamp().Logger()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	fmt.Printf("Ferrum lifecycle demo: a QEMU machine (TCG) behind an ipmi_sim BMC, driven through the Ironic API.\n")
	fmt.Printf("Work directory: %s (controller.log, machine/console.log)\n\n", work)
	res, err := e2e.Run(ctx, e2e.Options{Work: work, ImageSize: *imageMiB << 20, Format: *format, Log: log,
		Report: func(msg string) { fmt.Printf("[%6.1fs] %s\n", time.Since(start).Seconds(), msg) }})
	if err != nil {
		fmt.Fprintf(os.Stderr, "\nFAILED: %v\nlogs: %s, %s\n", err, filepath.Join(work, "controller.log"), filepath.Join(work, "machine", "console.log"))
		os.Exit(1)
	}
	fmt.Printf("\nDone. Node %s went enroll → manageable → inspected → available → active → available.\n", res.NodeUUID)
	for _, m := range res.FirstBoot {
		fmt.Printf("  first PXE boot: %-16s at %5.1fs\n", m.What, m.At.Seconds())
	}
	for i, d := range res.BootToConnected {
		fmt.Printf("  PXE boot %d: power-on → agent connected  %5.1fs\n", i+1, d.Seconds())
	}
	fmt.Printf("  deploy: power-on → active (%d MiB %s image) %5.1fs (image write %.1fs)\n", res.ImageSize>>20, res.Format, res.PowerOnToActive.Seconds(), res.WriteImage.Seconds())
	fmt.Printf("  instance: power-on → marker            %5.1fs  %q\n", res.RebootToMarker.Seconds(), res.Marker)
	for _, p := range res.Phases {
		fmt.Printf("  %-10s %6.1fs\n", p.Name, p.Took.Seconds())
	}
	fmt.Printf("  whole lifecycle                         %5.1fs\n", res.Lifecycle.Seconds())
	if !*keep {
		os.RemoveAll(work)
	}
}
