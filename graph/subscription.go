package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/crmsync/crmsync/graph/model"
	"github.com/crmsync/crmsync/internal/events"
)

// Pacing of syncOverviewUpdated: changes within overviewSettle are merged
// into one push (at most a few pushes a second), and the overview is
// recomputed every overviewRefresh anyway (the rolling call count moves
// with time alone).
const (
	overviewSettle  = 250 * time.Millisecond
	overviewRefresh = 15 * time.Second
)

// streamOverview sends the overview now and after every change, skipping
// pushes that would repeat the last one. It returns when ctx is done or the
// event stream ends.
func (r *Resolver) streamOverview(ctx context.Context, ws int64, evs <-chan events.Event, ch chan<- *model.SyncOverview) {
	var last []byte
	push := func() bool {
		o, err := r.Overview.Get(ctx, ws, time.Now())
		if err != nil {
			if ctx.Err() == nil {
				r.Logger.WarnContext(ctx, "syncOverviewUpdated: compute overview", slog.Int64("workspace_id", ws), slog.Any("error", err))
			}
			return ctx.Err() == nil
		}
		m := overviewModel(o)
		enc, _ := json.Marshal(m)
		if bytes.Equal(enc, last) {
			return true
		}
		last = enc
		select {
		case ch <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !push() {
		return
	}
	refresh := time.NewTicker(overviewRefresh)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
		case _, ok := <-evs:
			if !ok {
				return
			}
			// Let a burst of changes settle into one push.
			settle := time.NewTimer(overviewSettle)
		drain:
			for {
				select {
				case _, ok := <-evs:
					if !ok {
						settle.Stop()
						return
					}
				case <-settle.C:
					break drain
				case <-ctx.Done():
					settle.Stop()
					return
				}
			}
		}
		if !push() {
			return
		}
	}
}

// queueChanged tells subscribers of the workspace that its overview moved.
func (r *Resolver) queueChanged(ctx context.Context, ws int64) {
	if r.Publisher == nil {
		return
	}
	if err := r.Publisher.Publish(context.WithoutCancel(ctx), events.Event{WorkspaceID: ws, Kind: events.KindOverview}); err != nil {
		r.Logger.WarnContext(ctx, "publish overview change", slog.Int64("workspace_id", ws), slog.Any("error", err))
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
