package memcrm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/connectortest"
	"github.com/crmsync/crmsync/connectors/memcrm"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	crm := memcrm.New()
	connectortest.Run(t, func(t *testing.T) connectortest.Harness {
		org := t.Name()
		slow := sessionWith(t, org, memcrm.DefaultToken, &memcrm.Faults{Latency: 5 * time.Second})
		return connectortest.Harness{
			Connector:      crm,
			Session:        memcrm.Session(org, memcrm.DefaultToken),
			BadCredentials: memcrm.Session(org, "revoked"),
			SlowSession:    &slow,
			EditAsOtherUser: func(_ context.Context, object, id string, fields map[string]any) error {
				o := crm.Org(org)
				return o.EditAsUser(o.SalesRepIDs()[0], object, id, fields)
			},
			FailWith: func(err *connector.Error) connector.Session {
				return sessionWith(t, org, memcrm.DefaultToken, &memcrm.Faults{Fail: &memcrm.ErrorFault{Kind: err.Kind, Message: []byte(err.Message), RetryAfter: err.RetryAfter}})
			},
		}
	})
}

// With its bulk path memcrm runs the suite's BulkJobs and bulk probes.
func TestConformanceWithBulkJobs(t *testing.T) {
	t.Parallel()
	crm := memcrm.New(memcrm.WithBulkJobs(3))
	connectortest.Run(t, func(t *testing.T) connectortest.Harness {
		return connectortest.Harness{
			Connector:      crm,
			Session:        memcrm.Session(t.Name(), memcrm.DefaultToken),
			BadCredentials: memcrm.Session(t.Name(), "revoked"),
			FailWith: func(err *connector.Error) connector.Session {
				return sessionWith(t, t.Name(), memcrm.DefaultToken, &memcrm.Faults{Fail: &memcrm.ErrorFault{Kind: err.Kind, Message: []byte(err.Message), RetryAfter: err.RetryAfter}})
			},
		}
	})
}

func sessionWith(t *testing.T, org, token string, f *memcrm.Faults) connector.Session {
	t.Helper()
	cfg, err := json.Marshal(memcrm.Config{Org: org, Faults: f})
	require.NoError(t, err)
	s := memcrm.Session(org, token)
	s.Config = cfg
	return s
}

type bundle struct {
	crm   *memcrm.CRM
	org   *memcrm.Org
	clock *memcrm.Clock
	s     connector.Session
}

func setup(t *testing.T, opts ...memcrm.Option) *bundle {
	t.Helper()
	clock := memcrm.NewClock(time.Date(2026, 3, 1, 9, 30, 15, 500_000_000, time.UTC))
	crm := memcrm.New(append([]memcrm.Option{memcrm.WithClock(clock.Now)}, opts...)...)
	return &bundle{crm: crm, org: crm.Org("acme"), clock: clock, s: memcrm.Session("acme", memcrm.DefaultToken)}
}

func (b *bundle) write(t *testing.T, ops ...connector.Operation) []connector.Result {
	t.Helper()
	resp, err := b.crm.BulkUpdate(t.Context(), connector.BulkUpdateRequest{Session: b.s, Operations: ops})
	require.NoError(t, err)
	require.Len(t, resp.Results, len(ops))
	return resp.Results
}

func create(object string, fields map[string]any) connector.Operation {
	return connector.Operation{Kind: connector.OpCreate, Object: object, Fields: fields}
}

func code(r connector.Result) string {
	if r.Error == nil {
		return ""
	}
	return r.Error.Code
}

func TestIDs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res := b.write(t,
		create("Lead", map[string]any{"LastName": "Lovelace", "Company": "Analytical"}),
		create("Contact", map[string]any{"LastName": "Babbage"}),
		create("Account", map[string]any{"Name": "Engines Ltd"}),
	)
	for i, prefix := range []string{"00Q", "003", "001"} {
		id := res[i].ID
		require.Len(t, id, 18)
		require.Equal(t, prefix, id[:3])
		// The suffix encodes which of the first 15 characters are upper case.
		for chunk := range 3 {
			bits := 0
			for j := range 5 {
				if c := id[chunk*5+j]; c >= 'A' && c <= 'Z' {
					bits |= 1 << j
				}
			}
			require.Equal(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits], id[15+chunk], "checksum of %s", id)
		}
	}
}

func TestStampsAndOwnership(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.write(t, create("Lead", map[string]any{"LastName": "Hopper", "Company": "Navy", "Email": "grace@navy.example.com"}))[0].ID
	r, ok := b.org.Get("Lead", id)
	require.True(t, ok)
	want := time.Date(2026, 3, 1, 9, 30, 15, 0, time.UTC)
	require.Equal(t, want, r.LastModified, "second precision")
	require.Equal(t, b.org.Identity().UserID, r.LastModifiedByID)
	require.Equal(t, b.org.Identity().UserID, r.Fields["OwnerId"], "owner defaults to the writer")
	require.Equal(t, "Open - Not Contacted", r.Fields["Status"])
	require.Equal(t, "2026-03-01T09:30:15.000+0000", r.Fields["LastModifiedDate"])

	b.clock.Advance(90 * time.Second)
	rep := b.org.SalesRepIDs()[1]
	require.NoError(t, b.org.EditAsUser(rep, "Lead", id, map[string]any{"Title": "Rear Admiral", "OwnerId": b.org.QueueID()}))
	r, _ = b.org.Get("Lead", id)
	require.Equal(t, rep, r.LastModifiedByID)
	require.Equal(t, want.Add(90*time.Second), r.LastModified)
	require.Equal(t, b.org.QueueID(), r.Fields["OwnerId"], "a lead queue can own a lead")
}

func TestWriteErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.write(t,
		create("Lead", map[string]any{"LastName": "Turing", "Company": "Bletchley"}),
		create("Campaign", map[string]any{"Name": "Spring", "IsActive": true}),
	)
	lead, campaign := ids[0].ID, ids[1].ID
	tests := map[string]struct {
		op   connector.Operation
		code string
	}{
		"required missing":   {create("Lead", map[string]any{"LastName": "X"}), "REQUIRED_FIELD_MISSING"},
		"unknown field":      {create("Contact", map[string]any{"LastName": "X", "Shoe": "42"}), "INVALID_FIELD"},
		"read-only field":    {create("Lead", map[string]any{"LastName": "X", "Company": "Y", "IsConverted": true}), "INVALID_FIELD_FOR_INSERT_UPDATE"},
		"bad email":          {create("Contact", map[string]any{"LastName": "X", "Email": "not-an-email"}), "INVALID_EMAIL_ADDRESS"},
		"too long":           {create("Contact", map[string]any{"LastName": string(make([]byte, 81))}), "STRING_TOO_LONG"},
		"wrong type":         {create("Campaign", map[string]any{"Name": "X", "IsActive": "yes"}), "INVALID_TYPE_ON_FIELD_IN_RECORD"},
		"dangling reference": {create("Contact", map[string]any{"LastName": "X", "AccountId": "001000000000000AAA"}), "INVALID_CROSS_REFERENCE_KEY"},
		"malformed id":       {connector.Operation{Kind: connector.OpUpdate, Object: "Lead", ID: "nope", Fields: map[string]any{"Title": "x"}}, "MALFORMED_ID"},
		"clear required":     {connector.Operation{Kind: connector.OpUpdate, Object: "Lead", ID: lead, Fields: map[string]any{"Company": ""}}, "REQUIRED_FIELD_MISSING"},
		"read-only object":   {create("User", map[string]any{"LastName": "X"}), "INVALID_TYPE"},
		"member needs one":   {create("CampaignMember", map[string]any{"CampaignId": campaign}), "REQUIRED_FIELD_MISSING"},
		"upsert non ext":     {connector.Operation{Kind: connector.OpUpsert, Object: "Lead", ExternalIDField: "Email", ExternalID: "a@b.co", Fields: map[string]any{}}, "INVALID_FIELD"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res := b.write(t, tt.op)
			require.Equal(t, tt.code, code(res[0]), "%+v", res[0].Error)
		})
	}
}

func TestCampaignMemberDuplicate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.write(t,
		create("Lead", map[string]any{"LastName": "Curie", "Company": "Sorbonne"}),
		create("Campaign", map[string]any{"Name": "Radium"}),
	)
	member := create("CampaignMember", map[string]any{"CampaignId": ids[1].ID, "LeadId": ids[0].ID})
	res := b.write(t, member, member)
	require.Empty(t, code(res[0]))
	require.Equal(t, connector.CodeDuplicate, code(res[1]))
	got, _ := b.org.Get("CampaignMember", res[0].ID)
	require.Equal(t, "Sent", got.Fields["Status"])
}

func TestConvertedLead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lead := b.write(t, create("Lead", map[string]any{"LastName": "Noether", "Company": "Göttingen", "Email": "emmy@example.org"}))[0].ID
	contact, err := b.org.ConvertLead(b.org.SalesRepIDs()[0], lead)
	require.NoError(t, err)

	res := b.write(t, connector.Operation{Kind: connector.OpUpdate, Object: "Lead", ID: lead, Fields: map[string]any{"Title": "Prof"}})
	require.Equal(t, connector.CodeConvertedLead, code(res[0]))

	resp, err := b.crm.FetchCurrent(t.Context(), connector.FetchCurrentRequest{
		Session: b.s, Object: "Lead", IDs: []string{lead}, Fields: []string{"IsConverted", "ConvertedContactId"},
	})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"IsConverted": true, "ConvertedContactId": contact}, resp.Records[0].Fields)
	c, ok := b.org.Get("Contact", contact)
	require.True(t, ok)
	require.Equal(t, "emmy@example.org", c.Fields["Email"])
}

func TestDailyLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.org.SetDailyMax(2)
	for range 2 {
		_, err := b.crm.Check(t.Context(), connector.CheckRequest{Session: b.s})
		require.NoError(t, err)
	}
	_, err := b.crm.Check(t.Context(), connector.CheckRequest{Session: b.s})
	require.ErrorIs(t, err, connector.ErrRateLimited)
	var ce *connector.Error
	require.True(t, errors.As(err, &ce))
	require.Equal(t, 24*time.Hour-(9*time.Hour+30*time.Minute+15*time.Second+500*time.Millisecond), ce.RetryAfter, "until the next UTC day")

	lim, err := b.crm.Limits(t.Context(), connector.LimitsRequest{Session: b.s})
	require.NoError(t, err, "Limits answers when the allowance is spent")
	require.Equal(t, connector.Usage{Used: 2, Max: 2, ObservedAt: b.clock.Now()}, lim.Usage)

	b.clock.Advance(15 * time.Hour)
	_, err = b.crm.Check(t.Context(), connector.CheckRequest{Session: b.s})
	require.NoError(t, err, "a new day brings a new allowance")
	require.EqualValues(t, 3, b.org.CallCount())

	b.org.ResetUsage()
	require.Zero(t, b.org.Usage().Used)
}

func TestBulkUpdateCalls(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ops := make([]connector.Operation, 450)
	for i := range ops {
		ops[i] = create("Contact", map[string]any{"LastName": fmt.Sprint("C", i)})
	}
	resp, err := b.crm.BulkUpdate(t.Context(), connector.BulkUpdateRequest{Session: b.s, Operations: ops})
	require.NoError(t, err)
	require.Equal(t, 3, resp.Calls, "200 records per call")
	require.EqualValues(t, 3, resp.Usage.Used)
	require.Len(t, b.org.All("Contact"), 450)
}

func TestRecordFaults(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.org.SetFaults(memcrm.Faults{Records: []memcrm.RecordFault{
		{Object: "Contact", Field: "LastName", Value: "Locked", Code: connector.CodeLocked, Retryable: true, Times: 2},
	}})
	op := create("Contact", map[string]any{"LastName": "Locked"})
	for range 2 {
		res := b.write(t, op, create("Contact", map[string]any{"LastName": "Free"}))
		require.Equal(t, connector.CodeLocked, code(res[0]))
		require.True(t, res[0].Error.Retryable)
		require.Empty(t, code(res[1]), "other records are unaffected")
	}
	require.Empty(t, code(b.write(t, op)[0]), "the fault wears off after Times")
}

func TestFaultsThroughConfig(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := sessionWith(t, "acme", memcrm.DefaultToken, &memcrm.Faults{ErrorRate: 1})
	_, err := b.crm.Check(t.Context(), connector.CheckRequest{Session: s})
	require.ErrorIs(t, err, connector.ErrUnavailable)

	var exited []int
	crashy := memcrm.New(memcrm.WithExit(func(code int) { exited = append(exited, code) }))
	s = sessionWith(t, "acme", memcrm.DefaultToken, &memcrm.Faults{CrashOn: "Limits"})
	_, _ = crashy.Limits(t.Context(), connector.LimitsRequest{Session: s})
	require.Equal(t, []int{memcrm.CrashExitCode}, exited)

	var f memcrm.Faults
	require.NoError(t, json.Unmarshal([]byte(`{"latency":"250ms","crash_on":"BulkUpdate"}`), &f))
	require.Empty(t, cmp.Diff(memcrm.Faults{Latency: 250 * time.Millisecond, CrashOn: "BulkUpdate"}, f))
}

func TestFetchChangesIncludesDeletes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.write(t, create("Account", map[string]any{"Name": "Gone Inc"}))[0].ID
	b.clock.Advance(time.Minute)
	b.write(t, connector.Operation{Kind: connector.OpDelete, Object: "Account", ID: id})
	resp, err := b.crm.FetchChanges(t.Context(), connector.FetchChangesRequest{Session: b.s, Object: "Account"})
	require.NoError(t, err)
	require.Len(t, resp.Records, 1)
	require.True(t, resp.Records[0].Deleted)
	require.False(t, resp.More)

	since, err := b.crm.FetchChanges(t.Context(), connector.FetchChangesRequest{Session: b.s, Object: "Account", Since: b.clock.Now().Add(time.Second)})
	require.NoError(t, err)
	require.Empty(t, since.Records, "Since filters by SystemModstamp")
	next, err := b.crm.FetchChanges(t.Context(), connector.FetchChangesRequest{Session: b.s, Object: "Account", Cursor: since.NextCursor})
	require.NoError(t, err)
	require.Empty(t, next.Records, "the watermark of an empty page does not go back before Since")

	b.clock.Advance(time.Minute)
	require.NoError(t, b.org.EditAsUser(b.org.SalesRepIDs()[0], "Lead", mustCreate(t, b, "Lead", map[string]any{"LastName": "L", "Company": "C"}), map[string]any{"Title": "T"}))
	id2 := mustCreate(t, b, "Account", map[string]any{"Name": "New Inc"})
	next, err = b.crm.FetchChanges(t.Context(), connector.FetchChangesRequest{Session: b.s, Object: "Account", Cursor: since.NextCursor})
	require.NoError(t, err)
	require.Len(t, next.Records, 1, "changes to other objects do not show")
	require.Equal(t, id2, next.Records[0].ID)

	_, err = b.crm.FetchChanges(t.Context(), connector.FetchChangesRequest{Session: b.s, Object: "Account", Cursor: "garbage"})
	require.ErrorIs(t, err, connector.ErrInvalid)
}

func TestDescribeRequiresKnownObjects(t *testing.T) {
	t.Parallel()
	b := setup(t)
	d, err := b.crm.Describe(t.Context(), connector.DescribeRequest{Session: b.s})
	require.NoError(t, err)
	require.Equal(t, connector.SalesforceContract(), d.Contract, "memcrm declares Salesforce's shape")
	require.NoError(t, d.Contract.Validate(d.Objects))
	static, err := b.crm.Describe(t.Context(), connector.DescribeRequest{})
	require.NoError(t, err)
	require.Equal(t, connector.SalesforceContract(), static.Contract, "with or without credentials")
	lead, ok := d.Object("Lead")
	require.True(t, ok)
	f, _ := lead.Field("Conversion_Id__c")
	require.True(t, f.ExternalID)
	f, _ = lead.Field("Company")
	require.False(t, f.Nillable, "Company is required")
	_, err = b.crm.Describe(t.Context(), connector.DescribeRequest{Session: b.s, Objects: []string{"Opportunity"}})
	require.ErrorIs(t, err, connector.ErrInvalid)
}

func mustCreate(t *testing.T, b *bundle, object string, fields map[string]any) string {
	t.Helper()
	res := b.write(t, create(object, fields))
	require.Nil(t, res[0].Error)
	return res[0].ID
}

// WithoutObjects models a CRM without campaigns: Describe does not list the
// objects, and calls naming them are refused as INVALID_TYPE.
func TestWithoutObjects(t *testing.T) {
	t.Parallel()
	crm := memcrm.New(memcrm.WithoutObjects("Campaign", "CampaignMember"))
	s := memcrm.Session("no-campaigns", memcrm.DefaultToken)
	d, err := crm.Describe(t.Context(), connector.DescribeRequest{Session: s})
	require.NoError(t, err)
	var names []string
	for _, o := range d.Objects {
		names = append(names, o.Name)
	}
	require.Equal(t, []string{"Lead", "Contact", "Account", "Task", "User", "Group"}, names)
	// Its contract says so: no campaigns, no campaign members, the rest
	// as Salesforce's.
	want := connector.SalesforceContract()
	want.Campaign, want.CampaignMember = nil, nil
	require.Equal(t, want, d.Contract)
	require.NoError(t, d.Contract.Validate(d.Objects))
	_, err = crm.Describe(t.Context(), connector.DescribeRequest{Session: s, Objects: []string{"Campaign"}})
	require.ErrorIs(t, err, connector.ErrInvalid)
	resp, err := crm.BulkUpdate(t.Context(), connector.BulkUpdateRequest{Session: s, Operations: []connector.Operation{
		{Kind: connector.OpCreate, Object: "Campaign", Fields: map[string]any{"Name": "Spring"}}}})
	require.NoError(t, err)
	require.Len(t, resp.Results, 1)
	require.NotNil(t, resp.Results[0].Error)
	require.Equal(t, "INVALID_TYPE", resp.Results[0].Error.Code)
}

// openJob opens a bulk job of kind on object and returns its id.
func (b *bundle) openJob(t *testing.T, kind connector.OpKind, object string) string {
	t.Helper()
	resp, err := b.crm.OpenBulkJob(t.Context(), connector.OpenBulkJobRequest{Session: b.s, Object: object, Kind: kind})
	require.NoError(t, err)
	require.NotEmpty(t, resp.JobID)
	require.Equal(t, 1, resp.Calls)
	return resp.JobID
}

func (b *bundle) settle(t *testing.T, id string) *connector.SettleBulkJobResponse {
	t.Helper()
	resp, err := b.crm.SettleBulkJob(t.Context(), connector.SettleBulkJobRequest{Session: b.s, JobID: id})
	require.NoError(t, err)
	return resp
}

// Without WithBulkJobs memcrm announces no bulk path and refuses jobs.
func TestBulkJobsOff(t *testing.T) {
	t.Parallel()
	b := setup(t)
	d, err := b.crm.Describe(t.Context(), connector.DescribeRequest{})
	require.NoError(t, err)
	require.False(t, d.Has(connector.CapabilityBulk))
	require.False(t, d.Has(connector.CapabilityBulkJobs))
	require.Zero(t, d.BulkThreshold)
	_, err = b.crm.OpenBulkJob(t.Context(), connector.OpenBulkJobRequest{Session: b.s, Object: "Contact", Kind: connector.OpCreate})
	require.ErrorIs(t, err, connector.ErrUnsupported)
	_, err = b.crm.RunBulkJob(t.Context(), connector.RunBulkJobRequest{Session: b.s, JobID: "x"})
	require.ErrorIs(t, err, connector.ErrUnsupported)
	_, err = b.crm.SettleBulkJob(t.Context(), connector.SettleBulkJobRequest{Session: b.s, JobID: "x"})
	require.ErrorIs(t, err, connector.ErrUnsupported)
}

func TestBulkJobRun(t *testing.T) {
	t.Parallel()
	b := setup(t, memcrm.WithBulkJobs(2))
	d, err := b.crm.Describe(t.Context(), connector.DescribeRequest{})
	require.NoError(t, err)
	require.True(t, d.Has(connector.CapabilityBulk), "announced without credentials")
	require.True(t, d.Has(connector.CapabilityBulkJobs))
	require.Equal(t, 2, d.BulkThreshold)

	id := b.openJob(t, connector.OpCreate, "Contact")
	require.Equal(t, "750", id[:3], "a Bulk API job's key prefix")
	ops := []connector.Operation{
		create("Contact", map[string]any{"LastName": "First"}),
		create("Contact", map[string]any{"FirstName": "No last name"}),
		create("Contact", map[string]any{"LastName": "Third"}),
	}
	resp, err := b.crm.RunBulkJob(t.Context(), connector.RunBulkJobRequest{Session: b.s, JobID: id, Operations: ops})
	require.NoError(t, err)
	require.Equal(t, 4, resp.Calls, "upload, close, poll and results")
	require.Len(t, resp.Results, 3)
	require.Equal(t, "REQUIRED_FIELD_MISSING", code(resp.Results[1]), "results in operation order")
	for _, i := range []int{0, 2} {
		require.True(t, resp.Results[i].Created)
		r, ok := b.org.Get("Contact", resp.Results[i].ID)
		require.True(t, ok)
		require.Equal(t, ops[i].Fields["LastName"], r.Fields["LastName"])
	}
	require.Len(t, b.org.All("Contact"), 2)

	_, err = b.crm.RunBulkJob(t.Context(), connector.RunBulkJobRequest{Session: b.s, JobID: id, Operations: ops[:1]})
	require.ErrorIs(t, err, connector.ErrInvalid)
	require.ErrorContains(t, err, "is not open")
	require.Len(t, b.org.All("Contact"), 2, "a job runs once")

	require.Equal(t, &connector.SettleBulkJobResponse{Done: true, State: memcrm.JobComplete, Processed: 3, Failed: 1},
		withoutMeta(b.settle(t, id)), "a finished job is reported with its counts")
	require.Equal(t, &connector.SettleBulkJobResponse{Done: true, State: memcrm.JobUnknown},
		withoutMeta(b.settle(t, "750000000000000AAA")), "an unknown job is done")
}

func withoutMeta(r *connector.SettleBulkJobResponse) *connector.SettleBulkJobResponse {
	r.Meta = connector.Meta{}
	return r
}

// A job's operations are written exactly as BulkUpdate writes them:
// updates, upserts on the job's external-id field, record faults.
func TestBulkJobWritesAsBulkUpdate(t *testing.T) {
	t.Parallel()
	b := setup(t, memcrm.WithBulkJobs(2))
	a := mustCreate(t, b, "Contact", map[string]any{"LastName": "A"})
	locked := mustCreate(t, b, "Contact", map[string]any{"LastName": "Locked"})
	b.org.SetFaults(memcrm.Faults{Records: []memcrm.RecordFault{{ID: locked, Code: connector.CodeLocked, Retryable: true}}})

	id := b.openJob(t, connector.OpUpdate, "Contact")
	resp, err := b.crm.RunBulkJob(t.Context(), connector.RunBulkJobRequest{Session: b.s, JobID: id, Operations: []connector.Operation{
		{Kind: connector.OpUpdate, Object: "Contact", ID: locked, Fields: map[string]any{"Title": "x"}},
		{Kind: connector.OpUpdate, Object: "Contact", ID: a, Fields: map[string]any{"Title": "Boss"}},
	}})
	require.NoError(t, err)
	require.Equal(t, connector.CodeLocked, code(resp.Results[0]))
	require.True(t, resp.Results[0].Error.Retryable)
	require.Equal(t, connector.Result{ID: a}, resp.Results[1])
	r, _ := b.org.Get("Contact", a)
	require.Equal(t, "Boss", r.Fields["Title"])

	up, err := b.crm.OpenBulkJob(t.Context(), connector.OpenBulkJobRequest{Session: b.s, Object: "Lead", Kind: connector.OpUpsert, ExternalIDField: "Conversion_Id__c"})
	require.NoError(t, err)
	resp, err = b.crm.RunBulkJob(t.Context(), connector.RunBulkJobRequest{Session: b.s, JobID: up.JobID, Operations: []connector.Operation{
		{Kind: connector.OpUpsert, Object: "Lead", ExternalIDField: "Conversion_Id__c", ExternalID: "c-1", Fields: map[string]any{"LastName": "Up", "Company": "Co"}},
	}})
	require.NoError(t, err)
	require.True(t, resp.Results[0].Created)
}

// A job refuses operations of another kind, object or external-id field,
// and stays open; an open job settled is aborted and writes nothing.
func TestBulkJobRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t, memcrm.WithBulkJobs(2))
	id := b.openJob(t, connector.OpCreate, "Contact")
	for name, op := range map[string]connector.Operation{
		"kind":   {Kind: connector.OpUpdate, Object: "Contact", ID: "003000000000000AAA", Fields: map[string]any{"LastName": "x"}},
		"object": create("Lead", map[string]any{"LastName": "x", "Company": "y"}),
		"ext id": {Kind: connector.OpCreate, Object: "Contact", ExternalIDField: "Email", Fields: map[string]any{"LastName": "x"}},
	} {
		_, err := b.crm.RunBulkJob(t.Context(), connector.RunBulkJobRequest{Session: b.s, JobID: id, Operations: []connector.Operation{
			create("Contact", map[string]any{"LastName": "Valid"}), op,
		}})
		require.ErrorIs(t, err, connector.ErrInvalid, name)
	}
	_, err := b.crm.RunBulkJob(t.Context(), connector.RunBulkJobRequest{Session: b.s, JobID: id})
	require.ErrorIs(t, err, connector.ErrInvalid, "no operations")
	_, err = b.crm.RunBulkJob(t.Context(), connector.RunBulkJobRequest{Session: b.s, JobID: "750000000000000AAA", Operations: []connector.Operation{
		create("Contact", map[string]any{"LastName": "x"})}})
	require.ErrorIs(t, err, connector.ErrInvalid, "unknown job")
	require.Empty(t, b.org.All("Contact"), "a refused run writes nothing")

	require.Equal(t, &connector.SettleBulkJobResponse{Done: true, State: memcrm.JobAborted}, withoutMeta(b.settle(t, id)))
	_, err = b.crm.RunBulkJob(t.Context(), connector.RunBulkJobRequest{Session: b.s, JobID: id, Operations: []connector.Operation{
		create("Contact", map[string]any{"LastName": "Late"})}})
	require.ErrorIs(t, err, connector.ErrInvalid, "an aborted job does not run")
	require.Empty(t, b.org.All("Contact"))

	for name, req := range map[string]connector.OpenBulkJobRequest{
		"unknown object":        {Object: "Opportunity", Kind: connector.OpCreate},
		"unknown kind":          {Object: "Contact", Kind: "merge"},
		"upsert without field":  {Object: "Contact", Kind: connector.OpUpsert},
		"upsert on plain field": {Object: "Contact", Kind: connector.OpUpsert, ExternalIDField: "LastName"},
		"create with field":     {Object: "Lead", Kind: connector.OpCreate, ExternalIDField: "Conversion_Id__c"},
	} {
		req.Session = b.s
		_, err := b.crm.OpenBulkJob(t.Context(), req)
		require.ErrorIs(t, err, connector.ErrInvalid, name)
	}
}

// A run that dies part way leaves the job InProgress: settling finds it
// still working, then finished with every row written once.
func TestBulkJobCrashAfter(t *testing.T) {
	t.Parallel()
	b := setup(t, memcrm.WithBulkJobs(2))
	b.org.SetFaults(memcrm.Faults{BulkJobCrashAfter: 2, BulkJobSettlePolls: 1})
	id := b.openJob(t, connector.OpCreate, "Contact")
	ops := make([]connector.Operation, 5)
	for i := range ops {
		ops[i] = create("Contact", map[string]any{"LastName": fmt.Sprint("Row ", i)})
	}
	_, err := b.crm.RunBulkJob(t.Context(), connector.RunBulkJobRequest{Session: b.s, JobID: id, Operations: ops})
	require.ErrorIs(t, err, connector.ErrUnavailable)
	require.True(t, connector.Retryable(err))
	require.Len(t, b.org.All("Contact"), 2, "rows written before the run died")

	b.org.SetFaults(memcrm.Faults{})
	require.Equal(t, &connector.SettleBulkJobResponse{State: memcrm.JobInProgress, Processed: 2}, withoutMeta(b.settle(t, id)), "still working")
	require.Len(t, b.org.All("Contact"), 2)
	require.Equal(t, &connector.SettleBulkJobResponse{Done: true, State: memcrm.JobComplete, Processed: 5}, withoutMeta(b.settle(t, id)))
	require.Len(t, b.org.All("Contact"), 5, "the job wrote the rest, once")
	require.Equal(t, &connector.SettleBulkJobResponse{Done: true, State: memcrm.JobComplete, Processed: 5}, withoutMeta(b.settle(t, id)))
	require.Len(t, b.org.All("Contact"), 5)

	// The knob reaches memcrm through a session's configuration, as
	// through a plugin; a job shorter than the knob is written whole but
	// its answer is lost.
	s := sessionWith(t, "acme", memcrm.DefaultToken, &memcrm.Faults{BulkJobCrashAfter: 10})
	lost, err := b.crm.OpenBulkJob(t.Context(), connector.OpenBulkJobRequest{Session: s, Object: "Contact", Kind: connector.OpCreate})
	require.NoError(t, err)
	_, err = b.crm.RunBulkJob(t.Context(), connector.RunBulkJobRequest{Session: s, JobID: lost.JobID, Operations: ops[:1]})
	require.ErrorIs(t, err, connector.ErrUnavailable)
	require.Len(t, b.org.All("Contact"), 6)
	require.Equal(t, &connector.SettleBulkJobResponse{Done: true, State: memcrm.JobComplete, Processed: 1}, withoutMeta(b.settle(t, lost.JobID)))
	require.Len(t, b.org.All("Contact"), 6)
}

// WithBulkJobs, BulkUpdate costs a bulk job's five calls for each group
// over the threshold and one call per 200 for the rest.
func TestBulkUpdateCallsWithBulkJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, memcrm.WithBulkJobs(100))
	var ops []connector.Operation
	for i := range 450 {
		ops = append(ops, create("Contact", map[string]any{"LastName": fmt.Sprint("C", i)}))
	}
	for i := range 10 {
		ops = append(ops, create("Lead", map[string]any{"LastName": fmt.Sprint("L", i), "Company": "Co"}))
	}
	resp, err := b.crm.BulkUpdate(t.Context(), connector.BulkUpdateRequest{Session: b.s, Operations: ops})
	require.NoError(t, err)
	require.Equal(t, 5+1, resp.Calls)
	require.Len(t, b.org.All("Contact"), 450)
}
