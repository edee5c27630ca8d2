// Package events carries "something changed" signals to GraphQL
// subscriptions: a queue moved, a sync batch was written, records changed
// inbound. Events are small hints, never the data itself: subscribers read
// the current state from the database, so a lost or merged event costs
// freshness, never correctness.
//
// Bus delivers within one process (SQLite is one node). PGBus delivers to
// every replica sharing a PostgreSQL database through LISTEN/NOTIFY.
package events

import (
	"context"
	"sync"
)

// Kind says what changed.
type Kind string

const (
	// KindOverview: queue depth, limits, pause state or connection changed.
	KindOverview Kind = "overview"
	// KindBatch: a sync-log batch was written (BatchID set).
	KindBatch Kind = "batch"
	// KindRecords: records changed inbound (BatchID is the pull's batch).
	KindRecords Kind = "records"
)

// Event is one change hint for one workspace.
type Event struct {
	WorkspaceID int64 `json:"w"`
	Kind        Kind  `json:"k"`
	BatchID     int64 `json:"b,omitempty"`
}

// Publisher publishes events. Publish never blocks on subscribers.
type Publisher interface {
	Publish(ctx context.Context, e Event) error
}

// Bus is an in-process publish/subscribe hub.
type Bus struct {
	mu   sync.Mutex
	subs map[int64]map[*subscriber]struct{}
}

type subscriber struct {
	ch chan Event
}

// NewBus returns an empty Bus.
func NewBus() *Bus { return &Bus{subs: map[int64]map[*subscriber]struct{}{}} }

// Publish delivers e to the workspace's subscribers. A subscriber whose
// buffer is full misses the event (it will read fresh state on the next).
func (b *Bus) Publish(_ context.Context, e Event) error {
	b.deliver(e)
	return nil
}

func (b *Bus) deliver(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs[e.WorkspaceID] {
		select {
		case s.ch <- e:
		default:
		}
	}
}

// Subscribers is how many subscriptions the workspace has now.
func (b *Bus) Subscribers(workspaceID int64) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs[workspaceID])
}

// Subscribe returns a channel of the workspace's events, closed when ctx
// is done.
func (b *Bus) Subscribe(ctx context.Context, workspaceID int64) <-chan Event {
	s := &subscriber{ch: make(chan Event, 64)}
	b.mu.Lock()
	if b.subs[workspaceID] == nil {
		b.subs[workspaceID] = map[*subscriber]struct{}{}
	}
	b.subs[workspaceID][s] = struct{}{}
	b.mu.Unlock()
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		delete(b.subs[workspaceID], s)
		if len(b.subs[workspaceID]) == 0 {
			delete(b.subs, workspaceID)
		}
		close(s.ch)
		b.mu.Unlock()
	}()
	return s.ch
}
