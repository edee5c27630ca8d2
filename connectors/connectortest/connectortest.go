// Package connectortest is the conformance suite every crmsync connector
// runs: the same contract tests against memcrm, the Salesforce connector and
// any third-party connector, in process or through a plugin process.
//
//	func TestConformance(t *testing.T) {
//		connectortest.Run(t, func(t *testing.T) connectortest.Harness {
//			return connectortest.Harness{
//				Connector:      mycrm.New(),
//				Session:        validSession,
//				BadCredentials: revokedSession,
//			}
//		})
//	}
//
// The suite writes records (by default Contacts with FirstName, LastName and
// Email, and a record of each object the data contract names, to look it up
// by its match key), so point it at a test org or a fake server, never at
// production. Properties that do not apply to the connector (a capability
// it does not announce, a record type its contract leaves out) are
// reported as skipped "not applicable", with the reason.
package connectortest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
)

// Harness is what a connector under test provides to the suite. The factory
// passed to Run returns a fresh Harness for every subtest; subtests run in
// parallel, so they may share a connector and an org, but must not share
// state that one subtest changes under another (such as a spent allowance).
type Harness struct {
	// Connector is the connector under test.
	Connector connector.Connector
	// Session is a valid session against a CRM the suite may write to.
	Session connector.Session
	// BadCredentials is a session whose credentials the CRM rejects
	// (invalid, expired or revoked).
	BadCredentials connector.Session

	// Object is the object the round trips write. Default "Contact".
	Object string
	// NewRecord returns the fields of a valid new record of Object, distinct
	// for distinct n. Default: FirstName, LastName and a unique Email.
	NewRecord func(n int) map[string]any
	// UpdateField is a string field of Object the suite changes. Default
	// "LastName".
	UpdateField string
	// MatchField is a field NewRecord sets to a unique value, used as a
	// FetchCurrent match key. Default "Email".
	MatchField string
	// ExternalIDField is the field upserts use when the connector announces
	// CapabilityUpsert. Default: the first external-id field of Object.
	ExternalIDField string
	// SyncedObjects must appear in Describe. Default Lead, Contact, Account.
	SyncedObjects []string

	// SlowSession, if set, is a session whose calls take at least a second
	// (a latency knob); the suite checks that a deadline cuts them short.
	SlowSession *connector.Session
	// EditAsOtherUser, if set, changes a record as a CRM user other than the
	// integration user, so the suite can check LastModifiedByID.
	EditAsOtherUser func(ctx context.Context, object, id string, fields map[string]any) error
	// BulkSession, if set, is a valid session whose configuration sets a
	// small bulk threshold (a few operations), so the suite can check
	// CapabilityBulk by writing just over it. Without it the suite writes
	// over the threshold Session reports, up to maxBulkProbe operations.
	BulkSession *connector.Session
	// FailWith, if set, returns a session whose every call fails whole with
	// err, as sent (a fault knob of the connector or of its fake CRM). The
	// suite sends every error kind this way, with messages that are empty,
	// long or not valid UTF-8, and checks each arrives with its kind and
	// retry-after: what a plugin boundary must never lose.
	FailWith func(err *connector.Error) connector.Session
	// UnknownBulkJobID is a bulk job id the CRM does not know, when the
	// connector announces CapabilityBulkJobs. Default
	// "750000000000000AAA", a well-formed Salesforce job id no org hands
	// out; set it when the connector refuses that form before asking the
	// CRM.
	UnknownBulkJobID string
}

var uniq atomic.Int64

func (h *Harness) defaults() {
	if h.Object == "" {
		h.Object = "Contact"
	}
	if h.NewRecord == nil {
		run := fmt.Sprintf("%d%d", time.Now().UnixNano()%1e9, uniq.Add(1))
		h.NewRecord = func(n int) map[string]any {
			return map[string]any{
				"FirstName": fmt.Sprintf("Ada%d", n),
				"LastName":  "Conformance",
				"Email":     fmt.Sprintf("ada%d.%s@conformance.example.com", n, run),
			}
		}
	}
	if h.UpdateField == "" {
		h.UpdateField = "LastName"
	}
	if h.MatchField == "" {
		h.MatchField = "Email"
	}
	if h.SyncedObjects == nil {
		h.SyncedObjects = []string{"Lead", "Contact", "Account"}
	}
}

// Run runs the conformance suite, one parallel subtest per property, each
// with a Harness from newHarness.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	tests := map[string]func(t *testing.T, h Harness){
		"Describe":          testDescribe,
		"Check":             testCheck,
		"Limits":            testLimits,
		"RoundTrip":         testRoundTrip,
		"Upsert":            testUpsert,
		"PerRecordErrors":   testPerRecordErrors,
		"FetchByMatch":      testFetchByMatch,
		"FetchChanges":      testFetchChanges,
		"Canceled":          testCanceled,
		"Deadline":          testDeadline,
		"BadCredentials":    testBadCredentials,
		"EditAsOtherUser":   testEditAsOtherUser,
		"ConcurrentWrites":  testConcurrentWrites,
		"ConditionalUpdate": testConditionalUpdate,
		"Capabilities":      testCapabilities,
		"ErrorKinds":        testErrorKinds,
		"StreamChanges":     testStreamChanges,
		"BulkJobs":          testBulkJobs,
		"DataContract":      testDataContract,
	}
	for _, name := range slices.Sorted(maps.Keys(tests)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.defaults()
			tests[name](t, h)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func describe(t *testing.T, h Harness) *connector.Description {
	t.Helper()
	d, err := h.Connector.Describe(ctx(t), connector.DescribeRequest{Session: h.Session})
	require.NoError(t, err, "describe")
	return d
}

func identity(t *testing.T, h Harness) connector.Identity {
	t.Helper()
	resp, err := h.Connector.Check(ctx(t), connector.CheckRequest{Session: h.Session})
	require.NoError(t, err, "check")
	return resp.Identity
}

// create creates n records from NewRecord(first...) and returns their ids.
func create(t *testing.T, h Harness, first, n int) []string {
	t.Helper()
	ops := make([]connector.Operation, n)
	for i := range ops {
		ops[i] = connector.Operation{Kind: connector.OpCreate, Object: h.Object, Fields: h.NewRecord(first + i)}
	}
	resp, err := h.Connector.BulkUpdate(ctx(t), connector.BulkUpdateRequest{Session: h.Session, Operations: ops})
	require.NoError(t, err, "create %d %s", n, h.Object)
	require.Len(t, resp.Results, n, "one result per operation")
	ids := make([]string, n)
	for i, r := range resp.Results {
		require.Nil(t, r.Error, "create %s #%d", h.Object, i)
		require.NotEmpty(t, r.ID, "created record has an id")
		require.True(t, r.Created, "create reports Created")
		ids[i] = r.ID
	}
	return ids
}

func fetch(t *testing.T, h Harness, ids []string, fields ...string) map[string]connector.Record {
	t.Helper()
	resp, err := h.Connector.FetchCurrent(ctx(t), connector.FetchCurrentRequest{Session: h.Session, Object: h.Object, IDs: ids, Fields: fields})
	require.NoError(t, err, "fetch current %v", ids)
	out := map[string]connector.Record{}
	for _, r := range resp.Records {
		out[r.ID] = r
	}
	return out
}

func testDescribe(t *testing.T, h Harness) {
	static, err := h.Connector.Describe(ctx(t), connector.DescribeRequest{})
	require.NoError(t, err, "describe without a session")
	require.NotEmpty(t, static.Name, "name")
	require.NotEmpty(t, static.Version, "version")

	d := describe(t, h)
	require.Equal(t, static.Name, d.Name)
	for _, name := range append(slices.Clone(h.SyncedObjects), h.Object) {
		o, ok := d.Object(name)
		require.True(t, ok, "object %s described", name)
		require.NotEmpty(t, o.Fields, "object %s has fields", name)
		for _, f := range o.Fields {
			require.NotEmpty(t, f.Name, "%s field name", name)
			require.NotEmpty(t, f.Type, "%s.%s type", name, f.Name)
		}
	}
	o, _ := d.Object(h.Object)
	for _, name := range []string{h.UpdateField, h.MatchField} {
		f, ok := o.Field(name)
		require.True(t, ok, "field %s.%s described", h.Object, name)
		require.True(t, f.Updateable, "%s.%s updateable", h.Object, name)
	}
	one, err := h.Connector.Describe(ctx(t), connector.DescribeRequest{Session: h.Session, Objects: []string{h.Object}})
	require.NoError(t, err, "describe one object")
	require.Len(t, one.Objects, 1, "Objects narrows the describe")
	require.Equal(t, h.Object, one.Objects[0].Name)
}

func testCheck(t *testing.T, h Harness) {
	resp, err := h.Connector.Check(ctx(t), connector.CheckRequest{Session: h.Session})
	require.NoError(t, err, "check")
	require.NotEmpty(t, resp.Identity.UserID, "integration user id")
}

func testLimits(t *testing.T, h Harness) {
	resp, err := h.Connector.Limits(ctx(t), connector.LimitsRequest{Session: h.Session})
	require.NoError(t, err, "limits")
	require.Positive(t, resp.Usage.Max, "usage max")
	require.GreaterOrEqual(t, resp.Usage.Used, int64(0))
	require.False(t, resp.Usage.ObservedAt.IsZero(), "usage observed at")
}

func testRoundTrip(t *testing.T, h Harness) {
	me := identity(t, h)
	ids := create(t, h, 0, 2)

	resp, err := h.Connector.BulkUpdate(ctx(t), connector.BulkUpdateRequest{Session: h.Session, Operations: []connector.Operation{
		{Kind: connector.OpCreate, Object: h.Object, Fields: h.NewRecord(2)},
	}})
	require.NoError(t, err)
	require.Positive(t, resp.Calls, "a write reports the API calls it made")

	fields := slices.Sorted(maps.Keys(h.NewRecord(0)))
	got := fetch(t, h, ids, fields...)
	require.Len(t, got, 2, "both created records read back")
	for i, id := range ids {
		r := got[id]
		require.Equal(t, h.Object, r.Object)
		for k, want := range h.NewRecord(i) {
			require.Equal(t, want, r.Fields[k], "%s.%s read back", h.Object, k)
		}
		require.False(t, r.LastModified.IsZero(), "LastModified set")
		require.False(t, r.SystemModstamp.IsZero(), "SystemModstamp set")
		require.Equal(t, me.UserID, r.LastModifiedByID, "written by the integration user")
	}

	before := got[ids[0]].LastModified
	upd, err := h.Connector.BulkUpdate(ctx(t), connector.BulkUpdateRequest{Session: h.Session, Operations: []connector.Operation{
		{Kind: connector.OpUpdate, Object: h.Object, ID: ids[0], Fields: map[string]any{h.UpdateField: "Updated"}},
	}})
	require.NoError(t, err, "update")
	require.Len(t, upd.Results, 1)
	require.Nil(t, upd.Results[0].Error, "update result")
	require.Equal(t, ids[0], upd.Results[0].ID)
	require.False(t, upd.Results[0].Created)
	after := fetch(t, h, ids[:1], h.UpdateField)[ids[0]]
	require.Equal(t, "Updated", after.Fields[h.UpdateField])
	require.False(t, after.LastModified.Before(before), "LastModified never goes back")

	del, err := h.Connector.BulkUpdate(ctx(t), connector.BulkUpdateRequest{Session: h.Session, Operations: []connector.Operation{
		{Kind: connector.OpDelete, Object: h.Object, ID: ids[1]},
	}})
	require.NoError(t, err, "delete")
	require.Len(t, del.Results, 1)
	require.Nil(t, del.Results[0].Error, "delete result")
	left := fetch(t, h, ids)
	require.Contains(t, left, ids[0])
	require.NotContains(t, left, ids[1], "a deleted record is absent from FetchCurrent")
}

func testUpsert(t *testing.T, h Harness) {
	d := describe(t, h)
	if !d.Has(connector.CapabilityUpsert) {
		t.Skipf("not applicable: the connector does not announce %q", connector.CapabilityUpsert)
	}
	field := h.ExternalIDField
	if field == "" {
		o, _ := d.Object(h.Object)
		for _, f := range o.Fields {
			if f.ExternalID {
				field = f.Name
				break
			}
		}
	}
	require.NotEmpty(t, field, "connector announces upsert but %s has no external-id field", h.Object)
	ext := fmt.Sprintf("ext-%d-%d", time.Now().UnixNano(), uniq.Add(1))
	upsert := func(fields map[string]any) connector.Result {
		resp, err := h.Connector.BulkUpdate(ctx(t), connector.BulkUpdateRequest{Session: h.Session, Operations: []connector.Operation{
			{Kind: connector.OpUpsert, Object: h.Object, ExternalIDField: field, ExternalID: ext, Fields: fields},
		}})
		require.NoError(t, err, "upsert")
		require.Len(t, resp.Results, 1)
		require.Nil(t, resp.Results[0].Error, "upsert result")
		return resp.Results[0]
	}
	first := upsert(h.NewRecord(0))
	require.True(t, first.Created, "first upsert creates")
	second := upsert(map[string]any{h.UpdateField: "Upserted"})
	require.False(t, second.Created, "second upsert updates")
	require.Equal(t, first.ID, second.ID, "same record")

	resp, err := h.Connector.FetchCurrent(ctx(t), connector.FetchCurrentRequest{
		Session: h.Session, Object: h.Object, Match: &connector.MatchKey{Field: field, Values: []string{ext}}, Fields: []string{h.UpdateField},
	})
	require.NoError(t, err)
	require.Len(t, resp.Records, 1, "match by external id")
	require.Equal(t, "Upserted", resp.Records[0].Fields[h.UpdateField])
}

func testPerRecordErrors(t *testing.T, h Harness) {
	ids := create(t, h, 0, 2)
	_, err := h.Connector.BulkUpdate(ctx(t), connector.BulkUpdateRequest{Session: h.Session, Operations: []connector.Operation{
		{Kind: connector.OpDelete, Object: h.Object, ID: ids[1]},
	}})
	require.NoError(t, err)

	resp, err := h.Connector.BulkUpdate(ctx(t), connector.BulkUpdateRequest{Session: h.Session, Operations: []connector.Operation{
		{Kind: connector.OpUpdate, Object: h.Object, ID: ids[0], Fields: map[string]any{h.UpdateField: "Fine"}},
		{Kind: connector.OpUpdate, Object: h.Object, ID: ids[1], Fields: map[string]any{h.UpdateField: "Gone"}},
		{Kind: connector.OpCreate, Object: h.Object, Fields: h.NewRecord(2)},
	}})
	require.NoError(t, err, "a per-record failure is not a whole-call error")
	require.Len(t, resp.Results, 3, "one result per operation")
	require.Nil(t, resp.Results[0].Error, "first operation succeeds")
	require.Equal(t, ids[0], resp.Results[0].ID)
	require.NotNil(t, resp.Results[1].Error, "updating a deleted record fails")
	require.NotEmpty(t, resp.Results[1].Error.Code, "a record error has a code")
	require.False(t, resp.Results[1].Error.Retryable, "a deleted record stays deleted")
	require.Nil(t, resp.Results[2].Error, "third operation succeeds")
	require.True(t, resp.Results[2].Created)
}

func testFetchByMatch(t *testing.T, h Harness) {
	create(t, h, 0, 2)
	var values []string
	for i := range 2 {
		values = append(values, fmt.Sprint(h.NewRecord(i)[h.MatchField]))
	}
	resp, err := h.Connector.FetchCurrent(ctx(t), connector.FetchCurrentRequest{
		Session: h.Session, Object: h.Object,
		Match:  &connector.MatchKey{Field: h.MatchField, Values: append(values, "nobody-"+values[0])},
		Fields: []string{h.MatchField},
	})
	require.NoError(t, err, "fetch by match")
	var got []string
	for _, r := range resp.Records {
		got = append(got, strings.ToLower(fmt.Sprint(r.Fields[h.MatchField])))
		require.NotEmpty(t, r.ID)
		require.False(t, r.LastModified.IsZero(), "stamps come with a match")
		require.NotEmpty(t, r.LastModifiedByID)
	}
	for _, v := range values {
		require.Contains(t, got, strings.ToLower(v))
	}
	require.Len(t, resp.Records, 2, "only the matching records")
}

func testFetchChanges(t *testing.T, h Harness) {
	if !describe(t, h).Has(connector.CapabilityFetchChanges) {
		t.Skipf("not applicable: the connector does not announce %q", connector.CapabilityFetchChanges)
	}
	cf := h.Connector.(connector.ChangeFetcher)
	page := func(cursor string) *connector.FetchChangesResponse {
		resp, err := cf.FetchChanges(ctx(t), connector.FetchChangesRequest{
			Session: h.Session, Object: h.Object, Cursor: cursor, PageSize: 2, Fields: []string{h.UpdateField},
		})
		require.NoError(t, err, "fetch changes from %q", cursor)
		return resp
	}
	drain := func(cursor string) (string, map[string]connector.Record) {
		seen := map[string]connector.Record{}
		for range 100_000 {
			resp := page(cursor)
			for _, r := range resp.Records {
				seen[r.ID] = r
			}
			require.NotEmpty(t, resp.NextCursor, "a page has a next cursor")
			cursor = resp.NextCursor
			if !resp.More {
				return cursor, seen
			}
		}
		t.Fatal("FetchChanges never ends")
		return "", nil
	}
	// Start from the current watermark, then create more records than a page.
	watermark, _ := drain("")
	ids := create(t, h, 0, 7)
	watermark, seen := drain(watermark)
	for _, id := range ids {
		require.Contains(t, seen, id, "no record skipped across pages")
		require.False(t, seen[id].SystemModstamp.IsZero(), "changes carry SystemModstamp")
	}

	resp, err := h.Connector.BulkUpdate(ctx(t), connector.BulkUpdateRequest{Session: h.Session, Operations: []connector.Operation{
		{Kind: connector.OpUpdate, Object: h.Object, ID: ids[3], Fields: map[string]any{h.UpdateField: "Changed"}},
	}})
	require.NoError(t, err)
	require.Nil(t, resp.Results[0].Error)
	_, again := drain(watermark)
	require.Contains(t, again, ids[3], "a later change shows after the watermark")
	require.Equal(t, "Changed", again[ids[3]].Fields[h.UpdateField])
}

func testCanceled(t *testing.T, h Harness) {
	c, cancel := context.WithCancel(t.Context())
	cancel()
	calls := map[string]func() error{
		"Check": func() error {
			_, err := h.Connector.Check(c, connector.CheckRequest{Session: h.Session})
			return err
		},
		"FetchCurrent": func() error {
			_, err := h.Connector.FetchCurrent(c, connector.FetchCurrentRequest{Session: h.Session, Object: h.Object, IDs: []string{}})
			return err
		},
		"BulkUpdate": func() error {
			_, err := h.Connector.BulkUpdate(c, connector.BulkUpdateRequest{Session: h.Session, Operations: []connector.Operation{
				{Kind: connector.OpCreate, Object: h.Object, Fields: h.NewRecord(0)},
			}})
			return err
		},
		"Limits": func() error {
			_, err := h.Connector.Limits(c, connector.LimitsRequest{Session: h.Session})
			return err
		},
	}
	for name, call := range calls {
		require.ErrorIs(t, call(), context.Canceled, "%s with a canceled context", name)
	}
}

func testDeadline(t *testing.T, h Harness) {
	if h.SlowSession == nil {
		return
	}
	c, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := h.Connector.Check(c, connector.CheckRequest{Session: *h.SlowSession})
	require.ErrorIs(t, err, context.DeadlineExceeded, "a deadline cuts a slow call short")
	require.Less(t, time.Since(began), time.Second, "the call returned at the deadline, not after the latency")
}

func testBadCredentials(t *testing.T, h Harness) {
	_, err := h.Connector.Check(ctx(t), connector.CheckRequest{Session: h.BadCredentials})
	require.ErrorIs(t, err, connector.ErrCredentials, "check with bad credentials")
	var ce *connector.Error
	require.True(t, errors.As(err, &ce), "a *connector.Error")
	require.False(t, connector.Retryable(err))

	_, err = h.Connector.BulkUpdate(ctx(t), connector.BulkUpdateRequest{Session: h.BadCredentials, Operations: []connector.Operation{
		{Kind: connector.OpCreate, Object: h.Object, Fields: h.NewRecord(0)},
	}})
	require.ErrorIs(t, err, connector.ErrCredentials, "bulk update with bad credentials")
}

func testEditAsOtherUser(t *testing.T, h Harness) {
	if h.EditAsOtherUser == nil {
		return
	}
	me := identity(t, h)
	ids := create(t, h, 0, 1)
	require.NoError(t, h.EditAsOtherUser(ctx(t), h.Object, ids[0], map[string]any{h.UpdateField: "EditedByRep"}))
	r := fetch(t, h, ids, h.UpdateField)[ids[0]]
	require.Equal(t, "EditedByRep", r.Fields[h.UpdateField])
	require.NotEqual(t, me.UserID, r.LastModifiedByID, "an edit by another user is not attributed to the integration user")
}

func testConcurrentWrites(t *testing.T, h Harness) {
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			ops := make([]connector.Operation, 5)
			for i := range ops {
				ops[i] = connector.Operation{Kind: connector.OpCreate, Object: h.Object, Fields: h.NewRecord(100 + g*10 + i)}
			}
			resp, err := h.Connector.BulkUpdate(ctx(t), connector.BulkUpdateRequest{Session: h.Session, Operations: ops})
			if err == nil && len(resp.Results) != len(ops) {
				err = fmt.Errorf("%d results for %d operations", len(resp.Results), len(ops))
			}
			if err == nil {
				for _, r := range resp.Results {
					if r.Error != nil {
						err = fmt.Errorf("record error %s: %s", r.Error.Code, r.Error.Message)
					}
				}
			}
			errs <- err
		}()
	}
	for range 4 {
		require.NoError(t, <-errs, "concurrent bulk updates")
	}
}

// testConditionalUpdate checks connector.ConditionalUpdater, when
// announced: an update whose record is unmodified since its time is
// written, one whose record changed after it is refused as
// PreconditionFailed (not an error, nothing written), a bad update is a
// RecordError, and the read-back returns the records after the writes.
func testConditionalUpdate(t *testing.T, h Harness) {
	d := describe(t, h)
	if !d.Has(connector.CapabilityConditionalUpdate) {
		return // nothing to check: the engine reads before it writes
	}
	cu, ok := h.Connector.(connector.ConditionalUpdater)
	require.True(t, ok, "connector announces %s but does not implement connector.ConditionalUpdater", connector.CapabilityConditionalUpdate)
	ids := create(t, h, 0, 3)
	before := fetch(t, h, ids, h.UpdateField)
	require.Len(t, before, 3)
	stamp := func(i int) time.Time {
		lm := before[ids[i]].LastModified
		require.False(t, lm.IsZero(), "records carry LastModified")
		return lm
	}
	resp, err := cu.UpdateIfUnmodified(ctx(t), connector.ConditionalUpdateRequest{Session: h.Session,
		Updates: []connector.ConditionalUpdate{
			{Object: h.Object, ID: ids[0], Fields: map[string]any{h.UpdateField: "Conditional"}, UnmodifiedSince: stamp(0)},
			{Object: h.Object, ID: ids[1], Fields: map[string]any{h.UpdateField: "Stale"}, UnmodifiedSince: stamp(1).Add(-time.Hour)},
			{Object: h.Object, ID: ids[2], Fields: map[string]any{"NoSuchField__x": "x"}, UnmodifiedSince: stamp(2)},
		},
		Reads: []connector.FetchCurrentRequest{{Object: h.Object, IDs: ids[:2], Fields: []string{h.UpdateField}}},
	})
	require.NoError(t, err, "conditional update")
	require.Len(t, resp.Results, 3, "one result per update")
	require.False(t, resp.Results[0].PreconditionFailed, "unmodified since its stamp: written")
	require.Nil(t, resp.Results[0].Error, "unmodified since its stamp: written")
	require.True(t, resp.Results[1].PreconditionFailed, "modified after the given time: refused")
	require.Nil(t, resp.Results[1].Error, "a failed precondition is not an error")
	require.NotNil(t, resp.Results[2].Error, "an unknown field is a record error")
	require.False(t, resp.Results[2].PreconditionFailed)
	require.Positive(t, resp.Calls, "the call counts against the allowance")

	after := fetch(t, h, ids, h.UpdateField)
	require.Equal(t, "Conditional", after[ids[0]].Fields[h.UpdateField])
	require.Equal(t, before[ids[1]].Fields[h.UpdateField], after[ids[1]].Fields[h.UpdateField], "a refused update writes nothing")
	back := map[string]connector.Record{}
	for _, r := range resp.Records {
		back[r.ID] = r
	}
	require.Contains(t, back, ids[0], "the read-back has the written record")
	require.Contains(t, back, ids[1], "the read-back has the refused record")
	require.Equal(t, "Conditional", back[ids[0]].Fields[h.UpdateField], "the read-back is after the write")
	if !resp.ServerTime.IsZero() {
		require.False(t, back[ids[0]].LastModified.After(resp.ServerTime), "the read-back's stamps are not after the CRM's clock when it answered")
	}

	if h.EditAsOtherUser != nil {
		// A change by someone else after the known stamp refuses the write.
		known := after[ids[0]].LastModified
		require.NoError(t, h.EditAsOtherUser(ctx(t), h.Object, ids[0], map[string]any{h.UpdateField: "RepEdit"}))
		edited := fetch(t, h, ids[:1], h.UpdateField)[ids[0]]
		if edited.LastModified.After(known) { // same second: indistinguishable by design
			resp, err := cu.UpdateIfUnmodified(ctx(t), connector.ConditionalUpdateRequest{Session: h.Session,
				Updates: []connector.ConditionalUpdate{{Object: h.Object, ID: ids[0], Fields: map[string]any{h.UpdateField: "Overwrite"}, UnmodifiedSince: known}}})
			require.NoError(t, err)
			require.True(t, resp.Results[0].PreconditionFailed, "edited by a rep after the known stamp")
			require.Equal(t, "RepEdit", fetch(t, h, ids[:1], h.UpdateField)[ids[0]].Fields[h.UpdateField])
		}
	}
}

func testErrorKinds(t *testing.T, h Harness) {
	if h.FailWith == nil {
		t.Skip("not applicable: the harness has no FailWith fault knob, so error kinds are not checked")
	}
	messages := map[string]string{
		"plain":         "the CRM said no",
		"empty":         "",
		"invalid UTF-8": "INVALID_SESSION_ID \xff\xfe caf\xe9",
		"cut mid-rune":  strings.Repeat("x", 199) + "\xe2\x82",
		"long":          strings.Repeat("é", 100_000),
	}
	for _, kind := range connector.Kinds() {
		for mname, msg := range messages {
			sent := &connector.Error{Kind: kind, Message: msg}
			if kind == connector.KindRateLimited || kind == connector.KindUnavailable {
				sent.RetryAfter = 90 * time.Second
			}
			s := h.FailWith(sent)
			calls := map[string]func() error{
				"Check": func() error {
					_, err := h.Connector.Check(ctx(t), connector.CheckRequest{Session: s})
					return err
				},
				"BulkUpdate": func() error {
					_, err := h.Connector.BulkUpdate(ctx(t), connector.BulkUpdateRequest{Session: s, Operations: []connector.Operation{
						{Kind: connector.OpCreate, Object: h.Object, Fields: h.NewRecord(0)},
					}})
					return err
				},
			}
			for call, do := range calls {
				what := fmt.Sprintf("%s failing with %s, %s message", call, kind, mname)
				err := do()
				require.Error(t, err, what)
				var ce *connector.Error
				require.True(t, errors.As(err, &ce), "%s: a *connector.Error, got %T", what, err)
				require.Equal(t, kind, ce.Kind, "%s: kind", what)
				require.Equal(t, sent.RetryAfter, ce.RetryAfter, "%s: retry-after", what)
				require.Equal(t, connector.Retryable(sent), connector.Retryable(err), "%s: retryable", what)
				// In process the message is as sent; through a plugin, valid
				// UTF-8 and bounded. Either way its start arrives.
				head := []rune(strings.ToValidUTF8(msg, "\uFFFD"))
				require.Contains(t, strings.ToValidUTF8(err.Error(), "\uFFFD"), string(head[:min(len(head), 100)]), "%s: the message's start arrives", what)
			}
		}
	}
}

// probes tell whether a connector has a capability, whatever it announces:
// each makes the smallest call that needs it. A new connector.Capability
// gets one entry here.
var probes = map[connector.Capability]func(t *testing.T, h Harness, d *connector.Description) bool{
	connector.CapabilityFetchChanges: probeFetchChanges,
	connector.CapabilityFetchMany:    probeFetchMany,
	connector.CapabilityUpsert:       probeUpsert,
	connector.CapabilityBulk:         probeBulk,
	connector.CapabilityBulkJobs:     probeBulkJobs,
}

// testCapabilities checks announced against implemented, both ways: crmsync
// uses an optional feature only when the connector announces it (through a
// plugin the client has every method, so the announcement is all crmsync
// can go by). An announced feature must work; a working one must be
// announced, or crmsync never uses it. A feature neither announced nor
// implemented is reported by name as not applicable.
func testCapabilities(t *testing.T, h Harness) {
	d := describe(t, h)
	for _, c := range d.Capabilities {
		if _, known := probes[c]; !known {
			t.Logf("the connector announces %q, which crmsync does not know (ignored)", c)
		}
	}
	for _, c := range slices.Sorted(maps.Keys(probes)) {
		t.Run(string(c), func(t *testing.T) {
			announced, works := d.Has(c), probes[c](t, h, d)
			switch {
			case announced && !works:
				t.Fatalf("the connector announces %q but does not implement it", c)
			case !announced && works:
				t.Fatalf("the connector implements %q but does not announce it: crmsync never uses a feature that is not announced", c)
			case !announced:
				t.Skipf("not applicable: the connector neither announces nor implements %q", c)
			}
		})
	}
}

func probeFetchChanges(t *testing.T, h Harness, _ *connector.Description) bool {
	cf, ok := h.Connector.(connector.ChangeFetcher)
	if !ok {
		return false
	}
	_, err := cf.FetchChanges(ctx(t), connector.FetchChangesRequest{Session: h.Session, Object: h.Object, PageSize: 1, Fields: []string{h.UpdateField}})
	if errors.Is(err, connector.ErrUnsupported) {
		return false
	}
	require.NoError(t, err, "FetchChanges")
	return true
}

func probeFetchMany(t *testing.T, h Harness, _ *connector.Description) bool {
	bf, ok := h.Connector.(connector.BatchFetcher)
	if !ok {
		return false
	}
	ids := create(t, h, 0, 1)
	resp, err := bf.FetchCurrentMany(ctx(t), connector.FetchManyRequest{Session: h.Session, Requests: []connector.FetchCurrentRequest{
		{Object: h.Object, IDs: ids, Fields: []string{h.UpdateField}},
	}})
	if errors.Is(err, connector.ErrUnsupported) {
		return false
	}
	require.NoError(t, err, "FetchCurrentMany")
	require.Len(t, resp.Results, 1, "one result per request")
	require.Len(t, resp.Results[0], 1, "the record read")
	return true
}

// maxBulkProbe is the most operations probeBulk writes to go over a
// connection's bulk threshold.
const maxBulkProbe = 1000

// probeBulk tells whether the connector has a bulk path: it reports a
// threshold for its session (with credentials and, as crmsync reads it,
// with the configuration alone: the same), and a write of one operation
// more than the threshold answers one successful Result per operation.
// What the connector sends cannot be seen from here; crmsync counts on the
// threshold being the one BulkUpdate applies (the connector's own tests
// check that).
func probeBulk(t *testing.T, h Harness, _ *connector.Description) bool {
	session := h.Session
	if h.BulkSession != nil {
		session = *h.BulkSession
	}
	full, err := h.Connector.Describe(ctx(t), connector.DescribeRequest{Session: session})
	require.NoError(t, err, "describe")
	static, err := h.Connector.Describe(ctx(t), connector.DescribeRequest{Session: connector.Session{Config: session.Config}})
	require.NoError(t, err, "describe with the configuration only")
	require.Equal(t, full.BulkThreshold, static.BulkThreshold,
		"the bulk threshold must not depend on credentials: crmsync reads it from a describe that carries the configuration only")
	require.GreaterOrEqual(t, full.BulkThreshold, 0, "bulk threshold")
	if full.BulkThreshold == 0 {
		return false
	}
	require.LessOrEqual(t, full.BulkThreshold, maxBulkProbe, "a threshold of %d is too large to probe: set Harness.BulkSession", full.BulkThreshold)
	first := int(uniq.Add(1)) * 1_000_000
	ops := make([]connector.Operation, full.BulkThreshold+1)
	for i := range ops {
		ops[i] = connector.Operation{Kind: connector.OpCreate, Object: h.Object, Fields: h.NewRecord(first + i)}
	}
	resp, err := h.Connector.BulkUpdate(ctx(t), connector.BulkUpdateRequest{Session: session, Operations: ops})
	if errors.Is(err, connector.ErrUnsupported) {
		return false
	}
	require.NoError(t, err, "a write of %d operations, over the bulk threshold", len(ops))
	require.Len(t, resp.Results, len(ops), "one result per operation")
	for i, r := range resp.Results {
		require.Nil(t, r.Error, "bulk create #%d", i)
		require.NotEmpty(t, r.ID, "bulk create #%d has an id", i)
	}
	return true
}

func probeUpsert(t *testing.T, h Harness, d *connector.Description) bool {
	field := h.ExternalIDField
	if field == "" {
		o, _ := d.Object(h.Object)
		for _, f := range o.Fields {
			if f.ExternalID {
				field = f.Name
				break
			}
		}
	}
	if field == "" {
		return false // nothing to upsert on
	}
	ext := fmt.Sprintf("probe-%d-%d", time.Now().UnixNano(), uniq.Add(1))
	resp, err := h.Connector.BulkUpdate(ctx(t), connector.BulkUpdateRequest{Session: h.Session, Operations: []connector.Operation{
		{Kind: connector.OpUpsert, Object: h.Object, ExternalIDField: field, ExternalID: ext, Fields: h.NewRecord(int(uniq.Add(1)))},
	}})
	if errors.Is(err, connector.ErrUnsupported) || errors.Is(err, connector.ErrInvalid) {
		return false
	}
	require.NoError(t, err, "upsert")
	require.Len(t, resp.Results, 1)
	return resp.Results[0].Error == nil
}
