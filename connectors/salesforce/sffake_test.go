package salesforce_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/connectortest"
	"github.com/crmsync/crmsync/connectors/salesforce"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
)

// fakeSession is a refresh-token session for the integration user of sf.
func fakeSession(sf *sffake.Server, cfg ...func(*salesforce.Config)) connector.Session {
	c := salesforce.Config{LoginURL: sf.URL(), ClientID: sffake.DefaultClientID,
		ExternalIDField: map[string]string{"Contact": "Conversion_Id__c"}}
	for _, f := range cfg {
		f(&c)
	}
	return salesforce.NewSession(c, salesforce.Credentials{ClientSecret: sffake.DefaultClientSecret,
		RefreshToken: sf.IssueRefreshToken(sf.IntegrationUserID())})
}

// conformance runs connectortest against a connector talking to sffake.
func conformance(t *testing.T, c connector.Connector) {
	sf := sffaketest.Start(t)
	pubsub := "http://" + sffaketest.StartPubSub(t, sf)
	slow := sffaketest.Start(t, sffake.Options{Latency: 2 * time.Second})
	revoked := sf.IssueRefreshToken(sf.IntegrationUserID())
	sf.RevokeRefreshToken(revoked)
	bad := salesforce.NewSession(salesforce.Config{LoginURL: sf.URL(), ClientID: sffake.DefaultClientID},
		salesforce.Credentials{ClientSecret: sffake.DefaultClientSecret, RefreshToken: revoked})
	slowSession := fakeSession(slow)
	bulkSession := fakeSession(sf, func(c *salesforce.Config) { c.BulkThreshold = 3 })
	connectortest.Run(t, func(t *testing.T) connectortest.Harness {
		return connectortest.Harness{
			Connector:      c,
			Session:        fakeSession(sf, func(c *salesforce.Config) { c.PubSubEndpoint = pubsub }),
			BadCredentials: bad,
			SlowSession:    &slowSession,
			BulkSession:    &bulkSession,
			EditAsOtherUser: func(ctx context.Context, object, id string, fields map[string]any) error {
				return sf.EditAsUser(sf.RepUserID(), object, id, fields)
			},
		}
	})
}

func TestConformanceWithSffake(t *testing.T) {
	t.Parallel()
	conformance(t, newConnector(t))
}

func TestConformanceWithSffakeThroughPlugin(t *testing.T) {
	t.Parallel()
	conformance(t, pluginConnector(t))
}

// fakeBundle is a connector and a fake org for the integration tests.
type fakeBundle struct {
	sf   *sffake.Server
	c    *salesforce.Connector
	sess connector.Session
}

func setupFake(t *testing.T) fakeBundle {
	t.Helper()
	sf := sffaketest.Start(t)
	return fakeBundle{sf: sf, c: newConnector(t), sess: fakeSession(sf)}
}

func (b fakeBundle) write(t *testing.T, ops ...connector.Operation) *connector.BulkUpdateResponse {
	t.Helper()
	resp, err := b.c.BulkUpdate(t.Context(), connector.BulkUpdateRequest{Session: b.sess, Operations: ops})
	require.NoError(t, err)
	require.Len(t, resp.Results, len(ops))
	return resp
}

func TestSffakeExpiredTokenIsRefreshedOnce(t *testing.T) {
	t.Parallel()
	b := setupFake(t)
	first, err := b.c.Limits(t.Context(), connector.LimitsRequest{Session: b.sess})
	require.NoError(t, err)
	require.NotNil(t, first.Credentials, "the first call obtains a token and hands it back")
	sess := b.sess
	sess.Credentials = first.Credentials

	b.sf.ExpireAccessTokens()
	b.sf.ResetRequestLog()
	resp, err := b.c.Limits(t.Context(), connector.LimitsRequest{Session: sess})
	require.NoError(t, err)
	require.NotNil(t, resp.Credentials, "refreshed credentials handed back")
	var paths []string
	for _, r := range b.sf.RequestLog() {
		paths = append(paths, r.Method+" "+r.Path+" "+fmt.Sprint(r.Status))
	}
	require.Equal(t, []string{"GET /services/data/v62.0/limits 401", "POST /services/oauth2/token 200", "GET /services/data/v62.0/limits 200"}, paths)

	b.sf.RevokeRefreshToken(mustCreds(t, sess).RefreshToken)
	b.sf.ExpireAccessTokens()
	_, err = b.c.Limits(t.Context(), connector.LimitsRequest{Session: sess})
	require.ErrorIs(t, err, connector.ErrCredentials, "invalid_grant")
}

func mustCreds(t *testing.T, s connector.Session) salesforce.Credentials {
	var c salesforce.Credentials
	require.NoError(t, salesforceCreds(s.Credentials, &c))
	return c
}

func TestSffakeJWTBearer(t *testing.T) {
	t.Parallel()
	sf := sffaketest.Start(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	sf.RegisterApp(sffake.App{ClientID: "jwt-app", PublicKey: &key.PublicKey})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	sess := salesforce.NewSession(
		salesforce.Config{LoginURL: sf.URL(), ClientID: "jwt-app", JWTAudience: "https://login.salesforce.com"},
		salesforce.Credentials{PrivateKey: string(keyPEM), Username: sffake.IntegrationUsername})
	resp, err := newConnector(t).Check(t.Context(), connector.CheckRequest{Session: sess})
	require.NoError(t, err)
	require.Equal(t, sf.IntegrationUserID(), resp.Identity.UserID)
	require.Equal(t, sffake.IntegrationUsername, resp.Identity.Username)
	require.Equal(t, sf.OrgID(), resp.Identity.OrgID)

	wrong := salesforce.NewSession(salesforce.Config{LoginURL: sf.URL(), ClientID: "jwt-app", JWTAudience: "https://login.salesforce.com"},
		salesforce.Credentials{PrivateKey: string(keyPEM), Username: "nobody@example.com"})
	_, err = newConnector(t).Check(t.Context(), connector.CheckRequest{Session: wrong})
	require.ErrorIs(t, err, connector.ErrCredentials)
}

func TestSffakeLimitAndFaults(t *testing.T) {
	t.Parallel()
	b := setupFake(t)
	resp, err := b.c.Limits(t.Context(), connector.LimitsRequest{Session: b.sess})
	require.NoError(t, err)
	used, max := b.sf.Usage()
	require.Equal(t, int64(max), resp.Usage.Max)
	require.Equal(t, int64(used), resp.Meta.Usage.Used, "usage from Sforce-Limit-Info")

	b.sf.SetUsage(max)
	_, err = b.c.Limits(t.Context(), connector.LimitsRequest{Session: b.sess})
	require.ErrorIs(t, err, connector.ErrRateLimited)
	b.sf.SetUsage(0)

	for name, f := range map[string]sffake.Fault{
		"503":      {Path: "/limits", Kind: sffake.FaultStatus, Status: 503, Times: 1},
		"420 html": {Path: "/limits", Kind: sffake.FaultStatus, Status: 420, Body: "<html>edge</html>", Times: 1},
		"truncate": {Path: "/limits", Kind: sffake.FaultTruncate, Times: 1},
		// net/http replays a GET once when a reused connection is reset
		// before any answer, so the reset happens on both tries.
		"reset": {Path: "/limits", Kind: sffake.FaultReset, Times: 2},
	} {
		b.sf.InjectFault(f)
		_, err = b.c.Limits(t.Context(), connector.LimitsRequest{Session: b.sess})
		require.ErrorIs(t, err, connector.ErrUnavailable, name)
		b.sf.ClearFaults()
	}
	_, err = b.c.Limits(t.Context(), connector.LimitsRequest{Session: b.sess})
	require.NoError(t, err, "faults cleared")
}

func TestSffakeWrites(t *testing.T) {
	t.Parallel()
	b := setupFake(t)
	queue := b.sf.AddQueue("Inbound", "Lead")
	b.sf.SetLeadAssignmentOwner(b.sf.RepUserID())
	camp, err := b.sf.Insert("Campaign", map[string]any{"Name": "Webinar"})
	require.NoError(t, err)
	b.sf.InjectRecordFault(sffake.RecordFault{Object: "Contact", Field: "Email", Value: "locked@x.io", Code: "UNABLE_TO_LOCK_ROW", Times: 1})

	resp := b.write(t,
		connector.Operation{Kind: connector.OpCreate, Object: "Lead", Fields: map[string]any{"LastName": "Ng", "Company": "Acme", "OwnerId": queue}},
		connector.Operation{Kind: connector.OpCreate, Object: "Lead", Fields: map[string]any{"LastName": "Conv", "Company": "Acme"}},
		connector.Operation{Kind: connector.OpCreate, Object: "Contact", Fields: map[string]any{"LastName": "Locked", "Email": "locked@x.io"}},
		connector.Operation{Kind: connector.OpCreate, Object: "Contact", Fields: map[string]any{"Email": "nolastname@x.io"}},
	)
	require.Nil(t, resp.Results[0].Error)
	require.Nil(t, resp.Results[1].Error)
	require.Equal(t, &connector.RecordError{Code: connector.CodeLocked, Message: resp.Results[2].Error.Message, Retryable: true}, resp.Results[2].Error)
	require.Equal(t, "REQUIRED_FIELD_MISSING", resp.Results[3].Error.Code)
	require.False(t, resp.Results[3].Error.Retryable)
	lead, _ := b.sf.Get("Lead", resp.Results[0].ID)
	require.Equal(t, queue, lead["OwnerId"], "Sforce-Auto-Assign: FALSE kept the queue as owner")
	require.Equal(t, 3, resp.Calls, "describes of Lead and Contact, then one composite call")

	// The lock clears: the same create succeeds when retried.
	again := b.write(t, connector.Operation{Kind: connector.OpCreate, Object: "Contact", Fields: map[string]any{"LastName": "Locked", "Email": "locked@x.io"}})
	require.Nil(t, again.Results[0].Error)

	// A converted lead is reported distinctly; a duplicate membership is a success with the member's id.
	contact, _, err := b.sf.ConvertLead(resp.Results[1].ID)
	require.NoError(t, err)
	member, err := b.sf.Insert("CampaignMember", map[string]any{"CampaignId": camp, "ContactId": contact, "Status": "Sent"})
	require.NoError(t, err)
	res := b.write(t,
		connector.Operation{Kind: connector.OpUpdate, Object: "Lead", ID: resp.Results[1].ID, Fields: map[string]any{"LastName": "X"}},
		connector.Operation{Kind: connector.OpCreate, Object: "CampaignMember", Fields: map[string]any{"CampaignId": camp, "ContactId": contact, "Status": "Sent"}},
	)
	require.Equal(t, connector.CodeConvertedLead, res.Results[0].Error.Code)
	require.False(t, res.Results[0].Error.Retryable)
	require.Equal(t, connector.Result{ID: member}, res.Results[1], "already a campaign member: success")
	got, err := b.c.FetchCurrent(t.Context(), connector.FetchCurrentRequest{Session: b.sess, Object: "Lead", IDs: []string{resp.Results[1].ID}})
	require.NoError(t, err)
	require.Equal(t, contact, got.Records[0].Fields["ConvertedContactId"], "crmsync can follow the converted lead")

	var autoAssign []string
	for _, r := range b.sf.RequestLog() {
		if r.Method == "POST" && (strings.HasSuffix(r.Path, "/composite") || strings.HasSuffix(r.Path, "/composite/sobjects")) {
			autoAssign = append(autoAssign, r.AutoAssign())
		}
	}
	require.Equal(t, "FALSE", autoAssign[0], "the first write set an OwnerId")
}

func TestSffakeBulkCosts(t *testing.T) {
	t.Parallel()
	b := setupFake(t)
	ops := make([]connector.Operation, 1001)
	for i := range ops {
		ops[i] = connector.Operation{Kind: connector.OpCreate, Object: "Contact",
			Fields: map[string]any{"LastName": "Bulk", "Email": fmt.Sprintf("bulk%d@x.io", i)}}
	}
	resp := b.write(t, ops...)
	ids := make([]string, len(ops))
	for i, r := range resp.Results {
		require.Nil(t, r.Error, i)
		ids[i] = r.ID
	}
	require.Equal(t, 1+2, resp.Calls, "describe + ⌈1001/1000⌉ composite calls")

	got, err := b.c.FetchCurrent(t.Context(), connector.FetchCurrentRequest{Session: b.sess, Object: "Contact", IDs: ids, Fields: []string{"Email"}})
	require.NoError(t, err)
	require.Len(t, got.Records, len(ids))
	require.Equal(t, 1, got.Calls, "1,001 ids: one retrieve")

	emails := make([]string, len(ops))
	for i := range emails {
		emails[i] = fmt.Sprintf("BULK%d@x.io", i) // SOQL string comparison ignores case
	}
	byEmail, err := b.c.FetchCurrent(t.Context(), connector.FetchCurrentRequest{Session: b.sess, Object: "Contact",
		Match: &connector.MatchKey{Field: "Email", Values: append(emails, "' OR Id != null", `\' OR Id != null --`)}})
	require.NoError(t, err)
	require.Len(t, byEmail.Records, len(ops), "the injection attempts match nothing")
	for _, r := range b.sf.RequestLog() {
		require.Less(t, len(r.Path)+len(r.Query), 16_000)
	}
}

func TestSffakeFetchChangesPages(t *testing.T) {
	t.Parallel()
	b := setupFake(t)
	b.sf.SetQueryPageSize(3)
	var ids []string
	for i := range 8 {
		id, err := b.sf.Insert("Contact", map[string]any{"LastName": fmt.Sprint("C", i)})
		require.NoError(t, err)
		ids = append(ids, id)
		if i%2 == 1 {
			b.sf.Clock().Advance(time.Minute)
		}
	}
	require.NoError(t, b.sf.DeleteAsUser(b.sf.RepUserID(), ids[0]))
	seen := map[string]connector.Record{}
	cursor, pages := "", 0
	for {
		resp, err := b.c.FetchChanges(t.Context(), connector.FetchChangesRequest{Session: b.sess, Object: "Contact", Cursor: cursor,
			Fields: []string{"LastName"}})
		require.NoError(t, err)
		pages++
		for _, r := range resp.Records {
			seen[r.ID] = r
		}
		cursor = resp.NextCursor
		if !resp.More {
			break
		}
	}
	require.Equal(t, 3, pages)
	require.Len(t, seen, 8)
	require.True(t, seen[ids[0]].Deleted)
	q, err := url.ParseQuery(b.sf.RequestLog()[len(b.sf.RequestLog())-3].Query)
	require.NoError(t, err)
	require.Contains(t, q.Get("q"), "ORDER BY SystemModstamp ASC, Id ASC")

	b.sf.Clock().Advance(time.Hour)
	require.NoError(t, b.sf.EditAsUser(b.sf.RepUserID(), "Contact", ids[5], map[string]any{"LastName": "Edited"}))
	again := map[string]connector.Record{}
	for more := true; more; {
		resp, err := b.c.FetchChanges(t.Context(), connector.FetchChangesRequest{Session: b.sess, Object: "Contact", Cursor: cursor, Fields: []string{"LastName"}})
		require.NoError(t, err)
		for _, r := range resp.Records {
			again[r.ID] = r
		}
		cursor, more = resp.NextCursor, resp.More
	}
	require.Equal(t, "Edited", again[ids[5]].Fields["LastName"])
	require.Equal(t, b.sf.RepUserID(), again[ids[5]].LastModifiedByID)
	for _, old := range ids[1:4] {
		require.NotContains(t, again, old, "older than the watermark minus the 2-minute look-back")
	}
}
