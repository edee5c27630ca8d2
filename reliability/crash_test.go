package reliability

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// crmsync serve is SIGKILLed again and again under load, at random moments
// and right after Salesforce carried out a write (before crmsync could
// record it), and started again each time.
func TestServeKilledMidFlush(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newCluster(t, clusterOptions{Latency: 30 * time.Millisecond})
	c.start()
	tn := c.setup(ctx)
	l := newLoad(c, tn, 200)
	l.seed(ctx)
	run := l.start(ctx)

	kills := 0
	for i := range 6 {
		l.waitSent(t, 300)
		r := c.live()[0]
		if i%2 == 0 {
			// Kill at a random moment.
			time.Sleep(time.Duration(rand.IntN(700)) * time.Millisecond)
			c.kill(r)
		} else {
			// Kill once Salesforce has done a write, before the answer
			// reaches crmsync.
			c.onNextWrite(t, func() { _ = r.cmd.Process.Signal(syscall.SIGKILL) })
			c.kill(r)
		}
		kills++
		c.start()
	}
	l.waitSent(t, 300)
	run.finish(t)
	rep := l.verify(ctx)
	t.Logf("%d kills of crmsync serve, %d changes, %d replays", kills, rep.Changes, rep.Replays)
}

// The Salesforce connector plugin process is killed while calls are in
// flight: the host restarts it and the flush retries.
func TestPluginKilledMidCall(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newCluster(t, clusterOptions{Latency: 30 * time.Millisecond})
	r := c.start()
	tn := c.setup(ctx)
	l := newLoad(c, tn, 200)
	l.seed(ctx)
	run := l.start(ctx)

	killed := 0
	for range 4 {
		l.waitSent(t, 300)
		c.onNextWrite(t, func() {
			for _, pid := range r.pluginPIDs() {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed++
				}
			}
		})
	}
	require.Positive(t, killed, "plugin processes were found and killed")
	require.True(t, r.alive(), "crmsync survives its plugin")
	l.waitSent(t, 300)
	run.finish(t)
	rep := l.verify(ctx)
	t.Logf("%d plugin kills, %d changes, %d replays", killed, rep.Changes, rep.Replays)
}
