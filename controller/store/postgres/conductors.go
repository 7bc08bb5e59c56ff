package postgres

import (
	"context"
	"errors"
	"fmt"
	"github.com/jackc/pgx/v5"
	"time"

	"github.com/ferrumhq/ferrum/controller/node"
)

const conductorSelect = "SELECT hostname, conductor_group, drivers, online, created_at, updated_at FROM conductors"

func scanConductor(sc pgx.Row) (*node.Conductor, error) {
	var (
		c                node.Conductor
		drivers          string
		created, updated int64
	)
	if err := sc.Scan(&c.Hostname, &c.ConductorGroup, &drivers, &c.Online, &created, &updated); err != nil {
		return nil, err
	}
	c.CreatedAt, c.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	if err := decodeJSON(drivers, &c.Drivers); err != nil {
		return nil, fmt.Errorf("postgres: decode conductor %s: %w", c.Hostname, err)
	}
	return &c, nil
}

// RegisterConductor inserts c or refreshes its row (group, drivers, online, updated_at = now),
// keeping the first registration's created_at. Fills c.Online, c.CreatedAt and c.UpdatedAt.
func (s *Store) RegisterConductor(ctx context.Context, c *node.Conductor) error {
	drivers, err := jsonList(c.Drivers)
	if err != nil {
		return fmt.Errorf("postgres: encode conductor %s: %w", c.Hostname, err)
	}
	t := now()
	var created int64
	err = s.writeq(ctx, "register conductor", func(tx dbq) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO conductors (hostname, conductor_group, drivers, online, created_at, updated_at)
			VALUES (?, ?, ?, true, ?, ?)
			ON CONFLICT (hostname) DO UPDATE SET conductor_group = excluded.conductor_group,
				drivers = excluded.drivers, online = true, updated_at = excluded.updated_at
			RETURNING created_at`, c.Hostname, c.ConductorGroup, drivers, t.UnixMicro(), t.UnixMicro()).Scan(&created)
		if err != nil {
			return fmt.Errorf("postgres: register conductor %s: %w", c.Hostname, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.Online, c.CreatedAt, c.UpdatedAt = true, time.UnixMicro(created).UTC(), t
	return nil
}

// UnregisterConductor marks a conductor offline.
func (s *Store) UnregisterConductor(ctx context.Context, hostname string) error {
	return s.writeq(ctx, "unregister conductor", func(tx dbq) error {
		tag, err := tx.ExecContext(ctx, "UPDATE conductors SET online = false, updated_at = ? WHERE hostname = ?", now().UnixMicro(), hostname)
		if err != nil {
			return fmt.Errorf("postgres: unregister conductor %s: %w", hostname, err)
		}
		return notFoundIfNone(tag, "Conductor", hostname)
	})
}

// GetConductor finds a conductor by host name.
func (s *Store) GetConductor(ctx context.Context, hostname string) (*node.Conductor, error) {
	c, err := scanConductor(s.r().QueryRowContext(ctx, conductorSelect+" WHERE hostname = ?", hostname))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, node.NotFound("Conductor", hostname)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get conductor %s: %w", hostname, err)
	}
	return c, nil
}

// ListConductors returns every conductor, online or not, by host name.
func (s *Store) ListConductors(ctx context.Context) ([]*node.Conductor, error) {
	rows, err := s.r().QueryContext(ctx, conductorSelect+" ORDER BY hostname")
	if err != nil {
		return nil, fmt.Errorf("postgres: list conductors: %w", err)
	}
	defer rows.Close()
	var cs []*node.Conductor
	for rows.Next() {
		c, err := scanConductor(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list conductors: %w", err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list conductors: %w", err)
	}
	return cs, nil
}
