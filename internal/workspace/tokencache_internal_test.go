package workspace

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
)

// tokenReads counts the queries that read api_tokens.
type tokenReads struct{ n atomic.Int64 }

func (h *tokenReads) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (h *tokenReads) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	if strings.HasPrefix(e.Query, "SELECT") && strings.Contains(e.Query, "api_tokens") {
		h.n.Add(1)
	}
}

type cacheBundle struct {
	svc   *Service
	auth  *Authenticator
	reads *tokenReads
	// clock is the Service's time; advance moves it.
	mu    sync.Mutex
	clock time.Time
}

func (b *cacheBundle) advance(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clock = b.clock.Add(d)
}

// setupCache returns a Service on a fresh database, with a clock that
// moves only when told and the given cache bounds.
func setupCache(t *testing.T, bdb *bun.DB, validSize, unknownSize int) *cacheBundle {
	t.Helper()
	b := &cacheBundle{reads: &tokenReads{}, clock: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	b.svc = NewService(bdb.WithQueryHook(b.reads))
	b.svc.now = func() time.Time {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.clock
	}
	b.svc.tokens = newTokenCache(TokenCacheTTL, validSize, unknownSize)
	b.auth = NewAuthenticator(b.svc, "admin-secret")
	return b
}

// authenticated returns the workspace token authenticates as, failing the
// test if it does not.
func (b *cacheBundle) authenticated(t *testing.T, token string) int64 {
	t.Helper()
	ctx, err := b.auth.Authenticate(context.Background(), token)
	require.NoError(t, err)
	id, ok := FromContext(ctx)
	require.True(t, ok)
	return id
}

// unknownToken is a token of the right shape that was never issued.
func unknownToken(t *testing.T) string {
	t.Helper()
	token, err := newToken()
	require.NoError(t, err)
	return token
}

// TestTokenCache: a valid token is read from the database once per
// TokenCacheTTL, an unknown one too; a revocation in this process takes
// effect at once, also for a lookup that was under way when it happened.
func TestTokenCache(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setupCache(t, bdb, validTokens, unknownTokens)
		ws, issued, err := b.svc.Create(ctx, "Acme")
		require.NoError(t, err)

		// Hits: one read for many requests.
		for range 50 {
			require.Equal(t, ws.ID, b.authenticated(t, issued.Token))
		}
		require.Equal(t, int64(1), b.reads.n.Load())

		// The entry expires after the TTL: one more read.
		b.advance(TokenCacheTTL - time.Millisecond)
		b.authenticated(t, issued.Token)
		require.Equal(t, int64(1), b.reads.n.Load(), "still fresh just before the TTL")
		b.advance(time.Millisecond)
		b.authenticated(t, issued.Token)
		b.authenticated(t, issued.Token)
		require.Equal(t, int64(2), b.reads.n.Load(), "read again once, at the TTL")

		// Unknown tokens are cached as unknown for the TTL too.
		bad := unknownToken(t)
		for range 20 {
			_, err := b.auth.Authenticate(ctx, bad)
			require.ErrorIs(t, err, ErrUnauthenticated)
		}
		require.Equal(t, int64(3), b.reads.n.Load())
		b.advance(TokenCacheTTL)
		_, err = b.auth.Authenticate(ctx, bad)
		require.ErrorIs(t, err, ErrUnauthenticated)
		require.Equal(t, int64(4), b.reads.n.Load())

		// Tokens of the wrong shape, and the admin token, never reach the
		// database or the cache.
		for _, token := range []string{"", "nope", TokenPrefix + "short", issued.Token + "x", "admin-secret"} {
			_, _ = b.auth.Authenticate(ctx, token)
		}
		require.Equal(t, int64(4), b.reads.n.Load())

		// Revocation in this process: refused at once, with a fresh
		// cache entry for the token (no time has passed).
		second, err := b.svc.CreateToken(ctx, ws.ID)
		require.NoError(t, err)
		b.authenticated(t, second.Token)
		b.authenticated(t, second.Token)
		require.NoError(t, b.svc.RevokeToken(ctx, second.TokenID))
		_, err = b.auth.Authenticate(ctx, second.Token)
		require.ErrorIs(t, err, ErrUnauthenticated)
		_, err = b.svc.Authenticate(ctx, second.Token)
		require.ErrorIs(t, err, ErrUnauthenticated)
		// The first token was forgotten too, and is still valid.
		require.Equal(t, ws.ID, b.authenticated(t, issued.Token))
	})
}

// TestTokenCacheRevocationRace: a lookup that read the token before its
// revocation committed does not cache it as valid afterwards.
func TestTokenCacheRevocationRace(t *testing.T) {
	t.Parallel()
	c := newTokenCache(time.Minute, 8, 8)
	now := time.Now()
	key := tokenKey{1}
	_, answer, gen := c.get(key, now)
	require.Equal(t, tokenMiss, answer)
	// The database said valid, then the token was revoked before the
	// answer was stored.
	c.forgetValid()
	c.putValid(key, 7, gen, now)
	_, answer, gen = c.get(key, now)
	require.Equal(t, tokenMiss, answer, "the stale answer was dropped")
	c.putValid(key, 7, gen, now)
	id, answer, _ := c.get(key, now)
	require.Equal(t, tokenValid, answer)
	require.Equal(t, int64(7), id)
}

// TestUnknownTokensBounded: a flood of random tokens holds at most the
// unknown side's bound in memory and evicts no valid token.
func TestUnknownTokensBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupCache(t, dbtest.Open(t, db.SQLite), 4, 16)
	ws, issued, err := b.svc.Create(ctx, "Acme")
	require.NoError(t, err)
	b.authenticated(t, issued.Token)

	for range 200 {
		_, err := b.auth.Authenticate(ctx, unknownToken(t))
		require.ErrorIs(t, err, ErrUnauthenticated)
	}
	valid, unknown := b.svc.tokens.len()
	require.Equal(t, 1, valid)
	require.Equal(t, 16, unknown)
	reads := b.reads.n.Load()
	require.Equal(t, ws.ID, b.authenticated(t, issued.Token))
	require.Equal(t, reads, b.reads.n.Load(), "the valid token is still cached")

	// The valid side is bounded the same way.
	for range 10 {
		extra, err := b.svc.CreateToken(ctx, ws.ID)
		require.NoError(t, err)
		b.authenticated(t, extra.Token)
	}
	valid, _ = b.svc.tokens.len()
	require.Equal(t, 4, valid)
}

// TestTokenLookupShared: concurrent requests with one uncached token share
// one database read.
func TestTokenLookupShared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupCache(t, dbtest.Open(t, db.SQLite), validTokens, unknownTokens)
	ws, issued, err := b.svc.Create(ctx, "Acme")
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			id, err := b.svc.workspaceOf(ctx, issued.Token)
			if err == nil && id != ws.ID {
				t.Errorf("workspace %d, want %d", id, ws.ID)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// Readers that arrive during the first read share it; those after it
	// find its answer in the cache.
	require.Equal(t, int64(1), b.reads.n.Load())
}
