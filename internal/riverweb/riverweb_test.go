package riverweb_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/riverweb"
	"github.com/crmsync/crmsync/jobs"
)

func get(t *testing.T, url string, auth func(*http.Request)) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if auth != nil {
		auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body), resp.Header
}

// River's UI serves crmsync's jobs to the admin token, on both databases.
func TestRiverUIForTheAdmin(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		logger := slog.New(slog.DiscardHandler)
		client, err := jobs.NewClient(bdb, logger, nil, nil)
		require.NoError(t, err)
		ui, err := riverweb.New(client, logger, "admin-token")
		require.NoError(t, err)
		uiCtx, cancel := context.WithCancel(ctx)
		t.Cleanup(cancel)
		require.NoError(t, ui.Start(uiCtx))
		mux := http.NewServeMux()
		ui.Mount(mux)
		ts := httptest.NewServer(mux)
		t.Cleanup(ts.Close)

		code, _, header := get(t, ts.URL+"/riverui/", nil)
		require.Equal(t, http.StatusUnauthorized, code)
		require.Contains(t, header.Get("WWW-Authenticate"), "Basic")
		code, _, _ = get(t, ts.URL+"/riverui/", func(r *http.Request) { r.SetBasicAuth("admin", "wrong") })
		require.Equal(t, http.StatusUnauthorized, code)
		code, _, _ = get(t, ts.URL+"/riverui/", func(r *http.Request) { r.Header.Set("Authorization", "Bearer cs_workspace_token") })
		require.Equal(t, http.StatusUnauthorized, code)

		basic := func(r *http.Request) { r.SetBasicAuth("admin", "admin-token") }
		code, body, _ := get(t, ts.URL+"/riverui/", basic)
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, "<title>River</title>")

		code, body, _ = get(t, ts.URL+"/riverui/api/jobs?state=available", func(r *http.Request) { r.Header.Set("Authorization", "Bearer admin-token") })
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, `"data"`)
		code, body, _ = get(t, ts.URL+"/riverui/api/queues", basic)
		require.Equal(t, http.StatusOK, code, body)
	})
}

func TestRiverUIClosedWithoutAdminToken(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, db.SQLite)
	logger := slog.New(slog.DiscardHandler)
	client, err := jobs.NewClient(bdb, logger, nil, nil)
	require.NoError(t, err)
	ui, err := riverweb.New(client, logger, "")
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/riverui/", nil)
	req.SetBasicAuth("admin", "")
	ui.ServeHTTP(rec, req)
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Contains(t, rec.Body.String(), "CRMSYNC_ADMIN_TOKEN")
}
