package jobs_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/jobs"
)

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRiverRoutineLogsAtDebug starts and stops a River client: its routine
// "River client started/stopped" lines are debug, hidden at the default
// info level and shown, as DEBUG with component=river, at debug.
func TestRiverRoutineLogsAtDebug(t *testing.T) {
	t.Parallel()
	run := func(level slog.Level) string {
		var out syncBuffer
		logger := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: level}))
		workers := river.NewWorkers()
		river.AddWorker(workers, &pingWorker{done: make(chan string, 1)})
		client, err := jobs.NewClient(dbtest.Open(t, db.SQLite), logger, workers, nil)
		require.NoError(t, err)
		ctx := context.Background()
		require.NoError(t, client.Start(ctx))
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(stopCtx))
		return out.String()
	}

	info := run(slog.LevelInfo)
	require.NotContains(t, info, "River client started", "routine River lines stay out of info logs")

	debug := run(slog.LevelDebug)
	require.Contains(t, debug, `level=DEBUG msg="River client started"`)
	require.Contains(t, debug, "component=river")
	require.NotContains(t, debug, "level=INFO", "no River line is left at info")
}
