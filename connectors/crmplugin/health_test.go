package crmplugin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/memcrm"
)

// fakeClock is a settable clock for the host's back-off.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// countingScript writes an executable that appends a line to a counter
// file, then runs this test binary as connector mode; rewriting it (write)
// replaces the "binary" in place, as an operator fixing a plugin would.
type countingScript struct {
	t          *testing.T
	path, runs string
}

func newCountingScript(t *testing.T, mode string) *countingScript {
	dir := t.TempDir()
	s := &countingScript{t: t, path: filepath.Join(dir, "crm"), runs: filepath.Join(dir, "runs")}
	s.write(mode)
	return s
}

func (s *countingScript) body(mode string) string {
	return fmt.Sprintf("#!/bin/sh\necho run >> '%s'\nexec '%s' connector %s\n", s.runs, testExecutable(s.t), mode)
}

func (s *countingScript) write(mode string) {
	require.NoError(s.t, os.WriteFile(s.path, []byte(s.body(mode)), 0o755))
}

func (s *countingScript) sum(mode string) string {
	sum := sha256.Sum256([]byte(s.body(mode)))
	return hex.EncodeToString(sum[:])
}

func (s *countingScript) starts() int {
	raw, err := os.ReadFile(s.runs)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	require.NoError(s.t, err)
	return strings.Count(string(raw), "run\n")
}

type failure struct {
	connector string
	kind      StartFailure
}

type healthBundle struct {
	host     *Host
	clock    *fakeClock
	mu       sync.Mutex
	failures []failure
	restarts int
}

func (b *healthBundle) seen() ([]failure, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]failure(nil), b.failures...), b.restarts
}

func setupHealth(t *testing.T, external map[string]External) *healthBundle {
	t.Helper()
	b := &healthBundle{clock: &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	h, err := NewHost(HostConfig{
		Logger:     slog.New(&logSink{}),
		Executable: testExecutable(t),
		External:   external,
		SocketDir:  t.TempDir(),
		Now:        b.clock.Now,
		CrashLoop:  CrashLoopConfig{Restarts: 3, Window: time.Minute},
		OnStartFailure: func(name string, kind StartFailure) {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.failures = append(b.failures, failure{name, kind})
		},
		OnRestart: func(string) {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.restarts++
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Close()) })
	b.host = h
	return b
}

// Each way a plugin can fail to start has its kind and a reason in plain
// words, and is an unavailable connector to errors.Is.
func TestStartFailuresClassified(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		mode   string
		pin    bool
		kind   StartFailure
		reason string
	}{
		"wrong cookie":     {mode: "other-cookie", kind: BadHandshake, reason: BadHandshakeReason},
		"protocol version": {mode: "memcrm-v2", kind: VersionMismatch, reason: fmt.Sprintf("speaks connector protocol version %d, this crmsync speaks version %d", connector.ProtocolVersion+1, connector.ProtocolVersion)},
		"checksum":         {mode: "memcrm", pin: true, kind: ChecksumMismatch, reason: "refusing to run"},
		"dies at start":    {mode: "dies-at-start", kind: StartFailed, reason: "the plugin exited before its handshake: panic: config file missing"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newCountingScript(t, tc.mode)
			ext := External{Path: s.path}
			if tc.pin {
				ext.SHA256 = s.sum("another build")
			}
			b := setupHealth(t, map[string]External{"acme": ext})
			_, err := b.host.Connector(t.Context(), "acme")
			var se *StartError
			require.True(t, errors.As(err, &se), "%v", err)
			require.Equal(t, tc.kind, se.Kind)
			require.Contains(t, se.Reason, tc.reason)
			require.NotContains(t, se.Reason, "architecture")
			require.ErrorIs(t, err, connector.ErrUnavailable)
			require.Equal(t, b.clock.Now().Add(5*time.Second), se.RetryAt)
			failures, _ := b.seen()
			require.Equal(t, []failure{{"acme", tc.kind}}, failures)
		})
	}
}

// A plugin that cannot start is not started again before its back-off
// ends (5 s, doubling, at most 5 min), and resumes by itself once fixed.
func TestStartBackoff(t *testing.T) {
	t.Parallel()
	s := newCountingScript(t, "other-cookie")
	b := setupHealth(t, map[string]External{"acme": {Path: s.path}})
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for i, wait := range want {
		for range 20 { // a job retrying in a loop
			_, err := b.host.Connector(t.Context(), "acme")
			require.ErrorIs(t, err, connector.ErrUnavailable)
		}
		require.Equal(t, i+1, s.starts(), "one start per back-off period")
		b.clock.Add(wait - time.Millisecond)
		_, err := b.host.Connector(t.Context(), "acme")
		require.ErrorIs(t, err, connector.ErrUnavailable)
		require.Equal(t, i+1, s.starts(), "not before the back-off ends")
		b.clock.Add(time.Millisecond)
		if i == len(want)-1 {
			break
		}
	}
	s.write("memcrm")
	c, err := b.host.Connector(t.Context(), "acme")
	require.NoError(t, err, "the fixed binary starts")
	_, err = c.Limits(t.Context(), connector.LimitsRequest{Session: session(t, "fixed", nil)})
	require.NoError(t, err)
	failures, restarts := b.seen()
	require.Len(t, failures, len(want))
	require.Equal(t, len(want), restarts, "every start after the first is a restart")
	require.Equal(t, len(want)+1, s.starts())
}

// A plugin whose process keeps dying is held back as a crash loop, then
// started again after the back-off.
func TestCrashLoop(t *testing.T) {
	t.Parallel()
	s := newCountingScript(t, "memcrm")
	b := setupHealth(t, map[string]External{"acme": {Path: s.path}})
	crash := session(t, "crash", &memcrm.Faults{CrashOn: "Limits"})
	for i := range 3 {
		c, err := b.host.Connector(t.Context(), "acme")
		require.NoError(t, err, "crash %d", i)
		_, err = c.Limits(t.Context(), connector.LimitsRequest{Session: crash})
		require.ErrorIs(t, err, connector.ErrUnavailable)
		b.clock.Add(time.Second)
	}
	_, err := b.host.Connector(t.Context(), "acme")
	var se *StartError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, CrashLoop, se.Kind)
	require.Contains(t, se.Reason, "died 3 times within 1m0s")
	require.Equal(t, 3, s.starts())

	b.clock.Add(5 * time.Second)
	c, err := b.host.Connector(t.Context(), "acme")
	require.NoError(t, err, "started again after the back-off")
	_, err = c.Limits(t.Context(), connector.LimitsRequest{Session: session(t, "ok", nil)})
	require.NoError(t, err)
	failures, restarts := b.seen()
	require.Equal(t, []failure{{"acme", CrashLoop}}, failures)
	require.Equal(t, 3, restarts)

	// Still within the window, a further crash is a loop again, held
	// twice as long.
	pid := b.host.pid("acme")
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	eventually(t, "the host to see the crash", func() bool {
		_, err = b.host.Connector(t.Context(), "acme")
		return err != nil
	})
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, CrashLoop, se.Kind)
	require.Equal(t, b.clock.Now().Add(10*time.Second), se.RetryAt)
}
