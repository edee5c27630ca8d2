package push

import (
	"context"
	"log/slog"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/contract"
	"github.com/crmsync/crmsync/internal/limits"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
)

// latencyBatches is how many of the latest outbound batches with calls
// the measured call latency averages over.
const latencyBatches = 200

// linkedByEarlierFlush stands in, in a forecast, for the CRM id of a
// record an earlier planned flush creates: later flushes update it.
const linkedByEarlierFlush = "(created by an earlier flush)"

// Forecast is what draining a workspace's queue, as it stands, would take
// (docs/sync.md, "Forecast"): the flushes the engine would run, each
// planned by the flush's own plannedCalls over the items it would claim.
type Forecast struct {
	At time.Time
	// Types has one entry per record type with queued items, in
	// dependency order.
	Types []TypeForecast
	// Items are the queued items; Records the distinct records they
	// write, of which Creates have no CRM link yet (the flush matches them
	// first and creates those it does not find), Updates are linked and
	// Removes leave a campaign. Records written by no call (writing off
	// for their type, unsupported, gone) are counted in Skipped.
	Items, Records, Creates, Updates, Removes, Skipped int
	// Flushes is how many flushes the queue takes (one per MaxItems
	// items), APICalls what they plan to spend: RESTCalls by the CRM's
	// per-record API (describes, reads, matching queries, writes) and
	// BulkCalls running BulkJobs bulk jobs, which the connector uses for
	// the writes of one kind on one object beyond BulkThreshold (0: the
	// connector announced no bulk path, or could not be asked).
	Flushes, APICalls    int
	RESTCalls, BulkCalls int
	// CutOffs is how many of the Flushes are planned to outlive a River
	// flush job's time and be cut off (their calls are in APICalls):
	// the claims after them are halved until a flush fits (claim.go).
	CutOffs                 int
	BulkJobs, BulkThreshold int
	// CallLatency is the time per call, without the records it carries:
	// measured over the workspace's latest outbound batches (LatencyCalls
	// REST calls; Terms.CallBasis) or, with LatencyAssumed,
	// DefaultCallLatency.
	CallLatency    time.Duration
	LatencyCalls   int
	LatencyAssumed bool
	// Paced says the budget schedule paces the flushes (false: fixed
	// windows, whose backlog flushes follow each other at once).
	Paced bool
	// Duration is the expected time to drain the queue under the current
	// pacing: the sum of Terms (forecasttime.go).
	Duration time.Duration
	Terms    DurationTerms
	// BudgetLeft is the calls left today under the tightest of the
	// crmsync daily limit, the paced budget and the Salesforce allowance
	// the connector last reported; BudgetSource names it.
	BudgetLeft   int64
	BudgetSource string
	// Fits says APICalls fit in BudgetLeft.
	Fits bool
	// FinishesAt is when the queue would be drained: At + Duration when it
	// fits, else once enough calls have left the rolling window.
	FinishesAt time.Time
}

// TypeForecast is a Forecast's figures for one record type. APICalls are
// planned as if the type's records were flushed alone: they may add up to
// a little more than the Forecast's, whose flushes share reads and writes
// across types.
type TypeForecast struct {
	Type                                               record.Type
	Items, Records, Creates, Updates, Removes, Skipped int
	APICalls                                           int
}

// Budget sources a forecast names beyond the pacing ones.
const (
	BudgetSalesforce = "Salesforce allowance (last reported)"
)

// Forecast plans the flushes that would drain the workspace's queue now,
// without calling the CRM and without changing anything: it reads the
// queued items MaxItems at a time in queue order (as the flushes claim
// them), coalesces and plans each page as a flush does, and adds up what
// plannedCalls says each would spend, by REST and by the connector's bulk
// path (asked with a describe without credentials). A record created by
// an earlier planned flush is an update in the later ones, read but not
// written again.
func (e *Engine) Forecast(ctx context.Context, workspaceID int64) (*Forecast, error) {
	c, err := e.conns.Get(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	now := e.now().UTC()
	fc := &Forecast{At: now, Paced: e.cfg.Pace.Enabled}
	caps := e.forecastCapabilities(ctx, c)
	fc.BulkThreshold, _ = caps.BulkThreshold()
	byType := map[record.Type]*TypeForecast{}
	described := e.descs.Objects(c)
	// seen holds every record planned so far: true for those created.
	seen := map[int64]bool{}
	var flushes []plannedFlush
	var after int64
	// Read once: the connection stores its routing and contract as JSON.
	routing := prefs.RoutingOf(c)
	names := contract.Of(routing.Contract)
	tm, err := e.measureTiming(ctx, workspaceID, names, fc)
	if err != nil {
		return nil, err
	}
	// The claims a River flush job makes, fitted to its time (claim.go):
	// a flush planned to outlive FlushTimeout is cut off, and what it
	// wrote by then (cutDone: true for creates) is matched, not written,
	// by the smaller claims after it.
	claim := e.cfg.MaxItems
	cutDone := map[int64]bool{}
	for {
		items, err := outbound.Queued(ctx, e.db, workspaceID, after, claim)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			break
		}
		f := &flush{e: e, c: c, now: now, caps: caps, routing: routing, names: names, extID: externalIDFields(c.Config), records: map[record.Key]*record.Record{}}
		if err := f.plan(ctx, items); err != nil {
			return nil, err
		}
		f.linkEarlier(seen, cutDone)
		plan := f.callsPlanned(described)
		pf := f.planned(len(items), plan)
		took, _ := tm.time(pf, &DurationTerms{})
		if took > FlushTimeout && claim > minClaim {
			cut := tm.cutAt(pf, FlushTimeout)
			for id, created := range cut.written {
				cutDone[id] = cutDone[id] || created
			}
			flushes = append(flushes, cut)
			fc.CutOffs++
			fc.APICalls += cut.cutREST + cut.cutBulk
			fc.RESTCalls, fc.BulkCalls, fc.BulkJobs = fc.RESTCalls+cut.cutREST, fc.BulkCalls+cut.cutBulk, fc.BulkJobs+cut.cutJobs
			described = f.describedAll(described)
			claim = max(minClaim, min(claim, len(items))/2)
			continue
		}
		after = items[len(items)-1].ID
		for _, it := range items {
			tf := typeForecast(byType, it.RecordType)
			tf.Items++
			fc.Items++
		}
		f.forecastJobs(fc, byType, seen, cutDone)
		flushes = append(flushes, pf)
		fc.APICalls += plan.total()
		fc.RESTCalls, fc.BulkCalls, fc.BulkJobs = fc.RESTCalls+plan.REST, fc.BulkCalls+plan.Bulk, fc.BulkJobs+plan.BulkJobs
		all := f.jobs
		for t, tf := range byType {
			f.jobs = slices.DeleteFunc(slices.Clone(all), func(j *job) bool { return j.rec.Type != t })
			tf.APICalls += f.callsPlanned(described).total()
		}
		f.jobs = all
		described = f.describedAll(described)
		if len(items) < claim {
			break
		}
		claim = nextClaim(claim, took, e.cfg.MaxItems)
	}
	fc.Flushes = len(flushes)
	for _, t := range []record.Type{record.TypeCompany, record.TypeCampaign, record.TypeContact, record.TypeCampaignMember, record.TypeTask} {
		if tf := byType[t]; tf != nil {
			fc.Types = append(fc.Types, *tf)
		}
	}
	pace, err := e.pace(ctx, e.db, c, now)
	if err != nil {
		return nil, err
	}
	fc.Duration = drainTime(flushes, tm, pace, &fc.Terms)
	hours, err := limits.Hourly(ctx, e.db, workspaceID, now)
	if err != nil {
		return nil, err
	}
	fc.BudgetLeft, fc.BudgetSource = budgetLeft(c, pace, e.cfg.Pace)
	fc.Fits = int64(fc.APICalls) <= fc.BudgetLeft
	fc.FinishesAt = now.Add(fc.Duration)
	if !fc.Fits {
		excess := int64(fc.APICalls) - fc.BudgetLeft
		release := budgetRelease(hours, excess, max(pace.BudgetPerDay, 1), now)
		perCall := fc.Duration / time.Duration(max(fc.APICalls, 1))
		fc.FinishesAt = later(fc.FinishesAt, release.Add(time.Duration(excess)*perCall))
	}
	return fc, nil
}

// forecastCapabilities returns what the connection's connector announces
// (a describe without credentials: no CRM call), so the forecast plans its
// bulk path. A connector that cannot be asked (its plugin does not start)
// is planned without one: the forecast says so with BulkThreshold 0, and
// the flush will pause on the same failure.
func (e *Engine) forecastCapabilities(ctx context.Context, c *connection.Connection) connection.Capabilities {
	crm, err := e.connectors.Connector(ctx, c.Connector)
	if err == nil {
		var caps connection.Capabilities
		if caps, err = e.descs.Capabilities(ctx, c, crm); err == nil {
			return caps
		}
	}
	e.logger.WarnContext(ctx, "forecast: the connector's capabilities are unknown, planning without a bulk path",
		slog.Int64("workspace_id", c.WorkspaceID), slog.String("connector", c.Connector), slog.Any("error", err))
	return connection.Capabilities{}
}

func typeForecast(byType map[record.Type]*TypeForecast, t record.Type) *TypeForecast {
	tf := byType[t]
	if tf == nil {
		tf = &TypeForecast{Type: t}
		byType[t] = tf
	}
	return tf
}

// linkEarlier links (in memory) the planned flush's records an earlier
// planned flush creates, so they plan as updates, and those a flush cut
// off by its deadline wrote (cutDone), so they plan as read and not
// written. seen holds the records planned so far, true for those created.
func (f *flush) linkEarlier(seen, cutDone map[int64]bool) {
	// Parents too: a record waits for a parent only if no earlier flush
	// creates it (missingParent).
	for _, r := range f.records {
		if (seen[r.ID] || cutDone[r.ID]) && r.CRMID == "" {
			r.CRMID = linkedByEarlierFlush
		}
	}
	for _, j := range f.jobs {
		if _, cut := cutDone[j.rec.ID]; cut || (j.crmID == "" && seen[j.rec.ID]) {
			j.crmID = linkedByEarlierFlush
		}
	}
}

// forecastJobs counts the planned flush's records not seen in an earlier
// one (a record a cut-off flush created, cutDone true, counts as a
// create), and marks them in seen, true for those created.
func (f *flush) forecastJobs(fc *Forecast, byType map[record.Type]*TypeForecast, seen, cutDone map[int64]bool) {
	for _, j := range f.jobs {
		if _, planned := seen[j.rec.ID]; planned {
			continue
		}
		seen[j.rec.ID] = false
		tf := typeForecast(byType, j.rec.Type)
		count := func(n *int, m *int) { *n++; *m++ }
		switch {
		case j.done:
			count(&tf.Skipped, &fc.Skipped)
			continue
		case j.w.Op == outbound.OpRemove:
			count(&tf.Removes, &fc.Removes)
		case j.crmID == "" || cutDone[j.rec.ID]:
			count(&tf.Creates, &fc.Creates)
			seen[j.rec.ID] = true
		default:
			count(&tf.Updates, &fc.Updates)
		}
		count(&tf.Records, &fc.Records)
	}
}

// describedAll returns described with the objects the planned flush's
// writes describe.
func (f *flush) describedAll(described map[string]connector.Object) map[string]connector.Object {
	for _, j := range f.jobs {
		if !j.done {
			described = f.withDescribed(described, j.object)
		}
	}
	return described
}

// nextClaim is the claim after a full one that took took, as claim.go
// fits it to FlushTimeout: shrunk in proportion past half the time,
// doubled under a quarter (at most max).
func nextClaim(claim int, took time.Duration, most int) int {
	switch {
	case took > FlushTimeout/2:
		return max(minClaim, int(float64(claim)*float64(FlushTimeout/2)/float64(took)))
	case took < FlushTimeout/4:
		return min(most, 2*claim)
	}
	return claim
}

// planned is what the forecast times of this planned flush of items
// (forecasttime.go): its records, those it reads by id (linked ones), and
// its calls and writes.
func (f *flush) planned(items int, plan callPlan) plannedFlush {
	p := plannedFlush{items: items, restCalls: plan.REST, writes: plan.Writes}
	for _, j := range f.jobs {
		if j.done {
			continue
		}
		p.records++
		if j.crmID != "" {
			p.reads++
		}
	}
	return p
}

// withDescribed returns described with the objects a write to object
// describes (describedWith) marked as described.
func (f *flush) withDescribed(described map[string]connector.Object, object string) map[string]connector.Object {
	for _, o := range f.describedWith(object) {
		if _, ok := described[o]; !ok {
			described = maps.Clone(described)
			described[o] = connector.Object{Name: o}
		}
	}
	return described
}

// drainTime is how long the planned flushes take one after the other
// (timing.time), and sets terms. Paced, each waits until the bucket holds
// a call and takes its calls out of it, as a flush does (pace.go), at the
// current refill rate (the budget over a day when the rate is nil: the
// window frees calls on the hour). On fixed windows a backlog's flushes
// follow each other at once.
func drainTime(flushes []plannedFlush, tm timing, p Pace, terms *DurationTerms) time.Duration {
	rate := p.Rate
	if rate <= 0 {
		rate = float64(max(p.BudgetPerDay, 1)) / limits.Window.Seconds()
	}
	tokens, total := p.Tokens, time.Duration(0)
	for _, pf := range flushes {
		took, n := tm.time(pf, terms)
		if p.Enabled && tokens < 1 {
			wait := time.Duration((1 - tokens) / rate * float64(time.Second))
			terms.Pacing += wait
			total += wait
			tokens = 1
		}
		total += took
		tokens = min(tokens+rate*took.Seconds(), p.Burst) - float64(n)
	}
	return total
}

// budgetLeft is the calls left today under the tightest of the crmsync
// daily limit (or, without one, the paced budget), and the allowance
// Salesforce last reported; the assumed allowance when neither is known.
func budgetLeft(c *connection.Connection, p Pace, cfg PaceConfig) (int64, string) {
	left, source := int64(math.MaxInt64), ""
	consider := func(n int64, s string) {
		if n < left {
			left, source = n, s
		}
	}
	switch {
	case c.DailyLimit.Valid:
		consider(c.DailyLimit.Int64-p.Spent, BudgetDailyLimit)
	case p.Enabled:
		consider(p.BudgetPerDay-p.Spent, p.Source)
	}
	if c.APIMax.Valid && c.APIMax.Int64 > 0 && c.APIUsed.Valid {
		consider(c.APIMax.Int64-c.APIUsed.Int64, BudgetSalesforce)
	}
	if source == "" {
		consider(cfg.FallbackAllowance-p.Spent, BudgetAssumed)
	}
	return max(left, 0), source
}

// budgetRelease is when excess calls beyond today's budget become
// available: when the calls of the window's oldest hours leave it
// (limits.Window after their hour), or, beyond what the window holds now,
// perDay more calls a day after that.
func budgetRelease(hours []limits.HourCalls, excess, perDay int64, now time.Time) time.Time {
	var freed int64
	for _, h := range hours {
		freed += h.Calls
		if freed >= excess {
			return h.Hour.Add(limits.Window)
		}
	}
	days := (excess - freed + perDay - 1) / perDay
	return now.Truncate(time.Hour).Add(time.Duration(days) * limits.Window)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
