package reliability

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
)

// crmsync serve is SIGKILLed while Salesforce works the Bulk API job of an
// import (it commits 200 records at a time), and started again at once.
// The restarted crmsync settles the job before it writes those records
// again: every contact is in Salesforce once, with its values
// (docs/sync.md, "Bulk jobs across a restart").
func TestBulkImportServeKilled(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cost := sffake.FlatCost(0)
	cost.Objects = map[string]sffake.RecordCost{"Lead": {Create: 10 * time.Millisecond}} // 2 s per 200 Leads: the job outlives the restart
	// A restart that keeps the replica id takes its predecessor's leases
	// over at once (as a StatefulSet pod does): the job is still being
	// worked when the restarted serve flushes.
	c := newCluster(t, clusterOptions{Latency: 10 * time.Millisecond, Cost: &cost, BulkThreshold: 100, ReplicaID: "bulk-replica"})
	began := time.Now()
	r := c.start()
	tn := c.setup(ctx)
	t.Logf("set up in %v", time.Since(began))
	l := newLoad(c, tn, 2000) // 1,000 contacts (Leads) and 1,000 companies
	changes := l.seedChanges()
	require.NoError(t, l.send(ctx, changes, time.Now()))
	l.chk.Seeded(changes)

	// Killed once the Leads' job is being worked: some are in Salesforce,
	// not all.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n := len(c.org.All("Lead"))
		if c.org.BulkStats().Jobs > 0 && n > 0 && n < 1000 {
			t.Logf("killed with %d of 1,000 Leads created", n)
			break
		}
		require.True(t, time.Now().Before(deadline), "no Bulk job was worked (%d Leads, %+v)", n, c.org.BulkStats())
		time.Sleep(5 * time.Millisecond)
	}
	killed := time.Now()
	c.kill(r)
	c.start()
	t.Logf("restarted in %v", time.Since(killed))

	require.NoError(t, c.waitDrained(ctx, tn.id, 3*time.Minute))
	t.Logf("drained %v after the kill (%d Leads then)", time.Since(killed), len(c.org.All("Lead")))
	rep := l.verify(ctx)
	require.Len(t, c.org.All("Lead"), 1000)
	var jobs []string
	for _, req := range c.org.RequestLog() {
		if req.Method == "POST" && strings.HasSuffix(req.Path, "/jobs/ingest") {
			jobs = append(jobs, string(req.Body))
		}
	}
	t.Logf("%d Bulk jobs (%s), %d changes", len(jobs), strings.Join(jobs, "; "), rep.Changes)
	var tracked []struct {
		JobID, Object, Kind, State string
		Records                    int
		Processed, Failed          int64
	}
	require.NoError(t, c.db.NewSelect().Table("bulk_jobs").Column("job_id", "object", "kind", "state", "records", "processed", "failed").
		Where("workspace_id = ?", tn.id).OrderExpr("opened_at").Scan(ctx, &tracked))
	t.Logf("jobs crmsync tracked: %+v", tracked)
}

// seedChanges are the changes seed sends: every record created.
func (l *load) seedChanges() []Change {
	var changes []Change
	for i := range l.records {
		changes = append(changes, l.seedChange(i))
	}
	return changes
}
