package workspace_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"go.uber.org/goleak"

	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/workspace"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		svc := workspace.NewService(bdb)

		ws, issued, err := svc.Create(ctx, "  Acme  ")
		token := issued.Token
		require.Positive(t, issued.TokenID)
		require.NoError(t, err)
		require.Positive(t, ws.ID)
		require.Equal(t, "Acme", ws.Name)
		require.True(t, strings.HasPrefix(token, workspace.TokenPrefix))

		// The token is stored only as a hash.
		var stored []string
		require.NoError(t, bdb.NewRaw("SELECT token_hash FROM api_tokens").Scan(ctx, &stored))
		require.Len(t, stored, 1)
		require.NotContains(t, stored[0], strings.TrimPrefix(token, workspace.TokenPrefix))

		got, err := svc.Authenticate(ctx, token)
		require.NoError(t, err)
		require.Equal(t, ws.ID, got.ID)
		require.Equal(t, "Acme", got.Name)

		// A second token works alongside the first; revoking it leaves the first.
		second, err := svc.CreateToken(ctx, ws.ID)
		require.NoError(t, err)
		token2 := second.Token
		require.NotEqual(t, token, token2)
		_, err = svc.Authenticate(ctx, token2)
		require.NoError(t, err)
		require.NoError(t, svc.RevokeToken(ctx, second.TokenID))
		require.NoError(t, svc.RevokeToken(ctx, second.TokenID), "revoking twice is a no-op")
		_, err = svc.Authenticate(ctx, token2)
		require.ErrorIs(t, err, workspace.ErrUnauthenticated)
		_, err = svc.Authenticate(ctx, token)
		require.NoError(t, err)

		var lastUsed int
		require.NoError(t, bdb.NewRaw("SELECT count(*) FROM api_tokens WHERE last_used_at IS NOT NULL").Scan(ctx, &lastUsed))
		require.Equal(t, 2, lastUsed)
	})
}

func TestErrors(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		svc := workspace.NewService(bdb)

		_, _, err := svc.Create(ctx, "   ")
		require.ErrorIs(t, err, workspace.ErrInvalidName)
		_, _, err = svc.Create(ctx, strings.Repeat("é", workspace.MaxNameLength+1))
		require.ErrorIs(t, err, workspace.ErrInvalidName)
		_, _, err = svc.Create(ctx, strings.Repeat("é", workspace.MaxNameLength))
		require.NoError(t, err)

		_, err = svc.CreateToken(ctx, 987654)
		require.ErrorIs(t, err, workspace.ErrNotFound)
		require.ErrorIs(t, svc.RevokeToken(ctx, 987654), workspace.ErrTokenNotFound)
		_, err = svc.Get(ctx, 987654)
		require.ErrorIs(t, err, workspace.ErrNotFound)

		for _, bad := range []string{"", "nope", workspace.TokenPrefix + "unknown"} {
			_, err = svc.Authenticate(ctx, bad)
			require.ErrorIs(t, err, workspace.ErrUnauthenticated, "token %q", bad)
		}
	})
}

func TestAdminTokenMatches(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		admin, presented string
		want             bool
	}{
		"equal":           {"s3cret-admin", "s3cret-admin", true},
		"different":       {"s3cret-admin", "s3cret-admiN", false},
		"prefix":          {"s3cret-admin", "s3cret", false},
		"empty admin":     {"", "", false},
		"empty presented": {"s3cret-admin", "", false},
	}
	for name, tc := range tests {
		require.Equal(t, tc.want, workspace.AdminTokenMatches(tc.admin, tc.presented), name)
	}
}

func TestContext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, ok := workspace.FromContext(ctx)
	require.False(t, ok)
	require.False(t, workspace.IsAdmin(ctx))

	id, ok := workspace.FromContext(workspace.NewContext(ctx, 42))
	require.True(t, ok)
	require.Equal(t, int64(42), id)
	require.False(t, workspace.IsAdmin(workspace.NewContext(ctx, 42)))

	admin := workspace.NewAdminContext(ctx)
	require.True(t, workspace.IsAdmin(admin))
	_, ok = workspace.FromContext(admin)
	require.False(t, ok)
}

func TestAuthenticator(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		svc := workspace.NewService(bdb)
		ws, issued, err := svc.Create(ctx, "Acme")
		require.NoError(t, err)
		token := issued.Token
		auth := workspace.NewAuthenticator(svc, "admin-secret")

		got, err := auth.Authenticate(ctx, token)
		require.NoError(t, err)
		id, ok := workspace.FromContext(got)
		require.True(t, ok)
		require.Equal(t, ws.ID, id)

		got, err = auth.Authenticate(ctx, "admin-secret")
		require.NoError(t, err)
		require.True(t, workspace.IsAdmin(got))

		for _, bad := range []string{"", "admin-secre", workspace.TokenPrefix + "x"} {
			_, err = auth.Authenticate(ctx, bad)
			require.ErrorIs(t, err, workspace.ErrUnauthenticated)
		}

		// No admin token configured: nothing is admin.
		_, err = workspace.NewAuthenticator(svc, "").Authenticate(ctx, "")
		require.ErrorIs(t, err, workspace.ErrUnauthenticated)
	})
}

func TestBearerToken(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"Bearer abc":   "abc",
		"bearer  abc ": "abc",
		"Basic abc":    "",
		"abc":          "",
		"":             "",
		"Bearer":       "",
	}
	for in, want := range tests {
		require.Equal(t, want, workspace.BearerToken(in), "header %q", in)
	}
}
