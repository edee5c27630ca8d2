// Package push is the outbound sync: it pushes a workspace's queued
// changes to the CRM, one flush at a time (docs/architecture.md#the-flush),
// beside outbound (the queue it drains) and inbound (the puller). A flush:
// gate, claim, coalesce, resolve identities, read the CRM's current state,
// decide every field by its mode, write in bulk, then record every outcome
// and the sync log in one transaction.
package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/limits"
	"github.com/crmsync/crmsync/internal/synclog"
)

// Connectors hands out a connector by name: the plugin host in production,
// in-process connectors in tests.
type Connectors interface {
	Connector(ctx context.Context, name string) (connector.Connector, error)
}

// BatchNotifier learns of every sync-log batch written (for subscriptions
// and metrics). It must not block for long.
type BatchNotifier interface {
	BatchWritten(ctx context.Context, b *synclog.Batch)
}

// PauseReason says why a flush sent nothing.
type PauseReason string

const (
	PauseNone              PauseReason = ""
	PauseNotConnected      PauseReason = "NOT_CONNECTED"
	PauseConnectionExpired PauseReason = "CONNECTION_EXPIRED"
	PauseByUser            PauseReason = "PAUSED_BY_USER"
	PauseSalesforceLimit   PauseReason = "SALESFORCE_LIMIT"
	PauseConversionLimit   PauseReason = "CONVERSION_LIMIT"
	// PauseCredentialsUnreadable: the stored credentials do not decrypt
	// with this server's secret key (connection.StatusCredentialsUnreadable).
	PauseCredentialsUnreadable PauseReason = "CREDENTIALS_UNREADABLE"
	// PauseConnectorUnavailable: the connection's connector cannot start
	// (connection.StatusConnectorUnavailable); the plugin host retries
	// with back-off and syncing resumes once it starts.
	PauseConnectorUnavailable PauseReason = "CONNECTOR_UNAVAILABLE"
)

// Config tunes the engine. Zero values take the defaults.
type Config struct {
	// MaxItems is the most queue items one flush claims (default 50,000):
	// a burst is coalesced whole, so a hot record is written once.
	MaxItems int
	// LeaseTTL is how long a flush holds the connection's lease between
	// renewals, so how long a crashed flush blocks the next one (default
	// connection.DefaultLeaseTTL).
	LeaseTTL time.Duration
	// RetryBase is the first backoff of a retryable record failure,
	// doubled per attempt up to RetryMax (defaults 10 s and 30 min).
	RetryBase, RetryMax time.Duration
	// WaitDelay is how long a record waiting for its parent waits before
	// it is tried again (default 5 s).
	WaitDelay time.Duration
	// LimitProbe is how old a reading of a spent Salesforce allowance must
	// be before a flush checks it again with one Limits call (default 1 min).
	LimitProbe time.Duration
	// Owner prefixes the lease owner of every flush: the process's
	// replica.Identity.Owner() (default host/pid).
	Owner string
	// Pace is budget pacing (pace.go); off unless enabled.
	Pace PaceConfig
	// ReadFirst turns conditional writes off: every flush reads the
	// records' state before writing, as crmsync did before them (the
	// bench's fixed-tick baseline).
	ReadFirst bool
	// Now is the engine's clock (default time.Now); tests put it on a
	// fake CRM's clock.
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.MaxItems <= 0 {
		c.MaxItems = 50_000
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = connection.DefaultLeaseTTL
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 10 * time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 30 * time.Minute
	}
	if c.WaitDelay <= 0 {
		c.WaitDelay = 5 * time.Second
	}
	if c.LimitProbe <= 0 {
		c.LimitProbe = time.Minute
	}
	c.Pace.defaults()
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Engine flushes workspaces' queues.
type Engine struct {
	db         *bun.DB
	conns      *connection.Store
	connectors Connectors
	notifier   BatchNotifier
	logger     *slog.Logger
	cfg        Config
	now        func() time.Time

	descs  *connection.DescribeCache
	claims *claimLimits
}

// New returns an Engine. notifier may be nil.
func New(db *bun.DB, conns *connection.Store, connectors Connectors, notifier BatchNotifier, logger *slog.Logger, cfg Config) *Engine {
	cfg.defaults()
	return &Engine{db: db, conns: conns, connectors: connectors, notifier: notifier, logger: logger, cfg: cfg,
		now: cfg.Now, descs: connection.NewDescribeCache(connection.DescribeTTL), claims: newClaimLimits(cfg.MaxItems)}
}

// Result is what one flush did.
type Result struct {
	// Batch is the sync-log batch written, nil when the flush had nothing
	// to do (or was paused in an episode already logged).
	Batch *synclog.Batch
	// Paused is set when nothing was sent because syncing is paused.
	Paused PauseReason
	// More is true when due items remain (the claim was full).
	More bool
	// Wait is set when due items were left queued because the pacing
	// bucket is dry: a flush may start after Wait.
	Wait time.Duration
}

// Flush runs one flush of a workspace's queue. A whole-call connector
// failure is returned as an error wrapping the connector's typed error
// (errors.Is(err, connector.ErrRateLimited) and so on); the items stay
// queued. Expired credentials are not an error: the connection is marked
// expired and the result says paused.
func (e *Engine) Flush(ctx context.Context, workspaceID int64) (*Result, error) {
	c, err := e.conns.Get(ctx, workspaceID)
	if errors.Is(err, connection.ErrNotConnected) {
		return &Result{Paused: PauseNotConnected}, nil
	}
	if err != nil {
		return nil, err
	}
	reason, detail, err := e.Gate(ctx, c)
	if err != nil {
		return nil, err
	}
	if reason != PauseNone {
		return e.Pause(ctx, c, synclog.Outbound, reason, detail)
	}
	owner := connection.LeaseOwner(e.cfg.Owner, "flush")
	ctx, release, ok, err := e.conns.HoldLease(ctx, c, owner, e.cfg.LeaseTTL)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, connection.ErrBusy
	}
	defer func() {
		if err := release(); err != nil {
			e.logger.Error("release flush lease", slog.Int64("workspace_id", workspaceID), slog.Any("error", err))
		}
	}()
	if err := e.conns.MarkFlushStarted(ctx, c); err != nil {
		return nil, err
	}
	f, err := e.newFlush(ctx, c)
	if err != nil {
		return nil, err
	}
	return e.flushLimited(ctx, f)
}

// Gate decides whether a sync (a flush or a pull) may call the CRM at all: not when the
// connection expired or a user paused it, not when its credentials do not
// decrypt with this server's key (checked locally every time, so the pause
// ends once the right key is back), not when crmsync's own count
// reached its daily limit, and not when the Salesforce allowance is spent.
// It reads stored state only, except that a spent allowance whose reading
// is older than LimitProbe is checked again with one Limits call: that is
// how a pause ends by itself once the rolling window frees calls.
func (e *Engine) Gate(ctx context.Context, c *connection.Connection) (PauseReason, string, error) {
	switch {
	case c.Status == connection.StatusExpired:
		return PauseConnectionExpired, "", nil
	case c.PausedByUser:
		return PauseByUser, "", nil
	}
	readable, changed, err := e.conns.CheckCredentials(ctx, c)
	if err != nil {
		return PauseNone, "", err
	}
	if !readable {
		return PauseCredentialsUnreadable, "", nil // Pause logs it, once per episode
	}
	if changed {
		e.logger.Info("connection credentials readable again", slog.Int64("workspace_id", c.WorkspaceID))
	}
	if unavail, err := e.checkConnector(ctx, c); err != nil || unavail != nil {
		if err != nil {
			return PauseNone, "", err
		}
		return PauseConnectorUnavailable, unavail.StatusReason(), nil
	}
	if c.DailyLimit.Valid {
		used, err := limits.Used(ctx, e.db, c.WorkspaceID, e.now())
		if err != nil {
			return PauseNone, "", err
		}
		if used >= c.DailyLimit.Int64 {
			return PauseConversionLimit, fmt.Sprintf("%d of %d calls used in the last 24 hours", used, c.DailyLimit.Int64), nil
		}
	}
	if !spent(c) {
		return PauseNone, "", nil
	}
	if e.now().Sub(c.APIObservedAt.Time) < e.cfg.LimitProbe {
		return PauseSalesforceLimit, "", nil
	}
	if err := e.probeLimits(ctx, c); err != nil {
		if errors.Is(err, connector.ErrRateLimited) || connector.Retryable(err) {
			return PauseSalesforceLimit, "", nil
		}
		return PauseNone, "", err
	}
	if spent(c) {
		return PauseSalesforceLimit, "", nil
	}
	return PauseNone, "", nil
}

// checkConnector asks for the connection's connector (a running plugin is
// handed out at once; one that failed to start is tried again only when
// the plugin host's back-off allows) and keeps the connection's status in
// step: CONNECTOR_UNAVAILABLE while it cannot start, CONNECTED again once
// it does.
func (e *Engine) checkConnector(ctx context.Context, c *connection.Connection) (*connection.UnavailableError, error) {
	_, err := e.connectors.Connector(ctx, c.Connector)
	var unavail *connection.UnavailableError
	if err != nil && !errors.As(err, &unavail) {
		return nil, fmt.Errorf("connector %q: %w", c.Connector, err)
	}
	changed, serr := e.conns.SetAvailability(ctx, c, unavail)
	if serr != nil {
		return nil, serr
	}
	if changed && unavail == nil {
		e.logger.Info("connector available again", slog.Int64("workspace_id", c.WorkspaceID), slog.String("connector", c.Connector))
	}
	return unavail, nil
}

func spent(c *connection.Connection) bool {
	return c.APIUsed.Valid && c.APIMax.Valid && c.APIMax.Int64 > 0 && c.APIUsed.Int64 >= c.APIMax.Int64
}

// probeLimits reads the CRM's usage with one call and stores it.
func (e *Engine) probeLimits(ctx context.Context, c *connection.Connection) error {
	crm, err := e.connectors.Connector(ctx, c.Connector)
	if err != nil {
		return fmt.Errorf("connector %q: %w", c.Connector, err)
	}
	session, err := e.conns.Session(c)
	if err != nil {
		return err
	}
	resp, err := crm.Limits(ctx, connector.LimitsRequest{Session: session})
	now := e.now().UTC()
	if err := limits.Record(ctx, e.db, c.WorkspaceID, now, 1); err != nil {
		return err
	}
	if err != nil {
		// Still spent (or unreachable): count this probe as the new reading.
		_ = e.conns.Observe(ctx, c, connector.Meta{Usage: &connector.Usage{Used: c.APIUsed.Int64, Max: c.APIMax.Int64, ObservedAt: now}})
		return fmt.Errorf("probe CRM limits: %w", err)
	}
	meta := resp.Meta
	if meta.Usage == nil {
		u := resp.Usage
		meta.Usage = &u
	}
	return e.conns.Observe(ctx, c, meta)
}

// Resume ends a pause episode, if one was recorded: the next pause is
// logged again.
func (e *Engine) Resume(ctx context.Context, c *connection.Connection) error {
	if c.PauseReason == "" {
		return nil
	}
	if err := e.conns.SetPauseReason(ctx, c, ""); err != nil {
		return err
	}
	e.logger.Info("sync resumed", slog.Int64("workspace_id", c.WorkspaceID))
	return nil
}

// Pause records a pause of the connection's syncing: once per episode (a
// connection's flushes and pulls share episodes), as a PAUSED sync-log
// batch of the given direction.
func (e *Engine) Pause(ctx context.Context, c *connection.Connection, dir synclog.Direction, reason PauseReason, detail string) (*Result, error) {
	res := &Result{Paused: reason}
	if string(reason) == c.PauseReason {
		return res, nil
	}
	now := e.now().UTC()
	msg := pauseMessage(reason, c)
	if detail != "" {
		msg += ": " + detail
	}
	b := &synclog.Batch{WorkspaceID: c.WorkspaceID, Direction: dir, Status: synclog.StatusPaused,
		Message: msg, StartedAt: now, FinishedAt: now}
	err := e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := e.conns.With(tx).SetPauseReason(ctx, c, string(reason)); err != nil {
			return err
		}
		return synclog.Write(ctx, tx, b)
	})
	if err != nil {
		return nil, err
	}
	e.logger.Warn("sync paused", slog.Int64("workspace_id", c.WorkspaceID), slog.String("reason", string(reason)), slog.String("detail", detail))
	e.notify(ctx, b)
	res.Batch = b
	return res, nil
}

func pauseMessage(reason PauseReason, c *connection.Connection) string {
	switch reason {
	case PauseConnectionExpired:
		return "paused: the CRM connection has expired; reconnect to resume (" + c.StatusReason + ")"
	case PauseCredentialsUnreadable:
		return "paused: " + connection.UnreadableReason
	case PauseConnectorUnavailable:
		return "paused: the connector " + c.Connector + " cannot start; crmsync retries with back-off and resumes by itself once it starts"
	case PauseByUser:
		return "paused by a user"
	case PauseSalesforceLimit:
		return fmt.Sprintf("paused: %s daily API usage %d of %d reached; resumes when usage is back under", c.CRMName(), c.APIUsed.Int64, c.APIMax.Int64)
	case PauseConversionLimit:
		return "paused: crmsync daily limit reached; resumes when usage is back under"
	}
	return "paused: " + string(reason)
}

func (e *Engine) notify(ctx context.Context, b *synclog.Batch) {
	if e.notifier != nil && b != nil {
		e.notifier.BatchWritten(context.WithoutCancel(ctx), b)
	}
}
