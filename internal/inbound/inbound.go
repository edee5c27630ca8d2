// Package inbound pulls CRM changes into Conversion's records
// (docs/architecture.md#the-pull): for each object type read from the CRM, it
// pages through the connector's change feed from a stored cursor, links each
// CRM record to a Conversion record (or creates one), applies field values by
// sync mode, and logs every pull as one INBOUND sync-log batch. Applying a
// change never queues an outbound write. docs/inbound.md states the rules.
package inbound

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/events"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/synclog"
)

// Connectors hands out a connector by name (the plugin host in production).
type Connectors interface {
	Connector(ctx context.Context, name string) (connector.Connector, error)
}

// Gate is the sync gate shared with outbound flushes (*push.Engine): a
// pull runs only when a flush could, and a pause is logged once per episode
// whichever sync meets it first.
type Gate interface {
	Gate(ctx context.Context, c *connection.Connection) (push.PauseReason, string, error)
	Pause(ctx context.Context, c *connection.Connection, dir synclog.Direction, reason push.PauseReason, detail string) (*push.Result, error)
	Resume(ctx context.Context, c *connection.Connection) error
}

// Config tunes pulls. Zero values take the defaults.
type Config struct {
	// PageSize is the page size asked of the connector (0: the
	// connector's own default; Salesforce accepts 200 to 2,000).
	PageSize int
	// MaxPages bounds the pages one Pull reads (default 50), so a large
	// backlog is pulled in several runs with flushes in between; the
	// Result says More.
	MaxPages int
	// StreamLeaseWait is how long a stream batch waits before asking
	// again for the connection's lease held by a flush or pull (default
	// DefaultStreamLeaseWait).
	StreamLeaseWait time.Duration
	// LeaseTTL is how long a pull holds the connection's lease between
	// renewals, so how long a crashed pull blocks the connection's next
	// sync (default connection.DefaultLeaseTTL).
	LeaseTTL time.Duration
	// Owner prefixes the lease owner of every pull: the process's
	// replica.Identity.Owner() (default host/pid).
	Owner string
}

func (c *Config) defaults() {
	if c.MaxPages <= 0 {
		c.MaxPages = 50
	}
	if c.StreamLeaseWait <= 0 {
		c.StreamLeaseWait = DefaultStreamLeaseWait
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = connection.DefaultLeaseTTL
	}
}

// Puller pulls workspaces' CRM changes. It is safe for concurrent use.
type Puller struct {
	db         *bun.DB
	conns      *connection.Store
	connectors Connectors
	gate       Gate
	pub        events.Publisher
	logger     *slog.Logger
	cfg        Config
	now        func() time.Time

	descs *connection.DescribeCache
}

// New returns a Puller. gate is the outbound engine; pub may be nil.
func New(db *bun.DB, conns *connection.Store, connectors Connectors, gate Gate, pub events.Publisher, logger *slog.Logger, cfg Config) *Puller {
	cfg.defaults()
	return &Puller{db: db, conns: conns, connectors: connectors, gate: gate, pub: pub, logger: logger, cfg: cfg,
		now: time.Now, descs: connection.NewDescribeCache(connection.DescribeTTL)}
}

// Result is what one pull did.
type Result struct {
	// Batch is the INBOUND sync-log batch written: nil when the pull found
	// nothing to log (or was paused in an episode already logged).
	Batch *synclog.Batch
	// Paused is set when the pull read nothing because syncing is paused.
	Paused push.PauseReason
	// More is true when the pull stopped after Config.MaxPages pages with
	// changes left to read: pull again soon.
	More bool
	// Calls is the number of CRM API calls the pull made.
	Calls int
	// Streaming is set when the pull was skipped because the workspace's
	// changes arrive through its change stream.
	Streaming bool
}

// Pull reads the workspace's CRM changes since its stored cursors and
// applies them. A whole-call connector failure is returned as an error
// wrapping the connector's typed error (errors.Is(err,
// connector.ErrRateLimited), ...); what was applied before it stays
// applied and the next pull resumes after it. Expired credentials are not
// an error: the connection is marked expired and the result says paused.
// connection.ErrBusy means another sync of the connection is running.
func (p *Puller) Pull(ctx context.Context, workspaceID int64) (*Result, error) {
	c, err := p.conns.Get(ctx, workspaceID)
	if errors.Is(err, connection.ErrNotConnected) {
		return &Result{Paused: push.PauseNotConnected}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := markPulled(ctx, p.db, workspaceID, p.now().UTC()); err != nil {
		return nil, err
	}
	if streaming, err := Streaming(ctx, p.db, workspaceID, p.now()); err != nil || streaming {
		// Changes arrive through the stream: a pull would cost calls for
		// nothing (a broken stream shows POLLING and pulls resume).
		return &Result{Streaming: streaming}, err
	}
	reason, detail, err := p.gate.Gate(ctx, c)
	if err != nil {
		return nil, err
	}
	if reason != push.PauseNone {
		return p.pause(ctx, c, reason, detail)
	}
	owner := connection.LeaseOwner(p.cfg.Owner, "pull")
	ctx, release, ok, err := p.conns.HoldLease(ctx, c, owner, p.cfg.LeaseTTL)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, connection.ErrBusy
	}
	defer func() {
		if err := release(); err != nil {
			p.logger.Error("release pull lease", slog.Int64("workspace_id", workspaceID), slog.Any("error", err))
		}
	}()
	if err := p.gate.Resume(ctx, c); err != nil {
		return nil, err
	}
	r, err := p.newRun(ctx, c)
	if err != nil {
		return nil, err
	}
	return r.run(ctx)
}

func (p *Puller) pause(ctx context.Context, c *connection.Connection, reason push.PauseReason, detail string) (*Result, error) {
	er, err := p.gate.Pause(ctx, c, synclog.Inbound, reason, detail)
	if err != nil {
		return nil, err
	}
	return &Result{Paused: er.Paused, Batch: er.Batch}, nil
}

func (p *Puller) publish(ctx context.Context, e events.Event) {
	if p.pub == nil {
		return
	}
	if err := p.pub.Publish(context.WithoutCancel(ctx), e); err != nil {
		p.logger.Warn("publish inbound event", slog.Int64("workspace_id", e.WorkspaceID), slog.Any("error", err))
	}
}
