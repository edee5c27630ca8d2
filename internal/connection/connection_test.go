package connection_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/secret"
)

func newWorkspace(t *testing.T, bdb *bun.DB) int64 {
	t.Helper()
	var id int64
	require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "t", time.Now().UTC()).
		Scan(context.Background(), &id))
	return id
}

func newBox(t *testing.T) *secret.Box {
	t.Helper()
	key := make([]byte, secret.KeySize)
	_, _ = rand.Read(key)
	box, err := secret.NewBox(key)
	require.NoError(t, err)
	return box
}

type connectorsFunc func(ctx context.Context, name string) (connector.Connector, error)

func (f connectorsFunc) Connector(ctx context.Context, name string) (connector.Connector, error) {
	return f(ctx, name)
}

type schedulerFunc func(ctx context.Context, ws int64) error

func (f schedulerFunc) ScheduleNow(ctx context.Context, ws int64) error { return f(ctx, ws) }

func TestCredentialsSealedAndBoundToRow(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		store := connection.NewStore(bdb, newBox(t))
		wsA, wsB := newWorkspace(t, bdb), newWorkspace(t, bdb)
		creds := json.RawMessage(`{"clientSecret":"very-secret-value","refreshToken":"5Aep-refresh"}`)
		a, err := store.Save(ctx, wsA, "memcrm", json.RawMessage(`{"org":"a"}`), creds, connector.Identity{UserID: "005A"}, nil)
		require.NoError(t, err)
		b, err := store.Save(ctx, wsB, "memcrm", json.RawMessage(`{"org":"b"}`), json.RawMessage(`{"token":"b"}`), connector.Identity{UserID: "005B"}, nil)
		require.NoError(t, err)

		var raw []byte
		require.NoError(t, bdb.NewSelect().Table("crm_connections").Column("credentials").Where("id = ?", a.ID).Scan(ctx, &raw))
		require.False(t, bytes.Contains(raw, []byte("very-secret-value")), "plaintext secret stored")

		got, err := store.Get(ctx, wsA)
		require.NoError(t, err)
		plain, err := store.Credentials(got)
		require.NoError(t, err)
		require.JSONEq(t, string(creds), string(plain))

		// A ciphertext copied into another connection's row does not open.
		_, err = bdb.NewUpdate().Table("crm_connections").Set("credentials = ?", raw).Where("id = ?", b.ID).Exec(ctx)
		require.NoError(t, err)
		gotB, err := store.Get(ctx, wsB)
		require.NoError(t, err)
		_, err = store.Credentials(gotB)
		require.ErrorIs(t, err, secret.ErrDecrypt)

		// Refreshed credentials and usage from a response are persisted.
		require.NoError(t, store.Observe(ctx, got, connector.Meta{Credentials: json.RawMessage(`{"accessToken":"new"}`),
			Usage: &connector.Usage{Used: 10, Max: 100, ObservedAt: time.Now()}}))
		got, err = store.Get(ctx, wsA)
		require.NoError(t, err)
		plain, err = store.Credentials(got)
		require.NoError(t, err)
		require.JSONEq(t, `{"accessToken":"new"}`, string(plain))
		require.Equal(t, int64(10), got.APIUsed.Int64)

		require.NoError(t, store.Delete(ctx, wsA))
		_, err = store.Get(ctx, wsA)
		require.ErrorIs(t, err, connection.ErrNotConnected)
	})
}

func TestConnect(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		crm := memcrm.New()
		scheduled := 0
		svc := connection.NewService(connection.NewStore(bdb, newBox(t)),
			connectorsFunc(func(ctx context.Context, name string) (connector.Connector, error) {
				switch name {
				case memcrm.Name:
					return crm, nil
				case "broken":
					return nil, &connection.UnavailableError{Connector: name, Kind: "BAD_HANDSHAKE", Reason: "the plugin's handshake cookie does not match crmsync's"}
				}
				return nil, &connection.UnknownConnectorError{Name: name, Known: []string{memcrm.Name, "broken"}}
			}),
			schedulerFunc(func(context.Context, int64) error { scheduled++; return nil }))
		ws := newWorkspace(t, bdb)
		s := memcrm.Session("acme", memcrm.DefaultToken)

		c, err := svc.Connect(ctx, ws, memcrm.Name, s.Config, s.Credentials)
		require.NoError(t, err)
		require.Equal(t, connection.StatusConnected, c.Status)
		require.Equal(t, crm.Org("acme").Identity().UserID, c.IdentityUserID)
		require.Equal(t, 1, scheduled)

		var ie *connection.InputError
		_, err = svc.Connect(ctx, ws, memcrm.Name, s.Config, memcrm.Session("acme", "wrong").Credentials)
		require.ErrorAs(t, err, &ie)
		require.Contains(t, err.Error(), "refused")
		_, err = svc.Connect(ctx, ws, "nope", s.Config, s.Credentials)
		require.ErrorAs(t, err, &ie)
		require.EqualError(t, err, "no such connector configured: nope (known: memcrm, broken)")
		_, err = svc.Connect(ctx, ws, "broken", s.Config, s.Credentials)
		require.ErrorAs(t, err, &ie)
		require.EqualError(t, err, "connector broken is configured but failed to start: BAD_HANDSHAKE: the plugin's handshake cookie does not match crmsync's")
		_, err = svc.Connect(ctx, ws, memcrm.Name, json.RawMessage(`[1]`), s.Credentials)
		require.ErrorAs(t, err, &ie)

		d, err := svc.Describe(ctx, ws, []string{"Lead"})
		require.NoError(t, err)
		_, ok := d.Object("Lead")
		require.True(t, ok)

		require.NoError(t, svc.SetPaused(ctx, ws, true))
		got, err := svc.Get(ctx, ws)
		require.NoError(t, err)
		require.True(t, got.PausedByUser)
	})
}

func TestLease(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		store := connection.NewStore(bdb, newBox(t))
		ws := newWorkspace(t, bdb)
		_, err := store.Save(ctx, ws, "memcrm", json.RawMessage(`{}`), json.RawMessage(`{}`), connector.Identity{}, nil)
		require.NoError(t, err)
		c1, _ := store.Get(ctx, ws)
		c2, _ := store.Get(ctx, ws)
		ok, err := store.AcquireLease(ctx, c1, "replica-1", time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = store.AcquireLease(ctx, c2, "replica-2", time.Minute)
		require.NoError(t, err)
		require.False(t, ok, "a held lease is exclusive")
		require.NoError(t, store.ReleaseLease(ctx, c1, "replica-1"))
		ok, err = store.AcquireLease(ctx, c2, "replica-2", -time.Second) // already expired
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = store.AcquireLease(ctx, c1, "replica-1", time.Minute)
		require.NoError(t, err)
		require.True(t, ok, "an expired lease (a crashed holder) is taken over")
	})
}

// A new daily cap ends a pause for the old one (the flush it schedules
// decides again) and leaves other pause reasons alone.
func TestSetDailyLimitClearsItsPause(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		store := connection.NewStore(bdb, newBox(t))
		ws := newWorkspace(t, bdb)
		_, err := store.Save(ctx, ws, "memcrm", json.RawMessage(`{}`), json.RawMessage(`{}`), connector.Identity{}, nil)
		require.NoError(t, err)
		c, err := store.Get(ctx, ws)
		require.NoError(t, err)
		for reason, want := range map[string]string{"CONVERSION_LIMIT": "", "SALESFORCE_LIMIT": "SALESFORCE_LIMIT"} {
			require.NoError(t, store.SetPauseReason(ctx, c, reason))
			limit := int64(50)
			require.NoError(t, store.SetDailyLimit(ctx, c, &limit))
			require.Equal(t, want, c.PauseReason, reason)
			stored, err := store.Get(ctx, ws)
			require.NoError(t, err)
			require.Equal(t, want, stored.PauseReason, reason)
			require.Equal(t, limit, stored.DailyLimit.Int64)
		}
	})
}

// A held lease outlives its TTL while the holder renews it, and the
// holder's context ends as soon as someone else took it over.
func TestHoldLease(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		store := connection.NewStore(bdb, newBox(t))
		ws := newWorkspace(t, bdb)
		_, err := store.Save(ctx, ws, "memcrm", json.RawMessage(`{}`), json.RawMessage(`{}`), connector.Identity{}, nil)
		require.NoError(t, err)
		c1, _ := store.Get(ctx, ws)
		c2, _ := store.Get(ctx, ws)
		const ttl = 300 * time.Millisecond
		held, release, ok, err := store.HoldLease(ctx, c1, "replica-1", ttl)
		require.NoError(t, err)
		require.True(t, ok)

		// Three TTLs later the lease is still held: renewals kept it.
		deadline := time.Now().Add(3 * ttl)
		for time.Now().Before(deadline) {
			ok, err = store.AcquireLease(ctx, c2, "replica-2", ttl)
			require.NoError(t, err)
			require.False(t, ok, "a renewed lease is never taken over")
			time.Sleep(ttl / 10)
		}
		require.NoError(t, held.Err())

		_, _, ok, err = store.HoldLease(ctx, c2, "replica-2", ttl)
		require.NoError(t, err)
		require.False(t, ok, "HoldLease refuses a held lease")

		// An operator (or a bug) hands the lease to someone else: the
		// holder learns it on its next renewal.
		_, err = bdb.NewUpdate().Table("crm_connections").Set("lease_owner = 'replica-3'").Where("id = ?", c1.ID).Exec(ctx)
		require.NoError(t, err)
		select {
		case <-held.Done():
			require.ErrorContains(t, context.Cause(held), "taken over")
		case <-time.After(10 * ttl):
			t.Fatal("the holder's context did not end after losing the lease")
		}
		require.NoError(t, release())
		var owner string
		require.NoError(t, bdb.NewSelect().Table("crm_connections").Column("lease_owner").Where("id = ?", c1.ID).Scan(ctx, &owner))
		require.Equal(t, "replica-3", owner, "release gives back only its own lease")

		// A normal release frees it at once.
		_, err = bdb.NewUpdate().Table("crm_connections").Set("lease_owner = '', lease_until = NULL").Where("id = ?", c1.ID).Exec(ctx)
		require.NoError(t, err)
		held, release, ok, err = store.HoldLease(ctx, c1, "replica-1", ttl)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, release())
		require.ErrorIs(t, held.Err(), context.Canceled)
		ok, err = store.AcquireLease(ctx, c2, "replica-2", ttl)
		require.NoError(t, err)
		require.True(t, ok, "a released lease is free")
	})
}

// refusingDescribe is a connector whose describe with credentials fails as
// invalid (Salesforce, for an object missing from the org).
type refusingDescribe struct{ connector.Connector }

func (r refusingDescribe) Describe(ctx context.Context, req connector.DescribeRequest) (*connector.Description, error) {
	if len(req.Session.Credentials) > 0 {
		return nil, connector.Errorf(connector.KindInvalid, "NOT_FOUND: The requested resource does not exist")
	}
	return r.Connector.Describe(ctx, req)
}

// Connecting records the objects the connector describes; a describe the
// CRM refuses as invalid leaves them unknown (every type routed), also
// when it replaces a connection that had them.
func TestConnectRecordsObjects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		crms := map[string]connector.Connector{
			"nocampaigns": memcrm.New(memcrm.WithoutObjects("Campaign", "CampaignMember")),
			"refusing":    refusingDescribe{memcrm.New()},
		}
		svc := connection.NewService(connection.NewStore(bdb, newBox(t)),
			connectorsFunc(func(_ context.Context, name string) (connector.Connector, error) { return crms[name], nil }),
			schedulerFunc(func(context.Context, int64) error { return nil }))
		ws := newWorkspace(t, bdb)
		s := memcrm.Session("acme", memcrm.DefaultToken)

		c, err := svc.Connect(ctx, ws, "nocampaigns", s.Config, s.Credentials)
		require.NoError(t, err)
		names, known := c.Objects()
		require.True(t, known)
		require.Equal(t, []string{"Lead", "Contact", "Account", "Task", "User", "Group"}, names)
		stored, err := svc.Get(ctx, ws)
		require.NoError(t, err)
		names, known = stored.Objects()
		require.True(t, known)
		require.NotContains(t, names, "Campaign")

		_, err = svc.Connect(ctx, ws, "refusing", s.Config, s.Credentials)
		require.NoError(t, err)
		stored, err = svc.Get(ctx, ws)
		require.NoError(t, err)
		_, known = stored.Objects()
		require.False(t, known, "unknown objects: every type is routed")
	})
}
