package jobs

import (
	"context"
	"log/slog"
)

// routineLogs is River's log handler: River logs its routine work (a
// client started, a leader elected, a queue polled) at info, which buries
// crmsync's own lines; those become debug. River's warnings and errors
// keep their level.
type routineLogs struct{ slog.Handler }

func demote(l slog.Level) slog.Level {
	if l == slog.LevelInfo {
		return slog.LevelDebug
	}
	return l
}

func (h routineLogs) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, demote(l))
}

func (h routineLogs) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h routineLogs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return routineLogs{h.Handler.WithAttrs(attrs)}
}

func (h routineLogs) WithGroup(name string) slog.Handler {
	return routineLogs{h.Handler.WithGroup(name)}
}

// riverLogger is logger for River: tagged component=river, routine info
// lowered to debug.
func riverLogger(logger *slog.Logger) *slog.Logger {
	return slog.New(routineLogs{logger.With(slog.String("component", "river")).Handler()})
}
