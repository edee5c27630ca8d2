package events_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/events"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func receive(t *testing.T, ch <-chan events.Event) events.Event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
		return events.Event{}
	}
}

func TestBusDeliversPerWorkspace(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	bus := events.NewBus()
	a := bus.Subscribe(ctx, 1)
	b := bus.Subscribe(ctx, 2)
	require.NoError(t, bus.Publish(ctx, events.Event{WorkspaceID: 1, Kind: events.KindOverview}))
	require.NoError(t, bus.Publish(ctx, events.Event{WorkspaceID: 2, Kind: events.KindBatch, BatchID: 9}))
	require.Equal(t, events.Event{WorkspaceID: 1, Kind: events.KindOverview}, receive(t, a))
	require.Equal(t, events.Event{WorkspaceID: 2, Kind: events.KindBatch, BatchID: 9}, receive(t, b))
	select {
	case e := <-a:
		t.Fatalf("workspace 1 saw %v", e)
	default:
	}
	cancel()
	for range a { // closed once the subscription ends
	}
}

func TestPGBusCrossesConnections(t *testing.T) {
	t.Parallel()
	url := dbtest.BaseURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	// NOTIFY is per database: publish on the same database the buses listen on.
	bdb, err := db.Open(ctx, url, t.TempDir(), logger)
	require.NoError(t, err)
	defer bdb.Close()
	// Two buses stand for two replicas.
	one, two := events.NewPGBus(bdb, url, logger), events.NewPGBus(bdb, url, logger)
	done := make(chan struct{}, 2)
	for _, b := range []*events.PGBus{one, two} {
		ready := make(chan struct{})
		go func() { b.Run(ctx, ready); done <- struct{}{} }()
		<-ready
	}
	sub := two.Subscribe(ctx, 5)
	require.NoError(t, one.Publish(ctx, events.Event{WorkspaceID: 5, Kind: events.KindOverview}))
	require.Equal(t, events.Event{WorkspaceID: 5, Kind: events.KindOverview}, receive(t, sub))
	cancel()
	<-done
	<-done
}
