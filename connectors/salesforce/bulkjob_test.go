package salesforce_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
)

// A tracked bulk job: opened (nothing uploaded), run with its operations
// (one result per operation, in order), settled in every state it can be
// left in by a process that died.
func TestBulkJobOpenRunSettle(t *testing.T) {
	t.Parallel()
	b := setupFake(t)
	ctx := t.Context()

	open, err := b.c.OpenBulkJob(ctx, connector.OpenBulkJobRequest{Session: b.sess, Object: "Contact", Kind: connector.OpCreate})
	require.NoError(t, err)
	require.NotEmpty(t, open.JobID)
	var ops []connector.Operation
	for i := range 30 {
		ops = append(ops, connector.Operation{Kind: connector.OpCreate, Object: "Contact", Fields: map[string]any{"LastName": fmt.Sprintf("C%d", i)}})
	}
	ops[7].Fields = map[string]any{"FirstName": "no last name"} // REQUIRED_FIELD_MISSING
	resp, err := b.c.RunBulkJob(ctx, connector.RunBulkJobRequest{Session: b.sess, JobID: open.JobID, Operations: ops})
	require.NoError(t, err)
	require.Len(t, resp.Results, 30)
	for i, res := range resp.Results {
		if i == 7 {
			require.NotNil(t, res.Error)
			require.Equal(t, "REQUIRED_FIELD_MISSING", res.Error.Code)
			continue
		}
		require.Nil(t, res.Error)
		rec, ok := b.sf.Get("Contact", res.ID)
		require.True(t, ok)
		require.Equal(t, ops[i].Fields["LastName"], rec["LastName"])
	}
	require.Positive(t, resp.Calls)

	done, err := b.c.SettleBulkJob(ctx, connector.SettleBulkJobRequest{Session: b.sess, JobID: open.JobID})
	require.NoError(t, err)
	require.True(t, done.Done)
	require.Equal(t, "JobComplete", done.State)
	require.EqualValues(t, 30, done.Processed)
	require.EqualValues(t, 1, done.Failed)

	_, err = b.c.RunBulkJob(ctx, connector.RunBulkJobRequest{Session: b.sess, JobID: open.JobID, Operations: ops[:1]})
	require.Error(t, err, "a job runs once")

	// Opened, never run (the process died before its upload): aborted,
	// nothing written.
	before := len(b.sf.All("Contact"))
	open2, err := b.c.OpenBulkJob(ctx, connector.OpenBulkJobRequest{Session: b.sess, Object: "Contact", Kind: connector.OpCreate})
	require.NoError(t, err)
	settled, err := b.c.SettleBulkJob(ctx, connector.SettleBulkJobRequest{Session: b.sess, JobID: open2.JobID})
	require.NoError(t, err)
	require.Equal(t, connector.SettleBulkJobResponse{Done: true, State: "Aborted"}, *withoutMeta(settled))
	require.Len(t, b.sf.All("Contact"), before)

	// A job the org does not know: nothing more will come of it.
	gone, err := b.c.SettleBulkJob(ctx, connector.SettleBulkJobRequest{Session: b.sess, JobID: "7505g000000AAAAAAA"})
	require.NoError(t, err)
	require.True(t, gone.Done)
	require.Equal(t, "unknown", gone.State)

	// Mixed operations, bad ids and kinds are refused before any call.
	_, err = b.c.RunBulkJob(ctx, connector.RunBulkJobRequest{Session: b.sess, JobID: open.JobID,
		Operations: []connector.Operation{ops[0], {Kind: connector.OpCreate, Object: "Lead", Fields: map[string]any{"LastName": "x"}}}})
	require.ErrorIs(t, err, connector.ErrInvalid)
	_, err = b.c.SettleBulkJob(ctx, connector.SettleBulkJobRequest{Session: b.sess, JobID: "../limits"})
	require.ErrorIs(t, err, connector.ErrInvalid)
	_, err = b.c.OpenBulkJob(ctx, connector.OpenBulkJobRequest{Session: b.sess, Object: "Contact", Kind: "merge"})
	require.ErrorIs(t, err, connector.ErrInvalid)
}

// A job still being worked is not done; settled again once it is over.
func TestBulkJobSettleWhileRunning(t *testing.T) {
	t.Parallel()
	cost := sffake.FlatCost(0)
	cost.Objects = map[string]sffake.RecordCost{"Contact": {Create: 2 * time.Millisecond}}
	sf := sffaketest.Start(t, sffake.Options{Cost: &cost})
	b := setupFake(t)
	b.sf, b.sess = sf, fakeSession(sf)
	ctx := t.Context()
	open, err := b.c.OpenBulkJob(ctx, connector.OpenBulkJobRequest{Session: b.sess, Object: "Contact", Kind: connector.OpCreate})
	require.NoError(t, err)
	var ops []connector.Operation
	for i := range 600 { // 3 transactions of 0.4 s
		ops = append(ops, connector.Operation{Kind: connector.OpCreate, Object: "Contact", Fields: map[string]any{"LastName": fmt.Sprintf("C%d", i)}})
	}
	run := make(chan error, 1)
	go func() {
		_, err := b.c.RunBulkJob(ctx, connector.RunBulkJobRequest{Session: b.sess, JobID: open.JobID, Operations: ops})
		run <- err
	}()
	require.Eventually(t, func() bool { return len(sf.All("Contact")) > 0 }, 10*time.Second, 5*time.Millisecond)
	settled, err := b.c.SettleBulkJob(ctx, connector.SettleBulkJobRequest{Session: b.sess, JobID: open.JobID})
	require.NoError(t, err)
	require.False(t, settled.Done, "state %s", settled.State)
	require.NoError(t, <-run)
	settled, err = b.c.SettleBulkJob(ctx, connector.SettleBulkJobRequest{Session: b.sess, JobID: open.JobID})
	require.NoError(t, err)
	require.True(t, settled.Done)
	require.Len(t, sf.All("Contact"), 600)
}

func withoutMeta(r *connector.SettleBulkJobResponse) *connector.SettleBulkJobResponse {
	c := *r
	c.Meta = connector.Meta{}
	return &c
}
