package crmplugin

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/crmsync/crmsync/connectors/connector"
)

// StartFailure classifies why a connector's plugin could not be started.
type StartFailure string

const (
	// VersionMismatch: the plugin speaks another connector protocol
	// version than this crmsync (built against an older or newer SDK).
	VersionMismatch StartFailure = "VERSION_MISMATCH"
	// BadHandshake: the executable answered with another handshake
	// cookie, or with no plugin handshake at all: it is not a crmsync
	// connector.
	BadHandshake StartFailure = "BAD_HANDSHAKE"
	// ChecksumMismatch: the executable's sha256 is not the one pinned in
	// the configuration; it was not run.
	ChecksumMismatch StartFailure = "CHECKSUM_MISMATCH"
	// CrashLoop: the plugin's processes died too often in a short window
	// (HostConfig.CrashLoop); the host waits before starting another.
	CrashLoop StartFailure = "CRASH_LOOP"
	// StartFailed: any other failure to start (missing or non-executable
	// file, exit before the handshake, start timeout).
	StartFailed StartFailure = "START_FAILED"
)

// StartFailures returns every StartFailure, for metrics and docs.
func StartFailures() []StartFailure {
	return []StartFailure{VersionMismatch, BadHandshake, ChecksumMismatch, CrashLoop, StartFailed}
}

// StartError is returned by Host.Connector when a connector's plugin cannot
// be started. Until RetryAt the host does not try again: every call fails
// at once with the same error, so a broken binary is never respawned in a
// loop.
type StartError struct {
	Connector string
	Kind      StartFailure
	// Reason says what is wrong, in words for an operator.
	Reason string
	// RetryAt is when the host will try to start the plugin again.
	RetryAt time.Time
	// Err is the underlying error, if any.
	Err error
}

func (e *StartError) Error() string {
	return fmt.Sprintf("connector %q failed to start (%s): %s", e.Connector, e.Kind, e.Reason)
}

func (e *StartError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, connector.ErrUnavailable) true: a connector that
// cannot start is unavailable, and calls fail retryably.
func (e *StartError) Is(target error) bool { return target == connector.ErrUnavailable }

// BadHandshakeReason is the reason of a BadHandshake failure caused by the
// handshake cookie.
const BadHandshakeReason = "the plugin's handshake cookie does not match crmsync's: it is not a crmsync connector or was built for another protocol"

var pluginVersionRE = regexp.MustCompile(`Plugin version: (\d+)`)

// classify turns the error of a failed start, and what the process wrote to
// stderr, into a kind and a reason in plain words. go-plugin reports a
// plugin that refused the host's cookie as "not compiled for this
// architecture"; the plugin itself says on stderr that it was run directly.
func classify(err error, stderr string) (StartFailure, string) {
	msg := err.Error()
	var sum *checksumError
	switch {
	case errors.As(err, &sum), errors.Is(err, goplugin.ErrChecksumsDoNotMatch):
		return ChecksumMismatch, msg
	case strings.Contains(msg, "incompatible API version"), strings.Contains(msg, "incompatible core API version"):
		got := "another"
		if m := pluginVersionRE.FindStringSubmatch(msg); m != nil {
			got = m[1]
		}
		return VersionMismatch, fmt.Sprintf("the plugin speaks connector protocol version %s, this crmsync speaks version %d: rebuild the plugin against the crmsync connector SDK of this release",
			got, connector.ProtocolVersion)
	case strings.Contains(stderr, "This binary is a plugin"):
		return BadHandshake, BadHandshakeReason
	case strings.Contains(msg, "Unrecognized remote plugin message: ") && !strings.Contains(msg, "Failed to read any lines"):
		line, _, _ := strings.Cut(strings.TrimPrefix(msg[strings.Index(msg, "Unrecognized remote plugin message: "):], "Unrecognized remote plugin message: "), "\n")
		return BadHandshake, fmt.Sprintf("the executable printed %q instead of a plugin handshake: it is not a crmsync connector", line)
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return StartFailed, "the plugin did not complete its handshake in time" + tail(stderr)
	case strings.Contains(msg, "Unrecognized remote plugin message"), strings.Contains(msg, "plugin exited before we could connect"):
		return StartFailed, "the plugin exited before its handshake" + tail(stderr)
	}
	return StartFailed, msg
}

// tail is the last line of a plugin's stderr, as ": line", or "".
func tail(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); last != "" {
		return ": " + last
	}
	return ""
}

// checksumError is a pinned checksum that does not match.
type checksumError struct{ msg string }

func (e *checksumError) Error() string { return e.msg }

// stderrTail keeps the last few KB a starting plugin writes to stderr, for
// classify.
type stderrTail struct {
	mu  sync.Mutex
	buf []byte
}

const stderrTailSize = 4 << 10

func (t *stderrTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - stderrTailSize; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

func (t *stderrTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// health is one connector's start history, guarded by its slot's lock.
type health struct {
	// attempted: a start was tried before (the next one is a restart).
	attempted bool
	// failures counts consecutive failed starts (and crash loops); the
	// back-off doubles with each.
	failures int
	// last is the failure that holds further starts until its RetryAt.
	last *StartError
	// crashes are the times the connector's processes died, within the
	// crash-loop window.
	crashes []time.Time
}

// backoff is the wait after the n-th consecutive failure (n ≥ 1).
func backoff(base, limit time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// fail records a failed start (or a crash loop) at now and returns the
// error every call gets until the back-off ends.
func (h *health) fail(cfg *HostConfig, name string, kind StartFailure, reason string, err error, now time.Time) *StartError {
	h.failures++
	h.last = &StartError{Connector: name, Kind: kind, Reason: reason, Err: err,
		RetryAt: now.Add(backoff(cfg.StartBackoff, cfg.MaxStartBackoff, h.failures))}
	return h.last
}

// crashed records a crash at now and reports whether the connector now
// crashes in a loop: CrashLoop.Restarts crashes within CrashLoop.Window.
func (h *health) crashed(cfg *HostConfig, now time.Time) bool {
	h.crashes = slices.DeleteFunc(h.crashes, func(t time.Time) bool { return now.Sub(t) >= cfg.CrashLoop.Window })
	h.crashes = append(h.crashes, now)
	return len(h.crashes) >= cfg.CrashLoop.Restarts
}

// started records a successful start at now. The back-off starts over
// unless the connector crashed within the crash-loop window: a plugin that
// starts and dies again waits longer each time.
func (h *health) started(cfg *HostConfig, now time.Time) {
	h.last = nil
	h.crashes = slices.DeleteFunc(h.crashes, func(t time.Time) bool { return now.Sub(t) >= cfg.CrashLoop.Window })
	if len(h.crashes) == 0 {
		h.failures = 0
	}
}
