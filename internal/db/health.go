package db

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// Health answers whether the database is reachable and migrated, for the
// API's health query, without handing the database to its caller.
type Health struct{ db *bun.DB }

// NewHealth returns the health of db.
func NewHealth(db *bun.DB) *Health { return &Health{db: db} }

// HealthStatus is the database's state.
type HealthStatus struct {
	Dialect Dialect
	// Pending counts the migrations not applied yet.
	Pending int
}

// Check pings the database and reads its migration status.
func (h *Health) Check(ctx context.Context) (HealthStatus, error) {
	if err := h.db.PingContext(ctx); err != nil {
		return HealthStatus{}, fmt.Errorf("ping database: %w", err)
	}
	status, err := MigrationStatus(ctx, h.db)
	if err != nil {
		return HealthStatus{}, err
	}
	return HealthStatus{Dialect: DialectOf(h.db), Pending: len(Pending(status))}, nil
}
