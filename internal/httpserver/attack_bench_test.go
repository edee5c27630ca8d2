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
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmsync/crmsync/graph"
	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/httpserver"
	"github.com/crmsync/crmsync/internal/workspace"
)

// BenchmarkNormalQueryUnderAttack serves the real stack in front of the
// GraphQL handler (body limit, authentication, the per-token body rate)
// and times one workspace's ordinary query alone and while 32 clients
// with another workspace's token send 200 KB documents that repeat an
// unknown directive, back to back (issue 21). It reports the query's p50
// and p99, the attackers' requests answered and refused, and the peak
// RSS. graph's BenchmarkNormalQuery is the same attack on the bare
// GraphQL handler, without the rate.
func BenchmarkNormalQueryUnderAttack(b *testing.B) {
	for _, n := range []int{0, 32} {
		b.Run("attackers="+strconv.Itoa(n), func(b *testing.B) { underAttack(b, n, 0) })
	}
	// The same attack with the rate out of reach, for comparison.
	b.Run("attackers=32/no-rate", func(b *testing.B) { underAttack(b, 32, 1<<40) })
}

func underAttack(b *testing.B, attackers int, bodyRate int64) {
	ctx := context.Background()
	bdb := dbtest.Open(b, db.SQLite)
	svc := workspace.NewService(bdb)
	logger := slog.New(slog.DiscardHandler)
	srv, err := httpserver.New(httpserver.Deps{
		Logger: logger, DB: bdb,
		GraphQL:      graph.NewHandler(&graph.Resolver{Logger: logger}, graph.HandlerOptions{Logger: logger}),
		Authenticate: workspace.NewAuthenticator(svc, "").Authenticate,
		Registry:     prometheus.NewRegistry(),
		BodyRate:     bodyRate,
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
	for doc.Len() < 200<<10 {
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
