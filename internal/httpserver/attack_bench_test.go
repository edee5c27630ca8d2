package httpserver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/graph"
	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/httpserver"
	"github.com/crmsync/crmsync/internal/workspace"
)

// BenchmarkNormalQueryUnderAttack serves the real stack in front of the
// GraphQL handler (body limit, authentication with its token cache, the
// per-token rates) and times one workspace's ordinary query alone and
// while 32 clients with another workspace's token send documents that
// repeat an unknown directive, back to back (issue 21): 200 KB ones, and
// small ones (100 directives, within every limit, so each is validated
// and answered with 50 errors). It reports the query's p50 and p99, the
// attackers' requests answered and refused, the reads of api_tokens and
// the peak RSS (of the whole process so far: it only grows from one
// sub-benchmark to the next). graph's BenchmarkNormalQuery is the same
// attack on the bare GraphQL handler, without the rates.
func BenchmarkNormalQueryUnderAttack(b *testing.B) {
	const large, small = 200 << 10, 0
	for _, n := range []int{0, 32} {
		b.Run("attackers="+strconv.Itoa(n), func(b *testing.B) { underAttack(b, n, large, 0, 0) })
	}
	// The same attack with the rates out of reach, for comparison.
	b.Run("attackers=32/no-rate", func(b *testing.B) { underAttack(b, 32, large, 1<<40, 1<<30) })
	b.Run("attackers=32/small", func(b *testing.B) { underAttack(b, 32, small, 0, 0) })
	// A request rate for clients that batch: the default (5,000 a second)
	// is above what 32 clients reach on 2 cores.
	b.Run("attackers=32/small/count-rate=500", func(b *testing.B) { underAttack(b, 32, small, 0, 500) })
}

// tokenReads counts the queries that read api_tokens.
type tokenReads struct{ n atomic.Int64 }

func (h *tokenReads) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (h *tokenReads) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	if strings.HasPrefix(e.Query, "SELECT") && strings.Contains(e.Query, "api_tokens") {
		h.n.Add(1)
	}
}

// underAttack runs the benchmark with attack documents of about size
// bytes (0: 100 directives) and the given rates (0: the defaults).
func underAttack(b *testing.B, attackers, size int, bodyRate, requestRate int64) {
	ctx := context.Background()
	reads := &tokenReads{}
	bdb := dbtest.Open(b, db.SQLite).WithQueryHook(reads)
	svc := workspace.NewService(bdb)
	logger := slog.New(slog.DiscardHandler)
	srv, err := httpserver.New(httpserver.Deps{
		Logger: logger, DB: bdb,
		GraphQL:      graph.NewHandler(&graph.Resolver{Logger: logger}, graph.HandlerOptions{Logger: logger}),
		Authenticate: workspace.NewAuthenticator(svc, "").Authenticate,
		Registry:     prometheus.NewRegistry(),
		BodyRate:     bodyRate,
		RequestRate:  requestRate,
	})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	_, user, err := svc.Create(ctx, "User")
	if err != nil {
		b.Fatal(err)
	}
	_, attacker, err := svc.Create(ctx, "Attacker")
	if err != nil {
		b.Fatal(err)
	}
	var doc strings.Builder
	doc.WriteString("{ __typename")
	for i := 0; doc.Len() < size || size == 0 && i < 100; i++ {
		doc.WriteString(" @x")
	}
	doc.WriteString(" }")
	attack, _ := json.Marshal(map[string]any{"query": doc.String()})

	send := func(client *http.Client, token string, body []byte) (int, error) {
		req, err := http.NewRequest(http.MethodPost, ts.URL+"/graphql", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	answered, refused := 0, 0
	for range attackers {
		wg.Go(func() {
			client := &http.Client{Timeout: time.Minute}
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, err := send(client, attacker.Token, attack)
				mu.Lock()
				switch {
				case err != nil:
				case code == http.StatusTooManyRequests:
					refused++
				default:
					answered++
				}
				mu.Unlock()
			}
		})
	}
	normal := []byte(`{"query":"{ __typename }"}`)
	client := &http.Client{Timeout: time.Minute}
	var latencies []time.Duration
	for b.Loop() {
		start := time.Now()
		code, err := send(client, user.Token, normal)
		if err != nil || code != http.StatusOK {
			b.Fatalf("normal query: %d %v", code, err)
		}
		latencies = append(latencies, time.Since(start))
	}
	close(stop)
	wg.Wait()
	slices.Sort(latencies)
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(answered), "attacks-answered")
	b.ReportMetric(float64(refused), "attacks-refused")
	b.ReportMetric(float64(reads.n.Load()), "token-reads")
	b.ReportMetric(peakRSSMiB(), "peak-rss-MiB")
}

// peakRSSMiB is the process's peak resident set (VmHWM), 0 where /proc is
// not available.
func peakRSSMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return float64(kb) / 1024
		}
	}
	return 0
}
