package push_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/record"
)

// Ingests and flushes writing the same records at the same time wait for
// each other and never deadlock: every writer takes record row locks in
// ascending id. (PostgreSQL breaks a deadlock after deadlock_timeout by
// aborting one side; ingest would retry, so the test reads PostgreSQL's own
// deadlock count instead of relying on an error.)
func TestConcurrentIngestAndFlushNeverDeadlock(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		const records = 300
		now := b.clock.Now()
		var seed []outbound.Change
		for i := range records {
			seed = append(seed, change(record.TypeContact, fmt.Sprintf("c%d", i), now,
				map[string]any{"email": fmt.Sprintf("c%d@example.com", i), "lastName": "L", "company": "X"}))
		}
		b.ingest(t, seed...)
		b.drain(t)

		stop := time.Now().Add(2 * time.Second)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), 2))
				for n := 0; time.Now().Before(stop); n++ {
					var changes []outbound.Change
					for range 200 {
						i := rng.IntN(records)
						changes = append(changes, change(record.TypeContact, fmt.Sprintf("c%d", i), time.Time{},
							map[string]any{"phone": fmt.Sprintf("%d-%d", g, n)}))
					}
					if _, err := b.in.Ingest(ctx, b.ws, changes); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if _, err := b.engine.Flush(ctx, b.ws); err != nil {
					errs <- err
					return
				}
			}
		}()
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		b.drain(t)
		if bdb.Dialect().Name() == dialect.PG {
			require.Zero(t, deadlocks(t, bdb), "deadlocks PostgreSQL detected in this test's database")
		}
	})
}

// deadlocks closes bdb (a backend reports its statistics when it exits)
// and returns pg_stat_database.deadlocks of its database.
func deadlocks(t *testing.T, bdb *bun.DB) int64 {
	t.Helper()
	ctx := context.Background()
	var name string
	require.NoError(t, bdb.NewRaw("SELECT current_database()").Scan(ctx, &name))
	require.NoError(t, bdb.Close())
	admin, err := sql.Open("pgx", os.Getenv(dbtest.EnvURL))
	require.NoError(t, err)
	defer admin.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var backends int
		require.NoError(t, admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name).Scan(&backends))
		if backends == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "%d backends of %s still open", backends, name)
		time.Sleep(20 * time.Millisecond)
	}
	var n int64
	require.NoError(t, admin.QueryRowContext(ctx, "SELECT pg_stat_clear_snapshot()").Err())
	require.NoError(t, admin.QueryRowContext(ctx, "SELECT deadlocks FROM pg_stat_database WHERE datname = $1", name).Scan(&n))
	return n
}
