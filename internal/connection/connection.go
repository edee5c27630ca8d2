// Package connection stores a workspace's CRM connection: which connector,
// its configuration, its credentials (sealed with package secret), its
// health, the integration user it acts as, and the last API usage seen. It
// also opens a connector session for the connection, persisting refreshed
// credentials and usage after every call.
package connection

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/secret"
)

// Status is a connection's health.
type Status string

const (
	StatusConnected Status = "CONNECTED"
	// StatusExpired: the credentials can no longer be refreshed; syncing
	// pauses until the user reconnects.
	StatusExpired Status = "EXPIRED"
	// StatusCredentialsUnreadable: the stored credentials do not decrypt
	// with this server's secret key (the key changed since they were
	// saved). Syncing pauses until the key that sealed them is back, or
	// the user reconnects (which seals new credentials with the new key).
	StatusCredentialsUnreadable Status = "CREDENTIALS_UNREADABLE"
)

// UnreadableReason is the status reason of a connection whose credentials
// do not decrypt.
const UnreadableReason = "credentials unreadable: the secret key changed (CRMSYNC_SECRET_KEY, or <data-dir>/secret.key, " +
	"is not the key the credentials were saved with); restore that key, or reconnect with connectCrm"

// ErrCredentialsUnreadable is returned when a connection's credentials do
// not decrypt with the server's secret key. Its message is written for API
// clients (code CREDENTIALS_UNREADABLE).
var ErrCredentialsUnreadable error = unreadableError{}

type unreadableError struct{}

func (unreadableError) Error() string { return UnreadableReason }

// Unwrap keeps errors.Is(err, secret.ErrDecrypt) true.
func (unreadableError) Unwrap() error { return secret.ErrDecrypt }

// UserFacing marks the error as safe to show to API clients.
func (unreadableError) UserFacing() {}

// Code is the error's GraphQL extension code.
func (unreadableError) Code() string { return string(StatusCredentialsUnreadable) }

// ErrNotConnected is returned when a workspace has no CRM connection. Its
// message is written for API clients (code NOT_CONNECTED).
var ErrNotConnected error = notConnectedError{}

type notConnectedError struct{}

func (notConnectedError) Error() string { return "no CRM connection: connect one with connectCrm" }

// UserFacing marks the error as safe to show to API clients.
func (notConnectedError) UserFacing() {}

// Code is the error's GraphQL extension code.
func (notConnectedError) Code() string { return "NOT_CONNECTED" }

// Connection is one row of crm_connections.
type Connection struct {
	bun.BaseModel `bun:"table:crm_connections"`

	ID               int64           `bun:"id,pk,autoincrement"`
	WorkspaceID      int64           `bun:"workspace_id,notnull"`
	Connector        string          `bun:"connector,notnull"`
	Config           json.RawMessage `bun:"config,type:text,notnull"`
	Credentials      []byte          `bun:"credentials"`
	Status           Status          `bun:"status,notnull"`
	StatusReason     string          `bun:"status_reason,notnull"`
	IdentityUserID   string          `bun:"identity_user_id,notnull"`
	IdentityUsername string          `bun:"identity_username,notnull"`
	IdentityOrgID    string          `bun:"identity_org_id,notnull"`
	InstanceURL      string          `bun:"instance_url,notnull"`
	PausedByUser     bool            `bun:"paused_by_user,notnull"`
	APIUsed          sql.NullInt64   `bun:"api_used"`
	APIMax           sql.NullInt64   `bun:"api_max"`
	APIObservedAt    bun.NullTime    `bun:"api_observed_at"`
	DailyLimit       sql.NullInt64   `bun:"daily_limit"`
	LastFlushAt      bun.NullTime    `bun:"last_flush_at"`
	LeaseOwner       string          `bun:"lease_owner,notnull"`
	LeaseUntil       bun.NullTime    `bun:"lease_until"`
	PauseReason      string          `bun:"pause_reason,notnull"`
	// CRMObjects are the objects the connector described when the
	// connection was made (a JSON array; NULL for connections made before
	// crmsync recorded them). See Objects.
	CRMObjects sql.NullString `bun:"crm_objects"`
	// CRMContract is the data contract the connector declared when the
	// connection was made (JSON; NULL: Salesforce's shape). See Contract.
	CRMContract sql.NullString `bun:"crm_contract"`
	// PaceTokens, PaceRate and PaceAt are the outbound token bucket
	// (internal/push, pace.go): its content in calls at PaceAt and its
	// refill rate in calls per second. Invalid PaceAt: a full bucket.
	PaceTokens sql.NullFloat64 `bun:"pace_tokens"`
	PaceRate   sql.NullFloat64 `bun:"pace_rate"`
	PaceAt     bun.NullTime    `bun:"pace_at"`
	PaceBurst  sql.NullFloat64 `bun:"pace_burst"`
	PaceBudget sql.NullInt64   `bun:"pace_budget"`
	CreatedAt  time.Time       `bun:"created_at,notnull"`
	UpdatedAt  time.Time       `bun:"updated_at,notnull"`
}

func binding(c *Connection) string {
	return "crm_connections/" + strconv.FormatInt(c.ID, 10) + "/workspace/" + strconv.FormatInt(c.WorkspaceID, 10)
}

// Store reads and writes connections.
type Store struct {
	db  bun.IDB
	box *secret.Box
	now func() time.Time
}

// NewStore returns a Store sealing credentials with box.
func NewStore(db bun.IDB, box *secret.Box) *Store {
	return &Store{db: db, box: box, now: time.Now}
}

// Get returns the workspace's connection or ErrNotConnected.
func (s *Store) Get(ctx context.Context, workspaceID int64) (*Connection, error) {
	return get(ctx, s.db, workspaceID)
}

func get(ctx context.Context, db bun.IDB, workspaceID int64) (*Connection, error) {
	c := new(Connection)
	err := db.NewSelect().Model(c).Where("workspace_id = ?", workspaceID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotConnected
	}
	if err != nil {
		return nil, fmt.Errorf("get connection of workspace %d: %w", workspaceID, err)
	}
	return c, nil
}

// Save creates or replaces the workspace's connection with a checked
// connector, configuration, credentials and identity. Queued items are not
// touched: they belong to the workspace, not to the connection.
func (s *Store) Save(ctx context.Context, workspaceID int64, name string, config, credentials json.RawMessage, id connector.Identity, usage *connector.Usage) (*Connection, error) {
	now := s.now().UTC()
	var out *Connection
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		c, err := get(ctx, tx, workspaceID)
		if errors.Is(err, ErrNotConnected) {
			c = &Connection{WorkspaceID: workspaceID, CreatedAt: now, UpdatedAt: now, Config: json.RawMessage("{}"), Status: StatusConnected}
			if _, err := tx.NewInsert().Model(c).Returning("id").Exec(ctx); err != nil {
				return fmt.Errorf("insert connection: %w", err)
			}
		} else if err != nil {
			return err
		}
		c.Connector, c.Config = name, config
		c.Status, c.StatusReason, c.PauseReason = StatusConnected, "", ""
		c.IdentityUserID, c.IdentityUsername, c.IdentityOrgID, c.InstanceURL = id.UserID, id.Username, id.OrgID, id.InstanceURL
		c.Credentials = s.box.Seal(credentials, binding(c))
		if usage != nil {
			c.APIUsed = sql.NullInt64{Int64: usage.Used, Valid: true}
			c.APIMax = sql.NullInt64{Int64: usage.Max, Valid: true}
			c.APIObservedAt = bun.NullTime{Time: usage.ObservedAt.UTC()}
		}
		c.UpdatedAt = now
		if _, err := tx.NewUpdate().Model(c).WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("update connection %d: %w", c.ID, err)
		}
		out = c
		return nil
	})
	return out, err
}

// Delete removes the workspace's connection.
func (s *Store) Delete(ctx context.Context, workspaceID int64) error {
	res, err := s.db.NewDelete().Model((*Connection)(nil)).Where("workspace_id = ?", workspaceID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("delete connection of workspace %d: %w", workspaceID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotConnected
	}
	return nil
}

// Credentials opens the connection's sealed credentials. Credentials that
// do not decrypt with this server's key fail with ErrCredentialsUnreadable
// itself, a message for the user.
func (s *Store) Credentials(c *Connection) (json.RawMessage, error) {
	plain, err := s.box.Open(c.Credentials, binding(c))
	if errors.Is(err, secret.ErrDecrypt) {
		return nil, ErrCredentialsUnreadable
	}
	if err != nil {
		return nil, fmt.Errorf("open credentials of connection %d: %w", c.ID, err)
	}
	return plain, nil
}

// CheckCredentials reports whether the connection's credentials decrypt
// with this server's key (a local check: no CRM call), and keeps the
// connection's status in step: CREDENTIALS_UNREADABLE when they do not,
// back to CONNECTED when they do again (the right key is back). changed
// says the status moved.
func (s *Store) CheckCredentials(ctx context.Context, c *Connection) (readable, changed bool, err error) {
	_, oerr := s.Credentials(c)
	readable = oerr == nil
	switch {
	case oerr != nil && !errors.Is(oerr, ErrCredentialsUnreadable):
		return false, false, oerr
	case !readable && c.Status != StatusCredentialsUnreadable:
		return false, true, s.setStatus(ctx, c, StatusCredentialsUnreadable, UnreadableReason)
	case readable && c.Status == StatusCredentialsUnreadable:
		return true, true, s.setStatus(ctx, c, StatusConnected, "")
	}
	return readable, false, nil
}

func (s *Store) setStatus(ctx context.Context, c *Connection, status Status, reason string) error {
	c.Status, c.StatusReason = status, reason
	_, err := s.db.NewUpdate().Model(c).WherePK().
		Set("status = ?, status_reason = ?, updated_at = ?", status, reason, s.now().UTC()).Exec(ctx)
	if err != nil {
		return fmt.Errorf("set status of connection %d to %s: %w", c.ID, status, err)
	}
	return nil
}

// Session returns the connector session for c.
func (s *Store) Session(c *Connection) (connector.Session, error) {
	creds, err := s.Credentials(c)
	if err != nil {
		return connector.Session{}, err
	}
	return connector.Session{Config: c.Config, Credentials: creds}, nil
}

// Observe persists what a connector response carried: refreshed credentials
// and API usage. It is called after every connector call.
func (s *Store) Observe(ctx context.Context, c *Connection, meta connector.Meta) error {
	if meta.Credentials == nil && meta.Usage == nil {
		return nil
	}
	q := s.db.NewUpdate().Model(c).WherePK().Set("updated_at = ?", s.now().UTC())
	if meta.Credentials != nil {
		c.Credentials = s.box.Seal(meta.Credentials, binding(c))
		q = q.Set("credentials = ?", c.Credentials)
	}
	if u := meta.Usage; u != nil {
		c.APIUsed = sql.NullInt64{Int64: u.Used, Valid: true}
		c.APIMax = sql.NullInt64{Int64: u.Max, Valid: true}
		c.APIObservedAt = bun.NullTime{Time: u.ObservedAt.UTC()}
		q = q.Set("api_used = ?, api_max = ?, api_observed_at = ?", u.Used, u.Max, c.APIObservedAt)
	}
	if _, err := q.Exec(ctx); err != nil {
		return fmt.Errorf("record connector response for connection %d: %w", c.ID, err)
	}
	return nil
}

// MarkExpired records that the credentials can no longer be refreshed.
func (s *Store) MarkExpired(ctx context.Context, c *Connection, reason string) error {
	c.Status, c.StatusReason = StatusExpired, reason
	_, err := s.db.NewUpdate().Model(c).WherePK().
		Set("status = ?, status_reason = ?, updated_at = ?", c.Status, reason, s.now().UTC()).Exec(ctx)
	if err != nil {
		return fmt.Errorf("mark connection %d expired: %w", c.ID, err)
	}
	return nil
}

// SetPausedByUser pauses or resumes syncing by hand.
func (s *Store) SetPausedByUser(ctx context.Context, workspaceID int64, paused bool) error {
	res, err := s.db.NewUpdate().Model((*Connection)(nil)).Where("workspace_id = ?", workspaceID).
		Set("paused_by_user = ?, updated_at = ?", paused, s.now().UTC()).Exec(ctx)
	if err != nil {
		return fmt.Errorf("pause connection of workspace %d: %w", workspaceID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotConnected
	}
	return nil
}

// AcquireLease takes the connection's sync lease for owner until ttl from
// now, unless anyone (owner included: owners name one sync, not a process)
// holds an unexpired one. The lease keeps two
// syncs of one connection (flush or pull) from running at once across
// replicas, whatever the job queue does.
func (s *Store) AcquireLease(ctx context.Context, c *Connection, owner string, ttl time.Duration) (bool, error) {
	now := s.now().UTC()
	res, err := s.db.NewUpdate().Model((*Connection)(nil)).
		Set("lease_owner = ?, lease_until = ?", owner, now.Add(ttl)).
		Where("id = ?", c.ID).
		Where("(lease_until IS NULL OR lease_until < ?)", now).
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("acquire flush lease of connection %d: %w", c.ID, err)
	}
	n, _ := res.RowsAffected()
	if n == 1 {
		c.LeaseOwner, c.LeaseUntil = owner, bun.NullTime{Time: now.Add(ttl)}
	}
	return n == 1, nil
}

// ErrBusy is returned when another sync of the connection (a flush or a
// pull, on this replica or another) holds its lease.
var ErrBusy = errors.New("another sync of this connection is running")

// salesforceConnector is the built-in Salesforce connector's name
// (connectors/salesforce.Name).
const salesforceConnector = "salesforce"

// CRMName is how user-facing text (sync-log reasons) names the
// connection's CRM: "Salesforce" for the Salesforce connector, "CRM" for
// any other, whose Describe carries no display name.
func (c *Connection) CRMName() string {
	if c.Connector == salesforceConnector {
		return "Salesforce"
	}
	return "CRM"
}

// LeaseOwner names one sync for the connection lease: the process (its
// replica.Identity.Owner(), or host and pid when empty, for operators
// reading the table), the sync's role ("flush", "pull") and a random suffix.
func LeaseOwner(process, role string) string {
	if process == "" {
		host, _ := os.Hostname()
		process = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	return fmt.Sprintf("%s/%s/%s", process, role, hex.EncodeToString(suffix))
}

// DescribeTTL bounds how long a connection's describe (objects, fields and
// capabilities) is trusted: fields added in the CRM show up after it.
const DescribeTTL = 15 * time.Minute

// DefaultLeaseTTL is how long a sync holds its connection's lease between
// renewals, so how long a replica that died mid-sync blocks the connection.
const DefaultLeaseTTL = 30 * time.Second

// HoldLease acquires the connection's lease for owner and keeps it alive
// while the sync runs, renewing it every third of ttl. ok is false when
// another sync holds it. The returned context is cancelled when the lease
// is lost (a renewal found it taken over, or it ran out while renewals
// failed), so the sync stops before another one may start; release ends
// the renewals and gives the lease back.
func (s *Store) HoldLease(ctx context.Context, c *Connection, owner string, ttl time.Duration) (held context.Context, release func() error, ok bool, err error) {
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	ok, err = s.AcquireLease(ctx, c, owner, ttl)
	if err != nil || !ok {
		return nil, nil, ok, err
	}
	held, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		until := c.LeaseUntil.Time
		tick := time.NewTicker(ttl / 3)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-held.Done():
				return
			case <-tick.C:
			}
			next, kept, err := s.renewLease(held, c.ID, owner, ttl)
			switch {
			case err == nil && kept:
				until = next
			case err == nil:
				cancel(fmt.Errorf("lease of connection %d taken over", c.ID))
				return
			case !s.now().Before(until):
				cancel(fmt.Errorf("lease of connection %d ran out: %w", c.ID, err))
				return
			}
		}
	}()
	release = func() error {
		close(done)
		<-stopped
		cancel(nil)
		return s.ReleaseLease(context.WithoutCancel(ctx), c, owner)
	}
	return held, release, true, nil
}

// renewLease extends owner's lease; kept is false when owner lost it.
func (s *Store) renewLease(ctx context.Context, id int64, owner string, ttl time.Duration) (time.Time, bool, error) {
	until := s.now().UTC().Add(ttl)
	res, err := s.db.NewUpdate().Model((*Connection)(nil)).Set("lease_until = ?", until).
		Where("id = ? AND lease_owner = ?", id, owner).Exec(ctx)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("renew lease of connection %d: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return until, n == 1, nil
}

// MarkFlushStarted stamps last_flush_at, which paces flushes.
func (s *Store) MarkFlushStarted(ctx context.Context, c *Connection) error {
	now := s.now().UTC()
	_, err := s.db.NewUpdate().Model((*Connection)(nil)).Set("last_flush_at = ?", now).Where("id = ?", c.ID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("stamp flush of connection %d: %w", c.ID, err)
	}
	c.LastFlushAt = bun.NullTime{Time: now}
	return nil
}

// ReleaseDeadLeases gives back every lease whose owner dead recognises as
// a dead process's (a restarted replica's predecessor, see
// internal/replica), and returns the workspaces of those connections, whose
// sync stopped mid-way and should be scheduled again. A lease whose owner
// changed meanwhile is left alone.
func (s *Store) ReleaseDeadLeases(ctx context.Context, dead func(owner string) bool) ([]int64, error) {
	var held []Connection
	err := s.db.NewSelect().Model(&held).Column("id", "workspace_id", "lease_owner").
		Where("lease_owner <> ''").Where("lease_until IS NOT NULL").Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("find held leases: %w", err)
	}
	var released []int64
	for _, c := range held {
		if !dead(c.LeaseOwner) {
			continue
		}
		res, err := s.db.NewUpdate().Model((*Connection)(nil)).
			Set("lease_owner = '', lease_until = NULL").
			Where("id = ? AND lease_owner = ?", c.ID, c.LeaseOwner).Exec(ctx)
		if err != nil {
			return released, fmt.Errorf("release dead lease of connection %d: %w", c.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			released = append(released, c.WorkspaceID)
		}
	}
	return released, nil
}

// SetPace stores the outbound token bucket after a flush spent from it:
// its content, refill rate and capacity, and the daily budget behind them.
func (s *Store) SetPace(ctx context.Context, c *Connection, tokens, rate, burst float64, budget int64, at time.Time) error {
	c.PaceTokens = sql.NullFloat64{Float64: tokens, Valid: true}
	c.PaceRate = sql.NullFloat64{Float64: rate, Valid: true}
	c.PaceBurst = sql.NullFloat64{Float64: burst, Valid: true}
	c.PaceBudget = sql.NullInt64{Int64: budget, Valid: true}
	c.PaceAt = bun.NullTime{Time: at.UTC()}
	_, err := s.db.NewUpdate().Model((*Connection)(nil)).
		Set("pace_tokens = ?, pace_rate = ?, pace_burst = ?, pace_budget = ?, pace_at = ?", c.PaceTokens, c.PaceRate, c.PaceBurst, c.PaceBudget, c.PaceAt).
		Where("id = ?", c.ID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store the pace of connection %d: %w", c.ID, err)
	}
	return nil
}

// ReleaseLease gives the lease back if owner still holds it.
func (s *Store) ReleaseLease(ctx context.Context, c *Connection, owner string) error {
	_, err := s.db.NewUpdate().Model((*Connection)(nil)).
		Set("lease_owner = '', lease_until = NULL").
		Where("id = ? AND lease_owner = ?", c.ID, owner).Exec(ctx)
	if err != nil {
		return fmt.Errorf("release flush lease of connection %d: %w", c.ID, err)
	}
	return nil
}

// With returns a Store working in db (a transaction).
func (s *Store) With(db bun.IDB) *Store {
	return &Store{db: db, box: s.box, now: s.now}
}

// SetPauseReason records the current pause episode ("" when syncing).
func (s *Store) SetPauseReason(ctx context.Context, c *Connection, reason string) error {
	c.PauseReason = reason
	_, err := s.db.NewUpdate().Model((*Connection)(nil)).Set("pause_reason = ?", reason).Where("id = ?", c.ID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("set pause reason of connection %d: %w", c.ID, err)
	}
	return nil
}

// pauseConversionLimit is engine.PauseConversionLimit, the stored pause
// reason of a batch refused for crmsync's own daily cap.
const pauseConversionLimit = "CONVERSION_LIMIT"

// SetDailyLimit stores crmsync's own daily call limit (nil clears it).
func (s *Store) SetDailyLimit(ctx context.Context, c *Connection, limit *int64) error {
	c.DailyLimit = sql.NullInt64{}
	if limit != nil {
		c.DailyLimit = sql.NullInt64{Int64: *limit, Valid: true}
	}
	// A pause for the old cap does not hold for the new one: the flush
	// the new cap schedules decides again (and pauses again if need be).
	if c.PauseReason == pauseConversionLimit {
		c.PauseReason = ""
	}
	_, err := s.db.NewUpdate().Model((*Connection)(nil)).
		Set("daily_limit = ?, updated_at = ?", c.DailyLimit, s.now().UTC()).
		Set("pause_reason = CASE WHEN pause_reason = ? THEN '' ELSE pause_reason END", pauseConversionLimit).
		Where("id = ?", c.ID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("set daily limit of connection %d: %w", c.ID, err)
	}
	return nil
}
