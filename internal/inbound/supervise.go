package inbound

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/connection"
)

// Retry delays of Supervise after a stream of a workspace ended.
const (
	// retryBusy: another replica streams the workspace; look again this
	// often (its lease runs out within streamLeaseTTL if it dies).
	retryBusy = 15 * time.Second
	// retryBroken: the stream failed; pulls run meanwhile.
	retryBroken = 30 * time.Second
	// retryUnsupported: the CRM refused to stream (CDC not enabled, no
	// permission); pulls run meanwhile, the stream is tried again later
	// in case an administrator enabled it.
	retryUnsupported = 15 * time.Minute
)

// Supervise keeps the change streams of every connected workspace running
// until ctx is done: every interval it starts Stream for the workspaces
// that are not streaming here and are due, one goroutine each. Across
// replicas the stream lease lets one replica stream a workspace; the
// others find it busy and look again later. It returns once every stream
// it started has stopped.
func (p *Puller) Supervise(ctx context.Context, interval time.Duration) {
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	running := map[int64]bool{}
	next := map[int64]time.Time{}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ids, err := streamable(ctx, p)
		if err != nil && ctx.Err() == nil {
			p.logger.Error("list workspaces to stream", slog.Any("error", err))
		}
		now := time.Now()
		for _, ws := range ids {
			mu.Lock()
			due := !running[ws] && !now.Before(next[ws])
			if due {
				running[ws] = true
			}
			mu.Unlock()
			if !due {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := p.Stream(ctx, ws)
				delay := retryBroken
				switch {
				case err == nil:
					delay = 0
				case errors.Is(err, ErrStreamBusy):
					delay = retryBusy
				case errors.Is(err, connector.ErrUnsupported):
					delay = retryUnsupported
				}
				mu.Lock()
				running[ws], next[ws] = false, time.Now().Add(delay)
				mu.Unlock()
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// streamable lists the workspaces whose connection may stream: connected
// and not paused by the user.
func streamable(ctx context.Context, p *Puller) ([]int64, error) {
	var ids []int64
	err := p.db.NewSelect().Model((*connection.Connection)(nil)).Column("workspace_id").
		Where("status = ? AND paused_by_user = ?", connection.StatusConnected, false).OrderExpr("workspace_id").Scan(ctx, &ids)
	return ids, err
}
