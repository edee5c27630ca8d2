package reliability

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// soakChanges is how many changes TestSoak pushes at least: one full
// cycle of faults by default (what `make test` runs), or
// CRMSYNC_SOAK_CHANGES for a soak (docs/reliability.md).
func soakChanges(t *testing.T) int {
	v := os.Getenv("CRMSYNC_SOAK_CHANGES")
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "CRMSYNC_SOAK_CHANGES")
	return n
}

// soakReport is what a soak prints (and writes to CRMSYNC_SOAK_REPORT).
type soakReport struct {
	Cycles  int            `json:"cycles"`
	Seconds float64        `json:"seconds"`
	Faults  map[string]int `json:"faults_injected"`
	Report
}

// TestSoak runs every fault kind in turn, over and over, on three replicas
// of crmsync serve sharing a PostgreSQL that is itself crash-restarted,
// until the load has pushed CRMSYNC_SOAK_CHANGES changes (one cycle when
// unset), then checks every invariant.
func TestSoak(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	target := soakChanges(t)
	pgDir, err := os.MkdirTemp("/tmp", "crmsync-soak-pg-")
	require.NoError(t, err)
	script, err := filepath.Abs("../scripts/pg.sh")
	require.NoError(t, err)
	t.Cleanup(func() { _ = runScript(context.Background(), script, "stop", pgDir) })
	url, err := runScriptOutput(ctx, script, "start", pgDir)
	require.NoError(t, err)

	began := time.Now()
	c := newCluster(t, clusterOptions{DatabaseURL: url, Latency: 20 * time.Millisecond})
	keeper := c.start()
	c.start()
	c.start()
	tn := c.setup(ctx)
	records := 200
	if target > 0 {
		records = 2000
	}
	l := newLoad(c, tn, records)
	l.seed(ctx)
	sub := subscribe(ctx, t, keeper.url, tn.token)
	run := l.start(ctx)

	faults := map[string]int{}
	kinds := append([]faultKind(nil), faultKinds...)
	kinds = append(kinds,
		faultKind{"crmsync serve SIGKILL", func(ctx context.Context, t *testing.T, c *cluster, l *load) {
			var others []*replica
			for _, r := range c.live() {
				if r != keeper {
					others = append(others, r)
				}
			}
			c.kill(others[rand.IntN(len(others))])
			l.waitSent(t, 200)
			c.start()
		}},
		faultKind{"crmsync serve SIGKILL after a Salesforce write", func(ctx context.Context, t *testing.T, c *cluster, l *load) {
			// The replica whose flush this is cannot be told apart here:
			// kill every replica but the keeper, all at once.
			c.onNextWrite(t, func() {
				for _, r := range c.live() {
					if r != keeper {
						_ = r.cmd.Process.Signal(syscall.SIGKILL)
					}
				}
			})
			for _, r := range c.live() {
				if r != keeper {
					c.kill(r)
				}
			}
			for len(c.live()) < 3 {
				c.start()
			}
		}},
		faultKind{"connector plugin SIGKILL", func(ctx context.Context, t *testing.T, c *cluster, l *load) {
			c.onNextWrite(t, func() {
				for _, r := range c.live() {
					for _, pid := range r.pluginPIDs() {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			})
		}},
		faultKind{"PostgreSQL crash-restart", func(ctx context.Context, t *testing.T, c *cluster, l *load) {
			require.NoError(t, runScript(ctx, script, "restart", pgDir))
		}},
	)
	cycles := 0
	for cycles == 0 || l.chk.Changes() < target {
		cycles++
		for _, i := range rand.Perm(len(kinds)) {
			f := kinds[i]
			t.Logf("cycle %d, %d changes: %s", cycles, l.chk.Changes(), f.name)
			f.inject(ctx, t, c, l)
			faults[f.name]++
			l.waitSent(t, 200)
		}
	}
	c.org.ClearFaults()
	run.finish(t)
	before := sub.batches.Load()
	rep := l.verify(ctx)
	sub.waitMore(t, before-1) // the keeper's subscription saw batches throughout
	require.Positive(t, sub.batches.Load())

	out := soakReport{Cycles: cycles, Seconds: time.Since(began).Seconds(), Faults: faults, Report: rep}
	js, _ := json.MarshalIndent(out, "", "  ")
	t.Logf("soak: %s", js)
	if path := os.Getenv("CRMSYNC_SOAK_REPORT"); path != "" {
		require.NoError(t, os.WriteFile(path, js, 0o644))
	}
}
