package crmplugin

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/memcrm"
)

// A bulk job opened, run and settled through a plugin process: the job id,
// every result in order, the errors' kinds and each call's Meta (calls,
// usage, the CRM's clock) cross the boundary.
func TestBulkJobThroughPlugin(t *testing.T) {
	t.Parallel()
	h, _ := newHost(t, nil)
	c, err := h.Connector(t.Context(), "memcrm-bulkjobs")
	require.NoError(t, err)
	s := session(t, t.Name(), nil)
	d, err := c.Describe(t.Context(), connector.DescribeRequest{Session: connector.Session{Config: s.Config}})
	require.NoError(t, err)
	require.True(t, d.Has(connector.CapabilityBulkJobs))
	require.Equal(t, 3, d.BulkThreshold)

	bj, ok := c.(connector.BulkJobRunner)
	require.True(t, ok)
	open, err := bj.OpenBulkJob(t.Context(), connector.OpenBulkJobRequest{Session: s, Object: "Contact", Kind: connector.OpCreate})
	require.NoError(t, err)
	require.NotEmpty(t, open.JobID)
	require.Equal(t, 1, open.Calls)
	require.NotNil(t, open.Usage)
	require.EqualValues(t, 1, open.Usage.Used)

	ops := []connector.Operation{
		{Kind: connector.OpCreate, Object: "Contact", Fields: map[string]any{"LastName": "One"}},
		{Kind: connector.OpCreate, Object: "Contact", Fields: map[string]any{"FirstName": "No last name"}},
		{Kind: connector.OpCreate, Object: "Contact", Fields: map[string]any{"LastName": "Three"}},
	}
	run, err := bj.RunBulkJob(t.Context(), connector.RunBulkJobRequest{Session: s, JobID: open.JobID, Operations: ops})
	require.NoError(t, err)
	require.Equal(t, 4, run.Calls)
	require.NotNil(t, run.Usage)
	require.EqualValues(t, 5, run.Usage.Used, "the job's calls so far")
	require.False(t, run.ServerTime.IsZero(), "the CRM's clock")
	require.Len(t, run.Results, 3)
	require.True(t, run.Results[0].Created)
	require.NotNil(t, run.Results[1].Error, "a failed row keeps its place")
	require.Equal(t, "REQUIRED_FIELD_MISSING", run.Results[1].Error.Code)
	require.Equal(t, []string{"LastName"}, run.Results[1].Error.Fields)
	require.True(t, run.Results[2].Created)
	got, err := c.FetchCurrent(t.Context(), connector.FetchCurrentRequest{Session: s, Object: "Contact",
		IDs: []string{run.Results[2].ID}, Fields: []string{"LastName"}})
	require.NoError(t, err)
	require.Len(t, got.Records, 1)
	require.Equal(t, "Three", got.Records[0].Fields["LastName"])

	_, err = bj.RunBulkJob(t.Context(), connector.RunBulkJobRequest{Session: s, JobID: open.JobID, Operations: ops[:1]})
	require.ErrorIs(t, err, connector.ErrInvalid)
	require.ErrorContains(t, err, "is not open")

	settled, err := bj.SettleBulkJob(t.Context(), connector.SettleBulkJobRequest{Session: s, JobID: open.JobID})
	require.NoError(t, err)
	require.Equal(t, connector.SettleBulkJobResponse{Done: true, State: memcrm.JobComplete, Processed: 3, Failed: 1},
		connector.SettleBulkJobResponse{Done: settled.Done, State: settled.State, Processed: settled.Processed, Failed: settled.Failed})
	require.Equal(t, 1, settled.Calls)
	require.NotNil(t, settled.Usage)

	unknown, err := bj.SettleBulkJob(t.Context(), connector.SettleBulkJobRequest{Session: s, JobID: "750000000000000AAA"})
	require.NoError(t, err)
	require.True(t, unknown.Done)
	require.Equal(t, memcrm.JobUnknown, unknown.State)
}

// A run that dies part way reaches the host as a retryable error, and the
// job it left running is settled later through the same plugin.
func TestBulkJobLostThroughPlugin(t *testing.T) {
	t.Parallel()
	h, _ := newHost(t, nil)
	c, err := h.Connector(t.Context(), "memcrm-bulkjobs")
	require.NoError(t, err)
	bj := c.(connector.BulkJobRunner)
	crashy := session(t, t.Name(), &memcrm.Faults{BulkJobCrashAfter: 1, BulkJobSettlePolls: 1})
	open, err := bj.OpenBulkJob(t.Context(), connector.OpenBulkJobRequest{Session: crashy, Object: "Lead", Kind: connector.OpUpsert, ExternalIDField: "Conversion_Id__c"})
	require.NoError(t, err)
	ops := []connector.Operation{
		{Kind: connector.OpUpsert, Object: "Lead", ExternalIDField: "Conversion_Id__c", ExternalID: "c-1", Fields: map[string]any{"LastName": "A", "Company": "Co"}},
		{Kind: connector.OpUpsert, Object: "Lead", ExternalIDField: "Conversion_Id__c", ExternalID: "c-2", Fields: map[string]any{"LastName": "B", "Company": "Co"}},
	}
	_, err = bj.RunBulkJob(t.Context(), connector.RunBulkJobRequest{Session: crashy, JobID: open.JobID, Operations: ops})
	require.ErrorIs(t, err, connector.ErrUnavailable)
	require.True(t, connector.Retryable(err))

	for _, want := range []connector.SettleBulkJobResponse{
		{Done: false, State: memcrm.JobInProgress, Processed: 1},
		{Done: true, State: memcrm.JobComplete, Processed: 2},
	} {
		got, err := bj.SettleBulkJob(t.Context(), connector.SettleBulkJobRequest{Session: crashy, JobID: open.JobID})
		require.NoError(t, err)
		require.Equal(t, want, connector.SettleBulkJobResponse{Done: got.Done, State: got.State, Processed: got.Processed})
	}
	leads, err := c.FetchCurrent(t.Context(), connector.FetchCurrentRequest{Session: crashy, Object: "Lead",
		Match: &connector.MatchKey{Field: "Conversion_Id__c", Values: []string{"c-1", "c-2"}}, Fields: []string{"LastName"}})
	require.NoError(t, err)
	require.Len(t, leads.Records, 2, "each row written once")
}

// A plugin without connector.BulkJobRunner answers every bulk job call
// with connector.ErrUnsupported, and so does memcrm without its bulk path.
func TestBulkJobUnsupportedThroughPlugin(t *testing.T) {
	t.Parallel()
	h, _ := newHost(t, nil)
	for _, name := range []string{"no-changes", "memcrm"} {
		c, err := h.Connector(t.Context(), name)
		require.NoError(t, err)
		bj := c.(connector.BulkJobRunner)
		s := session(t, t.Name(), nil)
		_, err = bj.OpenBulkJob(t.Context(), connector.OpenBulkJobRequest{Session: s, Object: "Contact", Kind: connector.OpCreate})
		require.ErrorIs(t, err, connector.ErrUnsupported, name)
		_, err = bj.RunBulkJob(t.Context(), connector.RunBulkJobRequest{Session: s, JobID: "j", Operations: []connector.Operation{
			{Kind: connector.OpCreate, Object: "Contact", Fields: map[string]any{"LastName": "x"}}}})
		require.ErrorIs(t, err, connector.ErrUnsupported, name)
		_, err = bj.SettleBulkJob(t.Context(), connector.SettleBulkJobRequest{Session: s, JobID: "j"})
		require.ErrorIs(t, err, connector.ErrUnsupported, name)
		require.False(t, connector.Retryable(err), name)
	}
}
