// Package graph is crmsync's GraphQL API: the schema (schema/*.graphqls),
// the generated executor (generated/, DO NOT EDIT), thin resolvers over the
// domain services held by Resolver, the @admin directive, the error
// presenter and the depth limit. NewHandler assembles the GraphQL HTTP
// handler; internal/httpserver mounts it behind authentication.
//
// Adding to the API: write graph/schema/<feature>.graphqls with
// `extend type Query { ... }` (or Mutation / Subscription), run
// `make generate`, implement the resolvers gqlgen adds to
// graph/<feature>.resolvers.go, add the services they need to Resolver, and
// update the golden schema with `go test ./graph -run TestSchemaGolden -update`.
package graph

import (
	"context"
	"log/slog"

	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/events"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/overview"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
	"github.com/crmsync/crmsync/internal/workspace"
)

// Resolver holds the services resolvers call. cmd/crmsync builds it; every
// field is required unless its comment says otherwise.
type Resolver struct {
	Logger *slog.Logger
	// The domain services below serve the queries, always scoped to the
	// caller's workspace; graph never holds the database itself.
	Database    *db.Health
	Queue       *outbound.Queue
	Records     *record.Reader
	SyncLog     *synclog.Reader
	Overview    *overview.Service
	Workspaces  *workspace.Service
	Connections *connection.Service
	Prefs       *prefs.Service
	Ingester    *outbound.Ingester
	Flushes     FlushScheduler
	// Planner forecasts the queue (syncForecast) and runs dry runs
	// (recordChanges with dryRun); nil on servers that do not sync (those
	// then fail).
	Planner   Planner
	Events    Subscriber
	Publisher events.Publisher
}

// Planner forecasts a workspace's queue without calling the CRM, and
// dry-runs changes against it (internal/push: docs/sync.md, "Forecast"
// and "Dry run").
type Planner interface {
	Forecast(ctx context.Context, workspaceID int64) (*push.Forecast, error)
	DryRun(ctx context.Context, workspaceID int64, changes []outbound.Change) (*push.DryRun, error)
}

// FlushScheduler starts a flush of a workspace's queue now.
type FlushScheduler interface {
	ScheduleNow(ctx context.Context, workspaceID int64) error
}

// Subscriber hands out a workspace's change events until ctx is done.
type Subscriber interface {
	Subscribe(ctx context.Context, workspaceID int64) <-chan events.Event
}
