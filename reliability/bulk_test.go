package reliability

import (
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
	cost.Objects = map[string]sffake.RecordCost{"Lead": {Create: 3 * time.Millisecond}} // 0.6 s per 200 Leads
	c := newCluster(t, clusterOptions{Latency: 10 * time.Millisecond, Cost: &cost, BulkThreshold: 100})
	r := c.start()
	tn := c.setup(ctx)
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
	c.kill(r)
	c.start()

	require.NoError(t, c.waitDrained(ctx, tn.id, 3*time.Minute))
	rep := l.verify(ctx)
	require.Len(t, c.org.All("Lead"), 1000)
	t.Logf("%d Bulk jobs, %d changes", c.org.BulkStats().Jobs, rep.Changes)
}

// seedChanges are the changes seed sends: every record created.
func (l *load) seedChanges() []Change {
	var changes []Change
	for i := range l.records {
		changes = append(changes, l.seedChange(i))
	}
	return changes
}
