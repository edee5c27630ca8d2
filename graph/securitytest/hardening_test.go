package securitytest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
)

// TestAmbiguousAuthorizationRefused sends two Authorization headers (a
// valid token and another, in both orders): the request is refused with
// 400 before anything runs, whichever header a proxy would have kept.
func TestAmbiguousAuthorizationRefused(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		_, token := b.newWorkspace(t, "Acme")
		_, other := b.newWorkspace(t, "Other")
		b.connect(t, token, "acme")
		for name, headers := range map[string][]string{
			"valid then garbage":   {"Bearer " + token, "Bearer nope"},
			"garbage then valid":   {"Bearer nope", "Bearer " + token},
			"two valid workspaces": {"Bearer " + token, "Bearer " + other},
			"same token twice":     {"Bearer " + token, "Bearer " + token},
		} {
			t.Run(name, func(t *testing.T) {
				req, err := http.NewRequest(http.MethodPost, b.api.URL+"/graphql",
					bytes.NewReader([]byte(`{"query":"mutation { pauseSync { paused } }"}`)))
				require.NoError(t, err)
				req.Header.Set("Content-Type", "application/json")
				for _, h := range headers {
					req.Header.Add("Authorization", h)
				}
				res, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				body, _ := io.ReadAll(res.Body)
				require.NoError(t, res.Body.Close())
				require.Equal(t, http.StatusBadRequest, res.StatusCode, string(body))
				require.Contains(t, string(body), "AMBIGUOUS_AUTHORIZATION")
			})
		}
		var d struct{ SyncOverview struct{ Paused bool } }
		b.mustQuery(t, token, `{ syncOverview { paused } }`, nil, &d)
		require.False(t, d.SyncOverview.Paused, "no refused mutation ran")
	})
}

// TestMetricsNotPublic: the API listener does not serve /metrics (it labels
// every workspace), with or without a token, and its health endpoints name
// no workspace.
func TestMetricsNotPublic(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		_, token := b.newWorkspace(t, "Canary-Workspace-Name")
		b.connect(t, token, "acme")
		b.mustQuery(t, token, `mutation { recordChanges(input: [{recordType: COMPANY, recordId: "c1", source: API, fields: [{name: "name", value: "x"}]}]) { accepted } }`, nil, nil)
		get := func(path, token string) (int, string) {
			req, err := http.NewRequest(http.MethodGet, b.api.URL+path, nil)
			require.NoError(t, err)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(res.Body)
			require.NoError(t, res.Body.Close())
			return res.StatusCode, string(body)
		}
		for _, tok := range []string{"", token} {
			status, body := get("/metrics", tok)
			require.Equal(t, http.StatusNotFound, status)
			require.NotContains(t, body, "crmsync_queue_items")
		}
		for _, path := range []string{"/healthz", "/readyz"} {
			status, body := get(path, "")
			require.Equal(t, http.StatusOK, status, body)
			require.NotContains(t, body, "workspace")
			require.NotContains(t, body, "Canary")
		}
	})
}

// TestSQLiteFilesArePrivate: the SQLite database and its -wal and -shm
// files are created 0600 whatever the umask, and a database file left
// world-readable by an older version is narrowed to 0600 when opened.
func TestSQLiteFilesArePrivate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, existing := range map[string]bool{"new": false, "existing 0644": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, db.SQLiteFile)
			if existing {
				require.NoError(t, os.WriteFile(path, nil, 0o644))
				require.NoError(t, os.Chmod(path, 0o644))
			}
			bdb, err := db.Open(ctx, "", dir, slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			t.Cleanup(func() { _ = bdb.Close() })
			_, err = db.Migrate(ctx, bdb) // writes: the -wal and -shm files exist now
			require.NoError(t, err)
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				info, err := os.Stat(p)
				require.NoError(t, err)
				require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), p)
			}
		})
	}
}

// TestNULRefusedAtIngest: a NUL character in a value or a record id is
// refused with a clear error naming the change and field, and nothing of
// the call is applied (Salesforce refuses NUL too; the value used to come
// back as the six characters \u0000).
func TestNULRefusedAtIngest(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		_, token := b.newWorkspace(t, "Acme")
		b.connect(t, token, "acme")
		const mutation = `mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { accepted } }`
		for name, in := range map[string][]any{
			"value": {
				map[string]any{"recordType": "COMPANY", "recordId": "ok", "source": "API", "fields": []any{map[string]any{"name": "name", "value": "fine"}}},
				map[string]any{"recordType": "COMPANY", "recordId": "nul", "source": "API", "fields": []any{map[string]any{"name": "name", "value": "a\x00b"}}},
			},
			"record id": {
				map[string]any{"recordType": "COMPANY", "recordId": "ok", "source": "API", "fields": []any{map[string]any{"name": "name", "value": "fine"}}},
				map[string]any{"recordType": "COMPANY", "recordId": "n\x00l", "source": "API", "fields": []any{map[string]any{"name": "name", "value": "x"}}},
			},
		} {
			t.Run(name, func(t *testing.T) {
				resp := b.query(t, token, mutation, map[string]any{"in": in})
				require.NotEmpty(t, resp.Errors, resp.Body)
				require.Equal(t, "BAD_USER_INPUT", resp.Errors[0].Code(), resp.Body)
				require.Contains(t, resp.Errors[0].Message, "change 1")
				require.Contains(t, resp.Errors[0].Message, `NUL character (\u0000)`)
			})
		}
		var d struct {
			SyncOverview struct{ QueuedBatchItems int }
		}
		b.mustQuery(t, token, `{ syncOverview { queuedBatchItems } }`, nil, &d)
		require.Zero(t, d.SyncOverview.QueuedBatchItems, "nothing of a refused call is applied")
	})
}
