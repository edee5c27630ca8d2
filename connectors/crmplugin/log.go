package crmplugin

import (
	"context"
	"io"
	"log"
	"log/slog"
	"os"

	"github.com/hashicorp/go-hclog"
)

// Logger returns the logger a plugin process should log through: JSON lines
// on stderr in the form the host parses, so each line reaches crmsync's log
// at its level with its attributes and a "connector" attribute added.
func Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
			case slog.LevelKey:
				return slog.String("@level", hclogLevel(a.Value.Any().(slog.Level)))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	}))
}

func hclogLevel(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}

// hcLogger adapts a *slog.Logger to the hclog.Logger go-plugin logs to, so
// that go-plugin's own events and the plugin's stderr lines reach the
// host's slog logger.
type hcLogger struct {
	l    *slog.Logger
	name string
}

func newHCLogger(l *slog.Logger) hclog.Logger { return &hcLogger{l: l} }

var levels = map[hclog.Level]slog.Level{
	hclog.Trace: slog.LevelDebug - 4,
	hclog.Debug: slog.LevelDebug,
	hclog.Info:  slog.LevelInfo,
	hclog.Warn:  slog.LevelWarn,
	hclog.Error: slog.LevelError,
}

func (h *hcLogger) Log(level hclog.Level, msg string, args ...any) {
	lvl, ok := levels[level]
	if !ok {
		lvl = slog.LevelInfo
	}
	if !h.l.Enabled(context.Background(), lvl) {
		return
	}
	attrs := make([]any, 0, len(args))
	for i := 0; i+1 < len(args); i += 2 {
		if args[i] == "timestamp" { // go-plugin's copy of the plugin's clock
			continue
		}
		attrs = append(attrs, args[i], args[i+1])
	}
	h.l.Log(context.Background(), lvl, msg, attrs...)
}

func (h *hcLogger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hcLogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hcLogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hcLogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hcLogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hcLogger) enabled(l hclog.Level) bool { return h.l.Enabled(context.Background(), levels[l]) }
func (h *hcLogger) IsTrace() bool              { return h.enabled(hclog.Trace) }
func (h *hcLogger) IsDebug() bool              { return h.enabled(hclog.Debug) }
func (h *hcLogger) IsInfo() bool               { return h.enabled(hclog.Info) }
func (h *hcLogger) IsWarn() bool               { return h.enabled(hclog.Warn) }
func (h *hcLogger) IsError() bool              { return h.enabled(hclog.Error) }
func (h *hcLogger) ImpliedArgs() []any         { return nil }
func (h *hcLogger) With(args ...any) hclog.Logger {
	return &hcLogger{l: h.l.With(args...), name: h.name}
}
func (h *hcLogger) Name() string                        { return h.name }
func (h *hcLogger) Named(name string) hclog.Logger      { return &hcLogger{l: h.l, name: name} }
func (h *hcLogger) ResetNamed(name string) hclog.Logger { return &hcLogger{l: h.l, name: name} }
func (h *hcLogger) SetLevel(hclog.Level)                {}

// GetLevel reports the most verbose level the slog handler takes, so
// go-plugin skips parsing lines nobody would see.
func (h *hcLogger) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn} {
		if h.enabled(l) {
			return l
		}
	}
	return hclog.Error
}

func (h *hcLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(h.l.Handler(), slog.LevelInfo)
}

func (h *hcLogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	return h.StandardLogger(opts).Writer()
}
