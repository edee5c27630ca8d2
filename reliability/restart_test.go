package reliability

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRestartResumesWithinSeconds SIGKILLs crmsync serve in the middle of a
// flush (right after Salesforce carried out a write, so the connection's
// lease and the flush job are held by the dead process) and starts it again
// at once under the same replica id, with the production lease of 30 s
// and sweep of 1 min. The restarted process recognises its predecessor's
// lease (same replica id, another incarnation), takes it over and flushes
// at once: the stall, from the kill to the next write reaching Salesforce,
// is measured and must stay below the lease period it used to wait out.
// Nothing is lost or sent twice.
func TestRestartResumesWithinSeconds(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newCluster(t, clusterOptions{Latency: 30 * time.Millisecond})
	const lease = 30 * time.Second
	c.env = append(c.env, "CRMSYNC_REPLICA_ID=stable-replica", "CRMSYNC_SYNC_LEASE="+lease.String(), "CRMSYNC_SWEEP_INTERVAL=1m")
	c.start()
	tn := c.setup(ctx)
	l := newLoad(c, tn, 200)
	l.seed(ctx)
	run := l.start(ctx)

	var stalls []time.Duration
	for range 3 {
		l.waitSent(t, 300)
		r := c.live()[0]
		var killedAt time.Time
		c.onNextWrite(t, func() {
			_ = r.cmd.Process.Signal(syscall.SIGKILL)
			killedAt = time.Now()
		})
		c.kill(r)
		next := c.start()
		var resumedAt time.Time
		c.onNextWrite(t, func() { resumedAt = time.Now() })
		stall := resumedAt.Sub(killedAt)
		stalls = append(stalls, stall)
		t.Logf("killed mid-flush; restarted and writing again %v after the kill", stall.Round(time.Millisecond))
		log, err := os.ReadFile(filepath.Join(c.dir, next.name+".log"))
		require.NoError(t, err)
		require.True(t, strings.Contains(string(log), "took over a lease of this replica's previous process"),
			"the restarted process took over its predecessor's lease")
		require.Less(t, stall, lease, "the restarted replica did not wait out its predecessor's lease")
	}
	l.waitSent(t, 300)
	run.finish(t)
	rep := l.verify(ctx)
	t.Logf("restart stalls %v (max %v); %d changes, %d replays", stalls, slices.Max(stalls).Round(time.Millisecond), rep.Changes, rep.Replays)
}
