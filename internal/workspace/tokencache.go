package workspace

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// TokenCacheTTL is how long a process trusts what it learned about an API
// token from the database: that it belongs to a workspace, or that it is
// unknown or revoked. A token revoked by this process fails at once (the
// revocation empties the cache); one revoked by another process (another
// replica, or `crmsync token revoke`) may keep working here for up to
// this long. docs/security.md says why the window is acceptable.
const TokenCacheTTL = 5 * time.Second

// Bounds of the token cache. A workspace rarely has more than a few live
// tokens, so validTokens covers thousands of active workspaces; the
// unknown-token side has its own bound so that a flood of random tokens
// evicts only other random tokens, never a valid one.
const (
	validTokens   = 4096
	unknownTokens = 4096
)

// tokenKey is the SHA-256 of a token: the cache never holds a token in
// clear, and the key costs no allocation.
type tokenKey [sha256.Size]byte

// tokenAnswer is what the cache knows about a token.
type tokenAnswer int

const (
	tokenMiss    tokenAnswer = iota // not cached, or expired: ask the database
	tokenValid                      // a live token of the returned workspace
	tokenUnknown                    // unknown or revoked
)

// tokenCache remembers for TokenCacheTTL which workspace a token hash
// belongs to, and which hashes are no valid token, so that authenticating
// a request (tens of thousands a second under a flood, issue 21) does not
// cost a database round trip each time. Both sides are least-recently-used
// maps of fixed size: memory stays bounded whatever tokens are presented.
//
// Revocation bumps a generation and empties the valid side; a lookup that
// read the database before the revocation committed stores its answer only
// if the generation is unchanged, so a revoked token is never cached as
// valid after its revocation in this process.
type tokenCache struct {
	ttl time.Duration

	mu      sync.Mutex
	gen     uint64
	valid   *simplelru.LRU[tokenKey, validToken]
	unknown *simplelru.LRU[tokenKey, time.Time] // expiry
}

type validToken struct {
	workspaceID int64
	expires     time.Time
}

func newTokenCache(ttl time.Duration, validSize, unknownSize int) *tokenCache {
	// NewLRU fails only for a size below 1.
	valid, _ := simplelru.NewLRU[tokenKey, validToken](max(validSize, 1), nil)
	unknown, _ := simplelru.NewLRU[tokenKey, time.Time](max(unknownSize, 1), nil)
	return &tokenCache{ttl: ttl, valid: valid, unknown: unknown}
}

// get says what the cache knows about key at now, and the generation to
// pass to putValid after asking the database on a miss.
func (c *tokenCache) get(key tokenKey, now time.Time) (workspaceID int64, answer tokenAnswer, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.valid.Get(key); ok {
		if now.Before(v.expires) {
			return v.workspaceID, tokenValid, c.gen
		}
		c.valid.Remove(key)
	}
	if expires, ok := c.unknown.Get(key); ok {
		if now.Before(expires) {
			return 0, tokenUnknown, c.gen
		}
		c.unknown.Remove(key)
	}
	return 0, tokenMiss, c.gen
}

// putValid remembers that key is a token of workspaceID, read from the
// database at generation gen; it is dropped if a revocation came since.
func (c *tokenCache) putValid(key tokenKey, workspaceID int64, gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	c.valid.Add(key, validToken{workspaceID: workspaceID, expires: now.Add(c.ttl)})
}

// putUnknown remembers that key is no valid token. No revocation can make
// that wrong, and a new token is never presented before it is created.
func (c *tokenCache) putUnknown(key tokenKey, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unknown.Add(key, now.Add(c.ttl))
}

// forgetValid forgets every valid token: a token was revoked. Revocations
// are rare, so emptying the valid side (each live token costs one database
// lookup again) is simpler than finding the revoked one.
func (c *tokenCache) forgetValid() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.valid.Purge()
}

// len returns the number of valid and unknown tokens held, expired or not.
func (c *tokenCache) len() (valid, unknown int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.valid.Len(), c.unknown.Len()
}
