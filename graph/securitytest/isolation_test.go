package securitytest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/crmsync/crmsync/graph"
	"github.com/crmsync/crmsync/graph/graphtest"
	"github.com/crmsync/crmsync/internal/events"
)

// canary is in every value the victim workspace stores and in nothing the
// attacker sends: a response to the attacker that contains it leaks.
const canary = "bcanary"

// victim is workspace B: connected, with records in the CRM, queued and
// parked items, sync-log batches, its own preferences and daily limit.
type victim struct {
	ws           int64
	token        string
	connectionID string
	records      [][2]string // record type, Conversion id
	failedIDs    []string
	queued       int
	batchIDs     []string
	itemCursor   string
	batchCursor  string
	crmIDs       []string
}

func seedVictim(t *testing.T, b *bundle) *victim {
	t.Helper()
	v := &victim{}
	v.ws, v.token = b.newWorkspace(t, canary+" Victim Inc")
	b.connect(t, v.token, canary+"-org")
	b.mustQuery(t, v.token, `mutation {
		updateObjectSyncPreference(input: {recordType: CONTACT, writeEnabled: true, readEnabled: true, createAs: CONTACT}) { createAs }
		updateFieldSyncPreference(input: {recordType: CONTACT, field: "`+canary+`LeadSource", crmField: "LeadSource", mode: TWO_WAY}) { field }
		setConversionDailyLimit(limit: 777) { paused }
	}`, nil, nil)
	b.mustQuery(t, v.token, `mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { accepted } }`, map[string]any{"in": []any{
		change("COMPANY", "victim-company-1", "name", canary+" Corp", "website", "https://"+canary+".example"),
		change("CONTACT", "victim-contact-1", "email", canary+"1@victim.example", "lastName", canary+"-Hopper"),
		change("CONTACT", "victim-contact-2", "email", canary+"2@victim.example"), // no LastName: the CRM refuses it
		change("CAMPAIGN", "victim-campaign-1", "name", canary+" Launch"),
	}}, nil)
	res := b.flush(t, v.ws)
	require.NotNil(t, res.Batch)
	require.Equal(t, 1, res.Batch.Failed, "%+v", res.Batch.Records)
	b.mustQuery(t, v.token, `mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { queued } }`, map[string]any{"in": []any{
		change("CONTACT", "victim-contact-3", "email", canary+"3@victim.example", "lastName", canary+"-Lovelace"),
		map[string]any{"recordType": "CAMPAIGN_MEMBER", "source": "UI", "membership": map[string]any{
			"campaignId": "victim-campaign-1", "contactId": "victim-contact-1", "action": "ADD", "status": "Sent"}},
	}}, nil)
	v.records = [][2]string{{"COMPANY", "victim-company-1"}, {"CONTACT", "victim-contact-1"}, {"CONTACT", "victim-contact-2"},
		{"CONTACT", "victim-contact-3"}, {"CAMPAIGN", "victim-campaign-1"}, {"CAMPAIGN_MEMBER", "victim-campaign-1/victim-contact-1"}}

	var data struct {
		Connection  struct{ ID string }
		FailedItems struct {
			Edges []struct {
				Cursor string
				Node   struct{ ID string }
			}
		}
		SyncLogs struct {
			Edges []struct {
				Cursor string
				Node   struct{ ID string }
			}
		}
		SyncOverview struct{ QueuedBatchItems int }
	}
	b.mustQuery(t, v.token, `{ connection { id } failedItems { edges { cursor node { id } } }
		syncLogs { edges { cursor node { id } } } syncOverview { queuedBatchItems } }`, nil, &data)
	v.connectionID = data.Connection.ID
	for _, e := range data.FailedItems.Edges {
		v.failedIDs = append(v.failedIDs, e.Node.ID)
		v.itemCursor = e.Cursor
	}
	for _, e := range data.SyncLogs.Edges {
		v.batchIDs = append(v.batchIDs, e.Node.ID)
		v.batchCursor = e.Cursor
	}
	v.queued = data.SyncOverview.QueuedBatchItems
	require.NotEmpty(t, v.failedIDs)
	require.NotEmpty(t, v.batchIDs)
	require.Positive(t, v.queued)
	for _, r := range v.records {
		var rec struct{ Record *struct{ CrmID string } }
		b.mustQuery(t, v.token, `query($t: RecordType!, $id: String!) { record(type: $t, id: $id) { crmId } }`,
			map[string]any{"t": r[0], "id": r[1]}, &rec)
		require.NotNil(t, rec.Record, "victim record %v", r)
		if rec.Record.CrmID != "" {
			v.crmIDs = append(v.crmIDs, rec.Record.CrmID)
		}
	}
	require.NotEmpty(t, v.crmIDs)
	return v
}

// snapshot is everything the victim can see of its own state.
func (v *victim) snapshot(t *testing.T, b *bundle) string {
	t.Helper()
	var sb strings.Builder
	sb.WriteString(`{ viewer { id name }
		connection { id connector status statusReason identity { userId username orgId instanceUrl } createdAt updatedAt }
		objectSyncPreferences { recordType writeEnabled readEnabled createAs }
		contactFields: fieldSyncPreferences(recordType: CONTACT) { field crmField mode }
		failedItems(first: 100) { edges { cursor node { id recordType recordId errorCode errorMessage attempts createdAt } } }
		syncLogs(first: 100) { edges { cursor node { id direction status message created updated failed waiting records { edges { node { recordId crmId outcome fields { field value sent } } } } } } }
		syncOverview { queuedBatchItems failedItems paused pauseReason connectionStatus conversionDailyLimit { limit } oldestQueuedAt lastBatchAt progress { recordsDone recordsRemaining since } }`)
	for i, r := range v.records {
		sb.WriteString(" r" + strconv.Itoa(i) + `: record(type: ` + r[0] + `, id: "` + r[1] + `") { id crmId crmUrl pendingItems failedItems fields { name value changedAt source } history { outcome } }`)
	}
	sb.WriteString(" }")
	resp := b.query(t, v.token, sb.String(), nil)
	require.Empty(t, resp.Errors, resp.Body)
	return string(resp.Data)
}

func change(typ, id string, kv ...string) map[string]any {
	fields := []any{}
	for i := 0; i+1 < len(kv); i += 2 {
		fields = append(fields, map[string]any{"name": kv[i], "value": kv[i+1]})
	}
	return map[string]any{"recordType": typ, "recordId": id, "source": "API", "fields": fields}
}

// attacker is workspace A; every response it gets is kept for the leak
// check.
type attacker struct {
	b      *bundle
	ws     int64
	token  string
	bodies []string
}

func (a *attacker) do(t *testing.T, q string, vars map[string]any) *graphtest.Response {
	t.Helper()
	resp := a.b.query(t, a.token, q, vars)
	a.bodies = append(a.bodies, resp.Body)
	return resp
}

func (a *attacker) data(t *testing.T, q string, vars map[string]any, dst any) {
	t.Helper()
	resp := a.do(t, q, vars)
	require.Empty(t, resp.Errors, resp.Body)
	resp.Decode(t, dst)
}

// probe calls one schema field with the victim's ids and checks the
// answer is denied, empty or the attacker's own.
type probe func(t *testing.T, a *attacker, v *victim)

func idsOf(v *victim) []any {
	out := make([]any, 0, len(v.failedIDs))
	for _, id := range v.failedIDs {
		out = append(out, id)
	}
	return out
}

// probes are the isolation checks, one per field of Query, Mutation and
// Subscription. A field the schema gains without a probe here fails
// TestTenantIsolation.
var probes = map[string]probe{
	"Query.viewer": func(t *testing.T, a *attacker, v *victim) {
		var d struct{ Viewer struct{ ID, Name string } }
		a.data(t, `{ viewer { id name } }`, nil, &d)
		require.Equal(t, strconv.FormatInt(a.ws, 10), d.Viewer.ID)
	},
	"Query.health": func(t *testing.T, a *attacker, v *victim) {
		var d struct{ Health struct{ Database string } }
		a.data(t, `{ health { database migrations } }`, nil, &d)
	},
	"Query.workspaces": func(t *testing.T, a *attacker, v *victim) {
		resp := a.do(t, `{ workspaces { id name } }`, nil)
		requireDenied(t, resp, graph.CodeForbidden)
	},
	"Query.connection": func(t *testing.T, a *attacker, v *victim) {
		var d struct{ Connection struct{ ID string } }
		a.data(t, `{ connection { id connector status identity { userId username orgId instanceUrl } } }`, nil, &d)
		require.NotEqual(t, v.connectionID, d.Connection.ID, "the attacker sees its own connection")
	},
	"Query.objectSyncPreferences": func(t *testing.T, a *attacker, v *victim) {
		var d struct {
			ObjectSyncPreferences []struct{ RecordType, CreateAs string }
		}
		a.data(t, `{ objectSyncPreferences { recordType writeEnabled readEnabled createAs } }`, nil, &d)
		for _, p := range d.ObjectSyncPreferences {
			if p.RecordType == "CONTACT" {
				require.Equal(t, "LEAD", p.CreateAs, "the victim's CONTACT preference does not show")
			}
		}
	},
	"Query.fieldSyncPreferences": func(t *testing.T, a *attacker, v *victim) {
		var d struct{ FieldSyncPreferences []struct{ Field string } }
		a.data(t, `{ fieldSyncPreferences(recordType: CONTACT) { field crmField mode } }`, nil, &d)
		require.NotEmpty(t, d.FieldSyncPreferences, "the attacker's own defaults")
	},
	"Query.failedItems": func(t *testing.T, a *attacker, v *victim) {
		for _, vars := range []map[string]any{nil, {"after": v.itemCursor}, {"after": cursor("item", 1)}} {
			var d struct{ FailedItems struct{ Edges []any } }
			a.data(t, `query($after: String) { failedItems(first: 100, after: $after) { edges { cursor node { id recordId errorMessage } } pageInfo { hasNextPage endCursor } } }`, vars, &d)
			require.Empty(t, d.FailedItems.Edges, "after %v", vars)
		}
	},
	"Query.syncLogs": func(t *testing.T, a *attacker, v *victim) {
		for _, vars := range []map[string]any{nil, {"after": v.batchCursor}, {"after": cursor("batch", 1<<40)},
			{"filter": map[string]any{"recordId": "victim-contact-1"}}, {"filter": map[string]any{"recordType": "CONTACT", "status": "PARTIAL"}}} {
			var d struct{ SyncLogs struct{ Edges []any } }
			a.data(t, `query($after: String, $filter: SyncLogFilter) { syncLogs(first: 100, after: $after, filter: $filter) { edges { node { id message records { edges { node { recordId crmId } } } } } } }`, vars, &d)
			require.Empty(t, d.SyncLogs.Edges, "vars %v", vars)
		}
	},
	"Query.syncBatch": func(t *testing.T, a *attacker, v *victim) {
		for _, id := range v.batchIDs {
			var d struct{ SyncBatch *struct{ ID string } }
			a.data(t, `query($id: ID!) { syncBatch(id: $id) { id message records { edges { node { recordId crmId fields { value } } } } } }`, map[string]any{"id": id}, &d)
			require.Nil(t, d.SyncBatch, "batch %s", id)
		}
	},
	"Query.record": func(t *testing.T, a *attacker, v *victim) {
		for _, r := range v.records {
			var d struct{ Record *struct{ ID string } }
			a.data(t, `query($t: RecordType!, $id: String!) { record(type: $t, id: $id) { id crmId crmUrl fields { name value } pendingItems failedItems history(first: 100) { crmId } } }`,
				map[string]any{"t": r[0], "id": r[1]}, &d)
			require.Nil(t, d.Record, "record %v", r)
		}
	},
	"Query.syncOverview": func(t *testing.T, a *attacker, v *victim) {
		var d struct {
			SyncOverview struct {
				QueuedBatchItems, FailedItems int
				Progress                      *struct{ RecordsDone, RecordsRemaining int }
			}
		}
		a.data(t, `{ syncOverview { queuedBatchItems failedItems conversionDailyLimit { used limit } connectionStatus progress { recordsDone recordsRemaining } } }`, nil, &d)
		require.Zero(t, d.SyncOverview.QueuedBatchItems)
		require.Zero(t, d.SyncOverview.FailedItems)
		require.Nil(t, d.SyncOverview.Progress, "the victim's backlog progress shown to the attacker")
	},

	"Query.syncForecast": func(t *testing.T, a *attacker, v *victim) {
		var d struct {
			SyncForecast struct {
				QueuedItems, Records, APICalls int
				RecordTypes                    []struct{ RecordType string }
			}
		}
		a.data(t, `{ syncForecast { queuedItems records apiCalls recordTypes { recordType } } }`, nil, &d)
		require.Zero(t, d.SyncForecast.QueuedItems, "the victim's queue forecast to the attacker")
		require.Zero(t, d.SyncForecast.Records)
		require.Empty(t, d.SyncForecast.RecordTypes)
	},

	"Mutation.createWorkspace": func(t *testing.T, a *attacker, v *victim) {
		resp := a.do(t, `mutation { createWorkspace(name: "x") { token } }`, nil)
		requireDenied(t, resp, graph.CodeForbidden)
	},
	"Mutation.connectCrm": func(t *testing.T, a *attacker, v *victim) {
		var d struct{ ConnectCrm struct{ ID string } }
		a.data(t, `mutation($in: ConnectCrmInput!) { connectCrm(input: $in) { id } }`, map[string]any{"in": map[string]any{
			"connector": "memcrm", "config": map[string]any{"org": "attacker-org"}, "credentials": map[string]any{"token": a.b.crmToken}}}, &d)
		require.NotEqual(t, v.connectionID, d.ConnectCrm.ID)
	},
	"Mutation.disconnectCrm": func(t *testing.T, a *attacker, v *victim) {
		var d struct{ DisconnectCrm bool }
		a.data(t, `mutation { disconnectCrm }`, nil, &d)
		require.True(t, d.DisconnectCrm)
		resp := a.do(t, `mutation { disconnectCrm }`, nil)
		require.NotEmpty(t, resp.Errors, "the attacker has no connection left to remove; the victim's is not its")
		require.Equal(t, "NOT_CONNECTED", resp.Errors[0].Code(), resp.Body)
		a.data(t, `mutation($in: ConnectCrmInput!) { connectCrm(input: $in) { id } }`, map[string]any{"in": map[string]any{
			"connector": "memcrm", "config": map[string]any{"org": "attacker-org"}, "credentials": map[string]any{"token": a.b.crmToken}}}, &d)
	},
	"Mutation.updateObjectSyncPreference": func(t *testing.T, a *attacker, v *victim) {
		var d any
		a.data(t, `mutation { updateObjectSyncPreference(input: {recordType: CONTACT, writeEnabled: false, readEnabled: false, createAs: LEAD}) { createAs } }`, nil, &d)
	},
	"Mutation.updateFieldSyncPreference": func(t *testing.T, a *attacker, v *victim) {
		var d any
		a.data(t, `mutation { updateFieldSyncPreference(input: {recordType: CONTACT, field: "`+canary+`LeadSource", crmField: "Title", mode: DO_NOT_SYNC}) { mode } }`, nil, &d)
	},
	"Mutation.recordChanges": func(t *testing.T, a *attacker, v *victim) {
		var d struct{ RecordChanges struct{ Accepted int } }
		a.data(t, `mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { accepted queued } }`, map[string]any{"in": []any{
			change("COMPANY", "victim-company-1", "name", "Attacker overwrite"),
			change("CAMPAIGN", "victim-campaign-1", "name", "Attacker overwrite"),
		}}, &d)
		require.Equal(t, 2, d.RecordChanges.Accepted, "accepted into the attacker's own workspace")
	},
	"Mutation.runWorkflowAction": func(t *testing.T, a *attacker, v *victim) {
		var d any
		a.data(t, `mutation { runWorkflowAction(input: {action: ADD_TO_CAMPAIGN, contactId: "victim-contact-1", campaignId: "victim-campaign-1", status: "Responded"}) { accepted } }`, nil, &d)
	},
	"Mutation.retryFailedItems": func(t *testing.T, a *attacker, v *victim) {
		var d struct{ RetryFailedItems int }
		a.data(t, `mutation($ids: [ID!]) { retryFailedItems(ids: $ids) }`, map[string]any{"ids": idsOf(v)}, &d)
		require.Zero(t, d.RetryFailedItems)
		a.data(t, `mutation { retryFailedItems }`, nil, &d)
		require.Zero(t, d.RetryFailedItems, "all means all of the attacker's")
	},
	"Mutation.dismissFailedItems": func(t *testing.T, a *attacker, v *victim) {
		var d struct{ DismissFailedItems int }
		a.data(t, `mutation($ids: [ID!]) { dismissFailedItems(ids: $ids) }`, map[string]any{"ids": idsOf(v)}, &d)
		require.Zero(t, d.DismissFailedItems)
		a.data(t, `mutation { dismissFailedItems }`, nil, &d)
		require.Zero(t, d.DismissFailedItems)
	},
	"Mutation.setConversionDailyLimit": func(t *testing.T, a *attacker, v *victim) {
		var d struct {
			SetConversionDailyLimit struct{ ConversionDailyLimit struct{ Limit int } }
		}
		a.data(t, `mutation { setConversionDailyLimit(limit: 5) { conversionDailyLimit { limit } failedItems } }`, nil, &d)
		require.Equal(t, 5, d.SetConversionDailyLimit.ConversionDailyLimit.Limit)
		a.data(t, `mutation { setConversionDailyLimit(limit: null) { failedItems } }`, nil, &d)
	},
	"Mutation.pauseSync": func(t *testing.T, a *attacker, v *victim) {
		var d struct{ PauseSync struct{ Paused bool } }
		a.data(t, `mutation { pauseSync { paused failedItems queuedBatchItems } }`, nil, &d)
		require.True(t, d.PauseSync.Paused)
	},
	"Mutation.resumeSync": func(t *testing.T, a *attacker, v *victim) {
		var d struct{ ResumeSync struct{ Paused bool } }
		a.data(t, `mutation { resumeSync { paused failedItems queuedBatchItems } }`, nil, &d)
		require.False(t, d.ResumeSync.Paused)
	},
}

// subscriptionProbes are the subscriptions the sweep opens as the attacker
// (see subscribeAndProvoke).
var subscriptionProbes = map[string]string{
	"Subscription.syncOverviewUpdated": `subscription { syncOverviewUpdated { queuedBatchItems failedItems conversionDailyLimit { limit } } }`,
	"Subscription.syncBatchCompleted":  `subscription { syncBatchCompleted { id message records { edges { node { recordId crmId fields { value } } } } } }`,
	"Subscription.recordsChanged":      `subscription { recordsChanged { batchId records { recordId crmId fields { value } } } }`,
}

func cursor(kind string, id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + strconv.FormatInt(id, 10)))
}

func requireDenied(t *testing.T, resp *graphtest.Response, code string) {
	t.Helper()
	require.NotEmpty(t, resp.Errors, resp.Body)
	for _, e := range resp.Errors {
		require.Equal(t, code, e.Code(), resp.Body)
	}
	if len(resp.Data) == 0 || string(resp.Data) == "null" {
		return
	}
	var fields map[string]any
	require.NoError(t, json.Unmarshal(resp.Data, &fields))
	for name, v := range fields {
		require.Nil(t, v, "no data with a denial: %s in %s", name, resp.Body)
	}
}

// rootFields lists every field of Query, Mutation and Subscription as
// "Type.field", from the executable schema itself.
func rootFields() []string {
	schema := graph.NewExecutableSchema(&graph.Resolver{}).Schema()
	var out []string
	for _, def := range []*ast.Definition{schema.Query, schema.Mutation, schema.Subscription} {
		if def == nil {
			continue
		}
		for _, f := range def.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			out = append(out, def.Name+"."+f.Name)
		}
	}
	return out
}

// TestEveryRootFieldHasAnIsolationProbe fails when the schema gains a
// query, mutation or subscription that the isolation sweep does not call.
func TestEveryRootFieldHasAnIsolationProbe(t *testing.T) {
	t.Parallel()
	fields := rootFields()
	for _, f := range fields {
		_, isProbe := probes[f]
		_, isSub := subscriptionProbes[f]
		require.True(t, isProbe || isSub, "%s has no tenant-isolation probe: add one to probes in graph/securitytest/isolation_test.go", f)
	}
	for name := range probes {
		require.Contains(t, fields, name, "probe for a field the schema no longer has")
	}
	for name := range subscriptionProbes {
		require.Contains(t, fields, name, "probe for a field the schema no longer has")
	}
	t.Logf("isolation probes cover %d root fields: %s", len(fields), strings.Join(fields, ", "))
}

// TestTenantIsolation calls every query, mutation and subscription with
// workspace A's token and workspace B's ids: everything is denied, empty
// or A's own, B's state is unchanged, and nothing of B reaches A in data,
// errors or subscription events.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	eachWithPGBus(t, func(t *testing.T, b *bundle) {
		v := seedVictim(t, b)
		before := v.snapshot(t, b)
		ws, token := b.newWorkspace(t, "Attacker")
		a := &attacker{b: b, ws: ws, token: token}
		b.connect(t, token, "attacker-org")

		fields := rootFields()
		for _, kind := range []string{"Query.", "Mutation."} {
			for _, f := range fields {
				if !strings.HasPrefix(f, kind) {
					continue
				}
				p, ok := probes[f]
				require.True(t, ok, "%s has no isolation probe", f)
				t.Logf("probe %s", f)
				p(t, a, v)
			}
		}
		require.Equal(t, before, v.snapshot(t, b), "the attacker's calls changed nothing of the victim's")

		subscribeAndProvoke(t, b, a, v)

		for _, body := range a.bodies {
			require.NotContains(t, body, canary, "a response to the attacker leaks the victim's data")
			for _, id := range v.crmIDs {
				require.NotContains(t, body, id, "a response to the attacker leaks a CRM id of the victim")
			}
		}

		// The admin token carries no workspace: every workspace field is
		// refused rather than answered for some workspace.
		before = v.snapshot(t, b) // the victim's own activity above moved it
		admin := &attacker{b: b, token: graphtest.AdminToken}
		for _, q := range []string{`{ connection { id } }`, `{ syncOverview { failedItems } }`, `{ failedItems { edges { cursor } } }`,
			`{ syncLogs { edges { cursor } } }`, `{ syncBatch(id: "` + v.batchIDs[0] + `") { id } }`, `{ record(type: CONTACT, id: "victim-contact-1") { id } }`,
			`mutation { retryFailedItems }`, `mutation { dismissFailedItems }`, `mutation { pauseSync { paused } }`} {
			requireDenied(t, admin.do(t, q, nil), graph.CodeForbidden)
		}
		require.Equal(t, before, v.snapshot(t, b))
	})
}

// subscribeAndProvoke opens every subscription as the attacker, makes the
// victim produce every kind of event (and forges events for the attacker's
// workspace that name the victim's batches), then has the attacker produce
// its own: the attacker receives its own events only.
func subscribeAndProvoke(t *testing.T, b *bundle, a *attacker, v *victim) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := dialInit(ctx, t, b, "graphql-transport-ws", map[string]any{"Authorization": "Bearer " + a.token})
	ids := map[string]string{}
	for name, q := range subscriptionProbes {
		id := strconv.Itoa(len(ids) + 1)
		ids[id] = name
		writeMsg(ctx, t, conn, map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": q}})
	}
	// A control subscription of the victim's own proves events flow.
	control := dialInit(ctx, t, b, "graphql-transport-ws", map[string]any{"Authorization": "Bearer " + v.token})
	writeMsg(ctx, t, control, map[string]any{"id": "v", "type": "subscribe", "payload": map[string]any{"query": subscriptionProbes["Subscription.syncBatchCompleted"]}})
	waitSubscribers(t, b, int64(len(subscriptionProbes))+1)

	// The victim's events, and forged ones for the attacker naming them.
	b.mustQuery(t, v.token, `mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { queued } }`, map[string]any{"in": []any{
		change("COMPANY", "victim-company-2", "name", canary+" Second Corp")}}, nil)
	victimBatch := b.flush(t, v.ws).Batch
	require.NotNil(t, victimBatch)
	for _, e := range []events.Event{
		{WorkspaceID: v.ws, Kind: events.KindRecords, BatchID: victimBatch.ID},
		{WorkspaceID: a.ws, Kind: events.KindBatch, BatchID: victimBatch.ID},
		{WorkspaceID: a.ws, Kind: events.KindRecords, BatchID: victimBatch.ID},
	} {
		require.NoError(t, b.bus.Publish(ctx, e))
	}
	got := readUntil(ctx, t, control, func(m map[string]any) bool { return m["type"] == "next" })
	raw, _ := json.Marshal(got[len(got)-1])
	require.Contains(t, string(raw), `"id":"`+strconv.FormatInt(victimBatch.ID, 10)+`"`, "the victim receives its own batch")

	// Then the attacker's own: its batch and records events end the wait.
	a.data(t, `mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { queued } }`, map[string]any{"in": []any{
		change("COMPANY", "attacker-company", "name", "Attacker Corp")}}, &struct{}{})
	own := b.flush(t, a.ws).Batch
	require.NotNil(t, own)
	require.NoError(t, b.bus.Publish(ctx, events.Event{WorkspaceID: a.ws, Kind: events.KindRecords, BatchID: own.ID}))
	ownID := strconv.FormatInt(own.ID, 10)
	seen := map[string]bool{}
	msgs := readUntil(ctx, t, conn, func(m map[string]any) bool {
		if m["type"] != "next" {
			return false
		}
		name := ids[m["id"].(string)]
		raw, _ := json.Marshal(m["payload"])
		if (name == "Subscription.syncBatchCompleted" || name == "Subscription.recordsChanged") && strings.Contains(string(raw), `"`+ownID+`"`) {
			seen[name] = true
		}
		return seen["Subscription.syncBatchCompleted"] && seen["Subscription.recordsChanged"]
	})
	for _, m := range msgs {
		raw, _ := json.Marshal(m)
		a.bodies = append(a.bodies, string(raw))
		require.NotEqual(t, "error", m["type"], "%s", raw)
		var p struct {
			Data struct {
				SyncBatchCompleted *struct{ ID string }
				RecordsChanged     *struct{ BatchID string }
			}
		}
		payload, _ := json.Marshal(m["payload"])
		require.NoError(t, json.Unmarshal(payload, &p))
		victimID := strconv.FormatInt(victimBatch.ID, 10)
		if p.Data.SyncBatchCompleted != nil {
			require.NotEqual(t, victimID, p.Data.SyncBatchCompleted.ID, "the attacker receives none of the victim's batches")
		}
		if p.Data.RecordsChanged != nil {
			require.NotEqual(t, victimID, p.Data.RecordsChanged.BatchID, "the attacker receives none of the victim's records")
		}
		if ids[stringOf(m["id"])] == "Subscription.syncOverviewUpdated" {
			require.NotContains(t, string(raw), `"limit":777`, "the victim's overview")
			require.Contains(t, string(raw), `"failedItems":0`, "the victim has parked items, the attacker none")
		}
	}
	require.True(t, slices.ContainsFunc(msgs, func(m map[string]any) bool { return ids[stringOf(m["id"])] == "Subscription.syncOverviewUpdated" }),
		"the attacker's overview subscription ran")
	closeConn(t, conn)
	closeConn(t, control)
}

func stringOf(v any) string {
	s, _ := v.(string)
	return s
}

func waitSubscribers(t *testing.T, b *bundle, n int64) {
	t.Helper()
	require.Eventually(t, func() bool { return b.bus.started() >= n }, 10*time.Second, 10*time.Millisecond,
		"%d subscriptions started", n)
}
