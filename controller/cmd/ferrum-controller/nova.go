package main

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/config"
	"github.com/ferrumhq/ferrum/controller/nova"
)

// newNova starts the Nova power-update sender, or returns nil when notifications are off or
// no cloud is configured.
func newNova(cfg *config.Config, st store, reg prometheus.Registerer, log zerolog.Logger) (*nova.Sender, error) {
	if !cfg.NovaNotifications || cfg.NovaCloud == "" {
		log.Info().Bool("nova_notifications", cfg.NovaNotifications).Msg("Nova power-update events are off (set nova_cloud to send them)")
		return nil, nil
	}
	outbox, ok := st.(nova.Outbox)
	if !ok {
		return nil, fmt.Errorf("nova: the database %T keeps no power event outbox", st)
	}
	return nova.New(nova.Config{
		Outbox: outbox, Log: log, Registerer: reg,
		Cloud: nova.ClientConfig{Cloud: cfg.NovaCloud, CloudsFile: cfg.NovaCloudsFile, Region: cfg.NovaRegion,
			Interface: cfg.NovaInterface, Endpoint: cfg.NovaEndpoint},
		BatchSize: cfg.NovaBatchSize, MinBackoff: cfg.NovaMinBackoff, MaxBackoff: cfg.NovaMaxBackoff,
		PollInterval: cfg.NovaPollInterval, GiveUpAfter: cfg.NovaGiveUpAfter, Retention: cfg.NovaRetention,
	})
}
