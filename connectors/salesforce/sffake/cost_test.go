package sffake_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
)

// gate is a cost-model sleeper for tests: the first hold calls block
// until release (each signalling entered when it starts); the others
// return at once. Every call's duration is recorded.
type gate struct {
	mu      sync.Mutex
	hold    int
	entered chan struct{}
	release chan struct{}
	slept   []time.Duration
}

func newGate(hold int) *gate {
	return &gate{hold: hold, entered: make(chan struct{}, hold), release: make(chan struct{})}
}

func (g *gate) sleep(ctx context.Context, d time.Duration) {
	g.mu.Lock()
	g.slept = append(g.slept, d)
	block := g.hold > 0
	g.hold--
	g.mu.Unlock()
	if !block {
		return
	}
	g.entered <- struct{}{}
	select {
	case <-g.release:
	case <-ctx.Done():
	}
}

func (g *gate) durations() []time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]time.Duration(nil), g.slept...)
}

// costSetup starts a fake with the cost model and gate g and returns a
// bundle authenticated without a token call (so only the test's calls
// spend modelled time).
func costSetup(t *testing.T, model sffake.Cost, seed uint64, g *gate) *bundle {
	t.Helper()
	sf := sffaketest.Start(t, sffake.Options{Cost: &model, Seed: seed})
	sffake.SetSleep(sf, g.sleep)
	t.Cleanup(func() {
		select {
		case <-g.release:
		default:
			close(g.release)
		}
	})
	return &bundle{sf: sf, token: sf.IssueAccessToken(sf.IntegrationUserID())}
}

func testCost() sffake.Cost {
	ms := time.Millisecond
	return sffake.Cost{Name: "test", Base: 100 * ms,
		Objects: map[string]sffake.RecordCost{"Contact": {Create: 10 * ms, Update: 7 * ms, Upsert: 12 * ms, Query: ms, Read: 2 * ms}},
		Default: sffake.RecordCost{Create: 3 * ms}}
}

func contacts(n int, account string) []any {
	out := make([]any, n)
	for i := range out {
		f := map[string]any{"LastName": fmt.Sprintf("C%d", i)}
		if account != "" {
			f["AccountId"] = account
		}
		out[i] = rec("Contact", f)
	}
	return out
}

// The time a call costs is its base plus each record's time by object and
// operation: ten times the records, ten times the per-record time.
func TestCostPerRecordScales(t *testing.T) {
	t.Parallel()
	g := newGate(0)
	b := costSetup(t, testCost(), 1, g)
	ms := time.Millisecond
	for _, n := range []int{1, 10, 100} {
		r := b.do(t, "POST", v+"/composite/sobjects", map[string]any{"records": contacts(n, "")})
		require.Equal(t, 200, r.status, string(r.body))
	}
	acct := b.do(t, "POST", v+"/composite/sobjects", map[string]any{"records": []any{rec("Account", map[string]any{"Name": "A"})}})
	require.Equal(t, 200, acct.status, string(acct.body))
	q := b.query(t, "SELECT Id FROM Contact")
	got := ids(t, q)
	require.Len(t, got, 111)
	upd := make([]any, 50)
	for i := range upd {
		upd[i] = rec("Contact", map[string]any{"Id": got[i], "Phone": "1"})
	}
	require.Equal(t, 200, b.do(t, "PATCH", v+"/composite/sobjects", map[string]any{"records": upd}).status)
	require.Equal(t, 200, b.do(t, "POST", v+"/composite/sobjects/Contact", map[string]any{"ids": got[:20], "fields": []string{"Id"}}).status)
	require.Equal(t, []time.Duration{
		100*ms + 10*ms, 100*ms + 100*ms, 100*ms + 1000*ms, // creates: per record
		100*ms + 3*ms,   // an Account: the default
		100*ms + 111*ms, // a query: per row returned
		100*ms + 350*ms, // updates
		100*ms + 40*ms,  // reads by id
	}, g.durations())
}

// An upsert is charged as one upsert, whether it creates or updates.
func TestCostUpsert(t *testing.T) {
	t.Parallel()
	g := newGate(0)
	b := costSetup(t, testCost(), 1, g)
	for range 2 {
		r := b.do(t, "PATCH", v+"/sobjects/Contact/Conversion_Id__c/c-1", map[string]any{"LastName": "A"})
		require.Contains(t, []int{200, 201}, r.status, string(r.body))
	}
	require.Equal(t, []time.Duration{112 * time.Millisecond, 112 * time.Millisecond}, g.durations())
}

// lockRun writes one Contact under each of accounts while holders earlier
// requests (each writing the same) are still in flight, and returns the
// errorCode of each of its records ("" for a success).
func lockRun(t *testing.T, seed uint64, holders, accounts int) []string {
	t.Helper()
	model := sffake.RealisticCost()
	g := newGate(holders)
	b := costSetup(t, model, seed, g)
	recs := make([]any, accounts)
	for i := range recs {
		id := b.insert(t, "Account", map[string]any{"Name": fmt.Sprintf("A%d", i)})
		recs[i] = rec("Contact", map[string]any{"LastName": "C", "AccountId": id})
	}
	body := map[string]any{"records": recs}
	var wg sync.WaitGroup
	for range holders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.doRaw("POST", v+"/composite/sobjects", body)
		}()
		<-g.entered // in order: each holder has run and holds its locks
	}
	r := b.do(t, "POST", v+"/composite/sobjects", body)
	close(g.release)
	wg.Wait()
	require.Equal(t, 200, r.status, string(r.body))
	var items []struct {
		Success bool
		Errors  []struct{ StatusCode string }
	}
	require.NoError(t, json.Unmarshal(r.body, &items))
	out := make([]string, len(items))
	for i, it := range items {
		if !it.Success {
			require.Len(t, it.Errors, 1)
			out[i] = it.Errors[0].StatusCode
		}
	}
	return out
}

func countLocked(codes []string) int {
	n := 0
	for _, c := range codes {
		if c == "UNABLE_TO_LOCK_ROW" {
			n++
		}
	}
	return n
}

// Concurrent writes under the same Accounts meet UNABLE_TO_LOCK_ROW, more
// often the more requests hold them; without contention none do.
func TestCostLockContention(t *testing.T) {
	t.Parallel()
	alone := lockRun(t, 7, 0, 100)
	require.Equal(t, make([]string, 100), alone, "no other request holds the Accounts: no lock errors")
	one := countLocked(lockRun(t, 7, 1, 100))
	three := countLocked(lockRun(t, 7, 3, 100))
	require.Positive(t, one, "one request holds every Account")
	require.Greater(t, three, one, "three requests hold them")
	require.Less(t, three, 100, "some locks are still obtained")
}

// The same seed and the same requests give the same lock errors.
func TestCostSeedDeterministic(t *testing.T) {
	t.Parallel()
	first := lockRun(t, 42, 2, 100)
	require.Positive(t, countLocked(first))
	require.Equal(t, first, lockRun(t, 42, 2, 100))
}

// With 25 requests running for 20 s or more, the 26th is refused with
// ConcurrentPerOrgLongTxn; short requests are not capped, and once the
// long ones end, calls go through again.
func TestCostLongRunningCap(t *testing.T) {
	t.Parallel()
	model := sffake.RealisticCost()
	g := newGate(model.MaxLong)
	b := costSetup(t, model, 1, g)
	var wg sync.WaitGroup
	for range model.MaxLong {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.doRaw("GET", v+"/query?q=SELECT+Id+FROM+Account", nil)
		}()
		<-g.entered
	}
	require.Equal(t, 200, b.query(t, "SELECT Id FROM Account").status, "25 requests in flight, none yet long-running")
	b.sf.Clock().Advance(model.LongAfter)
	used, _ := b.sf.Usage()
	r := b.query(t, "SELECT Id FROM Account")
	require.Equal(t, 403, r.status, string(r.body))
	require.Equal(t, "REQUEST_LIMIT_EXCEEDED", r.errorCode(t))
	require.Contains(t, string(r.body), "ConcurrentPerOrgLongTxn Limit exceeded.")
	after, _ := b.sf.Usage()
	require.Equal(t, used, after, "a refused request is not counted")
	require.Equal(t, sffake.CostStats{LongRefused: 1}, b.sf.CostStats())
	close(g.release)
	wg.Wait()
	require.Equal(t, 200, b.query(t, "SELECT Id FROM Account").status)
}
