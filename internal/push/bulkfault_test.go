package push_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/salesforce"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
)

// A Bulk API job interrupted at each of its steps — the upload, the
// polling while Salesforce processes it, the reading of its results — with
// the request run but its answer lost, or not run at all: the next flushes
// find what the job did and finish the rest. Salesforce ends with every
// contact once, with its values; nothing queued is lost.
func TestBulkJobInterruptedAtEveryStep(t *testing.T) {
	t.Parallel()
	steps := map[string]sffake.Fault{
		"upload answer lost":   {Method: "PUT", Path: "/jobs/ingest/*/batches", Kind: sffake.FaultTruncate, Times: 1},
		"upload never arrives": {Method: "PUT", Path: "/jobs/ingest/*/batches", Kind: sffake.FaultReset, Times: 1},
		"close answer lost":    {Method: "PATCH", Path: "/jobs/ingest/*", Kind: sffake.FaultTruncate, Times: 1},
		"polling fails":        {Method: "GET", Path: "/jobs/ingest/*", Kind: sffake.FaultReset, Times: 30},
		"results cut":          {Method: "GET", Path: "/jobs/ingest/*/successfulResults", Kind: sffake.FaultTruncate, Times: 1},
		"results refused":      {Method: "GET", Path: "/jobs/ingest/*/successfulResults", Kind: sffake.FaultStatus, Status: 500, Times: 30},
	}
	for name, fault := range steps {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
				t.Parallel()
				b := setupSffake(t, bdb, push.Config{RetryBase: time.Millisecond}, func(c *salesforce.Config) { c.BulkThreshold = 20 })
				ctx := context.Background()
				const n = 60
				var changes []outbound.Change
				for i := range n {
					changes = append(changes, change(record.TypeContact, fmt.Sprintf("c%d", i), time.Now(),
						map[string]any{"email": fmt.Sprintf("c%d@example.com", i), "lastName": fmt.Sprintf("L%d", i), "company": "Acme", "title": "T"}))
				}
				b.ingest(t, changes)
				b.sf.InjectFault(fault)
				_, err := b.engine.Flush(ctx, b.ws)
				require.Error(t, err, "the interrupted job fails its flush")
				jobs := 0
				for _, r := range b.sf.RequestLog() {
					if r.Method == "POST" && strings.HasSuffix(r.Path, "/jobs/ingest") {
						jobs++
					}
				}
				require.Equal(t, 1, jobs, "the flush went by the Bulk API")
				b.sf.ClearFaults()
				b.drain(t)

				leads := b.sf.All("Lead")
				byEmail := map[string]int{}
				for _, l := range leads {
					byEmail[l["Email"].(string)]++
					require.Equal(t, "T", l["Title"])
				}
				require.Len(t, byEmail, n, "every contact is in Salesforce")
				for e, k := range byEmail {
					require.Equal(t, 1, k, "%s is in Salesforce %d times", e, k)
				}
			})
		})
	}
}

// crmsync dies (here: loses its polling) while Salesforce still processes
// a Bulk API job, and the next flush runs before the job is over: it must
// not create again what the job is about to create.
func TestBulkJobStillRunningAfterInterruption(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		cost := sffake.FlatCost(0)
		cost.Objects = map[string]sffake.RecordCost{"Lead": {Create: 2 * time.Millisecond}}
		cost.BulkParallel = 1
		sf := sffaketest.Start(t, sffake.Options{Cost: &cost})
		b := setupSffakeOrg(t, bdb, sf, push.Config{RetryBase: time.Millisecond}, func(c *salesforce.Config) { c.BulkThreshold = 20 })
		ctx := context.Background()
		const n = 1000 // 5 transactions of 0.4 s
		var changes []outbound.Change
		for i := range n {
			changes = append(changes, change(record.TypeContact, fmt.Sprintf("c%d", i), time.Now(),
				map[string]any{"email": fmt.Sprintf("c%d@example.com", i), "lastName": fmt.Sprintf("L%d", i), "company": "Acme"}))
		}
		b.ingest(t, changes)
		// Once the job is closed (Salesforce processes it), crmsync is
		// gone: its polling and its abort never arrive.
		fctx, kill := context.WithCancel(ctx)
		go func() {
			for fctx.Err() == nil {
				for _, r := range b.sf.RequestLog() {
					if r.Method == "PATCH" && strings.Contains(r.Path, "/jobs/ingest/") {
						b.sf.InjectFault(sffake.Fault{Path: "/jobs/ingest/", Kind: sffake.FaultReset, Times: 1000})
						kill()
						return
					}
				}
				time.Sleep(time.Millisecond)
			}
		}()
		_, err := b.engine.Flush(fctx, b.ws)
		require.Error(t, err)
		kill()
		b.sf.ClearFaults()
		require.Less(t, len(b.sf.All("Lead")), n, "the job is still being worked")
		usage, err := push.GetBulkUsage(ctx, bdb, b.ws, time.Now())
		require.NoError(t, err)
		require.Equal(t, push.BulkUsage{Running: 1, Jobs: 1, Records: n, Batches: 1}, usage, "the unsettled job in the overview")

		// The next flushes wait for the job, writing nothing, then read
		// what it wrote and finish the rest.
		waits := 0
		for {
			res, err := b.engine.Flush(ctx, b.ws)
			require.NoError(t, err)
			if res.Wait == 0 {
				break
			}
			waits++
			time.Sleep(50 * time.Millisecond)
		}
		require.Positive(t, waits, "a flush waited for the job")
		usage, err = push.GetBulkUsage(ctx, bdb, b.ws, time.Now())
		require.NoError(t, err)
		require.Equal(t, push.BulkUsage{Jobs: 1, Records: n, Batches: 1}, usage, "the settled job in the overview")
		b.drain(t)
		jobs := 0
		for _, r := range b.sf.RequestLog() {
			if r.Method == "POST" && strings.HasSuffix(r.Path, "/jobs/ingest") {
				jobs++
			}
		}
		require.Equal(t, 1, jobs, "the records were not uploaded again")

		byEmail := map[string]int{}
		for _, l := range b.sf.All("Lead") {
			byEmail[l["Email"].(string)]++
		}
		require.Len(t, byEmail, n)
		for e, k := range byEmail {
			require.Equal(t, 1, k, "%s is in Salesforce %d times", e, k)
		}
	})
}

// A Bulk job the org refuses (an object the Bulk API does not take) is
// written by REST instead, in the same flush, and leaves no job behind.
func TestBulkJobRefusedGoesByREST(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setupSffake(t, bdb, push.Config{RetryBase: time.Millisecond}, func(c *salesforce.Config) { c.BulkThreshold = 20 })
		var changes []outbound.Change
		for i := range 30 {
			changes = append(changes, change(record.TypeContact, fmt.Sprintf("c%d", i), time.Now(),
				map[string]any{"email": fmt.Sprintf("c%d@example.com", i), "lastName": "L", "company": "Acme"}))
		}
		b.ingest(t, changes)
		b.sf.InjectFault(sffake.Fault{Method: "POST", Path: "/jobs/ingest", Kind: sffake.FaultStatus, Status: 400, Code: "INVALIDENTITY",
			Message: "InvalidEntity : Entity 'Lead' is not supported by the Bulk API.", Times: 10})
		res, err := b.engine.Flush(context.Background(), b.ws)
		require.NoError(t, err)
		require.Equal(t, 30, res.Batch.Created)
		require.Len(t, b.sf.All("Lead"), 30)
		usage, err := push.GetBulkUsage(context.Background(), bdb, b.ws, time.Now())
		require.NoError(t, err)
		require.Zero(t, usage, "no job was opened")
	})
}
