package sffake

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Cost models the time a Salesforce org spends serving a call: a base
// latency per call (network, authentication, API overhead) plus time per
// record by object and operation (validation, triggers and flows, sharing
// recalculation), a cap on concurrent long-running requests, and row lock
// contention on parent Accounts. Set it in Options.Cost; the zero value
// (and a nil Options.Cost) costs nothing.
//
// The fake serves requests one at a time; the modelled time is spent after
// a request has run, before its answer leaves, so concurrent requests
// overlap as they do in an org. A request holds the row locks of the
// parent Accounts it wrote while it is in flight; a write by another
// request to a record under a held Account fails with UNABLE_TO_LOCK_ROW
// with probability 1 - (1 - LockContention)^k, k the number of requests in
// flight holding that Account (Salesforce waits up to 10 s for the lock
// before failing; the model does not spend that wait). The random choices
// come from Options.Seed: the same seed and the same order of requests give
// the same outcome.
type Cost struct {
	// Name is how benchmarks report the model ("realistic", "flat").
	Name string
	// Base is spent by every call, whatever it carries.
	Base time.Duration
	// Objects holds the per-record times by sObject API name; objects
	// missing here cost Default.
	Objects map[string]RecordCost
	Default RecordCost
	// LongAfter is how long a request runs before it counts as
	// long-running (Salesforce: 20 s).
	LongAfter time.Duration
	// MaxLong is how many long-running requests may be in flight at once
	// (Salesforce: 25 per production org or sandbox, 5 for Developer
	// Edition). A request arriving while that many are running is refused
	// with 403 REQUEST_LIMIT_EXCEEDED "ConcurrentPerOrgLongTxn Limit
	// exceeded." and not counted against the allowance. 0: no cap.
	MaxLong int
	// LockContention is the chance that one other in-flight request
	// holding a record's parent Account makes its write fail with
	// UNABLE_TO_LOCK_ROW. 0: no lock errors.
	LockContention float64
	// BulkParallel is how many 10,000-record chunks of one Bulk API 2.0
	// ingest job the org works at once; each costs the per-record time of
	// its rows (no Base). 0: all of them at once.
	BulkParallel int
}

// RecordCost is the time one record costs, per operation.
type RecordCost struct {
	Create, Update, Upsert, Delete time.Duration
	Query                          time.Duration // per row a query (or queryMore) page returns
	Read                           time.Duration // per record read by id (GET one, collection retrieve)
}

// RealisticCost is the default model of `crmsync bench`: a production org
// with light automation. docs/benchmarks.md gives the sources of its
// figures and how sure each is; orgs with heavy triggers and flows are
// several times slower per record.
func RealisticCost() Cost {
	ms := time.Millisecond
	person := RecordCost{Create: 10 * ms, Update: 8 * ms, Upsert: 12 * ms, Delete: 8 * ms, Query: ms / 10, Read: ms / 5}
	return Cost{
		Name: "realistic",
		Base: 150 * ms,
		Objects: map[string]RecordCost{
			"Lead": person, "Contact": person,
			// Sharing recalculation of the children makes Accounts dearer.
			"Account":  {Create: 12 * ms, Update: 10 * ms, Upsert: 14 * ms, Delete: 12 * ms, Query: ms / 10, Read: ms / 5},
			"Campaign": {Create: 6 * ms, Update: 5 * ms, Upsert: 7 * ms, Delete: 5 * ms, Query: ms / 10, Read: ms / 5},
		},
		Default:        RecordCost{Create: 8 * ms, Update: 6 * ms, Upsert: 10 * ms, Delete: 6 * ms, Query: ms / 10, Read: ms / 5},
		LongAfter:      20 * time.Second,
		MaxLong:        25,
		LockContention: 0.3,
		BulkParallel:   10,
	}
}

// FlatCost is the model the benchmarks used before the cost model: base
// per call, whatever the call carries; no cap, no lock errors.
func FlatCost(base time.Duration) Cost { return Cost{Name: "flat", Base: base} }

// WithWriteCost returns c with every object's create, update, upsert and
// delete time per record set to d.
func (c Cost) WithWriteCost(d time.Duration) Cost {
	set := func(r RecordCost) RecordCost {
		r.Create, r.Update, r.Upsert, r.Delete = d, d, d, d
		return r
	}
	objs := make(map[string]RecordCost, len(c.Objects))
	for name, r := range c.Objects {
		objs[name] = set(r)
	}
	c.Objects, c.Default = objs, set(c.Default)
	return c
}

// String describes the model in one line, for reports.
func (c Cost) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s per call", c.Name, c.Base)
	names := make([]string, 0, len(c.Objects))
	for name := range c.Objects {
		names = append(names, name)
	}
	slices.Sort(names)
	rc := func(r RecordCost) string {
		return fmt.Sprintf("create %s, update %s, upsert %s, query %s, read %s", r.Create, r.Update, r.Upsert, r.Query, r.Read)
	}
	if c.Default != (RecordCost{}) || len(names) > 0 {
		b.WriteString(" + per record (")
		for _, name := range names {
			fmt.Fprintf(&b, "%s: %s; ", name, rc(c.Objects[name]))
		}
		fmt.Fprintf(&b, "others: %s)", rc(c.Default))
	}
	if c.MaxLong > 0 {
		fmt.Fprintf(&b, "; at most %d requests running ≥ %s", c.MaxLong, c.LongAfter)
	}
	if c.LockContention > 0 {
		fmt.Fprintf(&b, "; UNABLE_TO_LOCK_ROW p=%.2f per request holding the parent Account", c.LockContention)
	}
	if c.BulkParallel > 0 {
		fmt.Fprintf(&b, "; Bulk API: %d chunks of 10,000 worked at once", c.BulkParallel)
	}
	return b.String()
}

func (c Cost) record(object string) RecordCost {
	if r, ok := c.Objects[object]; ok {
		return r
	}
	return c.Default
}

// Operations a request is charged for.
const (
	costCreate = iota
	costUpdate
	costUpsert
	costDelete
	costQuery
	costRead
)

func (r RecordCost) of(op int) time.Duration {
	return [...]time.Duration{r.Create, r.Update, r.Upsert, r.Delete, r.Query, r.Read}[op]
}

// costState is the org's side of the cost model, guarded by Server.mu.
type costState struct {
	model Cost
	rng   *rand.Rand
	// held counts, per parent Account id, the requests in flight that
	// wrote under it.
	held map[string]int
	// inflight holds the arrival time of every request being served.
	inflight map[*work]time.Time
	stats    CostStats
}

// CostStats counts what the cost model refused.
type CostStats struct {
	// LockErrors counts records that failed with UNABLE_TO_LOCK_ROW.
	LockErrors int
	// LongRefused counts requests refused by the cap on concurrent
	// long-running requests (ConcurrentPerOrgLongTxn).
	LongRefused int
}

func newCostState(model Cost, seed uint64) *costState {
	return &costState{model: model, rng: rand.New(rand.NewPCG(seed, 0x5f6b_c057)), held: map[string]int{}, inflight: map[*work]time.Time{}}
}

// work is one request's charge: the time its records cost, the parent
// Accounts it locked and those it could not lock (its transaction timed
// out waiting: every write under them fails).
type work struct {
	d       time.Duration
	parents map[string]bool
	failed  map[string]bool
}

// arrive registers a request arriving at now, or reports that the cap on
// long-running requests refuses it (capped: a data API request).
func (cs *costState) arrive(now time.Time, capped bool) (*work, bool) {
	if capped && cs.model.MaxLong > 0 {
		long := 0
		for _, at := range cs.inflight {
			if now.Sub(at) >= cs.model.LongAfter {
				long++
			}
		}
		if long >= cs.model.MaxLong {
			cs.stats.LongRefused++
			return nil, false
		}
	}
	w := &work{parents: map[string]bool{}, failed: map[string]bool{}}
	cs.inflight[w] = now
	return w, true
}

// leave releases a request's locks and its place among those in flight.
func (cs *costState) leave(w *work) {
	delete(cs.inflight, w)
	for p := range w.parents {
		if cs.held[p]--; cs.held[p] <= 0 {
			delete(cs.held, p)
		}
	}
}

// charge adds n records of object under op to the request being served.
func (st *store) charge(object string, op, n int) {
	if st.work == nil || st.cost == nil {
		return
	}
	st.work.d += time.Duration(n) * st.cost.model.record(object).of(op)
}

// lockError takes the row locks of the parent Accounts of r (prev: the
// record before the write, nil for a create) for the request being
// served, or returns the UNABLE_TO_LOCK_ROW error of a lock it could not
// obtain. Whether a request obtains a lock is decided once per request
// and Account.
func (st *store) lockError(r, prev *record) *apiError {
	if st.work == nil || st.cost == nil {
		return nil
	}
	var parents []string
	switch {
	case r.obj.Name == "Account" && prev != nil:
		parents = append(parents, r.id())
	default:
		for _, rec := range []*record{r, prev} {
			if rec == nil {
				continue
			}
			if f := rec.obj.field("AccountId"); f != nil {
				if id := rec.str("AccountId"); id != "" && !slices.Contains(parents, id) {
					parents = append(parents, id)
				}
			}
		}
	}
	cs, w := st.cost, st.work
	for _, p := range parents {
		if w.parents[p] {
			continue
		}
		if k := cs.held[p]; !w.failed[p] && k > 0 && cs.model.LockContention > 0 {
			w.failed[p] = cs.rng.Float64() < 1-math.Pow(1-cs.model.LockContention, float64(k))
		}
		if w.failed[p] {
			cs.stats.LockErrors++
			return &apiError{Code: "UNABLE_TO_LOCK_ROW", Message: "unable to obtain exclusive access to this record or 1 records: " + p, Fields: []string{}}
		}
	}
	for _, p := range parents {
		if !w.parents[p] {
			w.parents[p] = true
			cs.held[p]++
		}
	}
	return nil
}

// wallSleep waits d on the wall clock, or until ctx is done.
func wallSleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
