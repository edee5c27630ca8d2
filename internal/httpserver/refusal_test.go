package httpserver_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/httpserver"
	"github.com/crmsync/crmsync/internal/workspace"
)

// countingBody is a request body of size bytes that counts the bytes
// read from it.
type countingBody struct{ size, read int }

func (b *countingBody) Read(p []byte) (int, error) {
	n := min(len(p), b.size-b.read)
	if n == 0 {
		return 0, io.EOF
	}
	b.read += n
	return n, nil
}

func (*countingBody) Close() error { return nil }

// discardWriter is a ResponseWriter that keeps the status and the header
// and throws the body away.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// refusalBundle is a server whose one token has spent its rate, and a
// request of that token ready to be refused again and again.
type refusalBundle struct {
	srv    *httpserver.Server
	token  string
	served int
}

func setupRefusal(t *testing.T) *refusalBundle {
	t.Helper()
	bdb := dbtest.Open(t, db.SQLite)
	svc := workspace.NewService(bdb)
	b := &refusalBundle{}
	var err error
	b.srv, err = httpserver.New(httpserver.Deps{
		Logger: slog.New(slog.DiscardHandler), DB: bdb,
		GraphQL: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.served++
			_, _ = io.Copy(io.Discard, r.Body)
		}),
		Authenticate: workspace.NewAuthenticator(svc, "").Authenticate,
		Registry:     prometheus.NewRegistry(),
		BodyRate:     1, // a byte a second: spent by the first request
	})
	require.NoError(t, err)
	_, issued, err := svc.Create(context.Background(), "Attacker")
	require.NoError(t, err)
	b.token = issued.Token
	return b
}

// request returns a POST of the token with a body of size bytes, its
// length declared (Content-Length) or not (chunked).
func (b *refusalBundle) request(size int, declared bool) (*http.Request, *countingBody) {
	body := &countingBody{size: size}
	req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
	req.Body, req.ContentLength = body, -1
	if declared {
		req.ContentLength = int64(size)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+b.token)
	return req, body
}

// TestRateRefusalIsCheap: once a token has spent its rate, its next
// requests are refused with 429 before anything reads their body, whether
// the length is declared or not, and a refusal allocates little (issue 21:
// the refusals are what is left of the attack's cost).
//
// Not parallel: testing.AllocsPerRun counts the whole process's allocations.
func TestRateRefusalIsCheap(t *testing.T) {
	b := setupRefusal(t)
	// Two largest requests spend the bucket (its burst is twice the body
	// limit) and put the token in the token cache.
	for range 2 {
		req, _ := b.request(httpserver.DefaultMaxBodyBytes, true)
		b.srv.ServeHTTP(&discardWriter{header: http.Header{}}, req)
	}
	require.Equal(t, 2, b.served)

	for name, declared := range map[string]bool{"declared": true, "chunked": false} {
		req, body := b.request(200<<10, declared)
		w := &discardWriter{header: http.Header{}}
		allocs := testing.AllocsPerRun(200, func() {
			w.status = 0
			b.srv.ServeHTTP(w, req)
		})
		t.Logf("%s: %.0f allocations per refusal", name, allocs)
		require.Equal(t, http.StatusTooManyRequests, w.status, name)
		require.Zero(t, body.read, "%s: the refused body was not read", name)
		// What is left: the metrics' status recorder, the content type's
		// parse, the authenticated context and request, and Retry-After
		// (prepared for the waits the default rates give, built for the
		// test's byte a second). Before the token cache a refusal cost 19
		// allocations and a database read.
		require.LessOrEqual(t, allocs, 10.0, name)
	}
	require.Equal(t, 2, b.served, "nothing refused reached the GraphQL handler")

	// An unknown token's body is not read either, with or without a length.
	for _, declared := range []bool{true, false} {
		req, body := b.request(200<<10, declared)
		req.Header.Set("Authorization", "Bearer "+workspace.TokenPrefix+"unknown")
		w := &discardWriter{header: http.Header{}}
		b.srv.ServeHTTP(w, req)
		require.Equal(t, http.StatusUnauthorized, w.status)
		require.Zero(t, body.read)
	}
}
