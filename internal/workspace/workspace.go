// Package workspace manages workspaces (the tenants of crmsync) and their API
// tokens, authenticates requests, and carries the authenticated workspace in
// a context.Context.
//
// A token is shown once, when it is created, and stored only as its SHA-256
// hash; it cannot be recovered, only revoked and replaced. Tokens are random
// 32-byte values, so a plain (unsalted) hash is enough to make a stolen
// database useless for authentication.
package workspace

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"
	"golang.org/x/sync/singleflight"
)

// TokenPrefix starts every API token, so a leaked token is recognizable.
const TokenPrefix = "crms_"

// MaxNameLength is the longest workspace name, in characters.
const MaxNameLength = 200

// Error is a workspace error that is safe to show to API clients. Its Code
// is the GraphQL extension code.
type Error struct {
	code, msg string
}

func (e *Error) Error() string { return e.msg }

// Code is the machine-readable code of the error.
func (e *Error) Code() string { return e.code }

// UserFacing marks the error as safe to show to API clients.
func (*Error) UserFacing() {}

// Errors returned by the Service.
var (
	ErrNotFound        = &Error{"NOT_FOUND", "workspace not found"}
	ErrTokenNotFound   = &Error{"NOT_FOUND", "API token not found"}
	ErrUnauthenticated = &Error{"UNAUTHENTICATED", "missing, unknown or revoked API token"}
	ErrInvalidName     = &Error{"BAD_USER_INPUT", fmt.Sprintf("workspace name must be 1 to %d characters", MaxNameLength)}
)

// Workspace is one tenant.
type Workspace struct {
	bun.BaseModel `bun:"table:workspaces"`

	ID        int64     `bun:"id,pk,autoincrement"`
	Name      string    `bun:"name,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// Token is an API token's record; the token itself is never stored.
type Token struct {
	bun.BaseModel `bun:"table:api_tokens"`

	ID          int64        `bun:"id,pk,autoincrement"`
	WorkspaceID int64        `bun:"workspace_id,notnull"`
	TokenHash   string       `bun:"token_hash,notnull"`
	CreatedAt   time.Time    `bun:"created_at,notnull"`
	RevokedAt   bun.NullTime `bun:"revoked_at"`
	LastUsedAt  bun.NullTime `bun:"last_used_at"`
}

// Issued is a newly created API token: its id (to revoke it) and the token
// itself, available only now.
type Issued struct {
	TokenID int64
	Token   string
}

// Service creates workspaces and tokens and authenticates tokens. It
// caches what it learns about tokens for TokenCacheTTL (see tokenCache):
// whatever revokes a token or deletes a workspace in this process must go
// through the Service, which forgets the cached tokens when it does.
type Service struct {
	db  *bun.DB
	now func() time.Time

	tokens *tokenCache
	// lookups makes concurrent requests with the same uncached token share
	// one database read: a flood with one token would otherwise send every
	// request in flight to the database each time its entry expires.
	lookups singleflight.Group
}

// NewService returns a Service on db.
func NewService(db *bun.DB) *Service {
	return &Service{
		db:     db,
		now:    func() time.Time { return time.Now().UTC() },
		tokens: newTokenCache(TokenCacheTTL, validTokens, unknownTokens),
	}
}

// Create creates a workspace and its first API token, returned in clear
// (the only time it is available).
func (s *Service) Create(ctx context.Context, name string) (*Workspace, Issued, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > MaxNameLength {
		return nil, Issued{}, ErrInvalidName
	}
	ws := &Workspace{Name: name, CreatedAt: s.now()}
	var issued Issued
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(ws).Returning("id").Exec(ctx); err != nil {
			return err
		}
		var err error
		issued, err = s.insertToken(ctx, tx, ws.ID)
		return err
	})
	if err != nil {
		return nil, Issued{}, fmt.Errorf("create workspace %q: %w", name, err)
	}
	return ws, issued, nil
}

// Get returns the workspace with id, or ErrNotFound.
func (s *Service) Get(ctx context.Context, id int64) (*Workspace, error) {
	ws := new(Workspace)
	err := s.db.NewSelect().Model(ws).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get workspace %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get workspace %d: %w", id, err)
	}
	return ws, nil
}

// List returns every workspace, oldest first.
func (s *Service) List(ctx context.Context) ([]*Workspace, error) {
	var out []*Workspace
	if err := s.db.NewSelect().Model(&out).OrderExpr("id ASC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list workspaces: %w", err)
	}
	return out, nil
}

// CreateToken creates a new API token for the workspace and returns it in
// clear.
func (s *Service) CreateToken(ctx context.Context, workspaceID int64) (Issued, error) {
	var issued Issued
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		n, err := tx.NewSelect().Model((*Workspace)(nil)).Where("id = ?", workspaceID).Count(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		issued, err = s.insertToken(ctx, tx, workspaceID)
		return err
	})
	if err != nil {
		return Issued{}, fmt.Errorf("create token for workspace %d: %w", workspaceID, err)
	}
	return issued, nil
}

func (s *Service) insertToken(ctx context.Context, tx bun.Tx, workspaceID int64) (Issued, error) {
	token, err := newToken()
	if err != nil {
		return Issued{}, err
	}
	rec := &Token{WorkspaceID: workspaceID, TokenHash: hashToken(token), CreatedAt: s.now()}
	if _, err := tx.NewInsert().Model(rec).Returning("id").Exec(ctx); err != nil {
		return Issued{}, err
	}
	return Issued{TokenID: rec.ID, Token: token}, nil
}

// RevokeToken revokes the token with id. Revoking a revoked token is a
// no-op; an unknown id is ErrTokenNotFound.
func (s *Service) RevokeToken(ctx context.Context, tokenID int64) error {
	res, err := s.db.NewUpdate().Model((*Token)(nil)).
		Set("revoked_at = ?", s.now()).
		Where("id = ?", tokenID).
		Where("revoked_at IS NULL").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("revoke token %d: %w", tokenID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		// Revoked (or possibly so): the token fails from now on in this
		// process. Other processes stop trusting it within TokenCacheTTL.
		s.tokens.forgetValid()
		return err
	}
	exists, err := s.db.NewSelect().Model((*Token)(nil)).Where("id = ?", tokenID).Exists(ctx)
	if err != nil {
		return fmt.Errorf("revoke token %d: %w", tokenID, err)
	}
	if !exists {
		return fmt.Errorf("revoke token %d: %w", tokenID, ErrTokenNotFound)
	}
	return nil
}

// lastUsedResolution bounds how often a token's last_used_at is written.
const lastUsedResolution = time.Minute

// tokenLookupTimeout bounds the database read of an uncached token.
const tokenLookupTimeout = 10 * time.Second

// tokenLength is the length of every token newToken makes.
var tokenLength = len(TokenPrefix) + base64.RawURLEncoding.EncodedLen(32)

// Authenticate returns the workspace of a valid (known, not revoked) token,
// or ErrUnauthenticated.
func (s *Service) Authenticate(ctx context.Context, token string) (*Workspace, error) {
	id, err := s.workspaceOf(ctx, token)
	if err != nil {
		return nil, err
	}
	ws, err := s.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("authenticate token: %w", err)
	}
	return ws, nil
}

// workspaceOf returns the workspace id of a valid token, or
// ErrUnauthenticated, from the token cache when it knows the token and
// from the database otherwise. A token of the wrong shape is refused
// without either.
func (s *Service) workspaceOf(ctx context.Context, token string) (int64, error) {
	if len(token) != tokenLength || !strings.HasPrefix(token, TokenPrefix) {
		return 0, ErrUnauthenticated
	}
	var buf [64]byte // a token fits: hashing it allocates nothing
	key := tokenKey(sha256.Sum256(append(buf[:0], token...)))
	if id, answer, _ := s.tokens.get(key, s.now()); answer != tokenMiss {
		return cached(id, answer)
	}
	// The read is shared by every request waiting for it, so one client
	// going away does not fail the others; it has its own deadline.
	v, err, _ := s.lookups.Do(string(key[:]), func() (any, error) {
		// A read that finished just before this one began has filled
		// the cache.
		id, answer, gen := s.tokens.get(key, s.now())
		if answer != tokenMiss {
			return cached(id, answer)
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tokenLookupTimeout)
		defer cancel()
		return s.lookupToken(ctx, key, gen)
	})
	if err != nil {
		return 0, err
	}
	return v.(int64), nil
}

// cached turns a token cache hit into workspaceOf's answer.
func cached(id int64, answer tokenAnswer) (int64, error) {
	if answer == tokenValid {
		return id, nil
	}
	return 0, ErrUnauthenticated
}

// lookupToken reads the token with hash key from the database, records
// its use, and caches the answer.
func (s *Service) lookupToken(ctx context.Context, key tokenKey, gen uint64) (int64, error) {
	rec := new(Token)
	err := s.db.NewSelect().Model(rec).Where("token_hash = ?", hex.EncodeToString(key[:])).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !rec.RevokedAt.IsZero()) {
		s.tokens.putUnknown(key, s.now())
		return 0, ErrUnauthenticated
	}
	if err != nil {
		return 0, fmt.Errorf("authenticate token: %w", err)
	}
	now := s.now()
	if rec.LastUsedAt.IsZero() || now.Sub(rec.LastUsedAt.Time) >= lastUsedResolution {
		_, err := s.db.NewUpdate().Model((*Token)(nil)).Set("last_used_at = ?", now).Where("id = ?", rec.ID).Exec(ctx)
		if err != nil {
			return 0, fmt.Errorf("authenticate token %d: record use: %w", rec.ID, err)
		}
	}
	// The workspace exists: api_tokens.workspace_id references it, and
	// deleting it deletes its tokens.
	s.tokens.putValid(key, rec.WorkspaceID, gen, now)
	return rec.WorkspaceID, nil
}

// newToken returns a fresh random token: the prefix and 32 random bytes in
// unpadded base64url.
func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// AdminTokenMatches reports whether presented is the admin token, in
// constant time. An empty admin token (admin operations disabled) matches
// nothing.
func AdminTokenMatches(adminToken, presented string) bool {
	if adminToken == "" {
		return false
	}
	a := sha256.Sum256([]byte(adminToken))
	p := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(a[:], p[:]) == 1
}

type ctxKey struct{}

// principal is who made a request: a workspace, the admin, or both (the
// admin token carries no workspace).
type principal struct {
	WorkspaceID int64 // 0 for the admin
	Admin       bool
}

// NewContext returns ctx carrying the authenticated workspace id.
func NewContext(ctx context.Context, workspaceID int64) context.Context {
	return context.WithValue(ctx, ctxKey{}, principal{WorkspaceID: workspaceID})
}

// NewAdminContext returns ctx carrying the admin principal.
func NewAdminContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, ctxKey{}, principal{Admin: true})
}

// FromContext returns the authenticated workspace id of ctx; ok is false
// when the request is not authenticated as a workspace (no token, or the
// admin token).
func FromContext(ctx context.Context) (workspaceID int64, ok bool) {
	p, _ := ctx.Value(ctxKey{}).(principal)
	return p.WorkspaceID, p.WorkspaceID != 0
}

// IsAdmin reports whether ctx carries the admin principal.
func IsAdmin(ctx context.Context) bool {
	p, _ := ctx.Value(ctxKey{}).(principal)
	return p.Admin
}

// Authenticator turns a bearer token into an authenticated context: the
// admin token gives the admin principal, a workspace token its workspace.
type Authenticator struct {
	svc        *Service
	adminToken string
}

// NewAuthenticator returns an Authenticator. An empty adminToken disables
// admin operations.
func NewAuthenticator(svc *Service, adminToken string) *Authenticator {
	return &Authenticator{svc: svc, adminToken: adminToken}
}

// Authenticate returns ctx carrying the principal of token, or
// ErrUnauthenticated (wrapped with the cause when it is not the token's
// fault, for example an unreachable database).
func (a *Authenticator) Authenticate(ctx context.Context, token string) (context.Context, error) {
	if token == "" {
		return ctx, ErrUnauthenticated
	}
	if AdminTokenMatches(a.adminToken, token) {
		return NewAdminContext(ctx), nil
	}
	id, err := a.svc.workspaceOf(ctx, token)
	if err != nil {
		return ctx, err
	}
	return NewContext(ctx, id), nil
}

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header value, or "".
func BearerToken(authorization string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}
