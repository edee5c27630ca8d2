package push

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/contract"
	"github.com/crmsync/crmsync/internal/limits"
	"github.com/crmsync/crmsync/internal/record"
)

func TestDrainTimeWaitsForTheBucket(t *testing.T) {
	t.Parallel()
	tm := timing{names: salesforceNames, latency: time.Second, scale: 1}
	ten := plannedFlush{restCalls: 10}
	// Fixed windows: the flushes back to back, each its own work and
	// its calls.
	var terms DurationTerms
	require.Equal(t, 2*(FlushBase+10*time.Second), drainTime([]plannedFlush{ten, ten}, tm, Pace{}, &terms))
	require.Equal(t, DurationTerms{Flush: 2 * FlushBase, Calls: 20 * time.Second}, terms)
	// Paced, a full bucket of 6 refilled at one call a second: the first
	// flush starts at once and leaves the bucket 4 calls in debt, which
	// the second waits out (5 s to hold one call again).
	p := Pace{Enabled: true, Tokens: 6, Burst: 6, Rate: 1}
	terms = DurationTerms{}
	require.Equal(t, 25*time.Second+2*FlushBase, drainTime([]plannedFlush{ten, ten}, tm, p, &terms))
	require.Equal(t, 5*time.Second, terms.Pacing)
	// A dry bucket with no refill rate waits at the budget over a day.
	p = Pace{Enabled: true, Tokens: 0, Burst: 6, BudgetPerDay: 86_400}
	require.Equal(t, 11*time.Second+FlushBase, drainTime([]plannedFlush{ten}, tm, p, &DurationTerms{}))
}

// TestFlushTimeAddsItsTerms checks a planned flush's time, term by term,
// with assumed figures and with measured ones.
func TestFlushTimeAddsItsTerms(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	pf := plannedFlush{items: 20_000, records: 2_500, reads: 1_000, restCalls: 4, writes: []plannedWrite{
		{kind: connector.OpUpdate, object: "Lead", records: 1_000},
		{kind: connector.OpCreate, object: "Account", records: 500},
		{kind: connector.OpCreate, object: "Contact", records: 30_000, bulk: true},
	}}
	own := FlushBase + 20_000*FlushPerItem + 2_500*FlushPerRecord
	// REST: 1,000 Lead updates at 8 ms, 500 Account creates at 12 ms,
	// 1,000 reads at 0.2 ms.
	records := 1_000*8*ms + 500*12*ms + 1_000*readPerID

	// Assumed: the bulk job's three chunks are worked at once, 10,000
	// Contact creates at 10 ms: 100 s. The polls after the close wait
	// 1, 2, 4, 8 s, then 15 s each; the tenth finds it over (106.35 s
	// after the close, each poll a call of 150 ms). Upload, close, ten
	// polls and the results: 13 calls of 150 ms.
	tm := timing{names: salesforceNames, latency: 150 * ms, scale: 1}
	var terms DurationTerms
	took, calls := tm.time(pf, &terms)
	bulk := 1*time.Second + 2*time.Second + 4*time.Second + 8*time.Second + 6*15*time.Second + 13*150*ms
	require.Equal(t, DurationTerms{Flush: own, Calls: 600 * ms, Records: records, Bulk: bulk}, terms)
	require.Equal(t, own+600*ms+records+bulk, took)
	require.Equal(t, 4+bulkJobCalls-1+10, calls, "REST calls, and the job's create, upload, close, results and ten polls")

	// Measured: twice as slow as assumed by REST; the bulk job at the
	// measured time per record of a chunk wave.
	tm = timing{names: salesforceNames, latency: 300 * ms, scale: 2, bulkPerRecord: 3 * ms}
	terms = DurationTerms{}
	took, calls = tm.time(pf, &terms)
	require.Equal(t, DurationTerms{Flush: own, Calls: 1200 * ms, Records: 2 * records, Bulk: 10_000 * 3 * ms}, terms)
	require.Equal(t, own+1200*ms+2*records+30*time.Second, took)
	require.Equal(t, 4+bulkJobCalls, calls)
}

func TestBulkWaveRecords(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]int{1: 1, 9_999: 9_999, 30_000: 10_000, 100_000: 10_000, 100_001: 20_000, 250_000: 30_000} {
		require.Equal(t, want, bulkWaveRecords(n), "%d records", n)
	}
}

func TestBudgetReleaseFollowsTheWindow(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 30, 0, 0, time.UTC)
	hours := make([]limits.HourCalls, 24)
	for i := range hours {
		hours[i].Hour = now.Truncate(time.Hour).Add(time.Duration(i-23) * time.Hour)
	}
	hours[2].Calls, hours[5].Calls = 100, 100
	// 150 calls more than today's budget: the window frees them when the
	// second busy hour leaves it.
	require.Equal(t, hours[5].Hour.Add(limits.Window), budgetRelease(hours, 150, 1000, now))
	// More than the window holds: a day's budget per day after that.
	require.Equal(t, now.Truncate(time.Hour).Add(2*limits.Window), budgetRelease(hours, 1500, 1000, now))
}

// TestCutAtKeepsWhatWasWritten: a flush that outlives its deadline keeps
// the REST calls sent before it and the bulk rows worked by then.
func TestCutAtKeepsWhatWasWritten(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	jobs := func(from, n int, linked bool) []*job {
		out := make([]*job, n)
		for i := range out {
			out[i] = &job{rec: &record.Record{ID: int64(from + i)}}
			if linked {
				out[i].crmID = "x"
			}
		}
		return out
	}
	// 2 reads, 2,500 Account creates by REST (3 calls), a bulk job of
	// 20,000 Contact creates (2 chunks at once).
	accounts, contacts := jobs(0, 2_500, false), jobs(10_000, 20_000, false)
	pf := plannedFlush{items: 40_000, records: 22_500, restCalls: 5, writes: []plannedWrite{
		{kind: connector.OpCreate, object: "Account", records: 2_500, jobs: accounts},
		{kind: connector.OpCreate, object: "Contact", records: 20_000, bulk: true, jobs: contacts},
	}}
	tm := timing{names: salesforceNames, latency: 100 * ms, scale: 1}
	start := FlushBase + 40_000*FlushPerItem // 1.5 s
	// The reads end at 1.7 s; the REST calls at 13.8, 25.9 and 32 s; the
	// bulk job is closed at 32.3 s and works 2 rows each 10 ms.
	require.Equal(t, 1500*ms, start)
	cut := tm.cutAt(pf, 32300*ms+500*ms)
	require.True(t, cut.cut)
	require.Equal(t, 2+3, cut.cutREST)
	require.Equal(t, 3, cut.cutBulk, "create, upload, close; the first poll would be 1 s after")
	require.Equal(t, 1, cut.cutJobs)
	require.Equal(t, 2_500+100, len(cut.written), "the Accounts and 100 rows, 50 in each chunk")
	require.True(t, cut.written[0])
	// Spread over the job: every 200th row.
	require.True(t, cut.written[10_000])
	require.True(t, cut.written[10_200])
	_, ok := cut.written[10_001]
	require.False(t, ok)
	cut = tm.cutAt(pf, 32300*ms+3200*ms)
	require.Equal(t, 3+2, cut.cutBulk, "polls 1 s and 3.1 s after the close")
	// Cut before the second REST call: the first call's 1,000 records.
	cut = tm.cutAt(pf, 13*time.Second)
	require.Equal(t, 3, cut.cutREST)
	require.Equal(t, 1_000, len(cut.written))
	require.Zero(t, cut.cutBulk)
	require.Zero(t, cut.cutJobs)
	// A linked record written before the cut is not a create.
	pf.writes[0].jobs = jobs(0, 2_500, true)
	cut = tm.cutAt(pf, 13*time.Second)
	require.False(t, cut.written[0])
	var terms DurationTerms
	took, calls := tm.time(cut, &terms)
	require.Equal(t, FlushTimeout, took, "a cut flush takes its whole time")
	require.Equal(t, 3, calls)
	require.Equal(t, DurationTerms{CutOff: FlushTimeout}, terms)
}

func TestNextClaimFitsTheFlushTime(t *testing.T) {
	t.Parallel()
	require.Equal(t, 25_000, nextClaim(50_000, FlushTimeout, 50_000), "a full minute for half the claim")
	require.Equal(t, 30_000, nextClaim(30_000, FlushTimeout/3, 50_000))
	require.Equal(t, 50_000, nextClaim(30_000, FlushTimeout/5, 50_000), "doubled, at most the maximum")
	require.Equal(t, minClaim, nextClaim(300, 10*FlushTimeout, 50_000))
}

// salesforceNames are the object names of a Salesforce-shaped connection.
var salesforceNames = contract.Of(connector.SalesforceContract())
