package connectortest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
)

// defaultUnknownBulkJobID is a well-formed Salesforce job id (key prefix
// 750, checksum AAA) that no org hands out: an opaque string elsewhere.
const defaultUnknownBulkJobID = "750000000000000AAA"

// testBulkJobs checks connector.BulkJobRunner, when announced: a job's
// results map back one per operation, in order (creates and updates, a
// failed row in its place); a run with an operation of another kind is
// refused with ErrInvalid and writes nothing; settling a job never run
// aborts it (a later run writes nothing), settling a finished job reports
// it done with its counts, and a job the CRM does not know is done.
func testBulkJobs(t *testing.T, h Harness) {
	d := describe(t, h)
	if !d.Has(connector.CapabilityBulkJobs) {
		t.Skipf("not applicable: the connector does not announce %q", connector.CapabilityBulkJobs)
	}
	require.True(t, d.Has(connector.CapabilityBulk), "%q comes with %q", connector.CapabilityBulkJobs, connector.CapabilityBulk)
	require.Positive(t, d.BulkThreshold, "%q comes with a bulk threshold", connector.CapabilityBulkJobs)
	bj, ok := h.Connector.(connector.BulkJobRunner)
	require.True(t, ok, "connector announces %s but does not implement connector.BulkJobRunner", connector.CapabilityBulkJobs)
	j := bulkJobs{h: h, bj: bj}

	t.Run("CreateAndUpdate", j.createAndUpdate)
	t.Run("MixedKindRefused", j.mixedKindRefused)
	t.Run("NeverRunIsAborted", j.neverRunIsAborted)
	t.Run("UnknownIsDone", func(t *testing.T) {
		id := h.UnknownBulkJobID
		if id == "" {
			id = defaultUnknownBulkJobID
		}
		resp := j.settle(t, id)
		require.True(t, resp.Done, "a job the CRM does not know writes nothing: done (state %q)", resp.State)
	})
}

// bulkJobs holds what the BulkJobs subtests share.
type bulkJobs struct {
	h  Harness
	bj connector.BulkJobRunner
}

func (j bulkJobs) open(t *testing.T, kind connector.OpKind) string {
	t.Helper()
	resp, err := j.bj.OpenBulkJob(ctx(t), connector.OpenBulkJobRequest{Session: j.h.Session, Object: j.h.Object, Kind: kind})
	require.NoError(t, err, "open a %s job on %s", kind, j.h.Object)
	require.NotEmpty(t, resp.JobID, "an opened job has an id")
	return resp.JobID
}

func (j bulkJobs) run(t *testing.T, id string, ops []connector.Operation) *connector.BulkUpdateResponse {
	t.Helper()
	resp, err := j.bj.RunBulkJob(ctx(t), connector.RunBulkJobRequest{Session: j.h.Session, JobID: id, Operations: ops})
	require.NoError(t, err, "run job %s", id)
	require.Len(t, resp.Results, len(ops), "one result per operation")
	require.Positive(t, resp.Calls, "a job reports the API calls it made")
	return resp
}

func (j bulkJobs) settle(t *testing.T, id string) *connector.SettleBulkJobResponse {
	t.Helper()
	resp, err := j.bj.SettleBulkJob(ctx(t), connector.SettleBulkJobRequest{Session: j.h.Session, JobID: id})
	require.NoError(t, err, "settle job %s", id)
	return resp
}

// matching returns the records whose MatchField has one of the values of
// NewRecord(n) for ns.
func (j bulkJobs) matching(t *testing.T, ns ...int) []connector.Record {
	t.Helper()
	var values []string
	for _, n := range ns {
		values = append(values, fmt.Sprint(j.h.NewRecord(n)[j.h.MatchField]))
	}
	resp, err := j.h.Connector.FetchCurrent(ctx(t), connector.FetchCurrentRequest{Session: j.h.Session, Object: j.h.Object,
		Match: &connector.MatchKey{Field: j.h.MatchField, Values: values}, Fields: []string{j.h.MatchField}})
	require.NoError(t, err, "fetch by %s", j.h.MatchField)
	return resp.Records
}

func (j bulkJobs) createAndUpdate(t *testing.T) {
	h := j.h
	first := int(uniq.Add(1)) * 1_000_000
	ops := make([]connector.Operation, 3)
	for i := range ops {
		ops[i] = connector.Operation{Kind: connector.OpCreate, Object: h.Object, Fields: h.NewRecord(first + i)}
	}
	id := j.open(t, connector.OpCreate)
	created := j.run(t, id, ops)
	ids := make([]string, len(ops))
	for i, r := range created.Results {
		require.Nil(t, r.Error, "bulk job create #%d", i)
		require.NotEmpty(t, r.ID, "bulk job create #%d has an id", i)
		require.True(t, r.Created, "bulk job create #%d reports Created", i)
		ids[i] = r.ID
	}
	got := fetch(t, h, ids, h.MatchField)
	require.Len(t, got, len(ids), "the created records read back")
	for i, rid := range ids {
		want := fmt.Sprint(h.NewRecord(first + i)[h.MatchField])
		require.True(t, strings.EqualFold(want, fmt.Sprint(got[rid].Fields[h.MatchField])),
			"result %d is the record of operation %d: %s %q, want %q", i, i, h.MatchField, got[rid].Fields[h.MatchField], want)
	}
	done := j.settle(t, id)
	require.True(t, done.Done, "a finished job is done (state %q)", done.State)
	require.EqualValues(t, len(ops), done.Processed, "a finished job counts its rows")
	require.Zero(t, done.Failed, "no row failed")

	// An update job, in another order, with a row that fails in the middle.
	del, err := h.Connector.BulkUpdate(ctx(t), connector.BulkUpdateRequest{Session: h.Session, Operations: []connector.Operation{
		{Kind: connector.OpDelete, Object: h.Object, ID: ids[1]},
	}})
	require.NoError(t, err, "delete")
	require.Nil(t, del.Results[0].Error, "delete result")
	id = j.open(t, connector.OpUpdate)
	upd := j.run(t, id, []connector.Operation{
		{Kind: connector.OpUpdate, Object: h.Object, ID: ids[2], Fields: map[string]any{h.UpdateField: "BulkTwo"}},
		{Kind: connector.OpUpdate, Object: h.Object, ID: ids[1], Fields: map[string]any{h.UpdateField: "Gone"}},
		{Kind: connector.OpUpdate, Object: h.Object, ID: ids[0], Fields: map[string]any{h.UpdateField: "BulkZero"}},
	})
	for i, want := range map[int]string{0: ids[2], 2: ids[0]} {
		require.Nil(t, upd.Results[i].Error, "bulk job update #%d", i)
		require.Equal(t, want, upd.Results[i].ID, "result %d is the record of operation %d", i, i)
		require.False(t, upd.Results[i].Created, "an update does not create")
	}
	require.NotNil(t, upd.Results[1].Error, "updating a deleted record fails in its place")
	require.NotEmpty(t, upd.Results[1].Error.Code, "a record error has a code")
	after := fetch(t, h, []string{ids[0], ids[2]}, h.UpdateField)
	require.Equal(t, "BulkZero", after[ids[0]].Fields[h.UpdateField])
	require.Equal(t, "BulkTwo", after[ids[2]].Fields[h.UpdateField])
	done = j.settle(t, id)
	require.True(t, done.Done, "a finished job is done (state %q)", done.State)
	require.EqualValues(t, 3, done.Processed, "a finished job counts its rows, failed ones too")
	require.EqualValues(t, 1, done.Failed, "a finished job counts its failed rows")
}

func (j bulkJobs) mixedKindRefused(t *testing.T) {
	h := j.h
	first := int(uniq.Add(1)) * 1_000_000
	existing := create(t, h, first, 1)
	id := j.open(t, connector.OpCreate)
	_, err := j.bj.RunBulkJob(ctx(t), connector.RunBulkJobRequest{Session: h.Session, JobID: id, Operations: []connector.Operation{
		{Kind: connector.OpCreate, Object: h.Object, Fields: h.NewRecord(first + 1)},
		{Kind: connector.OpUpdate, Object: h.Object, ID: existing[0], Fields: map[string]any{h.UpdateField: "Mixed"}},
	}})
	require.ErrorIs(t, err, connector.ErrInvalid, "an operation of another kind than the job's")
	require.Empty(t, j.matching(t, first+1), "a refused run writes nothing")
	require.NotEqual(t, "Mixed", fetch(t, h, existing, h.UpdateField)[existing[0]].Fields[h.UpdateField], "a refused run writes nothing")
	resp := j.settle(t, id)
	require.True(t, resp.Done, "a job whose run was refused is settled (state %q)", resp.State)
}

func (j bulkJobs) neverRunIsAborted(t *testing.T) {
	h := j.h
	first := int(uniq.Add(1)) * 1_000_000
	id := j.open(t, connector.OpCreate)
	resp := j.settle(t, id)
	require.True(t, resp.Done, "a job never run is aborted: done (state %q)", resp.State)
	require.Zero(t, resp.Processed, "a job never run wrote nothing")
	_, err := j.bj.RunBulkJob(ctx(t), connector.RunBulkJobRequest{Session: h.Session, JobID: id, Operations: []connector.Operation{
		{Kind: connector.OpCreate, Object: h.Object, Fields: h.NewRecord(first)},
	}})
	require.Error(t, err, "a settled job does not run")
	require.False(t, errors.Is(err, connector.ErrUnsupported), "a settled job does not run: %v", err)
	require.Empty(t, j.matching(t, first), "a settled job writes nothing")
	again := j.settle(t, id)
	require.True(t, again.Done, "an aborted job stays done (state %q)", again.State)
}

// probeBulkJobs tells whether the connector runs bulk jobs: it opens one
// and settles it, which writes nothing.
func probeBulkJobs(t *testing.T, h Harness, _ *connector.Description) bool {
	bj, ok := h.Connector.(connector.BulkJobRunner)
	if !ok {
		return false
	}
	resp, err := bj.OpenBulkJob(ctx(t), connector.OpenBulkJobRequest{Session: h.Session, Object: h.Object, Kind: connector.OpCreate})
	if errors.Is(err, connector.ErrUnsupported) {
		return false
	}
	require.NoError(t, err, "OpenBulkJob")
	settled, err := bj.SettleBulkJob(ctx(t), connector.SettleBulkJobRequest{Session: h.Session, JobID: resp.JobID})
	require.NoError(t, err, "SettleBulkJob")
	require.True(t, settled.Done, "a job never run is aborted: done (state %q)", settled.State)
	return true
}
