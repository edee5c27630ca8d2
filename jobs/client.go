// Package jobs holds crmsync's River job kinds (args + workers, one kind per
// file), their periodic schedules, and NewClient, which builds the one River
// client a process uses.
package jobs

import (
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db"
)

// Timeouts of the River client. A job that runs past JobTimeout has its
// context cancelled; a job left running by a crashed process is rescued
// (made available again) after RescueStuckJobsAfter, minutes rather than
// River's one-hour default, so a crash delays a flush by minutes at most.
const (
	JobTimeout           = 2 * time.Minute
	RescueStuckJobsAfter = 5 * time.Minute
	// FetchPollInterval is how often an idle queue looks for new jobs: the
	// database/sql drivers have no LISTEN/NOTIFY, so polling is how a job
	// inserted by any process is picked up.
	FetchPollInterval = 200 * time.Millisecond
)

// queues are the River queues a working client runs, with how many jobs of
// each run at once in this process. A job kind on a new queue adds it here.
func queues() map[string]river.QueueConfig {
	return map[string]river.QueueConfig{
		river.QueueDefault: {MaxWorkers: 10},
		QueueFlush:         {MaxWorkers: 20},
	}
}

// NewClient returns the River client for bdb (PostgreSQL or SQLite, through
// db.RiverDriver). With workers nil the client is insert-only: it
// inserts jobs (InsertTx in a bun transaction: client.InsertTx(ctx, tx.Tx,
// args, nil)) but works none, and must not be started. With workers it works
// the queues above once started, and runs the periodic jobs on the elected
// leader.
//
// Start it with client.Start(ctx) and stop it with client.Stop(ctx) (soft:
// running jobs finish) followed, after a timeout, by client.StopAndCancel.
func NewClient(bdb *bun.DB, logger *slog.Logger, workers *river.Workers, periodic []*river.PeriodicJob) (*river.Client[*sql.Tx], error) {
	cfg := &river.Config{
		JobTimeout:           JobTimeout,
		RescueStuckJobsAfter: RescueStuckJobsAfter,
		Logger:               riverLogger(logger),
		FetchPollInterval:    FetchPollInterval,
		PeriodicJobs:         periodic,
	}
	if workers != nil {
		cfg.Workers = workers
		cfg.Queues = queues()
	} else if len(periodic) > 0 {
		return nil, fmt.Errorf("new river client: %d periodic jobs but no workers", len(periodic))
	}
	client, err := river.NewClient(db.RiverDriver(bdb), cfg)
	if err != nil {
		return nil, fmt.Errorf("new river client: %w", err)
	}
	return client, nil
}
