package inbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/contract"
	"github.com/crmsync/crmsync/internal/events"
	"github.com/crmsync/crmsync/internal/limits"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
)

// objectPlan is one CRM object pulled, and the Conversion record type it
// feeds.
type objectPlan struct {
	t      record.Type
	object string
}

// plans lists the objects pulled, per the data contract: the company
// object, then the prospect object before the person object, so a
// prospect converted since the last pull is relinked to its person before
// that person is read.
func plans(n contract.Names) []objectPlan {
	var out []objectPlan
	for _, pl := range []objectPlan{{record.TypeCompany, n.Company}, {record.TypeContact, n.Prospect}, {record.TypeContact, n.Person}} {
		if pl.object != "" {
			out = append(out, pl)
		}
	}
	return out
}

// structuralFields are read besides the mapped fields: to match, and to
// follow converted prospects.
func structuralFields(n contract.Names, object string) []string {
	var out []string
	switch object {
	case n.Prospect:
		out = []string{n.ProspectEmail, n.Converted, n.ConvertedTo}
	case n.Person:
		out = []string{n.PersonEmail}
	case n.Company:
		out = []string{n.CompanyName, n.CompanyDomain}
	}
	return slices.DeleteFunc(out, func(name string) bool { return name == "" })
}

// interrupted is a batch's message until its pull finishes: a batch left
// with it was cut short by a crash.
const interrupted = "interrupted: the pull stopped before it finished; the next pull resumes after the last page applied"

// run is one pull of one connection.
type run struct {
	p       *Puller
	c       *connection.Connection
	crm     connector.Connector
	meter   *connection.Meter
	started time.Time
	// routing is which record types the connection takes, with its data
	// contract; names are the contract's objects and role fields
	// (internal/contract). Both are read once per run.
	routing prefs.Routing
	names   contract.Names

	objs   map[record.Type]prefs.ObjectPreference
	maps   map[record.Type][]prefs.FieldMapping
	desc   map[string]connector.Object
	fields map[string][]string

	batch *synclog.Batch
	// uncounted are calls not yet added to the crmsync daily count: they
	// are added with the next page, or when the pull finishes.
	uncounted int
	pages     int
	more      bool
	// streamed marks a run applying stream events rather than a pull.
	streamed bool
	// events marks records built from change events (a field's value at
	// the event's commit, not the record's current state): a field crmsync
	// has newer knowledge of is left as it is (applier.superseded).
	events bool
}

func (p *Puller) newRun(ctx context.Context, c *connection.Connection) (*run, error) {
	crm, err := p.connectors.Connector(ctx, c.Connector)
	if err != nil {
		return nil, fmt.Errorf("connector %q: %w", c.Connector, err)
	}
	meter, err := p.conns.NewMeter(c)
	if err != nil {
		return nil, err
	}
	now := p.now().UTC()
	routing := prefs.RoutingOf(c)
	return &run{p: p, c: c, crm: crm, meter: meter, started: now, routing: routing, names: contract.Of(routing.Contract),
		batch: &synclog.Batch{WorkspaceID: c.WorkspaceID, Direction: synclog.Inbound, Status: synclog.StatusFailed,
			Message: interrupted, StartedAt: now, FinishedAt: now}}, nil
}

func (r *run) run(ctx context.Context) (*Result, error) {
	var err error
	if r.objs, err = prefs.Objects(ctx, r.p.db, r.c.WorkspaceID); err != nil {
		return nil, err
	}
	var readable []objectPlan
	r.maps = map[record.Type][]prefs.FieldMapping{}
	for _, pl := range plans(r.names) {
		if !r.objs[pl.t].ReadEnabled || !r.routing.Describes(pl.object) {
			continue
		}
		readable = append(readable, pl)
		if _, ok := r.maps[pl.t]; !ok {
			if r.maps[pl.t], err = prefs.Fields(ctx, r.p.db, r.routing.Contract, r.c.WorkspaceID, pl.t); err != nil {
				return nil, err
			}
		}
	}
	if len(readable) == 0 {
		return &Result{}, nil // nothing is read: no CRM call at all
	}
	caps, err := r.p.descs.Capabilities(ctx, r.c, r.crm)
	if err != nil {
		return r.finish(ctx, err, push.PauseNone, "")
	}
	fetcher, ok := connection.Optional[connector.ChangeFetcher](caps, connector.CapabilityFetchChanges, r.crm)
	if !ok {
		r.p.logger.Warn("connector cannot list changes; nothing is pulled", slog.Int64("workspace_id", r.c.WorkspaceID), slog.String("connector", r.c.Connector))
		return &Result{}, nil
	}
	var callErr error
	var stop push.PauseReason
	var stopDetail string
	if callErr = r.describe(ctx, readable); callErr == nil {
		var packed map[string]*connector.FetchChangesResponse
		if many, ok := r.crm.(connector.ManyChangeFetcher); ok && len(readable) > 1 {
			packed, stop, stopDetail, callErr = r.fetchPacked(ctx, many, readable)
		}
		for _, pl := range readable {
			if callErr != nil || stop != push.PauseNone {
				break
			}
			if page := packed[pl.object]; page != nil {
				r.pages++
				if callErr = r.applyPage(ctx, pl, page.Records, page.NextCursor); callErr != nil || !page.More {
					continue
				}
			}
			stop, stopDetail, callErr = r.pullObject(ctx, fetcher, pl)
			if r.more {
				break
			}
		}
	}
	return r.finish(ctx, callErr, stop, stopDetail)
}

// describe loads the describes of the pulled objects (cached for a while),
// to read only fields that exist on each.
func (r *run) describe(ctx context.Context, readable []objectPlan) error {
	r.desc = r.p.descs.Objects(r.c)
	var want []string
	for _, pl := range readable {
		if _, ok := r.desc[pl.object]; !ok {
			want = append(want, pl.object)
		}
	}
	if len(want) > 0 {
		d, err := r.crm.Describe(ctx, connector.DescribeRequest{Session: r.meter.Session, Objects: want})
		if err := r.observe(ctx, "describe", connection.MetaOf(d), err); err != nil {
			return err
		}
		r.p.descs.Add(r.c, d)
		r.desc = r.p.descs.Objects(r.c)
	}
	r.fields = map[string][]string{}
	for _, pl := range readable {
		o := r.desc[pl.object]
		add := func(name string) {
			if _, ok := o.Field(name); ok && !slices.Contains(r.fields[pl.object], name) {
				r.fields[pl.object] = append(r.fields[pl.object], name)
			}
		}
		for _, m := range r.maps[pl.t] {
			if m.Mode != prefs.DoNotSync {
				add(m.CRMField)
			}
		}
		for _, name := range structuralFields(r.names, pl.object) {
			add(name)
		}
	}
	return nil
}

// pullObject pages through one object's changes. Each page is applied, with
// the cursor after it, in one transaction.
func (r *run) pullObject(ctx context.Context, fetcher connector.ChangeFetcher, pl objectPlan) (push.PauseReason, string, error) {
	cursor, err := loadCursor(ctx, r.p.db, r.c, pl.object)
	if err != nil {
		return push.PauseNone, "", err
	}
	for {
		if r.pages >= r.p.cfg.MaxPages {
			r.more = true
			return push.PauseNone, "", nil
		}
		if reason, detail, err := r.checkBudget(ctx); err != nil || reason != push.PauseNone {
			return reason, detail, err
		}
		resp, err := fetcher.FetchChanges(ctx, connector.FetchChangesRequest{Session: r.meter.Session, Object: pl.object,
			Fields: r.fields[pl.object], Cursor: cursor, PageSize: r.p.cfg.PageSize})
		var meta *connector.Meta
		if resp != nil {
			meta = &resp.Meta
		}
		if err := r.observe(ctx, "fetch "+pl.object+" changes", meta, err); err != nil {
			return push.PauseNone, "", err
		}
		r.pages++
		if err := r.applyPage(ctx, pl, resp.Records, resp.NextCursor); err != nil {
			return push.PauseNone, "", err
		}
		cursor = resp.NextCursor
		if !resp.More {
			return push.PauseNone, "", nil
		}
	}
}

// fetchPacked reads the first page of every pulled object in one call
// (the connector packs the queries): an idle pull costs one call. It
// answers nil pages when the connector cannot pack (each object is then
// read on its own).
func (r *run) fetchPacked(ctx context.Context, many connector.ManyChangeFetcher, readable []objectPlan) (map[string]*connector.FetchChangesResponse, push.PauseReason, string, error) {
	if reason, detail, err := r.checkBudget(ctx); err != nil || reason != push.PauseNone {
		return nil, reason, detail, err
	}
	req := connector.FetchChangesManyRequest{Session: r.meter.Session}
	for _, pl := range readable {
		cursor, err := loadCursor(ctx, r.p.db, r.c, pl.object)
		if err != nil {
			return nil, push.PauseNone, "", err
		}
		req.Requests = append(req.Requests, connector.FetchChangesRequest{Object: pl.object, Fields: r.fields[pl.object], Cursor: cursor, PageSize: r.p.cfg.PageSize})
	}
	resp, err := many.FetchChangesMany(ctx, req)
	if errors.Is(err, connector.ErrUnsupported) {
		return nil, push.PauseNone, "", nil
	}
	if err := r.observe(ctx, "fetch changes", connection.MetaOf(resp), err); err != nil {
		return nil, push.PauseNone, "", err
	}
	if len(resp.Results) != len(readable) {
		return nil, push.PauseNone, "", fmt.Errorf("connector %s answered %d of %d change pages", r.c.Connector, len(resp.Results), len(readable))
	}
	out := map[string]*connector.FetchChangesResponse{}
	for i, pl := range readable {
		out[pl.object] = &resp.Results[i]
	}
	return out, push.PauseNone, "", nil
}

// checkBudget stops before a page that would cross crmsync's own daily
// limit (each page is one call at least).
func (r *run) checkBudget(ctx context.Context) (push.PauseReason, string, error) {
	if !r.c.DailyLimit.Valid {
		return push.PauseNone, "", nil
	}
	used, err := limits.Used(ctx, r.p.db, r.c.WorkspaceID, r.p.now())
	if err != nil {
		return push.PauseNone, "", err
	}
	if used+1 > r.c.DailyLimit.Int64 {
		return push.PauseConversionLimit, fmt.Sprintf("%d of %d calls used in the last 24 hours", used, r.c.DailyLimit.Int64), nil
	}
	return push.PauseNone, "", nil
}

// observe persists what a connector response carried and counts its calls.
func (r *run) observe(ctx context.Context, what string, m *connector.Meta, err error) error {
	before := r.meter.Calls
	defer func() { r.uncounted += r.meter.Calls - before }()
	return r.meter.Observe(ctx, what, m, err)
}

// finish closes the batch, handles a whole-call failure, and publishes.
func (r *run) finish(ctx context.Context, callErr error, stop push.PauseReason, stopDetail string) (*Result, error) {
	ctx = context.WithoutCancel(ctx) // a cancelled pull still closes its batch
	ws := r.c.WorkspaceID
	if errors.Is(callErr, connector.ErrUnsupported) {
		// A connector without a change feed: nothing to pull, nothing failed.
		r.p.logger.Warn("connector cannot list changes; nothing is pulled", slog.Int64("workspace_id", ws),
			slog.String("connector", r.c.Connector), slog.Any("error", callErr))
		callErr = nil
	}
	res := &Result{More: r.more, Calls: r.meter.Calls}
	if errors.Is(callErr, connector.ErrRateLimited) {
		// Hold further calls at the gate until a fresh reading says otherwise.
		if err := r.markSpent(ctx); err != nil {
			return nil, err
		}
	}
	if errors.Is(callErr, connector.ErrCredentials) {
		if err := r.p.conns.MarkExpired(ctx, r.c, callErr.Error()); err != nil {
			return nil, err
		}
	}
	if err := limits.Record(ctx, r.p.db, ws, r.p.now(), r.uncounted); err != nil {
		return nil, err
	}
	r.uncounted = 0
	b := r.batch
	b.FinishedAt = r.p.now().UTC()
	b.APICalls = r.meter.Calls
	b.Status, b.Message = "", ""
	switch {
	case callErr != nil:
		b.Status, b.Message = synclog.StatusFailed, callErr.Error()
	case stop != push.PauseNone:
		b.Message = "stopped: syncing paused (" + string(stop) + "); the next pull resumes here"
	case r.more:
		b.Message = fmt.Sprintf("read %d pages; the next pull continues", r.pages)
	case r.streamed:
		b.Message = "streamed: applied from the CRM's change stream"
	}
	b.Count()
	if b.ID != 0 || callErr != nil {
		if err := r.closeBatch(ctx); err != nil {
			return nil, err
		}
		res.Batch = b
		r.p.publish(ctx, events.Event{WorkspaceID: ws, Kind: events.KindBatch, BatchID: b.ID})
		if b.Created+b.Updated+b.Deleted > 0 {
			r.p.publish(ctx, events.Event{WorkspaceID: ws, Kind: events.KindRecords, BatchID: b.ID})
		}
	}
	source := "pull"
	if r.streamed {
		source = "stream"
	}
	r.p.logger.Info("inbound sync done", slog.String("source", source), slog.Int64("workspace_id", ws), slog.Int("pages", r.pages), slog.Int("api_calls", r.meter.Calls),
		slog.Int("created", b.Created), slog.Int("updated", b.Updated), slog.Int("skipped", b.Skipped), slog.String("status", string(b.Status)))
	switch {
	case errors.Is(callErr, connector.ErrCredentials):
		pr, err := r.p.pause(ctx, r.c, push.PauseConnectionExpired, "")
		if err != nil {
			return nil, err
		}
		res.Paused = pr.Paused
		if res.Batch == nil {
			res.Batch = pr.Batch
		}
		return res, nil
	case callErr != nil:
		return res, fmt.Errorf("pull workspace %d: %w", ws, callErr)
	case stop != push.PauseNone:
		pr, err := r.p.pause(ctx, r.c, stop, stopDetail)
		if err != nil {
			return nil, err
		}
		res.Paused = pr.Paused
		if res.Batch == nil {
			res.Batch = pr.Batch
		}
	}
	return res, nil
}

// closeBatch writes the batch's final state (inserting it if no page
// logged anything).
func (r *run) closeBatch(ctx context.Context) error {
	b := r.batch
	if b.ID == 0 {
		return r.ensureBatch(ctx, r.p.db)
	}
	_, err := r.p.db.NewUpdate().Model(b).WherePK().
		Column("status", "message", "finished_at", "created", "updated", "deleted", "skipped", "failed", "waiting", "api_calls").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("close sync batch %d: %w", b.ID, err)
	}
	return nil
}

// ensureBatch inserts the pull's batch, still marked interrupted, the first
// time a page has something to log.
func (r *run) ensureBatch(ctx context.Context, db bun.IDB) error {
	if r.batch.ID != 0 {
		return nil
	}
	if _, err := db.NewInsert().Model(r.batch).Returning("id").Exec(ctx); err != nil {
		return fmt.Errorf("write sync batch: %w", err)
	}
	return nil
}

// markSpent stores a spent allowance after the CRM refused a call for it.
func (r *run) markSpent(ctx context.Context) error {
	used, maxCalls := r.c.APIUsed.Int64, r.c.APIMax.Int64
	if maxCalls <= 0 || used < maxCalls {
		maxCalls = max(maxCalls, 1)
		used = maxCalls
	}
	return r.p.conns.Observe(ctx, r.c, connector.Meta{Usage: &connector.Usage{Used: used, Max: maxCalls, ObservedAt: r.p.now().UTC()}})
}
