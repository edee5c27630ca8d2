package httpserver_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/httpserver"
	"github.com/crmsync/crmsync/internal/workspace"
)

// TestBodyRatePerToken: one token's request bytes are bounded per second,
// and another workspace (or the admin) is not slowed by it.
func TestBodyRatePerToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bdb := dbtest.Open(t, db.SQLite)
	svc := workspace.NewService(bdb)
	served := 0
	srv, err := httpserver.New(httpserver.Deps{
		Logger: slog.New(slog.DiscardHandler), DB: bdb,
		GraphQL: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			served++
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = io.WriteString(w, `{"data":{}}`)
		}),
		Authenticate: workspace.NewAuthenticator(svc, "admin-token").Authenticate,
		Registry:     prometheus.NewRegistry(),
		MaxBodyBytes: 1000,
		BodyRate:     1, // a byte a second: the bucket does not refill during the test
	})
	require.NoError(t, err)
	_, attacker, err := svc.Create(ctx, "Attacker")
	require.NoError(t, err)
	_, other, err := svc.Create(ctx, "Other")
	require.NoError(t, err)

	post := func(token string, size int) *httptest.ResponseRecorder {
		body := `{"query":"{ __typename }","x":"` + strings.Repeat("a", size-len(`{"query":"{ __typename }","x":""}`)) + `"}`
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec
	}
	// The burst is twice the body limit: two largest requests pass.
	require.Equal(t, http.StatusOK, post(attacker.Token, 1000).Code)
	require.Equal(t, http.StatusOK, post(attacker.Token, 1000).Code)
	rec := post(attacker.Token, 1000)
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	var body struct {
		Errors []struct {
			Message    string         `json:"message"`
			Extensions map[string]any `json:"extensions"`
		} `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
	require.Len(t, body.Errors, 1)
	require.Equal(t, "RATE_LIMITED", body.Errors[0].Extensions["code"])
	require.Contains(t, body.Errors[0].Message, "retry after")
	retry, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	require.NoError(t, err)
	require.Greater(t, retry, 900, "about 1,000 bytes at a byte a second")
	require.Equal(t, 2, served, "the refused request never reached the GraphQL handler")

	// Other tokens have their own buckets.
	require.Equal(t, http.StatusOK, post(other.Token, 1000).Code)
	require.Equal(t, http.StatusOK, post("admin-token", 1000).Code)
	require.Equal(t, 4, served)
}

// TestRequestRatePerToken: one token's requests are bounded per second
// however small they are, and other tokens keep their own budget.
func TestRequestRatePerToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bdb := dbtest.Open(t, db.SQLite)
	svc := workspace.NewService(bdb)
	served := 0
	srv, err := httpserver.New(httpserver.Deps{
		Logger: slog.New(slog.DiscardHandler), DB: bdb,
		GraphQL: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			served++
			_, _ = io.WriteString(w, `{"data":{}}`)
		}),
		Authenticate: workspace.NewAuthenticator(svc, "admin-token").Authenticate,
		Registry:     prometheus.NewRegistry(),
		RequestRate:  1, // a burst of 2, then one a second
	})
	require.NoError(t, err)
	_, attacker, err := svc.Create(ctx, "Attacker")
	require.NoError(t, err)
	_, other, err := svc.Create(ctx, "Other")
	require.NoError(t, err)

	get := func(token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/graphql?query=%7B__typename%7D", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec
	}
	require.Equal(t, http.StatusOK, get(attacker.Token).Code)
	require.Equal(t, http.StatusOK, get(attacker.Token).Code)
	rec := get(attacker.Token)
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.Contains(t, rec.Body.String(), `"RATE_LIMITED"`)
	require.Equal(t, "1", rec.Header().Get("Retry-After"))
	require.Equal(t, 2, served)

	// A small body is refused by the count as well.
	req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"{ __typename }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+attacker.Token)
	rec = httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	require.Equal(t, http.StatusTooManyRequests, rec.Code)

	require.Equal(t, http.StatusOK, get(other.Token).Code)
	require.Equal(t, http.StatusOK, get("admin-token").Code)
	require.Equal(t, 4, served)
}

// TestChunkedBodyReadOnlyAsFarAsTheBucket: a body without a length is read
// no further than its token's byte bucket could pay for, then refused.
func TestChunkedBodyReadOnlyAsFarAsTheBucket(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, db.SQLite)
	svc := workspace.NewService(bdb)
	served := 0
	srv, err := httpserver.New(httpserver.Deps{
		Logger: slog.New(slog.DiscardHandler), DB: bdb,
		GraphQL: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			served++
			_, _ = io.Copy(io.Discard, r.Body)
		}),
		Authenticate: workspace.NewAuthenticator(svc, "").Authenticate,
		Registry:     prometheus.NewRegistry(),
		MaxBodyBytes: 1000,
		BodyRate:     1, // a byte a second: the bucket (2,000) does not refill during the test
	})
	require.NoError(t, err)
	_, issued, err := svc.Create(context.Background(), "Acme")
	require.NoError(t, err)
	post := func(size int, declared bool) (*countingBody, int) {
		body := &countingBody{size: size}
		req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		req.Body, req.ContentLength = body, -1
		if declared {
			req.ContentLength = int64(size)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+issued.Token)
		w := &discardWriter{header: http.Header{}}
		srv.ServeHTTP(w, req)
		return body, w.status
	}
	// 1,000 + 600 bytes spent: 400 left.
	post(1000, true)
	post(600, false)
	require.Equal(t, 2, served)
	body, status := post(900, false)
	require.Equal(t, http.StatusTooManyRequests, status)
	require.LessOrEqual(t, body.read, 401, "read no further than the 400 bytes the bucket held")
	require.Equal(t, 2, served)
	// What is left still pays for a body that fits it.
	_, status = post(300, false)
	require.Zero(t, status, "passed to the GraphQL handler, which wrote nothing")
	require.Equal(t, 3, served)
}
