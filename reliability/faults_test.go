package reliability

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
)

// faultKind is one kind of Salesforce failure, injected under load.
type faultKind struct {
	name string
	// inject breaks the org (or the connection) and returns once the
	// failure has had its effect; it undoes anything that does not wear off.
	inject func(ctx context.Context, t *testing.T, c *cluster, l *load)
}

// faultKinds are the Salesforce failures every run goes through.
var faultKinds = []faultKind{
	{"503 storm", func(ctx context.Context, t *testing.T, c *cluster, l *load) {
		c.org.InjectFault(sffake.Fault{Kind: sffake.FaultStatus, Status: http.StatusServiceUnavailable, Times: 25})
		l.waitSent(t, 300)
	}},
	{"truncated bodies", func(ctx context.Context, t *testing.T, c *cluster, l *load) {
		// The request runs, its answer is cut: the write happened, crmsync
		// cannot know.
		c.org.InjectFault(sffake.Fault{Path: "/composite", Kind: sffake.FaultTruncate, Times: 4})
		l.waitSent(t, 300)
	}},
	{"connection resets", func(ctx context.Context, t *testing.T, c *cluster, l *load) {
		c.org.InjectFault(sffake.Fault{Kind: sffake.FaultReset, Times: 6})
		l.waitSent(t, 300)
	}},
	{"latency spikes and gateway timeouts", func(ctx context.Context, t *testing.T, c *cluster, l *load) {
		c.org.InjectFault(sffake.Fault{Kind: sffake.FaultLatency, Latency: 2 * time.Second, Times: 4})
		c.org.InjectFault(sffake.Fault{Path: "/composite", Kind: sffake.FaultStatus, Status: http.StatusGatewayTimeout, Times: 3})
		l.waitSent(t, 300)
	}},
	{"UNABLE_TO_LOCK_ROW", func(ctx context.Context, t *testing.T, c *cluster, l *load) {
		c.org.InjectRecordFault(sffake.RecordFault{Object: "Lead", Code: "UNABLE_TO_LOCK_ROW", Times: 30})
		l.waitSent(t, 300)
	}},
	{"access token expiry", func(ctx context.Context, t *testing.T, c *cluster, l *load) {
		c.org.ExpireAccessTokens()
		l.waitSent(t, 300)
	}},
	{"failed refresh, then reconnect", func(ctx context.Context, t *testing.T, c *cluster, l *load) {
		c.org.RevokeRefreshToken(c.refreshToken)
		c.org.ExpireAccessTokens()
		waitOverview(ctx, t, c, l.tn, func(o overview) bool { return o.ConnectionStatus == "EXPIRED" })
		l.waitSent(t, 200) // accepted while the connection is expired
		c.refreshToken = c.org.IssueRefreshToken(c.org.IntegrationUserID())
		c.connect(ctx, l.tn, c.refreshToken)
	}},
	{"daily limit out, then reset", func(ctx context.Context, t *testing.T, c *cluster, l *load) {
		used, _ := c.org.Usage()
		c.org.SetDailyMax(used + 3)
		waitOverview(ctx, t, c, l.tn, func(o overview) bool { return o.PauseReason == "SALESFORCE_LIMIT" })
		l.waitSent(t, 200) // accepted while paused
		c.org.SetUsage(0)
		c.org.SetDailyMax(10_000_000)
		waitOverview(ctx, t, c, l.tn, func(o overview) bool { return !o.Paused })
	}},
}

type overview struct {
	Paused           bool
	PauseReason      string
	ConnectionStatus string
	QueuedBatchItems int
}

// waitOverview polls syncOverview until ok says so (at most three minutes:
// a spent allowance is probed again once a minute).
func waitOverview(ctx context.Context, t *testing.T, c *cluster, tn tenant, ok func(overview) bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var last overview
	for {
		var out struct{ SyncOverview overview }
		err := c.call(ctx, tn.token, `{ syncOverview { paused pauseReason connectionStatus queuedBatchItems } }`, nil, &out)
		require.NoError(t, err)
		last = out.SyncOverview
		if ok(last) {
			return
		}
		require.True(t, time.Now().Before(deadline), "overview never reached the state; last: %+v", last)
		time.Sleep(200 * time.Millisecond)
	}
}

// Every kind of Salesforce failure, one after the other, under load.
func TestSalesforceFaults(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newCluster(t, clusterOptions{Latency: 20 * time.Millisecond})
	c.start()
	tn := c.setup(ctx)
	l := newLoad(c, tn, 200)
	l.seed(ctx)
	run := l.start(ctx)
	for _, f := range faultKinds {
		t.Logf("fault: %s", f.name)
		f.inject(ctx, t, c, l)
		l.waitSent(t, 100)
	}
	c.org.ClearFaults()
	run.finish(t)
	rep := l.verify(ctx)
	t.Logf("%d fault kinds, %d changes, %d write requests, %d replays", len(faultKinds), rep.Changes, rep.Writes, rep.Replays)
}

// PostgreSQL is crash-restarted twice under load: crmsync keeps serving,
// reconnects, and loses nothing.
func TestPostgresRestart(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pgDir, err := os.MkdirTemp("/tmp", "crmsync-rel-pg-") // the postgres user must reach it
	require.NoError(t, err)
	script, err := filepath.Abs("../scripts/pg.sh")
	require.NoError(t, err)
	t.Cleanup(func() { _ = runScript(context.Background(), script, "stop", pgDir) })
	url, err := runScriptOutput(ctx, script, "start", pgDir)
	require.NoError(t, err)

	c := newCluster(t, clusterOptions{DatabaseURL: url, Latency: 20 * time.Millisecond})
	r := c.start()
	tn := c.setup(ctx)
	l := newLoad(c, tn, 200)
	l.seed(ctx)
	run := l.start(ctx)
	for range 2 {
		l.waitSent(t, 400)
		require.NoError(t, runScript(ctx, script, "restart", pgDir))
	}
	l.waitSent(t, 400)
	run.finish(t)
	require.True(t, r.alive(), "crmsync serve survives a database restart")
	rep := l.verify(ctx)
	t.Logf("2 PostgreSQL restarts, %d changes, %d replays", rep.Changes, rep.Replays)
}
