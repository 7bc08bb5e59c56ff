// Command ferrum-controller runs the Ferrum controller: the Ironic-compatible API, the conductor
// and its store. With no configuration it keeps SQLite in ./ferrum-data and listens on
// 127.0.0.1:6385 without authentication.
//
// This is the only package that imports every adapter; it wires them and runs until SIGTERM.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/agentdeploy"
	"github.com/ferrumhq/ferrum/controller/api"
	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/config"
	"github.com/ferrumhq/ferrum/controller/hardware/fake"
	"github.com/ferrumhq/ferrum/controller/httpauth"
	"github.com/ferrumhq/ferrum/controller/metrics"
	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/controller/power/ipmi"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "ferrum-controller:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// run starts everything, serves until ctx ends, then shuts down in reverse order.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := config.Load(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flagHelp) {
			return nil
		}
		return err
	}
	log := newLogger(cfg, stderr)

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	agents, err := newAgentSide(cfg, st, log)
	if err != nil {
		return err
	}
	defer agents.Close() // after the conductor, whose tasks may still talk to agents

	hw, err := fake.New(fake.Config{PowerDelay: cfg.FakePowerDelay, DeployDelay: cfg.FakeDeployDelay,
		CleanDelay: cfg.FakeCleanDelay, InspectDelay: cfg.FakeInspectDelay})
	if err != nil {
		return err
	}
	bmcs, err := ipmi.New(ipmi.Config{Log: log, ExchangeTimeout: cfg.IPMITimeout, Attempts: cfg.IPMIAttempts,
		CallTimeout: cfg.IPMICallTimeout, FailureThreshold: cfg.IPMIFailureThreshold,
		ProbeInterval: cfg.IPMIProbeInterval, PowerTimeout: cfg.PowerStateChangeTimeout,
		SoftPowerOffTimeout: cfg.SoftPowerOffTimeout, DefaultBootMode: cfg.DefaultBootMode})
	if err != nil {
		return err
	}
	defer bmcs.Close() // after the conductor has stopped using it
	var others func(*node.Node, *conductor.Driver) error
	if ag := agents.agents(); ag != nil {
		acfg := agentdeploy.Config{Agents: ag, Log: log}
		if p := cfg.EraseDevicesPriority; p >= 0 {
			acfg.EraseDevicesPriority = &p
		}
		if p := cfg.EraseDevicesMetadataPriority; p >= 0 {
			acfg.EraseDevicesMetadataPriority = &p
		}
		ad, err := agentdeploy.New(acfg)
		if err != nil {
			return err
		}
		others = func(n *node.Node, d *conductor.Driver) error { ad.Fill(n, d); return nil }
	}
	ipmiHW, err := ipmi.NewHardware(ipmi.HardwareConfig{Driver: bmcs, Others: others})
	if err != nil {
		return err
	}
	m, err := metrics.New(metrics.Config{})
	if err != nil {
		return err
	}
	novaSender, err := newNova(cfg, st, m.Registry(), log)
	if err != nil {
		return err
	}
	var notifier conductor.Notifier
	if novaSender != nil {
		defer novaSender.Close() // after the conductor: events recorded until then go out at the next start
		notifier = novaSender
	}
	cond, err := conductor.New(conductor.Config{
		Store: st, Hostname: cfg.Hostname, ConductorGroup: cfg.ConductorGroup,
		Notifier: notifier, PowerEvents: novaSender != nil,
		HardwareTypes: []conductor.HardwareType{hw, ipmiHW}, Log: log, Agents: agents.agents(),
		Workers: cfg.Workers, LockTimeout: cfg.LockTimeout, LockRetries: cfg.LockRetries,
		LockRetryInterval: cfg.LockRetryInterval, CheckInterval: cfg.CheckInterval,
		DeployCallbackTimeout: cfg.DeployCallbackTimeout, CleanCallbackTimeout: cfg.CleanCallbackTimeout,
		InspectWaitTimeout: cfg.InspectWaitTimeout, RescueCallbackTimeout: cfg.RescueCallbackTimeout,
		ShutdownTimeout: cfg.ShutdownTimeout, HeartbeatInterval: cfg.HeartbeatInterval,
		HeartbeatTimeout: cfg.HeartbeatTimeout, DisableAutomatedClean: !cfg.AutomatedClean,
		AllowDeletingAvailable: cfg.AllowDeletingAvailable, DefaultResourceClass: cfg.DefaultResourceClass,
		PowerSyncInterval: orOff(cfg.PowerSyncInterval), PowerSyncWorkers: cfg.PowerSyncWorkers,
		PowerSyncSlowWorkers: cfg.PowerSyncSlowWorkers, PowerSyncMaxRetries: orNone(cfg.PowerStateSyncMaxRetries),
		PowerSyncAcceptHardwareState: !cfg.ForcePowerStateDuringSync,
		PowerFailureRecoveryInterval: orOff(cfg.PowerFailureRecoveryInterval),
	})
	if err != nil {
		return err
	}
	if err := cond.Start(ctx); err != nil {
		return err
	}
	defer cond.Close()
	agents.start(cond)
	bootSrv, err := startBoot(cfg, cond, st, agents.agents() != nil, m.Registry(), log)
	if err != nil {
		return err
	}
	defer bootSrv.Close() // before the conductor: scripts mint tokens through it

	handler, err := newHandler(cfg, cond, m, log)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          newStdLogger(log),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("api listener: %w", err)
	}
	scheme := "http"
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("api tls: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	log.Info().Str("url", scheme+"://"+ln.Addr().String()).Str("auth", cfg.Auth).
		Str("database", cfg.DatabaseForLog()).Str("hostname", cfg.Hostname).Msg("ferrum-controller serving the API")

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("api server: %w", err)
	case <-ctx.Done():
	}
	log.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn().Err(err).Msg("API shutdown incomplete")
	}
	<-served
	return nil
}

// orOff maps the settings' "0 disables" to the conductor's negative interval.
func orOff(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// orNone maps a setting of 0 retries to the conductor's negative count (its 0 is the default).
func orNone(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// newHandler stacks metrics → authentication → the API, with /metrics beside the API.
func newHandler(cfg *config.Config, cond *conductor.Conductor, m *metrics.Metrics, log zerolog.Logger) (http.Handler, error) {
	registerConductorMetrics(m.Registry(), cond)
	apiH, err := api.New(api.Config{Backend: cond, Log: log, Hostname: cfg.Hostname, MaxBodyBytes: cfg.MaxBodyBytes})
	if err != nil {
		return nil, err
	}
	auth, err := httpauth.New(httpauth.Config{Mode: cfg.Auth, HtpasswdFile: cfg.HtpasswdFile,
		ListenAddr: cfg.APIAddr, Log: log})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.Handle("/", apiH)
	return m.Middleware(auth.Middleware(mux)), nil
}

func registerConductorMetrics(reg *prometheus.Registry, c *conductor.Conductor) {
	gauge := func(name, help string, f func(conductor.Stats) float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return f(c.Stats()) }))
	}
	counter := func(name, help string, f func(conductor.Stats) float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return f(c.Stats()) }))
	}
	gauge("ferrum_conductor_workers", "Size of the conductor's worker pool.", func(s conductor.Stats) float64 { return float64(s.Workers) })
	gauge("ferrum_conductor_workers_busy", "Workers running a task.", func(s conductor.Stats) float64 { return float64(s.Busy) })
	counter("ferrum_conductor_tasks_started_total", "Async tasks started.", func(s conductor.Stats) float64 { return float64(s.Started) })
	counter("ferrum_conductor_tasks_failed_total", "Async tasks that ended in a failure state.", func(s conductor.Stats) float64 { return float64(s.Failed) })
	counter("ferrum_conductor_tasks_rejected_total", "Tasks refused because no worker was free (HTTP 503).", func(s conductor.Stats) float64 { return float64(s.Rejected) })
}

// newLogger writes JSON, or human-readable lines when stderr is a terminal (log_format auto).
func newLogger(cfg *config.Config, w io.Writer) zerolog.Logger {
	lvl, _ := zerolog.ParseLevel(cfg.LogLevel)
	console := cfg.LogFormat == "console"
	if cfg.LogFormat == "auto" {
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			console = true
		}
	}
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("service", "ferrum-controller").Logger()
}
