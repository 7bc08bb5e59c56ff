package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/config"
	"github.com/ferrumhq/ferrum/controller/store/postgres"
	"github.com/ferrumhq/ferrum/controller/store/sqlite"
)

// store is what the wiring needs of a database: the conductor's Store, and what the agent
// side (tokens, revocations, link records) keeps in it.
type store interface {
	conductor.Store
	conductor.AgentLinkStore
	CloseAgentLinks(ctx context.Context, at time.Time) error
	UseToken(ctx context.Context, id string, expires time.Time) (bool, error)
	IsRevoked(ctx context.Context, serial string) (bool, error)
	RevokeCertificate(ctx context.Context, serial, reason string) error
	Close() error
}

var (
	_ store = (*sqlite.Store)(nil)
	_ store = (*postgres.Store)(nil)
)

// openStore opens PostgreSQL when the database setting is a postgres:// URL (several
// controllers may share it), else the SQLite file (the default, one controller).
func openStore(ctx context.Context, cfg *config.Config, log zerolog.Logger) (store, error) {
	if dsn := cfg.PostgresDSN(); dsn != "" {
		st, err := postgres.Open(ctx, postgres.Config{DSN: dsn, Log: log})
		if err != nil {
			return nil, err
		}
		return sharedStore{st}, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	return sqlite.Open(ctx, sqlite.Config{Path: cfg.Database, Log: log})
}

// sharedStore is a database other controllers use too. Its agent link records are not closed
// at start-up: the links recorded as open may be other controllers' live sessions.
type sharedStore struct{ *postgres.Store }

func (sharedStore) CloseAgentLinks(context.Context, time.Time) error { return nil }
