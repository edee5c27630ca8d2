package jobs_test

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/secret"
	"github.com/crmsync/crmsync/jobs"
)

// BenchmarkIngestConcurrent is the ingest path of recordChanges without
// HTTP: concurrent callers ingest into one connected workspace, each call
// in the group-commit pipeline with the real flush scheduler (River insert
// only, no workers), over 2,000 contacts. Reports changes/s and the call
// latency p50/p99. On PostgreSQL, point TEST_DATABASE_URL at a cluster
// started with PGSH_DURABLE=1 to measure with synchronous_commit on.
func BenchmarkIngestConcurrent(b *testing.B) {
	for _, d := range dbtest.Dialects {
		for _, tc := range []struct{ clients, size int }{{1, 1}, {32, 1}, {8, 1000}} {
			b.Run(fmt.Sprintf("%s/clients=%d/size=%d", d, tc.clients, tc.size), func(b *testing.B) {
				ctx := context.Background()
				bdb := dbtest.Open(b, d)
				var ws int64
				require.NoError(b, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "b", time.Now().UTC()).Scan(ctx, &ws))
				key := make([]byte, secret.KeySize)
				_, _ = crand.Read(key)
				box, err := secret.NewBox(key)
				require.NoError(b, err)
				s := memcrm.Session(b.Name(), memcrm.DefaultToken)
				_, err = connection.NewStore(bdb, box).Save(ctx, ws, memcrm.Name, s.Config, s.Credentials, memcrm.New().Org(b.Name()).Identity(), nil)
				require.NoError(b, err)
				client, err := jobs.NewClient(bdb, quiet(), nil, nil)
				require.NoError(b, err)
				groups := &groupStats{}
				in := outbound.NewIngester(bdb, jobs.NewScheduler(client, time.Hour), nil, outbound.WithObserver(groups))

				var next atomic.Int64
				var mu sync.Mutex
				var lat []time.Duration
				var wg sync.WaitGroup
				b.ResetTimer()
				for cl := range tc.clients {
					wg.Go(func() {
						for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
							changes := make([]outbound.Change, tc.size)
							for i := range changes {
								changes[i] = outbound.Change{Type: record.TypeContact, ID: fmt.Sprintf("c%d", rand.IntN(2000)), Source: record.SourceAPI,
									Fields: map[string]outbound.FieldChange{"phone": {Value: fmt.Sprintf("%d-%d-%d", cl, n, i)}}}
							}
							t0 := time.Now()
							_, err := in.Ingest(ctx, ws, changes)
							if err != nil {
								b.Error(err)
								return
							}
							mu.Lock()
							lat = append(lat, time.Since(t0))
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				slices.Sort(lat)
				b.ReportMetric(float64(len(lat)*tc.size)/b.Elapsed().Seconds(), "changes/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				groups.report(b)
			})
		}
	}
}

// groupStats sums what group commit did during a benchmark.
type groupStats struct {
	mu                    sync.Mutex
	groups, calls, failed int
	took, waited          time.Duration
}

func (g *groupStats) GroupCommitted(calls, _ int, took time.Duration, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.groups++
	g.calls += calls
	g.took += took
	if err != nil {
		g.failed++
	}
}

func (g *groupStats) CallWaited(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.waited += d
}

func (g *groupStats) CallRejected() {}

func (g *groupStats) report(b *testing.B) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.groups == 0 {
		return
	}
	b.ReportMetric(float64(g.calls)/float64(g.groups), "calls/group")
	b.ReportMetric(float64(g.took.Microseconds())/1000/float64(g.groups), "commit-ms")
	b.ReportMetric(float64(g.waited.Microseconds())/1000/float64(g.calls), "wait-ms")
}
