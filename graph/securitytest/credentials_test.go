package securitytest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/graph"
	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/push"
)

// forms are the encodings a leaked secret could take.
func forms(secretText string) [][]byte {
	doc := `{"token":"` + secretText + `"}`
	return [][]byte{
		[]byte(secretText),
		[]byte(hex.EncodeToString([]byte(secretText))),
		[]byte(base64.StdEncoding.EncodeToString([]byte(doc))),
		[]byte(base64.RawURLEncoding.EncodeToString([]byte(doc))),
	}
}

func requireNoSecret(t *testing.T, where string, data []byte, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, f := range forms(s) {
			require.False(t, bytes.Contains(data, f), "%s holds the secret %q (as %q)", where, s, f)
		}
	}
}

// tables lists every table of the database, River's included.
func tables(t *testing.T, bdb *bun.DB) []string {
	t.Helper()
	ctx := context.Background()
	var names []string
	var err error
	if db.DialectOf(bdb) == db.Postgres {
		err = bdb.NewRaw(`SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`).Scan(ctx, &names)
	} else {
		err = bdb.NewRaw(`SELECT name FROM sqlite_master WHERE type = 'table'`).Scan(ctx, &names)
	}
	require.NoError(t, err)
	require.Contains(t, names, "crm_connections")
	return names
}

// scanDatabase reads every column of every row of every table and fails
// on any form of the secrets.
func scanDatabase(t *testing.T, bdb *bun.DB, secrets ...string) {
	t.Helper()
	ctx := context.Background()
	var cells int
	for _, table := range tables(t, bdb) {
		rows, err := bdb.QueryContext(ctx, fmt.Sprintf(`SELECT * FROM %q`, table))
		require.NoError(t, err, table)
		cols, err := rows.Columns()
		require.NoError(t, err)
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(t, rows.Scan(ptrs...))
			for i, v := range vals {
				cells++
				requireNoSecret(t, table+"."+cols[i], fmt.Appendf(nil, "%s", v), secrets...)
			}
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
	}
	require.Positive(t, cells)
}

// TestCredentialsNeverInPlaintext connects with recognisable credentials
// and hunts for them, in every encoding, in every cell of the database,
// in everything the server logged, and in every API answer and error,
// including connectCrm refusals of wrong credentials.
func TestCredentialsNeverInPlaintext(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		ws, token := b.newWorkspace(t, "Acme")
		wrong := "S3CRET-wrong-token-" + randomHex(t, 8)
		var bodies []string

		// Refused credentials: the error does not echo them.
		for _, creds := range []map[string]any{{"token": wrong}, {"token": wrong, "extra": wrong}} {
			resp := b.query(t, token, `mutation($in: ConnectCrmInput!) { connectCrm(input: $in) { id } }`, map[string]any{"in": map[string]any{
				"connector": "memcrm", "config": map[string]any{"org": "acme"}, "credentials": creds}})
			require.NotEmpty(t, resp.Errors, resp.Body)
			bodies = append(bodies, resp.Body)
		}
		resp := b.query(t, token, `mutation($in: ConnectCrmInput!) { connectCrm(input: $in) { id } }`, map[string]any{"in": map[string]any{
			"connector": "nope", "config": map[string]any{"org": "acme"}, "credentials": map[string]any{"token": wrong}}})
		require.NotEmpty(t, resp.Errors, resp.Body)
		bodies = append(bodies, resp.Body)

		b.connect(t, token, "acme")
		b.mustQuery(t, token, `mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { accepted } }`, map[string]any{"in": []any{
			change("COMPANY", "co1", "name", "Acme Corp"), change("CONTACT", "c1", "email", "no-last-name@example.com")}}, nil)
		b.flush(t, ws)

		// Every field of the connection, and of everything else a client sees.
		resp = b.query(t, token, `{ connection { id connector status statusReason identity { userId username orgId instanceUrl } createdAt updatedAt }
			syncLogs { edges { node { message records { edges { node { reason errorCode fields { value reason } } } } } } }
			failedItems { edges { node { errorCode errorMessage } } } syncOverview { paused } }`, nil)
		require.Empty(t, resp.Errors, resp.Body)
		bodies = append(bodies, resp.Body)
		for _, body := range bodies {
			requireNoSecret(t, "API answer", []byte(body), b.crmToken, wrong)
		}
		requireNoSecret(t, "server logs", []byte(b.logs.String()), b.crmToken, wrong)
		scanDatabase(t, bdb, b.crmToken, wrong)

		// The schema offers no way to read credentials back.
		conn := graph.NewExecutableSchema(&graph.Resolver{}).Schema().Types["CrmConnection"]
		require.NotNil(t, conn)
		for _, f := range conn.Fields {
			name := strings.ToLower(f.Name)
			for _, word := range []string{"credential", "secret", "token", "password", "key"} {
				require.NotContains(t, name, word, "CrmConnection.%s", f.Name)
			}
		}
	})
}

// TestForeignCiphertextDoesNotDecrypt copies workspace B's sealed
// credentials into workspace A's connection row (what an attacker with
// write access to one row, or a botched restore, would do): A's flush
// fails with a clear error that shows neither credentials nor ciphertext,
// A's changes stay queued, and B keeps syncing.
func TestForeignCiphertextDoesNotDecrypt(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		wsA, tokenA := b.newWorkspace(t, "A")
		wsB, tokenB := b.newWorkspace(t, "B")
		b.connect(t, tokenA, "org-a")
		b.connect(t, tokenB, "org-b")

		var sealed []byte
		require.NoError(t, bdb.NewRaw(`SELECT credentials FROM crm_connections WHERE workspace_id = ?`, wsB).Scan(ctx, &sealed))
		require.NotEmpty(t, sealed)
		_, err := bdb.NewRaw(`UPDATE crm_connections SET credentials = ? WHERE workspace_id = ?`, sealed, wsA).Exec(ctx)
		require.NoError(t, err)

		for _, tok := range []string{tokenA, tokenB} {
			b.mustQuery(t, tok, `mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { accepted } }`, map[string]any{"in": []any{
				change("COMPANY", "co1", "name", "Corp"), change("COMPANY", "co2", "name", "Other Corp")}}, nil)
		}

		// The flush pauses on unreadable credentials (no attempt burnt), and
		// says so without showing credentials or ciphertext.
		paused, err := b.engine.Flush(ctx, wsA)
		require.NoError(t, err)
		require.Equal(t, push.PauseCredentialsUnreadable, paused.Paused)
		require.NotNil(t, paused.Batch)
		msg := paused.Batch.Message
		require.Contains(t, msg, "credentials unreadable")
		requireNoSecret(t, "pause message", []byte(msg), b.crmToken)
		for _, enc := range []string{string(sealed), hex.EncodeToString(sealed), base64.StdEncoding.EncodeToString(sealed)} {
			require.NotContains(t, msg, enc, "the message shows the ciphertext")
		}
		_, err = b.engine.Flush(ctx, wsA)
		require.NoError(t, err)

		var d struct {
			SyncOverview struct {
				QueuedBatchItems int
				FailedItems      int
			}
			Connection struct{ Status string }
		}
		b.mustQuery(t, tokenA, `{ syncOverview { queuedBatchItems failedItems } connection { status } }`, nil, &d)
		require.Equal(t, 2, d.SyncOverview.QueuedBatchItems, "A's changes stay queued")
		require.Zero(t, d.SyncOverview.FailedItems, "nothing is parked for a decryption failure")
		require.Equal(t, "CREDENTIALS_UNREADABLE", d.Connection.Status)
		require.Empty(t, b.crm.Org("org-b").All("Account"), "nothing reached B's org through A's flush")

		// B is unaffected and syncs with its own credentials.
		res := b.flush(t, wsB)
		require.NotNil(t, res.Batch)
		require.Equal(t, 2, res.Batch.Created)
		require.Len(t, b.crm.Org("org-b").All("Account"), 2)

		// Reconnecting A seals fresh credentials bound to A's row.
		b.connect(t, tokenA, "org-a")
		res = b.flush(t, wsA)
		require.NotNil(t, res.Batch)
		require.Equal(t, 2, res.Batch.Created)
		require.Len(t, b.crm.Org("org-a").All("Account"), 2)
		requireNoSecret(t, "server logs", []byte(b.logs.String()), b.crmToken)
	})
}
