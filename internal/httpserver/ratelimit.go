package httpserver

import (
	"fmt"
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

// adminKey is the rate-limit key of the admin token (workspace ids are
// positive).
const adminKey = -1

// bodyLimiter holds one token bucket of request-body bytes per
// authenticated workspace (and one for the admin token). Parsing and
// validating a document costs CPU in proportion to its size, whatever the
// document says; the bucket bounds what one token can make the server do
// however many connections it opens (issue 21: 32 clients sending 200 KB
// documents back to back got 32 of every 33 turns of the CPU).
type bodyLimiter struct {
	rate  rate.Limit
	burst int

	mu    sync.Mutex
	byKey map[int64]*rate.Limiter
}

func newBodyLimiter(bytesPerSecond, burst int64) *bodyLimiter {
	return &bodyLimiter{rate: rate.Limit(bytesPerSecond), burst: int(burst), byKey: map[int64]*rate.Limiter{}}
}

// take spends n bytes of key's bucket at now, or, when the bucket holds
// fewer, spends nothing and says how long until it would hold n.
func (l *bodyLimiter) take(key int64, n int, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	lim, ok := l.byKey[key]
	if !ok {
		lim = rate.NewLimiter(l.rate, l.burst)
		l.byKey[key] = lim
	}
	l.mu.Unlock()
	r := lim.ReserveN(now, min(n, l.burst))
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// limitRate refuses a request whose body would take its token over the
// body rate with 429 and a Retry-After. It runs after authenticate (the
// bucket is the token's) and after limitBody (the length is known).
// Websocket upgrades carry no body; their messages are bounded by the
// GraphQL handler's read limit.
func (s *Server) limitRate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength <= 0 {
			next.ServeHTTP(w, r)
			return
		}
		key := int64(adminKey)
		if id, ok := workspace.FromContext(r.Context()); ok {
			key = id
		}
		wait, ok := s.bodies.take(key, int(r.ContentLength), time.Now())
		if !ok {
			secs := int(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			WriteError(w, http.StatusTooManyRequests, "RATE_LIMITED", fmt.Sprintf(
				"this API token sent more than %d KiB of requests a second; retry after %d s", int(s.bodies.rate)>>10, secs))
			return
		}
		next.ServeHTTP(w, r)
	})
}
