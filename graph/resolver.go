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
	"log/slog"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/workspace"
)

// Resolver holds the services resolvers call. cmd/crmsync builds it; every
// field is required unless its comment says otherwise.
type Resolver struct {
	Logger     *slog.Logger
	DB         *bun.DB // health checks only; data goes through services
	Workspaces *workspace.Service
}
