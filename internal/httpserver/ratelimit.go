package httpserver

import (
	"bytes"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/crmsync/crmsync/internal/workspace"
)

// DefaultBodyRate is how many request-body bytes one API token may send to
// /graphql per second, sustained (8 MiB/s: about 40 recordChanges batches
// of 1,000 changes a second, several times what one workspace's ingest
// commits). The burst is twice the body limit, so a largest request always
// fits an idle bucket.
const DefaultBodyRate = 8 << 20

// DefaultRequestRate is how many /graphql requests one API token may send
// per second, sustained; the burst is twice that. Conversion may report a
// change per call (one form submission or click), and ingest aims at 5,000
// changes a second per workspace (docs/benchmarks.md), so the default
// refuses none of that; it bounds floods of small documents (each within
// the byte rate) beyond it. Servers whose clients batch can set it lower.
const DefaultRequestRate = 5000

// adminKey is the rate-limit key of the admin token (workspace ids are
// positive).
const adminKey = -1

// buckets holds one token bucket per authenticated workspace (and one for
// the admin token). Parsing and validating a document costs CPU in
// proportion to its size, whatever the document says, and every operation
// costs some work however small its document; the buckets bound what one
// token can make the server do however many connections it opens (issue
// 21: 32 clients sending 200 KB documents back to back got 32 of every 33
// turns of the CPU).
type buckets struct {
	rate  rate.Limit
	burst int

	mu    sync.Mutex
	byKey map[int64]*rate.Limiter
}

func newBuckets(perSecond, burst int64) *buckets {
	return &buckets{rate: rate.Limit(perSecond), burst: int(burst), byKey: map[int64]*rate.Limiter{}}
}

func (b *buckets) limiter(key int64) *rate.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	lim, ok := b.byKey[key]
	if !ok {
		lim = rate.NewLimiter(b.rate, b.burst)
		b.byKey[key] = lim
	}
	return lim
}

// take spends n of key's bucket at now (n is capped at the burst), or,
// when the bucket holds fewer, spends nothing and says how long until it
// would hold n. It does not allocate once key has its bucket.
func (b *buckets) take(key int64, n int, now time.Time) (time.Duration, bool) {
	n = min(n, b.burst)
	lim := b.limiter(key)
	if lim.AllowN(now, n) {
		return 0, true
	}
	return b.wait(lim, n, now), false
}

// held returns how many whole units key's bucket holds at now, and, when
// none, how long until it holds one.
func (b *buckets) held(key int64, now time.Time) (int64, time.Duration) {
	lim := b.limiter(key)
	if n := int64(lim.TokensAt(now)); n >= 1 {
		return n, 0
	}
	return 0, b.wait(lim, 1, now)
}

func (b *buckets) wait(lim *rate.Limiter, n int, now time.Time) time.Duration {
	missing := float64(n) - lim.TokensAt(now)
	return time.Duration(missing / float64(b.rate) * float64(time.Second))
}

// limitRate refuses a request that would take its token over the request
// rate or the body rate with 429 and a Retry-After. It runs after
// authenticate (the buckets are the token's) and after limitBody (a
// declared length over the limit is refused already), and refuses before
// reading the body: a declared length is checked as is; a body without
// one is refused unread when the token's byte bucket is empty, and
// otherwise read here, no further than the bucket reaches (nor the body
// limit), and then checked. (net/http itself may still discard up to
// 256 KiB of a refused body afterwards to keep the connection, without
// parsing it.) Websocket upgrades and CORS preflights carry no principal
// and pass; websocket messages are bounded by the GraphQL handler's read
// limit.
func (s *Server) limitRate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, ok := rateKey(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		now := time.Now()
		if wait, ok := s.requests.take(key, 1, now); !ok {
			s.tooManyRequests(w, wait)
			return
		}
		if r.ContentLength < 0 {
			held, wait := s.bodies.held(key, now)
			if held < 1 {
				s.tooManyRequests(w, wait)
				return
			}
			// Read no more than the bucket could pay for: one byte more
			// is refused below.
			if !s.readBody(w, r, min(held, s.deps.MaxBodyBytes)) {
				return
			}
		}
		if r.ContentLength > 0 {
			if wait, ok := s.bodies.take(key, int(r.ContentLength), now); !ok {
				s.tooManyRequests(w, wait)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// rateKey is the bucket key of r's principal; ok is false for a request
// authenticate let through without one.
func rateKey(r *http.Request) (key int64, ok bool) {
	if id, ok := workspace.FromContext(r.Context()); ok {
		return id, true
	}
	return adminKey, workspace.IsAdmin(r.Context())
}

// readBody reads a body of unknown length, at most upTo+1 bytes, and
// makes it r's body with its length; over the body limit it answers 413
// and returns false. (Over upTo, the caller's rate check refuses it.)
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, upTo int64) bool {
	limit := s.deps.MaxBodyBytes
	body, err := io.ReadAll(io.LimitReader(r.Body, upTo+1))
	if err != nil {
		WriteError(w, http.StatusBadRequest, "BAD_REQUEST", "could not read the request body")
		return false
	}
	if int64(len(body)) > limit {
		s.tooLarge(w)
		return false
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	return true
}

// tooManyRequests answers 429 RATE_LIMITED with the wait in Retry-After,
// in whole seconds (at least 1). A flood is mostly refusals, so each
// costs as little as possible: the body is prepared once, and so are the
// Retry-After values of the waits the default rates give.
func (s *Server) tooManyRequests(w http.ResponseWriter, wait time.Duration) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Retry-After"] = s.refusals.retryAfter(secs)
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(s.refusals.body)
}

var jsonContentType = []string{"application/json"}

// refusals is the prepared 429 answer.
type refusals struct {
	body    []byte
	headers [][]string // Retry-After values by seconds
}

// maxPreparedRetry is the longest prepared Retry-After. The burst over the
// rate bounds the wait: 1 s for the request rate, 4 s for the default body
// rate.
const maxPreparedRetry = 60

func newRefusals(bodyRate, requestRate int64) *refusals {
	r := &refusals{body: errorBody("RATE_LIMITED", "this API token sent more than "+
		strconv.FormatInt(requestRate, 10)+" requests or "+strconv.FormatInt(bodyRate>>10, 10)+
		" KiB of requests a second; retry after the seconds in the Retry-After header")}
	for secs := range maxPreparedRetry + 1 {
		r.headers = append(r.headers, []string{strconv.Itoa(secs)})
	}
	return r
}

func (r *refusals) retryAfter(secs int) []string {
	if secs < len(r.headers) {
		return r.headers[secs]
	}
	return []string{strconv.Itoa(secs)}
}
