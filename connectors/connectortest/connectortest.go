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
// Email), so point it at a test org or a fake server, never at production.
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
		"Describe":         testDescribe,
		"Check":            testCheck,
		"Limits":           testLimits,
		"RoundTrip":        testRoundTrip,
		"Upsert":           testUpsert,
		"PerRecordErrors":  testPerRecordErrors,
		"FetchByMatch":     testFetchByMatch,
		"FetchChanges":     testFetchChanges,
		"Canceled":         testCanceled,
		"Deadline":         testDeadline,
		"BadCredentials":   testBadCredentials,
		"EditAsOtherUser":  testEditAsOtherUser,
		"ConcurrentWrites": testConcurrentWrites,
		"StreamChanges":    testStreamChanges,
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
	_, fetcher := h.Connector.(connector.ChangeFetcher)
	if d.Has(connector.CapabilityFetchChanges) {
		require.True(t, fetcher, "announces fetch_changes, so implements ChangeFetcher")
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
		return // nothing to check: BulkUpdate may refuse OpUpsert
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
		return
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
