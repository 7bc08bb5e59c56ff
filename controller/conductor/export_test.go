package conductor

import (
	"context"
	"time"
)

// SyncPowerStatesSpread runs a pass with its reads spread over spread, as the periodic does.
func (c *Conductor) SyncPowerStatesSpread(ctx context.Context, spread time.Duration) (PowerSyncStats, error) {
	return c.syncPowerStates(ctx, spread)
}
