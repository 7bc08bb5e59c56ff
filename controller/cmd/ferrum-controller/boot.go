package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/boot"
	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/config"
)

// ipxeDir is where Debian's ipxe package puts its binaries; the TFTP server offers those of
// ipxeFiles it finds there.
const ipxeDir = "/usr/lib/ipxe"

var ipxeFiles = []string{"undionly.kpxe", "ipxe.efi", "snponly.efi", "ipxe.pxe"}

// bootSide is the boot server's HTTP listener and the optional TFTP server.
type bootSide struct {
	srv    *http.Server
	served chan error
	tftp   *boot.TFTP
	log    zerolog.Logger
}

// startBoot serves the boot URLs when boot_addr is set and agents are on; otherwise it returns
// nil (whose Close does nothing).
func startBoot(cfg *config.Config, cond *conductor.Conductor, links boot.Links, agentsOn bool,
	reg *prometheus.Registry, log zerolog.Logger) (*bootSide, error) {
	if cfg.BootAddr == "" {
		return nil, nil
	}
	if !agentsOn {
		return nil, errors.New("boot_addr needs agents (agent_addr)")
	}
	for _, f := range []string{cfg.BootKernel, cfg.BootInitramfs} {
		if _, err := os.Stat(f); err != nil {
			log.Warn().Err(err).Str("file", f).Msg("boot: ramdisk file missing; machines cannot boot the agent until it exists (make initramfs)")
		}
	}
	bs, err := boot.New(boot.Config{Nodes: cond, Params: cond.AgentBootParams, Links: links,
		AdvertiseAddr: cfg.BootAdvertiseAddr, Kernel: cfg.BootKernel, Initrd: cfg.BootInitramfs,
		KernelArgs: cfg.BootKernelArgs, Log: log})
	if err != nil {
		return nil, err
	}
	registerBootMetrics(reg, bs)
	b := &bootSide{log: log, served: make(chan error, 1)}
	if cfg.BootTFTPAddr != "" {
		files := map[string]boot.TFTPFile{boot.ChainName: {Data: bs.ChainScript()}}
		var offered []string
		for _, name := range ipxeFiles {
			p := filepath.Join(ipxeDir, name)
			if _, err := os.Stat(p); err == nil {
				files[name] = boot.TFTPFile{Path: p}
				offered = append(offered, name)
			}
		}
		t, err := boot.ListenTFTP(boot.TFTPConfig{Addr: cfg.BootTFTPAddr, Files: files, Log: log})
		if err != nil {
			return nil, err
		}
		b.tftp = t
		log.Info().Str("tftp_addr", t.Addr().String()).Strs("ipxe_binaries", offered).Msg("serving TFTP")
	}
	ln, err := net.Listen("tcp", cfg.BootAddr)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("boot listener: %w", err)
	}
	b.srv = &http.Server{
		Handler:           bs.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      30 * time.Minute, // a ramdisk over a slow link
		IdleTimeout:       120 * time.Second,
		ErrorLog:          newStdLogger(log),
	}
	go func() { b.served <- b.srv.Serve(ln) }()
	log.Info().Str("boot_addr", ln.Addr().String()).Str("advertised", cfg.BootAdvertiseAddr).
		Str("kernel", cfg.BootKernel).Str("initramfs", cfg.BootInitramfs).Msg("serving network boot")
	return b, nil
}

// Close stops the HTTP server (waiting briefly for transfers in progress) and the TFTP server.
func (b *bootSide) Close() {
	if b == nil {
		return
	}
	if b.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := b.srv.Shutdown(ctx); err != nil {
			b.srv.Close()
		}
		cancel()
		if err := <-b.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error().Err(err).Msg("boot server failed")
		}
	}
	if b.tftp != nil {
		b.tftp.Close()
	}
}

func registerBootMetrics(reg *prometheus.Registry, bs *boot.Server) {
	scripts := func(result string, f func(boot.Stats) uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ferrum_boot_scripts_total",
			Help: "iPXE scripts served, by result: agent (the ramdisk boots), or exit to the next boot device " +
				"(unknown_mac, no_agent: the node expects no agent, failed: a lookup or the token failed).",
			ConstLabels: prometheus.Labels{"result": result}},
			func() float64 { return float64(f(bs.Stats())) }))
	}
	scripts("agent", func(s boot.Stats) uint64 { return s.Agent })
	scripts("unknown_mac", func(s boot.Stats) uint64 { return s.UnknownMAC })
	scripts("no_agent", func(s boot.Stats) uint64 { return s.NoAgent })
	scripts("failed", func(s boot.Stats) uint64 { return s.Failed })
	files := func(file string, f func(boot.Stats) uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ferrum_boot_files_total",
			Help: "Ramdisk file requests answered, by file.", ConstLabels: prometheus.Labels{"file": file}},
			func() float64 { return float64(f(bs.Stats())) }))
	}
	files(boot.KernelName, func(s boot.Stats) uint64 { return s.Kernels })
	files(boot.InitrdName, func(s boot.Stats) uint64 { return s.Initrds })
}
