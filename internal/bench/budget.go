package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/crmsync/crmsync/connectors/salesforce"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/limits"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
)

// BudgetResult is the budget scenario: a day of varying load against a
// small crmsync daily limit, simulated on the fake org's clock.
type BudgetResult struct {
	Cap     int64 `json:"cap_per_day"`
	Changes int   `json:"changes"`
	// MaxWindow is the most calls crmsync made in any rolling 24 hours,
	// checked after every flush of the simulated day.
	MaxWindow int64        `json:"max_calls_in_any_24h"`
	Calls     int64        `json:"api_calls"`
	Flushes   int          `json:"flushes"`
	Hours     []BudgetHour `json:"hours"`
	// DrainedAfter is when the queue was empty again, in simulated hours
	// from the start (0: it never drained).
	DrainedAfter float64 `json:"drained_after_hours"`
	Lost         int     `json:"lost"`
	WallSec      float64 `json:"wall_seconds"`
}

// BudgetHour is one simulated hour.
type BudgetHour struct {
	Hour    int   `json:"hour"`
	Arrived int   `json:"changes_arrived"`
	Calls   int64 `json:"calls"`
	Window  int64 `json:"calls_in_24h_window"`
	Queued  int   `json:"queued_at_end"`
}

// budgetLoad is the changes per hour of the simulated day: quiet nights,
// a working day far above what the limit pays for, a falling evening.
var budgetLoad = [24]int{10, 10, 10, 10, 10, 10, 20, 100, 400, 1200, 1500, 1500, 1200, 1500, 1500, 1200, 800, 400, 200, 100, 50, 20, 10, 10}

// budget: a workspace on its own fake org whose clock the bench drives,
// flushed by an engine on that clock with budget pacing and a small daily
// limit (--cap, default 2,000). Every simulated minute the minute's
// changes arrive (budgetLoad, to random records), then the engine flushes
// for as long as its bucket lets it; after each flush the calls crmsync
// made in the last 24 hours are checked against the limit. After the day,
// quiet hours follow until the queue is empty. The River scheduler is not
// involved: this measures the pacing decisions, not flush latency.
func (b *bench) budget(ctx context.Context, r *Report) error {
	limit := b.cmd.Cap
	if limit <= 0 {
		limit = 2000
	}
	began := time.Now()
	// The simulated day lies in the past (changes may not come from the
	// future): its seed two days ago, its day from yesterday to now.
	start := began.UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	clock := sffake.NewClock(start)
	org := sffake.New(sffake.Options{Cost: &b.cost, DailyMax: 100_000_000, Clock: clock})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for the simulated day's fake Salesforce: %w", err)
	}
	srv := &http.Server{Handler: org, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	ws, _, err := b.a.Workspaces.Create(ctx, "bench-budget")
	if err != nil {
		return err
	}
	if err := b.configure(ctx, ws.ID); err != nil {
		return err
	}
	cfg, _ := json.Marshal(salesforce.Config{LoginURL: "http://" + ln.Addr().String(), ClientID: org.ClientID()})
	creds, _ := json.Marshal(salesforce.Credentials{ClientSecret: org.ClientSecret(), RefreshToken: org.IssueRefreshToken(org.IntegrationUserID())})
	if _, err := b.a.Connections.Connect(ctx, ws.ID, salesforce.Name, cfg, creds); err != nil {
		return err
	}
	if err := b.a.Connections.SetDailyLimit(ctx, ws.ID, &limit); err != nil {
		return err
	}
	// Connecting schedules a flush on the server's own engine (the real
	// clock): let it find the queue empty before the seed arrives, so only
	// the simulation's engine ever flushes this workspace.
	time.Sleep(2 * time.Second)
	eng := b.a.NewEngine(push.Config{Now: clock.Now, Pace: push.PaceConfig{Enabled: true}})
	in := outbound.NewIngester(b.a.DB, noSchedule{}, nil)
	res := &BudgetResult{Cap: limit}
	last := map[record.Key]string{}

	flush := func() error {
		for range 50 {
			out, err := eng.Flush(ctx, ws.ID)
			if errors.Is(err, connection.ErrBusy) {
				time.Sleep(10 * time.Millisecond) // the connect-time flush of the server
				continue
			}
			if err != nil {
				return err
			}
			if out.Batch != nil && out.Batch.APICalls > 0 {
				res.Flushes++
				res.Calls += int64(out.Batch.APICalls)
				used, err := limits.Used(ctx, b.a.DB, ws.ID, clock.Now())
				if err != nil {
					return err
				}
				res.MaxWindow = max(res.MaxWindow, used)
			}
			if out.Wait > 0 || out.Paused != push.PauseNone || !out.More {
				return nil
			}
		}
		return nil
	}
	queued := func() (int, error) {
		d, err := outbound.Measure(ctx, b.a.DB, ws.ID)
		return d.Queued, err
	}

	// The records exist before the day starts (crmsync created them).
	seed := make([]outbound.Change, b.cmd.Records)
	for i := range seed {
		seed[i] = b.seedChange(i, clock.Now())
	}
	if _, err := in.Ingest(ctx, ws.ID, seed); err != nil {
		return err
	}
	for n := 1; ; n++ {
		if err := flush(); err != nil {
			return err
		}
		if q, err := queued(); err != nil || q == 0 {
			break
		} else if n > 24*60 {
			return errors.New("the seed did not drain in a simulated day")
		}
		clock.Advance(time.Minute)
	}
	clock.Set(start.Add(24 * time.Hour)) // the seed's calls leave the window before the day
	day := clock.Now()
	res.Flushes, res.Calls, res.MaxWindow = 0, 0, 0

	var hour BudgetHour
	callsAtHour := int64(0)
	for minute := 0; ; minute++ {
		h := minute / 60
		if minute%60 == 0 && minute > 0 {
			q, err := queued()
			if err != nil {
				return err
			}
			hour.Queued = q
			hour.Calls = res.Calls - callsAtHour
			callsAtHour = res.Calls
			if hour.Window, err = limits.Used(ctx, b.a.DB, ws.ID, clock.Now()); err != nil {
				return err
			}
			res.Hours = append(res.Hours, hour)
			b.progress.Update("bench: budget, simulated hour %d, %d queued, %d calls in the window", h, q, hour.Window)
			if h >= 24 && q == 0 {
				res.DrainedAfter = float64(h)
				break
			}
			if h >= 36 {
				break // never drained: reported as such
			}
			hour = BudgetHour{Hour: h}
		}
		clock.Set(day.Add(time.Duration(minute) * time.Minute))
		if h < 24 {
			n := budgetLoad[h] / 60
			if rand.IntN(60) < budgetLoad[h]%60 {
				n++
			}
			changes := make([]outbound.Change, n)
			for j := range changes {
				k := b.recordKey(rand.IntN(b.cmd.Records))
				field, v := "phone", fmt.Sprintf("+1 555 %07d", res.Changes+j)
				if k.Type == record.TypeCampaign {
					field, v = "status", []string{"Planned", "In Progress", "Completed", "Aborted"}[(res.Changes+j)%4]
				}
				last[k] = v
				changes[j] = outbound.Change{Type: k.Type, ID: k.ID, Source: record.SourceAPI,
					Fields: map[string]outbound.FieldChange{field: {Value: v, ChangedAt: clock.Now()}}}
			}
			if n > 0 {
				if _, err := in.Ingest(ctx, ws.ID, changes); err != nil {
					return err
				}
			}
			res.Changes += n
			hour.Arrived += n
		}
		if err := flush(); err != nil {
			return err
		}
	}
	b.progress.Done("bench: budget, %d changes in a simulated day, %d calls", res.Changes, res.Calls)
	lost := 0
	for k, v := range last {
		rec, err := record.Get(ctx, b.a.DB, ws.ID, k)
		if err != nil {
			return err
		}
		got, ok := org.Get(rec.CRMObject, rec.CRMID)
		field := "Phone"
		if k.Type == record.TypeCampaign {
			field = "Status"
		}
		if !ok || got[field] != v {
			lost++
		}
	}
	res.Lost = lost
	res.WallSec = time.Since(began).Seconds()
	r.Budget, r.Changes, r.APICalls, r.Flushes, r.Lost = res, res.Changes, int(res.Calls), res.Flushes, lost
	return nil
}

func printBudget(row func(string, any), bu *BudgetResult) {
	row("budget: daily limit", bu.Cap)
	row("budget: most calls in any 24 h", fmt.Sprintf("%d (checked after every flush)", bu.MaxWindow))
	for _, h := range bu.Hours {
		row(fmt.Sprintf("budget: hour %02d", h.Hour), fmt.Sprintf("%5d changes arrived, %4d calls, %5d calls in the 24 h window, %5d queued at the end",
			h.Arrived, h.Calls, h.Window, h.Queued))
	}
	if bu.DrainedAfter > 0 {
		row("budget: queue empty again after", fmt.Sprintf("%.0f simulated hours", bu.DrainedAfter))
	} else {
		row("budget: queue empty again after", "never (within 36 simulated hours)")
	}
	row("budget: wall time", fmt.Sprintf("%.0fs", bu.WallSec))
}
