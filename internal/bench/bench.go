// Package bench is the harness of `crmsync bench`: it measures API calls,
// latency and throughput of a crmsync server against a fake Salesforce org
// with a per-call latency (see docs/benchmarks.md for the scenarios).
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/salesforce"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/internal/config"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/overview"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/workspace"
)

// Options are the bench command's settings (see `crmsync bench --help`).
type Options struct {
	Scenario   string        // burst, trickle, backlog, limit, ingest, budget, inbound or import (see docs/benchmarks.md)
	JSON       bool          // print the report as JSON
	Latency    time.Duration // base latency the fake Salesforce adds to every call
	CostModel  string        // realistic or flat: the fake org's cost model (see costModel)
	CostWrite  time.Duration // realistic: per-record write time for every object (0: the model's)
	Changes    int           // changes to send (0: the scenario's default)
	Records    int           // distinct records they touch (0: the scenario's default)
	Clients    int           // ingest: concurrent GraphQL clients
	Duration   time.Duration // ingest: how long each batch size is measured
	Rate       float64       // trickle, inbound: changes per second on average (Poisson arrivals)
	For        time.Duration // trickle, inbound: how long changes arrive
	Interval   time.Duration // the flush interval (and the fixed schedule's tick in trickle)
	ClosedLoop bool          // trickle: one change at a time, the next once the org has it
	Allowance  int64         // trickle: the fake org's daily allowance (0: 100,000)
	Cap        int64         // trickle: crmsync daily limit of the paced side; budget: of the simulated day
	CPUProfile string        // write a CPU profile of the whole run to this file
	MemProfile string        // write a heap profile of the whole run to this file at the end
	Replicas   int           // ingest: crmsync serve replicas the clients spread over (PostgreSQL)
	BatchSizes []int         // ingest: changes per call, one measurement each (default 1, 100, 1000)
	// BulkThreshold is the import scenario's connection bulkThreshold
	// (0: the connector's default).
	BulkThreshold int
}

// Server is the running crmsync server a scenario drives: its database,
// the services it calls and the base URL of its HTTP API.
type Server struct {
	DB          *bun.DB
	Workspaces  *workspace.Service
	Connections *connection.Service
	Ingester    *outbound.Ingester
	Engine      *push.Engine
	// NewEngine builds another engine over the same database and
	// connectors (the budget scenario runs one on the fake org's clock).
	NewEngine func(push.Config) *push.Engine
	BaseURL   string
}

// Serve runs a crmsync server with the given settings until ready returns;
// ready runs once the server is up (River working, HTTP listening), and its
// error stops the server and is returned. The composition root provides it.
type Serve func(global config.Global, cfg config.Server, ready func(ctx context.Context, s *Server) error) error

// Report is what a scenario measured. Zero fields do not apply.
type Report struct {
	Scenario   string  `json:"scenario"`
	Database   string  `json:"database"`
	LatencyMS  int64   `json:"latency_ms"`
	CostModel  string  `json:"cost_model"`        // the fake org's cost model: realistic or flat
	CostDetail string  `json:"cost_model_detail"` // its figures
	Changes    int     `json:"changes"`
	Records    int     `json:"records"`
	Flushes    int     `json:"flushes"`
	ReadCalls  int     `json:"read_calls"`
	WriteCalls int     `json:"write_calls"`
	AuthCalls  int     `json:"auth_calls"`
	APICalls   int     `json:"api_calls"`
	CMin       int     `json:"c_min,omitempty"`
	Ratio      float64 `json:"ratio_to_c_min,omitempty"`
	PerCall    float64 `json:"changes_per_call"`
	DrainSec   float64 `json:"drain_seconds"`
	ChangesSec float64 `json:"changes_per_second,omitempty"`
	PeakRSSMB  float64 `json:"peak_rss_mb,omitempty"`
	// PeakHeapMB is the largest live heap (kept by a GC) of the process:
	// crmsync and, in this process, the fake org.
	PeakHeapMB float64 `json:"peak_live_heap_mb,omitempty"`
	DBPerItem  float64 `json:"db_bytes_per_queued_change,omitempty"`

	CallsAfterLimit int     `json:"calls_after_first_limit_error,omitempty"`
	PauseSec        float64 `json:"seconds_to_pause,omitempty"`
	ResumeSec       float64 `json:"seconds_to_resume,omitempty"`
	Lost            int     `json:"lost"`

	// Forecast is what syncForecast predicted for the drained queue, taken
	// while the connection was paused before the drain (burst, backlog,
	// import).
	Forecast *ForecastResult `json:"forecast,omitempty"`
	Ingest   []IngestResult  `json:"ingest,omitempty"`
	Inbound  *InboundResult  `json:"inbound,omitempty"`
	Trickle  []TrickleResult `json:"trickle,omitempty"`
	Budget   *BudgetResult   `json:"budget,omitempty"`
	Bulk     *BulkResult     `json:"bulk,omitempty"`
}

// IngestResult is one batch size of the ingest scenario.
type IngestResult struct {
	BatchSize  int     `json:"batch_size"`
	Calls      int     `json:"mutations"`
	ChangesSec float64 `json:"accepted_changes_per_second"`
	P50MS      float64 `json:"latency_p50_ms"`
	P99MS      float64 `json:"latency_p99_ms"`
	// Flushes the concurrent drain started while this batch size ran, and
	// their median duration.
	Flushes    int     `json:"flushes"`
	FlushP50MS float64 `json:"flush_p50_ms"`
}

var errBenchDone = errors.New("bench done")

// Run measures crmsync against a fake Salesforce org with a per-call
// latency, in one process tree: the server (engine, River, database) that
// serve runs, the fake org on loopback and the Salesforce connector as a
// plugin process. It prints the report to stdout and progress to stderr.
func Run(c Options, global config.Global, serve Serve, stdout, stderr io.Writer) error {
	defaults := map[string][2]int{"burst": {20_000, 2_000}, "trickle": {0, 200}, "backlog": {100_000, 20_000}, "limit": {2_000, 500}, "ingest": {0, 2_000},
		"budget": {20_000, 500}, "inbound": {0, inboundLeads}, "import": {100_000, 20_000}}
	if c.Changes == 0 {
		c.Changes = defaults[c.Scenario][0] // ingest counts what its clients send
	}
	if c.Records == 0 {
		c.Records = defaults[c.Scenario][1]
	}
	if c.Records < 3 || (c.Scenario != "ingest" && c.Scenario != "trickle" && c.Scenario != "inbound" && c.Changes < c.Records) {
		return fmt.Errorf("bench: need at least 3 records and as many changes as records (got %d changes, %d records)", c.Changes, c.Records)
	}
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	peakProfile := ""
	if c.MemProfile != "" {
		f, err := os.Create(c.MemProfile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer writeHeapProfile(stderr, f)
		peakProfile = c.MemProfile + ".peak"
	}
	heap := watchHeap(stderr, peakProfile, 250*time.Millisecond)
	defer heap.Close()
	cost, err := costModel(c)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	dir, err := os.MkdirTemp("", "crmsync-bench-")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)

	org := sffake.New(sffake.Options{Cost: &cost, DailyMax: 100_000_000})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("bench: listen for the fake Salesforce: %w", err)
	}
	fake := &http.Server{Handler: org, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = fake.Serve(ln) }()
	defer fake.Close()
	if c.Scenario == "inbound" {
		pln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("bench: listen for the fake Pub/Sub API: %w", err)
		}
		org.ServePubSub(pln)
		defer org.StopPubSub()
	}

	global.DataDir = dir
	if global.LogLevel == "info" {
		global.LogLevel = "error" // the report is the output
	}
	cfg := config.Server{Listen: "127.0.0.1:0", ShutdownTimeout: 8 * time.Second,
		// No sweep: it would flush the trickle's fixed-schedule workspace.
		// The fake orgs (and the fake Pub/Sub API) listen on loopback: allowed explicitly.
		Sync: config.Sync{FlushInterval: c.Interval, PullInterval: time.Hour, SweepInterval: time.Hour, AllowCRMHosts: []string{"127.0.0.1"},
			Streaming: c.Scenario == "inbound"}}
	var report *Report
	err = serve(global, cfg, func(ctx context.Context, a *Server) error {
		b := &bench{cmd: c, heap: heap, cost: cost, global: global, a: a, org: org, orgURL: "http://" + ln.Addr().String(), progress: newProgress(stderr), dir: dir}
		r, err := b.run(ctx)
		if err != nil {
			return fmt.Errorf("bench %s: %w", c.Scenario, err)
		}
		report = r
		return errBenchDone
	})
	if err != nil && !errors.Is(err, errBenchDone) {
		return err
	}
	if report == nil {
		return errors.New("bench: interrupted")
	}
	return printReport(stdout, report, c.JSON)
}

// costModel is the fake org's cost model for c: realistic (the default)
// or flat, with --latency as the base per call.
func costModel(c Options) (sffake.Cost, error) {
	if c.Latency < 0 || c.CostWrite < 0 {
		return sffake.Cost{}, fmt.Errorf("--latency and --cost-per-record must not be negative (got %s, %s)", c.Latency, c.CostWrite)
	}
	switch c.CostModel {
	case "", "realistic":
		m := sffake.RealisticCost()
		m.Base = c.Latency
		if c.CostWrite > 0 {
			m = m.WithWriteCost(c.CostWrite)
			m.Name = fmt.Sprintf("realistic, writes %s per record", c.CostWrite)
		}
		return m, nil
	case "flat":
		if c.CostWrite > 0 {
			return sffake.Cost{}, errors.New("--cost-per-record applies to the realistic cost model only, not to flat")
		}
		return sffake.FlatCost(c.Latency), nil
	}
	return sffake.Cost{}, fmt.Errorf("unknown cost model %q: realistic or flat", c.CostModel)
}

// writeHeapProfile writes the allocations of the whole run to f and closes it.
func writeHeapProfile(stderr io.Writer, f *os.File) {
	err := pprof.Lookup("allocs").WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: heap profile: %v\n", err)
	}
}

type bench struct {
	cmd      Options
	heap     *heapWatch
	cost     sffake.Cost // every fake org's cost model
	global   config.Global
	a        *Server
	org      *sffake.Server
	orgURL   string
	progress *progress
	dir      string
	token    string
	ws       int64
	// last is the last value sent per record key, to count lost changes.
	last map[record.Key]string
}

func (b *bench) run(ctx context.Context) (*Report, error) {
	ws, issued, err := b.a.Workspaces.Create(ctx, "bench")
	if err != nil {
		return nil, err
	}
	b.ws, b.last, b.token = ws.ID, map[record.Key]string{}, issued.Token
	if err := b.preferences(ctx); err != nil {
		return nil, err
	}
	r := &Report{Scenario: b.cmd.Scenario, Database: string(db.DialectOf(b.a.DB)), LatencyMS: b.cmd.Latency.Milliseconds(), CostModel: b.cost.Name, CostDetail: b.cost.String(),
		Changes: b.cmd.Changes, Records: b.cmd.Records}
	if b.cmd.Clients < 1 || b.cmd.Duration <= 0 {
		return nil, fmt.Errorf("need at least one client and a positive duration")
	}
	switch b.cmd.Scenario {
	case "backlog":
		err = b.backlog(ctx, r)
	case "limit":
		err = b.limit(ctx, r)
	case "ingest":
		err = b.ingestHTTP(ctx, r)
	case "trickle":
		err = b.trickle(ctx, r)
	case "budget":
		err = b.budget(ctx, r)
	case "inbound":
		err = b.inbound(ctx, r)
	case "import":
		err = b.importRecords(ctx, r)
	default:
		err = b.burst(ctx, r)
	}
	if err != nil {
		return nil, err
	}
	if r.APICalls > 0 && b.cmd.Scenario != "trickle" { // two workspaces got the same changes
		r.PerCall = float64(r.Changes) / float64(r.APICalls)
	}
	if b.cmd.Scenario == "trickle" || b.cmd.Scenario == "budget" || b.cmd.Scenario == "inbound" {
		return r, nil // counted its own lost changes, on its own workspaces
	}
	lost, err := b.lost()
	r.Lost = lost
	return r, err
}

// preferences sets the bench's preferences on its workspace: outbound only
// (no inbound pull shares the fake org's counters), and every benchmarked
// field always goes to Salesforce, so every change needs its write and the
// final state is checkable.
func (b *bench) preferences(ctx context.Context) error {
	ws := b.ws
	for _, t := range record.Types {
		p := prefs.DefaultObjectPreference(t)
		p.ReadEnabled = false
		if err := prefs.SetObject(ctx, b.a.DB, ws, p); err != nil {
			return err
		}
	}
	for t, f := range map[record.Type][2]string{record.TypeContact: {"phone", "Phone"}, record.TypeCompany: {"phone", "Phone"}, record.TypeCampaign: {"status", "Status"}} {
		if err := prefs.SetField(ctx, b.a.DB, ws, prefs.FieldMapping{RecordType: t, Field: f[0], CRMField: f[1], Mode: prefs.AlwaysPreferConversion}); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) connect(ctx context.Context) error {
	return b.connectWith(ctx, salesforce.Config{LoginURL: b.orgURL, ClientID: b.org.ClientID()})
}

// connectWith connects the workspace to the fake org with cfg.
func (b *bench) connectWith(ctx context.Context, cfg salesforce.Config) error {
	cfgJSON, _ := json.Marshal(cfg)
	creds, _ := json.Marshal(salesforce.Credentials{ClientSecret: b.org.ClientSecret(), RefreshToken: b.org.IssueRefreshToken(b.org.IntegrationUserID())})
	_, err := b.a.Connections.Connect(ctx, b.ws, salesforce.Name, cfgJSON, creds)
	return err
}

var benchTypes = []record.Type{record.TypeContact, record.TypeCompany, record.TypeCampaign}

// recordKey spreads records over contacts (half), companies and campaigns.
func (b *bench) recordKey(i int) record.Key {
	t := benchTypes[0]
	switch i % 4 {
	case 1:
		t = record.TypeCompany
	case 3:
		t = record.TypeCampaign
	}
	return record.Key{Type: t, ID: fmt.Sprintf("%s-%d", strings.ToLower(string(t)), i)}
}

// seedChange creates record i with everything Salesforce requires.
func (b *bench) seedChange(i int, now time.Time) outbound.Change {
	k := b.recordKey(i)
	f := map[string]outbound.FieldChange{}
	set := func(name string, v any) { f[name] = outbound.FieldChange{Value: v, ChangedAt: now} }
	switch k.Type {
	case record.TypeContact:
		set("email", fmt.Sprintf("bench%d@example.com", i))
		set("lastName", fmt.Sprintf("Bench %d", i))
		set("company", "Bench Inc")
	default:
		set("name", fmt.Sprintf("Bench %s %d", strings.ToLower(string(k.Type)), i))
	}
	return outbound.Change{Type: k.Type, ID: k.ID, Source: record.SourceImport, Fields: f}
}

// updates returns n changes over the records, skewed: a fifth of them go to
// the hottest 1% of records.
func (b *bench) updates(n int, now time.Time) []outbound.Change {
	out := make([]outbound.Change, n)
	hot := max(1, b.cmd.Records/100)
	for j := range out {
		i := rand.IntN(b.cmd.Records)
		if j%5 == 0 {
			i = rand.IntN(hot)
		}
		k := b.recordKey(i)
		field, v := "phone", fmt.Sprintf("+1 555 %07d", j)
		if k.Type == record.TypeCampaign {
			field, v = "status", []string{"Planned", "In Progress", "Completed", "Aborted"}[j%4]
		}
		b.last[k] = v
		out[j] = outbound.Change{Type: k.Type, ID: k.ID, Source: record.SourceAPI,
			Fields: map[string]outbound.FieldChange{field: {Value: v, ChangedAt: now.Add(time.Duration(j) * time.Microsecond)}}}
	}
	return out
}

func (b *bench) ingest(ctx context.Context, changes []outbound.Change) error {
	for start := 0; start < len(changes); start += outbound.MaxChanges {
		if _, err := b.a.Ingester.Ingest(ctx, b.ws, changes[start:min(start+outbound.MaxChanges, len(changes))]); err != nil {
			return err
		}
		b.progress.Update("bench: accepted %d/%d changes", min(start+outbound.MaxChanges, len(changes)), len(changes))
	}
	b.progress.Done("bench: accepted %d changes", len(changes))
	return nil
}

// drain waits until nothing is queued, showing progress.
func (b *bench) drain(ctx context.Context, timeout time.Duration) error {
	return b.drainWorkspace(ctx, b.ws, timeout)
}

// drainWorkspace waits until nothing is queued in ws, showing progress:
// records done of the total, rate and ETA, as the overview computes them
// (overview.Progress). The queue is polled every 100 ms so the drain time
// is exact; the progress, which reads the sync log too, once a second.
func (b *bench) drainWorkspace(ctx context.Context, ws int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var shown time.Time
	for {
		d, err := outbound.Measure(ctx, b.a.DB, ws)
		if err != nil {
			return err
		}
		if d.Queued == 0 {
			b.progress.Done("bench: drained, %d failed", d.Failed)
			if d.Failed > 0 {
				return fmt.Errorf("%d changes parked as failed", d.Failed)
			}
			return nil
		}
		if now := time.Now(); now.Sub(shown) >= time.Second {
			shown = now
			p, err := overview.GetProgress(ctx, b.a.DB, ws, d.OldestQueued, now)
			if err != nil {
				return err
			}
			b.progress.Update("%s", progressLine(p, d, now))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("queue not drained after %s (%d queued)", timeout, d.Queued)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (b *bench) seed(ctx context.Context) error {
	now := time.Now()
	changes := make([]outbound.Change, b.cmd.Records)
	for i := range changes {
		changes[i] = b.seedChange(i, now)
	}
	if err := b.ingest(ctx, changes); err != nil {
		return err
	}
	return b.drain(ctx, 10*time.Minute)
}

func (b *bench) countFlushes(ctx context.Context, since time.Time) (int, error) {
	return b.countFlushesOf(ctx, b.ws, since)
}

func (b *bench) countFlushesOf(ctx context.Context, ws int64, since time.Time) (int, error) {
	n, err := b.a.DB.NewSelect().Table("sync_batches").
		Where("workspace_id = ? AND direction = 'OUTBOUND' AND status <> 'PAUSED' AND started_at >= ?", ws, since.UTC()).Count(ctx)
	return int(n), err
}

// countCallingFlushesOf counts ws's outbound batches since that called the
// CRM (a flush that found nothing to send makes no call).
func (b *bench) countCallingFlushesOf(ctx context.Context, ws int64, since time.Time) (int, error) {
	n, err := b.a.DB.NewSelect().Table("sync_batches").
		Where("workspace_id = ? AND direction = 'OUTBOUND' AND api_calls > 0 AND started_at >= ?", ws, since.UTC()).Count(ctx)
	return int(n), err
}

// burst: the records exist in Salesforce; a burst of updates arrives while
// the connection is held (as when it arrives faster than a flush starts),
// then drains. Calls are counted by the fake org.
func (b *bench) burst(ctx context.Context, r *Report) error {
	if err := b.connect(ctx); err != nil {
		return err
	}
	if err := b.seed(ctx); err != nil {
		return err
	}
	changes := b.updates(b.cmd.Changes, time.Now())
	if err := b.a.Connections.SetPaused(ctx, b.ws, true); err != nil {
		return err
	}
	if err := b.ingest(ctx, changes); err != nil {
		return err
	}
	if err := b.forecast(ctx, r); err != nil {
		return err
	}
	before, start := b.org.Calls(), time.Now()
	if err := b.a.Connections.SetPaused(ctx, b.ws, false); err != nil {
		return err
	}
	if err := b.drain(ctx, 10*time.Minute); err != nil {
		return err
	}
	r.DrainSec = time.Since(start).Seconds()
	b.calls(r, before)
	perObject := map[record.Type]int{}
	for k := range b.last {
		perObject[k.Type]++
	}
	reads := 0
	for _, n := range perObject {
		reads += (n + 1999) / 2000
	}
	r.CMin = (reads+4)/5 + (len(b.last)+999)/1000
	r.Ratio = float64(r.APICalls) / float64(r.CMin)
	var err error
	r.Flushes, err = b.countFlushes(ctx, start)
	return err
}

// ForecastResult is a forecast next to what the drain then measured.
type ForecastResult struct {
	Calls int `json:"api_calls"`
	// RESTCalls and BulkCalls split Calls; BulkJobs are the Bulk jobs
	// planned (over the connection's bulk threshold).
	RESTCalls      int     `json:"rest_api_calls"`
	BulkCalls      int     `json:"bulk_api_calls"`
	BulkJobs       int     `json:"bulk_jobs"`
	Flushes        int     `json:"flushes"`
	DurationSec    float64 `json:"duration_seconds"`
	LatencyMS      float64 `json:"call_latency_ms"`
	LatencyAssumed bool    `json:"call_latency_assumed"`
	// The duration's terms (push.DurationTerms) and where their figures
	// come from.
	FlushSec    float64 `json:"flush_seconds"`
	CallSec     float64 `json:"call_seconds"`
	RecordSec   float64 `json:"record_seconds"`
	BulkSec     float64 `json:"bulk_seconds"`
	PacingSec   float64 `json:"pacing_seconds"`
	CutOffs     int     `json:"cut_offs"`
	CutOffSec   float64 `json:"cut_off_seconds"`
	CallBasis   string  `json:"call_basis"`
	RecordScale float64 `json:"record_scale"`
	BulkBasis   string  `json:"bulk_basis"`
}

// forecast asks the engine what draining the paused workspace's queue
// will cost, before it starts.
func (b *bench) forecast(ctx context.Context, r *Report) error {
	fc, err := b.a.Engine.Forecast(ctx, b.ws)
	if err != nil {
		return fmt.Errorf("forecast: %w", err)
	}
	r.Forecast = &ForecastResult{Calls: fc.APICalls, RESTCalls: fc.RESTCalls, BulkCalls: fc.BulkCalls, BulkJobs: fc.BulkJobs,
		Flushes: fc.Flushes, DurationSec: fc.Duration.Seconds(),
		LatencyMS: float64(fc.CallLatency) / float64(time.Millisecond), LatencyAssumed: fc.LatencyAssumed,
		FlushSec: fc.Terms.Flush.Seconds(), CallSec: fc.Terms.Calls.Seconds(), RecordSec: fc.Terms.Records.Seconds(),
		BulkSec: fc.Terms.Bulk.Seconds(), PacingSec: fc.Terms.Pacing.Seconds(), CutOffs: fc.CutOffs, CutOffSec: fc.Terms.CutOff.Seconds(), CallBasis: fc.Terms.CallBasis,
		RecordScale: fc.Terms.RecordScale, BulkBasis: fc.Terms.BulkBasis}
	return nil
}

// connectPaused connects the workspace and pauses it. Call it while the
// queue is empty: the flush that connecting schedules then finds nothing,
// and what is queued next waits for the resume.
func (b *bench) connectPaused(ctx context.Context, cfg salesforce.Config) error {
	if err := b.connectWith(ctx, cfg); err != nil {
		return err
	}
	return b.a.Connections.SetPaused(ctx, b.ws, true)
}

func (b *bench) calls(r *Report, before sffake.CallCounts) {
	after := b.org.Calls()
	r.ReadCalls, r.WriteCalls, r.AuthCalls = after.Read-before.Read, after.Write-before.Write, after.Auth-before.Auth
	r.APICalls = r.ReadCalls + r.WriteCalls
}

// backlog: changes accepted while the connection is paused, drained once
// it resumes.
func (b *bench) backlog(ctx context.Context, r *Report) error {
	if err := b.connectPaused(ctx, salesforce.Config{LoginURL: b.orgURL, ClientID: b.org.ClientID()}); err != nil {
		return err
	}
	sizeBefore, err := b.dbSize(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	changes := make([]outbound.Change, 0, b.cmd.Changes)
	for i := range b.cmd.Records {
		changes = append(changes, b.seedChange(i, now))
	}
	changes = append(changes, b.updates(b.cmd.Changes-b.cmd.Records, now.Add(time.Second))...)
	if err := b.ingest(ctx, changes); err != nil {
		return err
	}
	// Only the count is used from here: the bench's own copy of the backlog
	// is not crmsync's memory and is garbage during the drain.
	n := len(changes)
	sizeAfter, err := b.dbSize(ctx)
	if err != nil {
		return err
	}
	r.DBPerItem = float64(sizeAfter-sizeBefore) / float64(n)
	if err := b.forecast(ctx, r); err != nil {
		return err
	}
	before, start := b.org.Calls(), time.Now()
	if err := b.a.Connections.SetPaused(ctx, b.ws, false); err != nil {
		return err
	}
	if err := b.drain(ctx, 30*time.Minute); err != nil {
		return err
	}
	r.DrainSec = time.Since(start).Seconds()
	r.ChangesSec = float64(n) / r.DrainSec
	b.calls(r, before)
	r.PeakRSSMB, r.PeakHeapMB = peakRSSMB(), b.heap.PeakMB()
	r.Flushes, err = b.countFlushes(ctx, start)
	return err
}

// limit: the org's allowance runs out in the middle of a burst and comes
// back later; nothing may be lost.
func (b *bench) limit(ctx context.Context, r *Report) error {
	if err := b.connect(ctx); err != nil {
		return err
	}
	if err := b.seed(ctx); err != nil {
		return err
	}
	used, _ := b.org.Usage()
	b.org.SetDailyMax(used + 1) // the read goes through, the writes meet the limit
	b.org.ResetRequestLog()
	before, start := b.org.Calls(), time.Now()
	if err := b.ingest(ctx, b.updates(b.cmd.Changes, time.Now())); err != nil {
		return err
	}
	var firstLimit time.Time
	for firstLimit.IsZero() || !b.paused(ctx) {
		if time.Since(start) > 5*time.Minute {
			return errors.New("the connection never paused")
		}
		if firstLimit.IsZero() && !b.paused(ctx) {
			if o, err := overview.Get(ctx, b.a.DB, b.ws, time.Now()); err == nil && o.Queued == 0 {
				return errors.New("the burst drained without meeting the limit")
			}
		}
		if firstLimit.IsZero() {
			for _, req := range b.org.RequestLog() {
				if req.Status == http.StatusForbidden {
					firstLimit = time.Now()
					break
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.PauseSec = time.Since(firstLimit).Seconds()
	time.Sleep(3 * time.Second) // paused a while: ticks must not call Salesforce
	log := b.org.RequestLog()
	for i, req := range log {
		if req.Status == http.StatusForbidden {
			for _, later := range log[i+1:] {
				if later.Kind == "read" || later.Kind == "write" {
					r.CallsAfterLimit++
				}
			}
			break
		}
	}
	b.org.SetUsage(0)
	b.org.SetDailyMax(100_000_000)
	reset := time.Now()
	if err := b.drain(ctx, 10*time.Minute); err != nil {
		return err
	}
	r.ResumeSec = time.Since(reset).Seconds()
	r.DrainSec = time.Since(start).Seconds()
	b.calls(r, before)
	var err error
	r.Flushes, err = b.countFlushes(ctx, start)
	return err
}

func (b *bench) paused(ctx context.Context) bool {
	o, err := overview.Get(ctx, b.a.DB, b.ws, time.Now())
	return err == nil && o.Paused
}

// lost counts records whose last sent value is not in Salesforce.
func (b *bench) lost() (int, error) {
	lost := 0
	for k, want := range b.last {
		var rec struct {
			CRMObject string `bun:"crm_object"`
			CRMID     string `bun:"crm_id"`
		}
		err := b.a.DB.NewSelect().Table("records").Column("crm_object", "crm_id").
			Where("workspace_id = ? AND type = ? AND conversion_id = ?", b.ws, k.Type, k.ID).Scan(context.Background(), &rec)
		if err != nil {
			return 0, fmt.Errorf("count lost changes: %w", err)
		}
		field := "Phone"
		if k.Type == record.TypeCampaign {
			field = "Status"
		}
		got, ok := b.org.Get(rec.CRMObject, rec.CRMID)
		if !ok || got[field] != want {
			lost++
		}
	}
	return lost, nil
}

func (b *bench) dbSize(ctx context.Context) (int64, error) {
	if db.DialectOf(b.a.DB) == db.Postgres {
		var n int64
		err := b.a.DB.NewRaw("SELECT pg_database_size(current_database())").Scan(ctx, &n)
		return n, err
	}
	var n int64
	for _, name := range []string{"crmsync.db", "crmsync.db-wal"} {
		if st, err := os.Stat(filepath.Join(b.dir, name)); err == nil {
			n += st.Size()
		}
	}
	return n, nil
}

// peakRSSMB is this process's peak resident memory (VmHWM); the plugin
// process is not included.
func peakRSSMB() float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// ratio is a/b, 0 when b is.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func printReport(w io.Writer, r *Report, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	row("scenario", r.Scenario)
	row("database", r.Database)
	row("cost model", r.CostDetail)
	row("changes / records", fmt.Sprintf("%d / %d", r.Changes, r.Records))
	calls := "API calls (read + write)"
	if len(r.Trickle) > 0 {
		calls = "API calls, both orgs (read + write)"
	}
	row("flushes", r.Flushes)
	row(calls, fmt.Sprintf("%d (%d + %d), auth %d", r.APICalls, r.ReadCalls, r.WriteCalls, r.AuthCalls))
	if r.CMin > 0 {
		row("C_min", r.CMin)
		row("ratio to C_min", fmt.Sprintf("%.2f", r.Ratio))
	}
	if r.PerCall > 0 {
		row("changes per call", fmt.Sprintf("%.0f", r.PerCall))
	}
	row("time to drain", fmt.Sprintf("%.1fs", r.DrainSec))
	if r.ChangesSec > 0 {
		row("changes/s", fmt.Sprintf("%.0f", r.ChangesSec))
	}
	if r.PeakRSSMB > 0 {
		row("peak RSS (crmsync, without the plugin)", fmt.Sprintf("%.0f MB", r.PeakRSSMB))
	}
	if r.PeakHeapMB > 0 {
		row("peak live heap (crmsync and the fake org)", fmt.Sprintf("%.0f MB", r.PeakHeapMB))
	}
	if r.DBPerItem > 0 {
		row("database per queued change", fmt.Sprintf("%.0f bytes", r.DBPerItem))
	}
	for _, in := range r.Ingest {
		row(fmt.Sprintf("ingest, batches of %d", in.BatchSize), fmt.Sprintf("%.0f changes/s accepted, %d mutations, latency p50 %.1f ms, p99 %.1f ms; %d flushes meanwhile (p50 %.0f ms)",
			in.ChangesSec, in.Calls, in.P50MS, in.P99MS, in.Flushes, in.FlushP50MS))
	}
	for _, tr := range r.Trickle {
		row("trickle, "+tr.Schedule, fmt.Sprintf("latency p50 %.2fs, p95 %.2fs, p99 %.2fs, max %.2fs; %d changes (%d applied), %d flushes, %d API calls (%.0f/hour, %.2f per flush)",
			tr.P50MS/1000, tr.P95MS/1000, tr.P99MS/1000, tr.MaxMS/1000, tr.Changes, tr.Applied, tr.Flushes, tr.Calls, tr.CallsPerHour, tr.CallsPerFlush))
	}
	if bu := r.Budget; bu != nil {
		printBudget(row, bu)
	}
	if in := r.Inbound; in != nil {
		row("inbound rep edits (applied)", fmt.Sprintf("%d (%d)", in.Edits, in.Applied))
		row("commit → visible", fmt.Sprintf("p50 %.0f ms, p99 %.0f ms, max %.0f ms", in.P50MS, in.P99MS, in.MaxMS))
		row("REST calls while streaming", in.RESTCalls)
		row("REST calls, idle as long", in.IdleCalls)
	}
	if bu := r.Bulk; bu != nil {
		th := fmt.Sprint(bu.Threshold)
		if bu.Threshold == 0 {
			th = fmt.Sprintf("%d (default)", salesforce.DefaultBulkThreshold)
		}
		row("bulk threshold", th)
		row("Bulk API jobs, batches, records", fmt.Sprintf("%d, %d, %d", bu.Jobs, bu.Batches, bu.Records))
		row("duplicates in the org", bu.Duplicates)
	}
	if r.Scenario == "limit" {
		row("calls after the first limit error", r.CallsAfterLimit)
		row("time to pause", fmt.Sprintf("%.2fs", r.PauseSec))
		row("time to resume after the reset", fmt.Sprintf("%.1fs", r.ResumeSec))
	}
	if fc := r.Forecast; fc != nil {
		latency := fmt.Sprintf("%.0f ms a call and records at %.2f× the assumed time, measured", fc.LatencyMS, fc.RecordScale)
		if fc.LatencyAssumed {
			latency = fmt.Sprintf("%.0f ms a call and the assumed time per record (no batch measured yet)", fc.LatencyMS)
		}
		row("forecast before the drain", fmt.Sprintf("%d API calls (%d REST, %d Bulk in %d jobs) in %d flushes, %.1fs (%s)",
			fc.Calls, fc.RESTCalls, fc.BulkCalls, fc.BulkJobs, fc.Flushes, fc.DurationSec, latency))
		row("forecast duration terms", fmt.Sprintf("flushes' own work %.1fs (assumed), calls %.1fs, records %.1fs (%s), bulk jobs %.1fs (%s), %d cut-off flushes %.0fs, pacing %.1fs",
			fc.FlushSec, fc.CallSec, fc.RecordSec, fc.CallBasis, fc.BulkSec, fc.BulkBasis, fc.CutOffs, fc.CutOffSec, fc.PacingSec))
		row("forecast / measured", fmt.Sprintf("calls %.2f, duration %.2f", ratio(float64(fc.Calls), float64(r.APICalls)), ratio(fc.DurationSec, r.DrainSec)))
	}
	row("lost changes", r.Lost)
	return tw.Flush()
}

// ingestHTTP: concurrent GraphQL clients call recordChanges over HTTP with
// batches of each of --batch-sizes changes while the queue drains to the
// fake org; accepted changes per second, mutation latency and the flushes
// the concurrent drain did, per batch size. With --replicas N, N-1 more
// `crmsync serve` processes run on the same PostgreSQL and the clients
// spread their calls over all N in turn (client-side round robin).
func (b *bench) ingestHTTP(ctx context.Context, r *Report) error {
	if err := b.connect(ctx); err != nil {
		return err
	}
	urls := []string{b.a.BaseURL}
	if b.cmd.Replicas > 1 {
		if db.DialectOf(b.a.DB) != db.Postgres {
			return errors.New("--replicas needs PostgreSQL (--database-url)")
		}
		extra, err := b.startReplicas(ctx, b.cmd.Replicas-1)
		if err != nil {
			return err
		}
		defer stopReplicas(extra)
		for _, rep := range extra {
			urls = append(urls, rep.baseURL)
		}
	}
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: b.cmd.Clients}}
	began := time.Now()
	sizes := b.cmd.BatchSizes
	if len(sizes) == 0 {
		sizes = []int{1, 100, 1000}
	}
	for _, size := range sizes {
		var mu sync.Mutex
		var lat []time.Duration
		deadline := time.Now().Add(b.cmd.Duration)
		errs := make(chan error, b.cmd.Clients)
		var wg sync.WaitGroup
		start := time.Now()
		for cl := range b.cmd.Clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; time.Now().Before(deadline); n++ {
					body := b.ingestBody(cl, n, size)
					t0 := time.Now()
					if err := b.post(ctx, client, urls[(cl+n)%len(urls)], body); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					lat = append(lat, time.Since(t0))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		elapsed := time.Since(start).Seconds()
		slices.Sort(lat)
		res := IngestResult{BatchSize: size, Calls: len(lat), ChangesSec: float64(len(lat)*size) / elapsed}
		if len(lat) > 0 {
			res.P50MS = float64(lat[len(lat)/2].Microseconds()) / 1000
			res.P99MS = float64(lat[len(lat)*99/100].Microseconds()) / 1000
		}
		var err error
		if res.Flushes, res.FlushP50MS, err = b.flushesBetween(ctx, start, time.Now()); err != nil {
			return err
		}
		r.Ingest = append(r.Ingest, res)
		r.Changes += len(lat) * size
		b.progress.Line("bench: batches of %d: %.0f changes/s", size, res.ChangesSec)
	}
	before, start := b.org.Calls(), time.Now()
	if err := b.drain(ctx, 10*time.Minute); err != nil {
		return err
	}
	r.DrainSec = time.Since(start).Seconds()
	b.calls(r, before)
	var err error
	r.Flushes, err = b.countFlushes(ctx, began)
	return err
}

// flushesBetween counts the workspace's flushes that started in [from, to)
// and returns the median duration of those that finished.
func (b *bench) flushesBetween(ctx context.Context, from, to time.Time) (int, float64, error) {
	var rows []struct {
		StartedAt  time.Time    `bun:"started_at"`
		FinishedAt bun.NullTime `bun:"finished_at"`
	}
	err := b.a.DB.NewSelect().Table("sync_batches").Column("started_at", "finished_at").
		Where("workspace_id = ? AND direction = 'OUTBOUND' AND status <> 'PAUSED' AND started_at >= ? AND started_at < ?", b.ws, from.UTC(), to.UTC()).
		Scan(ctx, &rows)
	if err != nil {
		return 0, 0, fmt.Errorf("count flushes: %w", err)
	}
	var took []float64
	for _, r := range rows {
		if !r.FinishedAt.IsZero() {
			took = append(took, float64(r.FinishedAt.Sub(r.StartedAt).Microseconds())/1000)
		}
	}
	slices.Sort(took)
	p50 := 0.0
	if len(took) > 0 {
		p50 = took[len(took)/2]
	}
	return len(rows), p50, nil
}

// ingestBody is one recordChanges mutation of size changes to the bench's
// contacts, each field with a value unique to the client and call.
func (b *bench) ingestBody(client, n, size int) []byte {
	changes := make([]map[string]any, size)
	for i := range changes {
		k := b.recordKey(rand.IntN(b.cmd.Records))
		field := "phone"
		if k.Type == record.TypeCampaign {
			field = "status"
		}
		v := fmt.Sprintf("c%d-%d-%d", client, n, i)
		fields := []map[string]any{{"name": field, "value": v}}
		if k.Type == record.TypeContact {
			fields = append(fields, map[string]any{"name": "lastName", "value": "Bench"}, map[string]any{"name": "company", "value": "Bench Inc"},
				map[string]any{"name": "email", "value": k.ID + "@example.com"})
		} else {
			fields = append(fields, map[string]any{"name": "name", "value": k.ID})
		}
		changes[i] = map[string]any{"recordType": string(k.Type), "recordId": k.ID, "source": "API", "fields": fields}
	}
	body, _ := json.Marshal(map[string]any{
		"query":     "mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { accepted } }",
		"variables": map[string]any{"in": changes},
	})
	return body
}

func (b *bench) post(ctx context.Context, client *http.Client, baseURL string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/graphql", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("recordChanges: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		Errors []struct{ Message string } `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || len(out.Errors) > 0 {
		return fmt.Errorf("recordChanges: HTTP %d %v %v", resp.StatusCode, out.Errors, err)
	}
	return nil
}
