package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/salesforce"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
)

// TrickleResult is one schedule of the trickle scenario.
type TrickleResult struct {
	Schedule     string  `json:"schedule"`
	Changes      int     `json:"changes"`
	Applied      int     `json:"applied"`
	P50MS        float64 `json:"latency_p50_ms"`
	P95MS        float64 `json:"latency_p95_ms"`
	P99MS        float64 `json:"latency_p99_ms"`
	MaxMS        float64 `json:"latency_max_ms"`
	Calls        int     `json:"api_calls"`
	CallsPerHour float64 `json:"api_calls_per_hour"`
	Flushes      int     `json:"flushes"`
	// CallsPerFlush counts only flushes that made a call.
	CallsPerFlush float64 `json:"api_calls_per_flush"`
}

// noSchedule is the Scheduler of the fixed schedule: ingest schedules
// nothing, a ticker flushes.
type noSchedule struct{}

func (noSchedule) ScheduleFlushTx(context.Context, bun.Tx, int64) error { return nil }

// trickleSide is one schedule's workspace, org and measurements.
type trickleSide struct {
	name     string
	ws       int64
	org      *sffake.Server
	ingester *outbound.Ingester

	mu      sync.Mutex
	pending map[record.Key]pendingChange
	lat     []time.Duration
	sent    int
}

type pendingChange struct {
	object, id, field, value string
	at                       time.Time
}

// trickle: changes arrive at --rate per second on average for --for, the
// same stream to two workspaces with their own fake org: one on the
// product's adaptive schedule, one flushed by a fixed ticker every
// --interval (the product being replaced). Latency is measured from the
// commit of a change to the moment the fake org has its value.
func (b *bench) trickle(ctx context.Context, r *Report) error {
	if b.cmd.Rate <= 0 || b.cmd.For <= 0 {
		return errors.New("trickle needs a positive --rate and --for")
	}
	// The paced side is the bench's workspace and org, with the org's
	// allowance (100,000 a day unless --allowance) and crmsync's own limit
	// (--cap) when set: the product's budget schedule spends against them.
	allowance := b.cmd.Allowance
	if allowance <= 0 {
		allowance = 100_000
	}
	b.org.SetDailyMax(int(allowance))
	if err := b.connect(ctx); err != nil {
		return err
	}
	name := "budget"
	if b.cmd.Cap > 0 {
		limit := b.cmd.Cap
		if err := b.a.Connections.SetDailyLimit(ctx, b.ws, &limit); err != nil {
			return err
		}
		name = fmt.Sprintf("budget (cap %d/day)", limit)
	}
	if err := b.seed(ctx); err != nil {
		return err
	}
	adaptive := &trickleSide{name: name, ws: b.ws, org: b.org, ingester: b.a.Ingester, pending: map[record.Key]pendingChange{}}

	// The fixed side: its own workspace, org and ingester.
	org := sffake.New(sffake.Options{Cost: &b.cost, DailyMax: 100_000_000})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for the second fake Salesforce: %w", err)
	}
	srv := &http.Server{Handler: org, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	ws, _, err := b.a.Workspaces.Create(ctx, "bench-fixed")
	if err != nil {
		return err
	}
	if err := b.configure(ctx, ws.ID); err != nil {
		return err
	}
	fixed := &trickleSide{name: "fixed 10s", ws: ws.ID, org: org, ingester: outbound.NewIngester(b.a.DB, noSchedule{}, nil), pending: map[record.Key]pendingChange{}}
	if b.cmd.Interval != 10*time.Second {
		fixed.name = "fixed " + b.cmd.Interval.String()
	}
	// Its seed is queued before it connects, so the flush that connecting
	// schedules drains it (back to back while claims are full) and then
	// leaves nothing scheduled: from then on only the ticker flushes.
	seed := make([]outbound.Change, b.cmd.Records)
	now := time.Now()
	for i := range seed {
		seed[i] = b.seedChange(i, now)
	}
	for start := 0; start < len(seed); start += outbound.MaxChanges {
		if _, err := fixed.ingester.Ingest(ctx, ws.ID, seed[start:min(start+outbound.MaxChanges, len(seed))]); err != nil {
			return err
		}
	}
	cfg, _ := json.Marshal(salesforce.Config{LoginURL: "http://" + ln.Addr().String(), ClientID: org.ClientID()})
	creds, _ := json.Marshal(salesforce.Credentials{ClientSecret: org.ClientSecret(), RefreshToken: org.IssueRefreshToken(org.IntegrationUserID())})
	if _, err := b.a.Connections.Connect(ctx, ws.ID, salesforce.Name, cfg, creds); err != nil {
		return err
	}
	if err := b.drainWorkspace(ctx, ws.ID, 10*time.Minute); err != nil {
		return fmt.Errorf("seed the fixed side: %w", err)
	}

	// Both sides settle (the adaptive one's last flush paces the next), then
	// the same stream goes to both.
	time.Sleep(b.cmd.Interval)
	sides := []*trickleSide{adaptive, fixed}
	before := []sffake.CallCounts{adaptive.org.Calls(), fixed.org.Calls()}
	start := time.Now()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for _, s := range sides {
		wg.Add(1)
		go func() { defer wg.Done(); b.watch(runCtx, s) }()
	}
	var flushErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		// The product being replaced: a flush every tick, reading before
		// it writes (no pacing, no conditional writes).
		flushErr = b.tick(runCtx, fixed.ws, b.a.NewEngine(push.Config{ReadFirst: true}))
	}()

	n := 0
	if b.cmd.ClosedLoop {
		// Each side gets one change at a time, the next as soon as its org
		// has the last (a rep editing, waiting to see it, editing again).
		var sent [2]int
		var loop sync.WaitGroup
		errs := make([]error, len(sides))
		for i, s := range sides {
			loop.Add(1)
			go func() {
				defer loop.Done()
				for k := 0; time.Since(start) < b.cmd.For; k++ {
					key := b.recordKey(trickleRecord(k, b.cmd.Records))
					if errs[i] = s.send(ctx, b.a.DB, key, "phone", "Phone", fmt.Sprintf("+1 555 %07d", k)); errs[i] != nil {
						return
					}
					sent[i]++
					for s.waiting() > 0 && time.Since(start) < b.cmd.For+time.Minute {
						time.Sleep(10 * time.Millisecond)
					}
				}
			}()
		}
		loop.Wait()
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		n = max(sent[0], sent[1])
	}
	// Arrivals are a Poisson process at --rate (exponential gaps, the first
	// change at once), as independent edits arrive: evenly spaced changes
	// would keep one phase to the fixed ticker, and every change would wait
	// the same, by chance short or long.
	mean := float64(time.Second) / b.cmd.Rate
	at := start
	for ; !b.cmd.ClosedLoop; n++ {
		if n > 0 {
			at = at.Add(time.Duration(rand.ExpFloat64() * mean))
		}
		if at.Sub(start) >= b.cmd.For {
			break
		}
		if d := time.Until(at); d > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
		k := b.recordKey(trickleRecord(n, b.cmd.Records))
		field, crmField := "phone", "Phone"
		value := fmt.Sprintf("+1 555 %07d", n)
		for _, s := range sides {
			if err := s.send(ctx, b.a.DB, k, field, crmField, value); err != nil {
				return err
			}
		}
		b.progress.Update("bench: trickle %d changes, %.0fs of %.0fs", n+1, time.Since(start).Seconds(), b.cmd.For.Seconds())
	}
	// Wait for the last changes (at most an interval and a flush).
	deadline := time.Now().Add(b.cmd.Interval + 30*time.Second)
	for time.Now().Before(deadline) && (adaptive.waiting() > 0 || fixed.waiting() > 0) {
		time.Sleep(50 * time.Millisecond)
	}
	// Calls per hour are taken over the arrival window: the calls that
	// drain the last changes after it belong to the changes in it.
	window := b.cmd.For
	elapsed := time.Since(start)
	stop()
	wg.Wait()
	b.progress.Done("bench: trickle %d changes in %.0fs", n, window.Seconds())
	if flushErr != nil && !errors.Is(flushErr, context.Canceled) {
		return flushErr
	}
	for i, s := range sides {
		after := s.org.Calls()
		calls := after.Read + after.Write - before[i].Read - before[i].Write
		flushes, err := b.countFlushesOf(ctx, s.ws, start)
		if err != nil {
			return err
		}
		res := s.result(calls, window, flushes)
		if calling, err := b.countCallingFlushesOf(ctx, s.ws, start); err != nil {
			return err
		} else if calling > 0 {
			res.CallsPerFlush = float64(calls) / float64(calling)
		}
		r.Trickle = append(r.Trickle, res)
		r.APICalls += calls
		r.Flushes += flushes
		r.ReadCalls += after.Read - before[i].Read
		r.WriteCalls += after.Write - before[i].Write
		r.AuthCalls += after.Auth - before[i].Auth
		r.Changes = s.sent
		if w := s.waiting(); w > 0 {
			r.Lost += w
		}
	}
	r.DrainSec = elapsed.Seconds()
	return nil
}

// trickleRecord is the record of the n-th change: round robin over the
// contacts and companies (every fourth record is a campaign, left out).
func trickleRecord(n, records int) int {
	usable := records - records/4
	i := n % usable
	return i + i/3 // skip 3, 7, 11, ...
}

// configure gives a workspace the bench's preferences.
func (b *bench) configure(ctx context.Context, ws int64) error {
	saved := b.ws
	b.ws = ws
	defer func() { b.ws = saved }()
	return b.preferences(ctx)
}

// send ingests one change and starts its clock at the commit.
func (s *trickleSide) send(ctx context.Context, db *bun.DB, k record.Key, field, crmField, value string) error {
	_, err := s.ingester.Ingest(ctx, s.ws, []outbound.Change{{Type: k.Type, ID: k.ID, Source: record.SourceAPI,
		Fields: map[string]outbound.FieldChange{field: {Value: value, ChangedAt: time.Now()}}}})
	if err != nil {
		return err
	}
	at := time.Now()
	var rec struct {
		CRMObject string `bun:"crm_object"`
		CRMID     string `bun:"crm_id"`
	}
	err = db.NewSelect().Table("records").Column("crm_object", "crm_id").
		Where("workspace_id = ? AND type = ? AND conversion_id = ?", s.ws, k.Type, k.ID).Scan(ctx, &rec)
	if err != nil {
		return fmt.Errorf("trickle: look up %s %s: %w", k.Type, k.ID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent++
	if _, ok := s.pending[k]; ok {
		// Superseded before it arrived: only the newer value is timed.
		s.sent--
	}
	s.pending[k] = pendingChange{object: rec.CRMObject, id: rec.CRMID, field: crmField, value: value, at: at}
	return nil
}

// watch polls the org for pending values every 20 ms.
func (b *bench) watch(ctx context.Context, s *trickleSide) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		now := time.Now()
		for k, p := range s.pending {
			if got, ok := s.org.Get(p.object, p.id); ok && got[p.field] == p.value {
				s.lat = append(s.lat, now.Sub(p.at))
				delete(s.pending, k)
			}
		}
		s.mu.Unlock()
	}
}

func (s *trickleSide) waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

func (s *trickleSide) result(calls int, window time.Duration, flushes int) TrickleResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	lat := slices.Clone(s.lat)
	slices.Sort(lat)
	ms := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	res := TrickleResult{Schedule: s.name, Changes: s.sent, Applied: len(lat), P50MS: ms(0.50), P95MS: ms(0.95), P99MS: ms(0.99),
		Calls: calls, CallsPerHour: float64(calls) / window.Hours(), Flushes: flushes}
	if len(lat) > 0 {
		res.MaxMS = float64(lat[len(lat)-1].Microseconds()) / 1000
	}
	return res
}

// tick is the fixed schedule: a flush every interval, whatever is queued.
func (b *bench) tick(ctx context.Context, ws int64, eng *push.Engine) error {
	t := time.NewTicker(b.cmd.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if err := flushOnce(ctx, eng, ws); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
}

// flushOnce flushes ws until its claim was not full.
func flushOnce(ctx context.Context, eng *push.Engine, ws int64) error {
	for {
		res, err := eng.Flush(ctx, ws)
		if errors.Is(err, connection.ErrBusy) {
			return nil // the connect-time flush is still running
		}
		if err != nil || !res.More {
			return err
		}
	}
}
