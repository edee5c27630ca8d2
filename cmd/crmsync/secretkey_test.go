package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
	"github.com/crmsync/crmsync/internal/db"
)

// TestRotatedSecretKey runs serve with the secret key the connection was
// saved with, then with another one: the connection says
// CREDENTIALS_UNREADABLE with a clear reason, the metric says so, one WARN
// is logged however many flushes come by, the queue waits without a flush
// job failing (no attempt burnt), and the sync resumes by itself once the
// right key is back, or when the user reconnects under the new key.
func TestRotatedSecretKey(t *testing.T) {
	t.Parallel()
	org := sffaketest.Start(t)
	dir := t.TempDir()
	keyA, keyB := newKey(t), newKey(t)
	addr := freeAddr(t)

	s := startServe(t, dir, addr, keyA)
	token := field(t, runCmd(t, envOf(map[string]string{"CRMSYNC_DATA_DIR": dir}), "workspace", "create", "Acme"), "token")
	connect := connectMutation(org.URL(), "127.0.0.1:0", org.ClientID(), org.ClientSecret(), org.IssueRefreshToken(org.IntegrationUserID()))
	requireStatus(t, s.graphql(t, token, connect), "CONNECTED")
	s.stop(t)

	// Another key: the stored credentials no longer decrypt.
	s = startServe(t, dir, addr, keyB)
	s.recordChange(t, token, "co-1")
	require.Eventually(t, func() bool {
		return strings.Contains(s.graphql(t, token, `{ connection { status } }`), `"CREDENTIALS_UNREADABLE"`)
	}, 30*time.Second, 50*time.Millisecond)
	body := s.graphql(t, token, `{ connection { status statusReason } syncOverview { paused pauseReason queuedBatchItems } }`)
	require.JSONEq(t, `{"data":{"connection":{"status":"CREDENTIALS_UNREADABLE","statusReason":"`+unreadableReason+`"},
		"syncOverview":{"paused":true,"pauseReason":"CREDENTIALS_UNREADABLE","queuedBatchItems":1}}}`, body)
	require.Contains(t, s.metrics(t), `crmsync_connection_credentials_unreadable{connector="salesforce",workspace="1"} 1`)
	// Several more flushes find the same: still one WARN, no failed job.
	bdb := openDB(t, dir)
	flushesBefore := countJobs(t, bdb, "state = 'completed'")
	s.recordChange(t, token, "co-2")
	require.Eventually(t, func() bool { return countJobs(t, bdb, "state = 'completed'") >= flushesBefore+3 },
		30*time.Second, 50*time.Millisecond, "flushes keep running (and finding the key wrong)")
	require.Zero(t, countJobs(t, bdb, "errors IS NOT NULL OR state IN ('retryable', 'discarded')"), "no flush failed: no attempt burnt")
	require.Equal(t, 1, strings.Count(s.logs.String(), `"level":"WARN","msg":"sync paused","workspace_id":1,"reason":"CREDENTIALS_UNREADABLE"`), s.logs.String())
	require.Empty(t, org.All("Account"), "nothing reached Salesforce")
	s.stop(t)

	// The right key is back: the queue drains by itself.
	s = startServe(t, dir, addr, keyA)
	require.Eventually(t, func() bool { return len(org.All("Account")) == 2 }, 30*time.Second, 50*time.Millisecond)
	requireStatus(t, s.graphql(t, token, `{ connection { status } }`), "CONNECTED")
	require.Contains(t, s.metrics(t), `crmsync_connection_credentials_unreadable{connector="salesforce",workspace="1"} 0`)
	s.stop(t)

	// The new key for good: reconnecting seals the credentials again.
	s = startServe(t, dir, addr, keyB)
	s.recordChange(t, token, "co-3")
	require.Eventually(t, func() bool {
		return strings.Contains(s.graphql(t, token, `{ connection { status } }`), `"CREDENTIALS_UNREADABLE"`)
	}, 30*time.Second, 50*time.Millisecond)
	requireStatus(t, s.graphql(t, token, connect), "CONNECTED")
	require.Eventually(t, func() bool { return len(org.All("Account")) == 3 }, 30*time.Second, 50*time.Millisecond)
	s.stop(t)
}

const unreadableReason = "credentials unreadable: the secret key changed (CRMSYNC_SECRET_KEY, or \u003cdata-dir\u003e/secret.key, " +
	"is not the key the credentials were saved with); restore that key, or reconnect with connectCrm"

func newKey(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(k)
}

type serving struct {
	addr   string
	ops    string // --ops-listen: /metrics
	logs   *lockedBuffer
	cancel context.CancelFunc
	done   chan error
}

func startServe(t *testing.T, dir, addr, key string) *serving {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &serving{addr: addr, ops: freeAddr(t), logs: &lockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
	getenv := envOf(map[string]string{"CRMSYNC_DATA_DIR": dir, "CRMSYNC_SECRET_KEY": key,
		"CRMSYNC_FLUSH_INTERVAL": "200ms", "CRMSYNC_SWEEP_INTERVAL": "1s"})
	go func() {
		s.done <- run(ctx, []string{"serve", "--listen", addr, "--ops-listen", s.ops, "--allow-crm-host", "127.0.0.1"}, getenv, io.Discard, s.logs)
	}()
	waitHealthy(t, addr, s.done)
	return s
}

func (s *serving) stop(t *testing.T) {
	t.Helper()
	http.DefaultClient.CloseIdleConnections()
	s.cancel()
	select {
	case err := <-s.done:
		require.NoError(t, err, s.logs.String())
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func (s *serving) graphql(t *testing.T, token, query string) string {
	t.Helper()
	status, body := graphql(t, s.addr, token, query)
	require.Equal(t, http.StatusOK, status, body)
	return body
}

func (s *serving) recordChange(t *testing.T, token, id string) {
	t.Helper()
	body := s.graphql(t, token, `mutation { recordChanges(input: [{recordType: COMPANY, recordId: "`+id+`", source: API, fields: [{name: "name", value: "Company `+id+`"}]}]) { queued } }`)
	require.JSONEq(t, `{"data":{"recordChanges":{"queued":1}}}`, body)
}

func (s *serving) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + s.ops + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func requireStatus(t *testing.T, body, want string) {
	t.Helper()
	var d struct {
		Data map[string]struct{ Status string }
	}
	require.NoError(t, json.Unmarshal([]byte(body), &d), body)
	for _, v := range d.Data {
		require.Equal(t, want, v.Status, body)
	}
}

func openDB(t *testing.T, dir string) *bun.DB {
	t.Helper()
	bdb, err := db.Open(context.Background(), "", dir, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = bdb.Close() })
	require.FileExists(t, filepath.Join(dir, "crmsync.db"))
	return bdb
}

func countJobs(t *testing.T, bdb *bun.DB, where string) int {
	t.Helper()
	var n sql.NullInt64
	require.NoError(t, bdb.NewRaw("SELECT count(*) FROM river_job WHERE kind = 'flush' AND ("+where+")").Scan(context.Background(), &n))
	return int(n.Int64)
}
