package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
)

// channel is the PostgreSQL NOTIFY channel crmsync uses.
const channel = "crmsync_events"

// PGBus publishes through PostgreSQL NOTIFY, so every replica's listeners
// (including this one's) receive every event, and fans them out locally.
type PGBus struct {
	*Bus
	db     bun.IDB
	url    string
	logger *slog.Logger
}

// NewPGBus returns a bus over the database at url. Run must be started for
// events to reach subscribers.
func NewPGBus(db bun.IDB, url string, logger *slog.Logger) *PGBus {
	return &PGBus{Bus: NewBus(), db: db, url: url, logger: logger}
}

// Publish sends e to every replica.
func (b *PGBus) Publish(ctx context.Context, e Event) error {
	payload, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	if _, err := b.db.ExecContext(ctx, "SELECT pg_notify(?, ?)", channel, string(payload)); err != nil {
		return fmt.Errorf("publish event: %w", err)
	}
	return nil
}

// Run listens until ctx is done, reconnecting after failures. ready, when
// not nil, is closed once the first LISTEN is in place.
func (b *PGBus) Run(ctx context.Context, ready chan<- struct{}) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := b.listen(ctx, &ready)
		if ctx.Err() != nil {
			return
		}
		b.logger.Warn("event listener lost its connection; reconnecting", slog.Any("error", err), slog.Duration("after", backoff))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (b *PGBus) listen(ctx context.Context, ready *chan<- struct{}) error {
	conn, err := pgx.Connect(ctx, b.url)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if *ready != nil {
		close(*ready)
		*ready = nil
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var e Event
		if err := json.Unmarshal([]byte(n.Payload), &e); err != nil {
			b.logger.Error("undecodable event", slog.String("payload", n.Payload), slog.Any("error", err))
			continue
		}
		b.deliver(e)
	}
}
