package connectortest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
)

// subscription collects what one SubscribeChanges delivers.
type subscription struct {
	batches chan *connector.ChangeBatch
	done    chan error
	cancel  context.CancelFunc
}

func subscribe(t *testing.T, h Harness, cs connector.ChangeStreamer, position string) *subscription {
	t.Helper()
	c, cancel := context.WithCancel(ctx(t))
	s := &subscription{batches: make(chan *connector.ChangeBatch, 1000), done: make(chan error, 1), cancel: cancel}
	go func() {
		s.done <- cs.SubscribeChanges(c, connector.SubscribeRequest{Session: h.Session, Object: h.Object, Position: position,
			Fields: []string{h.UpdateField}}, func(c context.Context, b *connector.ChangeBatch) error {
			select {
			case s.batches <- b:
				return nil
			case <-c.Done():
				return c.Err()
			}
		})
	}()
	return s
}

// stop cancels the subscription and checks it ends with ctx's error.
func (s *subscription) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	err := <-s.done
	require.ErrorIs(t, err, context.Canceled, "a cancelled subscription ends with ctx's error")
}

// until reads batches until cond has seen what it wants; it returns the
// position of the last batch read.
func (s *subscription) until(t *testing.T, what string, cond func(connector.ChangeEvent) bool) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	pos := ""
	for {
		select {
		case b := <-s.batches:
			if b.Position != "" {
				pos = b.Position
			}
			for _, ev := range b.Events {
				if cond(ev) {
					return pos
				}
			}
		case err := <-s.done:
			t.Fatalf("stream ended waiting for %s: %v", what, err)
		case <-deadline:
			t.Fatalf("no %s within 30s", what)
		}
	}
}

// testStreamChanges checks a streaming connector: a subscription without a
// position starts with RESYNC; changes arrive in commit order with their
// values, crmsync's own writes marked Own; a subscription resumed from a
// position delivers what changed after it and nothing before.
func testStreamChanges(t *testing.T, h Harness) {
	if !describe(t, h).Has(connector.CapabilityStreamChanges) {
		return
	}
	cs, ok := h.Connector.(connector.ChangeStreamer)
	require.True(t, ok, "announces stream_changes: implements connector.ChangeStreamer")
	s := subscribe(t, h, cs, "")
	s.until(t, "the RESYNC of a subscription without a position", func(ev connector.ChangeEvent) bool {
		return ev.Kind == connector.ChangeResync
	})

	ids := create(t, h, 0, 2)
	update := func(id, v string) {
		resp, err := h.Connector.BulkUpdate(ctx(t), connector.BulkUpdateRequest{Session: h.Session, Operations: []connector.Operation{
			{Kind: connector.OpUpdate, Object: h.Object, ID: id, Fields: map[string]any{h.UpdateField: v}}}})
		require.NoError(t, err)
		require.Nil(t, resp.Results[0].Error)
	}
	update(ids[0], "StreamA")
	update(ids[0], "StreamB")
	var last time.Time
	pos := s.until(t, "the last update of the first record", func(ev connector.ChangeEvent) bool {
		require.False(t, ev.CommittedAt.Before(last), "events arrive in commit order")
		last = ev.CommittedAt
		if ev.Kind == connector.ChangeResync || len(ev.RecordIDs) == 0 || ev.RecordIDs[0] != ids[0] {
			return false
		}
		require.True(t, ev.Own, "crmsync's own write is marked Own")
		return ev.Fields[h.UpdateField] == "StreamB"
	})
	require.NotEmpty(t, pos, "batches carry positions")
	s.stop(t)

	// While unsubscribed, the second record changes; resumed from pos, the
	// stream delivers that change and nothing from before pos.
	update(ids[1], "StreamC")
	if h.EditAsOtherUser != nil {
		require.NoError(t, h.EditAsOtherUser(ctx(t), h.Object, ids[1], map[string]any{h.UpdateField: "StreamD"}))
	}
	r := subscribe(t, h, cs, pos)
	want := "StreamC"
	if h.EditAsOtherUser != nil {
		want = "StreamD"
	}
	r.until(t, "the change made while unsubscribed", func(ev connector.ChangeEvent) bool {
		if len(ev.RecordIDs) > 0 && ev.RecordIDs[0] == ids[0] {
			t.Fatalf("resumed stream delivered %s's change from before its position", ids[0])
		}
		if len(ev.RecordIDs) == 0 || ev.RecordIDs[0] != ids[1] || ev.Fields[h.UpdateField] != want {
			return false
		}
		if h.EditAsOtherUser != nil {
			require.False(t, ev.Own, "another user's change is not Own")
		}
		return true
	})
	r.stop(t)

	// A position the connector cannot resume from is either refused as
	// invalid or answered with a RESYNC (the consumer then catches up).
	err := cs.SubscribeChanges(ctx(t), connector.SubscribeRequest{Session: h.Session, Object: h.Object, Position: "not-a-position"},
		func(context.Context, *connector.ChangeBatch) error { return errResynced })
	require.True(t, errors.Is(err, errResynced) || errors.Is(err, connector.ErrInvalid), "bad position: %v", err)
}

var errResynced = errors.New("resynced")
