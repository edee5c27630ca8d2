package inbound

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/connection"
)

// positionRow is where one object's change stream stands for a workspace.
type positionRow struct {
	bun.BaseModel `bun:"table:inbound_streams"`

	WorkspaceID  int64        `bun:"workspace_id,pk"`
	CRMObject    string       `bun:"crm_object,pk"`
	Source       string       `bun:"source,notnull"`
	Position     string       `bun:"position,notnull"`
	LastCommitAt bun.NullTime `bun:"last_commit_at"`
	UpdatedAt    time.Time    `bun:"updated_at,notnull"`
}

// StreamState is a workspace's inbound stream: its mode, lease and
// counters.
type StreamState struct {
	bun.BaseModel `bun:"table:inbound_stream_state"`

	WorkspaceID        int64        `bun:"workspace_id,pk"`
	Mode               Mode         `bun:"mode,notnull"`
	Reason             string       `bun:"reason,notnull"`
	LeaseOwner         string       `bun:"lease_owner,notnull"`
	LeaseUntil         bun.NullTime `bun:"lease_until"`
	EventsApplied      int64        `bun:"events_applied,notnull"`
	Fallbacks          int64        `bun:"fallbacks,notnull"`
	LastFallbackReason string       `bun:"last_fallback_reason,notnull"`
	LastEventAt        bun.NullTime `bun:"last_event_at"`
	UpdatedAt          time.Time    `bun:"updated_at,notnull"`

	// LastCommitAt is the CRM commit time of the newest change applied
	// from any of the workspace's streams (from inbound_streams).
	LastCommitAt time.Time `bun:"-"`
}

// Effective is the mode and reason as of now: a stream whose lease ran out
// (its replica stopped) is not streaming, whatever its row last said.
func (st *StreamState) Effective(now time.Time) (Mode, string) {
	if st.Mode != ModePolling && (st.LeaseUntil.IsZero() || !st.LeaseUntil.Time.After(now)) {
		return ModePolling, "the stream is not running (its replica stopped); pulling until it restarts"
	}
	return st.Mode, st.Reason
}

func loadPosition(ctx context.Context, db bun.IDB, c *connection.Connection, object string) (string, error) {
	var row positionRow
	err := db.NewSelect().Model(&row).Where("workspace_id = ? AND crm_object = ?", c.WorkspaceID, object).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("load %s stream position of workspace %d: %w", object, c.WorkspaceID, err)
	}
	if row.Source != cursorSource(c) {
		return "", nil // another org's position: start over (with a catch-up)
	}
	return row.Position, nil
}

// savePosition stores a stream position (and, when set, the commit time
// of the newest change applied).
func savePosition(ctx context.Context, db bun.IDB, c *connection.Connection, object, position string, lastCommit, now time.Time) error {
	row := positionRow{WorkspaceID: c.WorkspaceID, CRMObject: object, Source: cursorSource(c), Position: position, UpdatedAt: now.UTC()}
	set := "source = EXCLUDED.source, position = EXCLUDED.position, updated_at = EXCLUDED.updated_at"
	if !lastCommit.IsZero() {
		row.LastCommitAt = bun.NullTime{Time: lastCommit.UTC()}
		set += ", last_commit_at = EXCLUDED.last_commit_at"
	}
	_, err := db.NewInsert().Model(&row).On("CONFLICT (workspace_id, crm_object) DO UPDATE").Set(set).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store %s stream position of workspace %d: %w", object, c.WorkspaceID, err)
	}
	return nil
}

// ensureState inserts the workspace's stream state row if missing.
func ensureState(ctx context.Context, db bun.IDB, workspaceID int64, now time.Time) error {
	row := StreamState{WorkspaceID: workspaceID, Mode: ModePolling, UpdatedAt: now.UTC()}
	if _, err := db.NewInsert().Model(&row).On("CONFLICT (workspace_id) DO NOTHING").Exec(ctx); err != nil {
		return fmt.Errorf("create stream state of workspace %d: %w", workspaceID, err)
	}
	return nil
}

// setMode records the workspace's inbound mode; fallback counts a fall
// back from streaming (a catch-up or polling) with its reason.
func setMode(ctx context.Context, db bun.IDB, workspaceID int64, mode Mode, reason string, fallback bool, now time.Time) error {
	if err := ensureState(ctx, db, workspaceID, now); err != nil {
		return err
	}
	q := db.NewUpdate().Model((*StreamState)(nil)).Set("mode = ?, reason = ?, updated_at = ?", mode, reason, now.UTC()).
		Where("workspace_id = ?", workspaceID)
	if fallback {
		q = q.Set("fallbacks = fallbacks + 1, last_fallback_reason = ?", reason)
	}
	if _, err := q.Exec(ctx); err != nil {
		return fmt.Errorf("store inbound mode of workspace %d: %w", workspaceID, err)
	}
	return nil
}

// countEvents adds stream events applied.
func countEvents(ctx context.Context, db bun.IDB, workspaceID int64, n int, now time.Time) error {
	if n == 0 {
		return nil
	}
	_, err := db.NewUpdate().Model((*StreamState)(nil)).Set("events_applied = events_applied + ?, last_event_at = ?", n, now.UTC()).
		Where("workspace_id = ?", workspaceID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("count stream events of workspace %d: %w", workspaceID, err)
	}
	return nil
}

// LoadStreamState returns the workspace's stream state (mode POLLING,
// reason "never streamed", when it never did).
func LoadStreamState(ctx context.Context, db bun.IDB, workspaceID int64) (*StreamState, error) {
	var st StreamState
	err := db.NewSelect().Model(&st).Where("workspace_id = ?", workspaceID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return &StreamState{WorkspaceID: workspaceID, Mode: ModePolling, Reason: "never streamed"}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load stream state of workspace %d: %w", workspaceID, err)
	}
	var last bun.NullTime
	err = db.NewSelect().Model((*positionRow)(nil)).ColumnExpr("max(last_commit_at)").Where("workspace_id = ?", workspaceID).Scan(ctx, &last)
	if err != nil {
		return nil, fmt.Errorf("load stream lag of workspace %d: %w", workspaceID, err)
	}
	st.LastCommitAt = last.Time
	return &st, nil
}

// ReleaseDeadStreamLeases releases the stream leases whose owner dead says
// is a dead process's (a restarted replica's predecessor, see
// internal/replica), so this process's supervisor streams those workspaces
// again at once instead of after the lease runs out (streamLeaseTTL). It
// returns their workspaces. A lease whose owner changed meanwhile is left
// alone.
func ReleaseDeadStreamLeases(ctx context.Context, db bun.IDB, dead func(owner string) bool) ([]int64, error) {
	var held []StreamState
	err := db.NewSelect().Model(&held).Column("workspace_id", "lease_owner").
		Where("lease_owner <> ''").Where("lease_until IS NOT NULL").Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("find held stream leases: %w", err)
	}
	var released []int64
	for _, st := range held {
		if !dead(st.LeaseOwner) {
			continue
		}
		res, err := db.NewUpdate().Model((*StreamState)(nil)).Set("lease_until = NULL").
			Where("workspace_id = ? AND lease_owner = ?", st.WorkspaceID, st.LeaseOwner).Exec(ctx)
		if err != nil {
			return released, fmt.Errorf("release dead stream lease of workspace %d: %w", st.WorkspaceID, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			released = append(released, st.WorkspaceID)
		}
	}
	return released, nil
}

// holdStreamLease takes the workspace's stream lease and renews it until
// release; the returned context ends when the lease is lost.
func (p *Puller) holdStreamLease(ctx context.Context, workspaceID int64, owner string) (context.Context, func(), bool, error) {
	now := p.now()
	if err := ensureState(ctx, p.db, workspaceID, now); err != nil {
		return nil, nil, false, err
	}
	res, err := p.db.NewUpdate().Model((*StreamState)(nil)).Set("lease_owner = ?, lease_until = ?", owner, now.Add(streamLeaseTTL).UTC()).
		Where("workspace_id = ?", workspaceID).Where("(lease_until IS NULL OR lease_until < ?)", now.UTC()).Exec(ctx)
	if err != nil {
		return nil, nil, false, fmt.Errorf("acquire stream lease of workspace %d: %w", workspaceID, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return nil, nil, false, nil
	}
	held, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(streamLeaseTTL / 3)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-held.Done():
				return
			case <-tick.C:
			}
			res, err := p.db.NewUpdate().Model((*StreamState)(nil)).Set("lease_until = ?", p.now().Add(streamLeaseTTL).UTC()).
				Where("workspace_id = ? AND lease_owner = ?", workspaceID, owner).Exec(held)
			if err != nil {
				p.logger.Warn("renew stream lease", slog.Int64("workspace_id", workspaceID), slog.Any("error", err))
				continue
			}
			if n, _ := res.RowsAffected(); n != 1 {
				cancel(fmt.Errorf("stream lease of workspace %d taken over", workspaceID))
				return
			}
		}
	}()
	release := func() {
		close(done)
		<-stopped
		cancel(nil)
		_, err := p.db.NewUpdate().Model((*StreamState)(nil)).Set("lease_owner = '', lease_until = NULL").
			Where("workspace_id = ? AND lease_owner = ?", workspaceID, owner).Exec(context.WithoutCancel(ctx))
		if err != nil {
			p.logger.Error("release stream lease", slog.Int64("workspace_id", workspaceID), slog.Any("error", err))
		}
	}
	return held, release, true, nil
}
