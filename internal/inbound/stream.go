package inbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"
	"golang.org/x/sync/errgroup"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
)

// Streaming inbound (docs/inbound.md): a connector that streams changes
// (connector.ChangeStreamer) is subscribed to once per read object; each
// delivered batch is applied by the same applier as a pulled page, under
// the connection's lease, with the stream position stored in the same
// transaction. Gaps are read, overflow and unresumable positions are caught
// up by pulling the object, and while a workspace streams its periodic
// pull is skipped.

// Mode is how a workspace's inbound sync runs now.
type Mode string

const (
	ModeStreaming  Mode = "STREAMING"
	ModeCatchingUp Mode = "CATCHING_UP"
	ModePolling    Mode = "POLLING"
)

// ErrStreamBusy is returned by Stream when another replica (or goroutine)
// streams the workspace.
var ErrStreamBusy = errors.New("another replica streams this workspace")

// streamLeaseTTL is how long a stream lease lasts between renewals: a
// replica that died mid-stream blocks the workspace's stream that long
// (its pulls take over at once: they look at the lease).
const streamLeaseTTL = 30 * time.Second

// Stream subscribes to the workspace's change streams and applies what
// they deliver until ctx is done (nil), the stream lease is lost, or a
// stream fails (the error; connector.ErrUnsupported when the CRM does not
// stream for this org). Meanwhile the workspace's mode is STREAMING (or
// CATCHING_UP while a catch-up pull runs); when Stream returns with an
// error the mode is POLLING with the reason, and periodic pulls take over.
func (p *Puller) Stream(ctx context.Context, workspaceID int64) error {
	c, err := p.conns.Get(ctx, workspaceID)
	if err != nil {
		return err
	}
	crm, err := p.connectors.Connector(ctx, c.Connector)
	if err != nil {
		return fmt.Errorf("connector %q: %w", c.Connector, err)
	}
	cs, ok := crm.(connector.ChangeStreamer)
	if !ok {
		return connector.Errorf(connector.KindUnsupported, "connector %s cannot stream changes", c.Connector)
	}
	owner := connection.LeaseOwner(p.cfg.Owner, "stream")
	ctx, release, ok, err := p.holdStreamLease(ctx, workspaceID, owner)
	if err != nil {
		return err
	}
	if !ok {
		return ErrStreamBusy
	}
	defer release()
	err = p.streamAll(ctx, c, crm, cs)
	if ctx.Err() != nil {
		// Stopped from outside (shutdown), or the lease was lost: the next
		// holder of the lease owns the state and resumes from the stored
		// positions; meanwhile the lapsed lease shows POLLING.
		if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) {
			return cause
		}
		return nil
	}
	reason := "stream failed: " + errString(err)
	if errors.Is(err, connector.ErrUnsupported) {
		reason = "streaming unavailable: " + errString(err)
	}
	if serr := setMode(context.WithoutCancel(ctx), p.db, workspaceID, ModePolling, reason, true, p.now()); serr != nil {
		p.logger.Error("store stream mode", slog.Int64("workspace_id", workspaceID), slog.Any("error", serr))
	}
	p.logger.Warn("inbound stream stopped; pulling every --pull-interval until it resumes", slog.Int64("workspace_id", workspaceID),
		slog.String("reason", reason))
	return err
}

func errString(err error) string {
	if err == nil {
		return "ended"
	}
	return err.Error()
}

// streamAll runs one subscription per read object.
func (p *Puller) streamAll(ctx context.Context, c *connection.Connection, crm connector.Connector, cs connector.ChangeStreamer) error {
	r, err := p.newRun(ctx, c)
	if err != nil {
		return err
	}
	readable, err := r.readable(ctx)
	if err != nil {
		return err
	}
	if len(readable) == 0 {
		return connector.Errorf(connector.KindUnsupported, "no object is read from the CRM")
	}
	if err := r.describe(ctx, readable); err != nil {
		return err
	}
	if err := setMode(ctx, p.db, c.WorkspaceID, ModeStreaming, "", false, p.now()); err != nil {
		return err
	}
	p.logger.Info("inbound streaming", slog.Int64("workspace_id", c.WorkspaceID), slog.Int("objects", len(readable)))
	g, gctx := errgroup.WithContext(ctx)
	for _, pl := range readable {
		fields := r.fields[pl.object]
		g.Go(func() error {
			return p.streamObject(gctx, c, crm, cs, pl, fields)
		})
	}
	return g.Wait()
}

// streamObject subscribes to one object from its stored position.
func (p *Puller) streamObject(ctx context.Context, c *connection.Connection, crm connector.Connector, cs connector.ChangeStreamer, pl objectPlan, fields []string) error {
	pos, err := loadPosition(ctx, p.db, c, pl.object)
	if err != nil {
		return err
	}
	sess, err := p.conns.Session(c)
	if err != nil {
		return err
	}
	return cs.SubscribeChanges(ctx, connector.SubscribeRequest{Session: sess, Object: pl.object, Position: pos, Fields: fields},
		func(ctx context.Context, b *connector.ChangeBatch) error {
			return p.applyBatch(ctx, c.WorkspaceID, crm, pl, b)
		})
}

// applyBatch applies one stream batch under the connection's lease (so
// never at the same time as a flush or pull of the connection).
func (p *Puller) applyBatch(ctx context.Context, workspaceID int64, crm connector.Connector, pl objectPlan, b *connector.ChangeBatch) error {
	c, err := p.conns.Get(ctx, workspaceID)
	if err != nil {
		return err
	}
	if c.PausedByUser || c.Status != connection.StatusConnected {
		return fmt.Errorf("inbound stream stopped: the connection is %s", map[bool]string{true: "paused by the user", false: "not connected (" + string(c.Status) + ")"}[c.PausedByUser])
	}
	if len(b.Meta.Credentials) > 0 {
		if err := p.conns.Observe(ctx, c, connector.Meta{Credentials: b.Meta.Credentials}); err != nil {
			return err
		}
	}
	if len(b.Events) == 0 {
		if b.Position == "" {
			return nil
		}
		return savePosition(ctx, p.db, c, pl.object, b.Position, time.Time{}, p.now())
	}
	owner := connection.LeaseOwner(p.cfg.Owner, "stream-apply")
	var release func() error
	for {
		held, rel, ok, err := p.conns.HoldLease(ctx, c, owner, p.cfg.LeaseTTL)
		if err != nil {
			// Cancelled mid-acquire, the lease may be taken all the same:
			// give it back rather than block the connection for its TTL.
			if rerr := p.conns.ReleaseLease(context.WithoutCancel(ctx), c, owner); rerr != nil {
				p.logger.Error("release stream apply lease", slog.Int64("workspace_id", workspaceID), slog.Any("error", rerr))
			}
			return err
		}
		if ok {
			ctx, release = held, rel
			break
		}
		t := time.NewTimer(p.cfg.StreamLeaseWait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	defer func() {
		if err := release(); err != nil {
			p.logger.Error("release stream apply lease", slog.Int64("workspace_id", workspaceID), slog.Any("error", err))
		}
	}()
	r, err := p.newRun(ctx, c)
	if err != nil {
		return err
	}
	r.crm, r.streamed = crm, true
	res, err := r.applyStream(ctx, pl, b)
	if err != nil {
		return err
	}
	if res.Paused != push.PauseNone {
		return fmt.Errorf("catch-up pull paused (%s)", res.Paused)
	}
	return nil
}

// readable loads the workspace's read preferences and field mappings and
// returns the objects read from the CRM.
func (r *run) readable(ctx context.Context) ([]objectPlan, error) {
	var err error
	if r.objs, err = prefs.Objects(ctx, r.p.db, r.c.WorkspaceID); err != nil {
		return nil, err
	}
	var out []objectPlan
	r.maps = map[record.Type][]prefs.FieldMapping{}
	for _, pl := range plans(r.names) {
		if !r.objs[pl.t].ReadEnabled || !r.routing.Describes(pl.object) {
			continue
		}
		out = append(out, pl)
		if _, ok := r.maps[pl.t]; !ok {
			if r.maps[pl.t], err = prefs.Fields(ctx, r.p.db, r.routing.Contract, r.c.WorkspaceID, pl.t); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// applyStream applies a batch's events in order: changes as records, gaps
// (and undeletes, and updates of records not linked yet, whose events lack
// the fields to match them by) as reads of the records, overflow and
// resyncs as a catch-up pull of the object; then stores the position.
func (r *run) applyStream(ctx context.Context, pl objectPlan, b *connector.ChangeBatch) (*Result, error) {
	if _, err := r.readable(ctx); err != nil {
		return nil, err
	}
	var callErr error
	var stop push.PauseReason
	var stopDetail string
	catchUp := ""
	if callErr = r.describe(ctx, []objectPlan{pl}); callErr == nil {
		catchUp, callErr = r.applyEvents(ctx, pl, b)
	}
	if callErr == nil && catchUp != "" {
		stop, stopDetail, callErr = r.catchUp(ctx, pl, catchUp)
	}
	if callErr == nil && stop == push.PauseNone {
		var last time.Time
		for _, ev := range b.Events {
			last = maxTime(last, ev.CommittedAt)
		}
		callErr = r.applyRecords(ctx, pl, nil, func(ctx context.Context, tx bun.Tx, now time.Time) error {
			if b.Position != "" {
				if err := savePosition(ctx, tx, r.c, pl.object, b.Position, last, now); err != nil {
					return err
				}
			}
			return countEvents(ctx, tx, r.c.WorkspaceID, len(b.Events), now)
		})
	}
	res, err := r.finish(ctx, callErr, stop, stopDetail)
	if err != nil {
		return nil, err
	}
	return res, nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// applyEvents applies the batch's change events and returns why a
// catch-up pull is needed ("" when none).
func (r *run) applyEvents(ctx context.Context, pl objectPlan, b *connector.ChangeBatch) (string, error) {
	var ids []string
	for _, ev := range b.Events {
		ids = append(ids, ev.RecordIDs...)
	}
	linked, err := record.ByCRMIDs(ctx, r.p.db, r.c.WorkspaceID, ids)
	if err != nil {
		return "", err
	}
	var recs []connector.Record
	var read []string
	catchUp := ""
	for _, ev := range b.Events {
		switch {
		case ev.Kind == connector.ChangeResync || ev.Kind == connector.ChangeOverflow:
			catchUp = ev.Reason
		case ev.Own:
			// crmsync's own write read back: nothing Salesforce-side to apply.
		case ev.Kind == connector.ChangeDelete:
			for _, id := range ev.RecordIDs {
				recs = append(recs, connector.Record{ID: id, Object: pl.object, Deleted: true, SystemModstamp: ev.CommittedAt,
					LastModified: ev.CommittedAt, LastModifiedByID: ev.CommitUser, Fields: map[string]any{}})
			}
		case ev.Kind == connector.ChangeGap || ev.Kind == connector.ChangeUndelete:
			read = append(read, ev.RecordIDs...)
		default:
			for _, id := range ev.RecordIDs {
				if ev.Kind == connector.ChangeUpdate && linked[id] == nil {
					read = append(read, id)
					continue
				}
				recs = append(recs, connector.Record{ID: id, Object: pl.object, Fields: ev.Fields, LastModified: ev.CommittedAt,
					LastModifiedByID: ev.CommitUser, SystemModstamp: ev.CommittedAt})
			}
		}
	}
	if len(recs) > 0 {
		r.events = true
		err := r.applyRecords(ctx, pl, recs, noAdvance)
		r.events = false
		if err != nil {
			return "", err
		}
	}
	if len(read) > 0 {
		resp, err := r.crm.FetchCurrent(ctx, connector.FetchCurrentRequest{Session: r.meter.Session, Object: pl.object, IDs: read, Fields: r.fields[pl.object]})
		if err := r.observe(ctx, "read "+pl.object+" after a stream gap", connection.MetaOf(resp), err); err != nil {
			return "", err
		}
		found := map[string]bool{}
		recs = recs[:0]
		for _, cr := range resp.Records {
			found[cr.ID] = true
			recs = append(recs, cr)
		}
		for _, id := range read {
			if !found[id] { // gone since: deleted (or merged away)
				recs = append(recs, connector.Record{ID: id, Object: pl.object, Deleted: true, Fields: map[string]any{}})
			}
		}
		if err := r.applyRecords(ctx, pl, recs, noAdvance); err != nil {
			return "", err
		}
	}
	return catchUp, nil
}

func noAdvance(context.Context, bun.Tx, time.Time) error { return nil }

// catchUp pulls the object from its pull cursor (the stream may have
// missed changes), with the workspace shown CATCHING_UP meanwhile.
func (r *run) catchUp(ctx context.Context, pl objectPlan, why string) (push.PauseReason, string, error) {
	ws := r.c.WorkspaceID
	r.p.logger.Info("inbound stream catching up by pulling", slog.Int64("workspace_id", ws), slog.String("object", pl.object),
		slog.String("source", "pull"), slog.String("reason", why))
	if err := setMode(ctx, r.p.db, ws, ModeCatchingUp, why, true, r.p.now()); err != nil {
		return push.PauseNone, "", err
	}
	fetcher, ok := r.crm.(connector.ChangeFetcher)
	if !ok {
		return push.PauseNone, "", connector.Errorf(connector.KindUnsupported, "connector %s streams but cannot pull to catch up", r.c.Connector)
	}
	if reason, detail, err := r.p.gate.Gate(ctx, r.c); err != nil || reason != push.PauseNone {
		return reason, detail, err
	}
	r.streamed = false // pulled records are current state: never stale
	defer func() { r.streamed = true }()
	for {
		stop, detail, err := r.pullObject(ctx, fetcher, pl)
		if err != nil || stop != push.PauseNone {
			return stop, detail, err
		}
		if !r.more {
			break
		}
		r.more, r.pages = false, 0
	}
	return push.PauseNone, "", setMode(ctx, r.p.db, ws, ModeStreaming, "", false, r.p.now())
}

// StreamConfigDefaults are the defaults of the streaming knobs of Config.
const (
	DefaultStreamLeaseWait = 50 * time.Millisecond
)

// Streaming reports whether the workspace is streaming now: mode
// STREAMING under a live stream lease. Pulls are skipped meanwhile.
func Streaming(ctx context.Context, db bun.IDB, workspaceID int64, now time.Time) (bool, error) {
	st, err := LoadStreamState(ctx, db, workspaceID)
	if err != nil {
		return false, err
	}
	return st.Mode != ModePolling && !st.LeaseUntil.IsZero() && st.LeaseUntil.Time.After(now), nil
}
