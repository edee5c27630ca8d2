// Package overview computes what the product's Settings → Syncing →
// Overview page shows for a workspace: queue depth and the backlog's
// progress, API usage against both limits, pause state and the
// connection's health.
package overview

import (
	"context"
	"errors"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/inbound"
	"github.com/crmsync/crmsync/internal/limits"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
)

// Overview is one workspace's sync overview. Zero times and nil pointers
// mean "none".
type Overview struct {
	ConversionUsed  int64
	ConversionLimit *int64

	// The CRM's own daily API allowance, as the connector last reported
	// it (Salesforce's DailyApiRequests).
	CRMUsed       *int64
	CRMMax        *int64
	CRMObservedAt time.Time

	// Queued counts every queued item; Waiting, those of them held back
	// until a parent record reaches the CRM.
	Queued       int
	Waiting      int
	QueuedByType map[record.Type]int
	Failed       int
	OldestQueued time.Time

	// CallsByHour are crmsync's calls in each hour of the last 24, oldest
	// first (their sum is ConversionUsed).
	CallsByHour []limits.HourCalls

	// Connector is the connection's connector ("salesforce"); "" when
	// not connected.
	Connector        string
	Paused           bool
	PauseReason      push.PauseReason
	ConnectionStatus connection.Status // "" when not connected
	// ConnectionStatusReason says why the status is not CONNECTED.
	ConnectionStatusReason string
	LastBatchAt            time.Time
	// Pace is the outbound pacing state (Enabled false: none).
	Pace push.Pace

	// Inbound is how changes come in (streaming or polling and why).
	Inbound *inbound.StreamState
	// Unsupported are the record types the connection does not support,
	// with the changes kept local for each (prefs.Routing).
	Unsupported []prefs.UnsupportedCount
	// Progress is how far the outbound backlog has come; nil when nothing
	// is queued.
	Progress *Progress
	// Bulk is the use of the CRM's bulk API over the last 24 hours.
	Bulk push.BulkUsage
}

// Get computes the workspace's overview at now.
func Get(ctx context.Context, db bun.IDB, workspaceID int64, now time.Time) (Overview, error) {
	var o Overview
	depth, err := outbound.Measure(ctx, db, workspaceID)
	if err != nil {
		return o, err
	}
	o.Queued, o.Waiting, o.Failed, o.OldestQueued, o.QueuedByType = depth.Queued, depth.Waiting, depth.Failed, depth.OldestQueued, depth.QueuedByType
	if depth.Queued > 0 {
		p, err := GetProgress(ctx, db, workspaceID, depth.OldestQueued, now)
		if err != nil {
			return o, err
		}
		o.Progress = &p
	}
	if o.CallsByHour, err = limits.Hourly(ctx, db, workspaceID, now); err != nil {
		return o, err
	}
	for _, h := range o.CallsByHour {
		o.ConversionUsed += h.Calls
	}
	if o.LastBatchAt, err = synclog.Latest(ctx, db, workspaceID); err != nil {
		return o, err
	}
	if o.Inbound, err = inbound.LoadStreamState(ctx, db, workspaceID); err != nil {
		return o, err
	}
	if o.Bulk, err = push.GetBulkUsage(ctx, db, workspaceID, now); err != nil {
		return o, err
	}
	c, err := connection.NewStore(db, nil).Get(ctx, workspaceID)
	if errors.Is(err, connection.ErrNotConnected) {
		o.Paused, o.PauseReason = true, push.PauseNotConnected
		return o, nil
	}
	if err != nil {
		return o, err
	}
	o.Connector, o.ConnectionStatus, o.ConnectionStatusReason = c.Connector, c.Status, c.StatusReason
	if o.Unsupported, err = prefs.UnsupportedCounts(ctx, db, workspaceID); err != nil {
		return o, err
	}
	if c.DailyLimit.Valid {
		o.ConversionLimit = &c.DailyLimit.Int64
	}
	if c.APIUsed.Valid {
		o.CRMUsed = &c.APIUsed.Int64
	}
	if c.APIMax.Valid {
		o.CRMMax = &c.APIMax.Int64
	}
	o.CRMObservedAt = c.APIObservedAt.Time
	o.Pace = push.StoredPace(c, o.ConversionUsed, now)
	o.PauseReason = PauseReason(c, o.ConversionUsed)
	o.Paused = o.PauseReason != push.PauseNone
	return o, nil
}

// PauseReason says why the connection is paused now, from its stored state
// and crmsync's call count in the window: the same rules as the engine's
// gate, without calling the CRM.
func PauseReason(c *connection.Connection, conversionUsed int64) push.PauseReason {
	switch {
	case c.Status == connection.StatusExpired:
		return push.PauseConnectionExpired
	case c.Status == connection.StatusCredentialsUnreadable:
		return push.PauseCredentialsUnreadable
	case c.Status == connection.StatusConnectorUnavailable:
		return push.PauseConnectorUnavailable
	case c.PausedByUser:
		return push.PauseByUser
	case c.DailyLimit.Valid && (conversionUsed >= c.DailyLimit.Int64 || push.PauseReason(c.PauseReason) == push.PauseConversionLimit):
		// At the cap, or the engine refused a batch the calls left could
		// not carry (setting a cap clears that, see Store.SetDailyLimit).
		return push.PauseConversionLimit
	case c.APIUsed.Valid && c.APIMax.Valid && c.APIMax.Int64 > 0 && c.APIUsed.Int64 >= c.APIMax.Int64:
		return push.PauseSalesforceLimit
	// The engine's last recorded reason, until its next flush clears it;
	// but crmsync's own cap is decided above: a cap removed since is not
	// a reason any more.
	case c.PauseReason != "" && push.PauseReason(c.PauseReason) != push.PauseConversionLimit:
		return push.PauseReason(c.PauseReason)
	}
	return push.PauseNone
}

// Service computes workspaces' overviews for the API.
type Service struct{ db bun.IDB }

// NewService returns the overviews of the workspaces stored in db.
func NewService(db bun.IDB) *Service { return &Service{db: db} }

// Get computes the workspace's overview at now (see Get).
func (s *Service) Get(ctx context.Context, workspaceID int64, now time.Time) (Overview, error) {
	return Get(ctx, s.db, workspaceID, now)
}
