package graph_test

import (
	"bufio"
	"bytes"
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

	"github.com/crmsync/crmsync/graph"
)

// attackDocs are the validation-error amplification documents of issue 21,
// each about size bytes: one thing gqlparser reports an error for,
// repeated.
func attackDocs(size int) map[string]string {
	fill := func(prefix, unit, suffix string) string {
		var sb strings.Builder
		sb.WriteString(prefix)
		for sb.Len()+len(unit)+len(suffix) < size {
			sb.WriteString(unit)
		}
		sb.WriteString(suffix)
		return sb.String()
	}
	return map[string]string{
		"unknown-directive": fill("{ __typename", " @x", " }"),
		"unknown-args":      fill("{ __typename(", " a:1", ") }"),
		"unused-variables":  fill("query(", " $v:Int", ") { __typename }"),
		"include-spam":      fill("{ __typename", " @include(if:true)", " }"),
	}
}

// benchHandler is the GraphQL handler as served (graph.NewHandler), with
// no resolver work: every request here is answered by parsing,
// validation and __typename.
func benchHandler() http.Handler {
	return graph.NewHandler(&graph.Resolver{Logger: slog.New(slog.DiscardHandler)}, graph.HandlerOptions{
		Logger: slog.New(slog.DiscardHandler), Introspection: true,
	})
}

func post(h http.Handler, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// BenchmarkAmplification answers the worst 2 MB document of each kind
// (just under the body limit); response-bytes is the size of the answer.
func BenchmarkAmplification(b *testing.B) {
	h := benchHandler()
	for name, doc := range attackDocs(2<<20 - 1024) {
		body, _ := json.Marshal(map[string]any{"query": doc})
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var n int
			for b.Loop() {
				n = post(h, body).Body.Len()
			}
			b.ReportMetric(float64(n), "response-bytes")
		})
	}
}

// BenchmarkNormalQuery times an ordinary query alone and while 32 clients
// send 200 KB attack documents back to back to the same server (over
// loopback HTTP), and reports its p50 and p99 latency and the process's
// peak RSS. Bounded and local: the attackers stop with the benchmark.
func BenchmarkNormalQuery(b *testing.B) {
	for _, n := range []int{0, 32} {
		b.Run("attackers="+strconv.Itoa(n), func(b *testing.B) { normalQueryUnderAttack(b, n) })
	}
}

func normalQueryUnderAttack(b *testing.B, attackers int) {
	srv := httptest.NewServer(benchHandler())
	defer srv.Close()
	var attacks [][]byte
	for _, doc := range attackDocs(200 << 10) {
		body, _ := json.Marshal(map[string]any{"query": doc})
		attacks = append(attacks, body)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range attackers {
		wg.Go(func() {
			client := &http.Client{Timeout: time.Minute}
			for j := i; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Post(srv.URL, "application/json", bytes.NewReader(attacks[j%len(attacks)]))
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
			}
		})
	}
	normal := []byte(`{"query":"{ __typename }"}`)
	var latencies []time.Duration
	for b.Loop() {
		start := time.Now()
		resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(normal))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		latencies = append(latencies, time.Since(start))
	}
	close(stop)
	wg.Wait()
	slices.Sort(latencies)
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
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
