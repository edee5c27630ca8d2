package crmplugin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/connectortest"
	"github.com/crmsync/crmsync/connectors/memcrm"
)

// logSink collects the host's log records.
type logSink struct {
	mu      sync.Mutex
	records []slog.Record
	attrs   []slog.Attr
	parent  *logSink
}

func (s *logSink) root() *logSink {
	if s.parent != nil {
		return s.parent.root()
	}
	return s
}

func (s *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (s *logSink) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(s.attrs...)
	root := s.root()
	root.mu.Lock()
	defer root.mu.Unlock()
	root.records = append(root.records, r)
	return nil
}
func (s *logSink) WithAttrs(as []slog.Attr) slog.Handler {
	return &logSink{parent: s.root(), attrs: append(slices.Clone(s.attrs), as...)}
}
func (s *logSink) WithGroup(string) slog.Handler { return s }

// find returns the first record with message msg whose attributes include
// all of want.
func (s *logSink) find(msg string, want map[string]string) (slog.Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.records {
		if r.Message != msg {
			continue
		}
		got := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { got[a.Key] = a.Value.String(); return true })
		match := true
		for k, v := range want {
			match = match && got[k] == v
		}
		if match {
			return r, true
		}
	}
	return slog.Record{}, false
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newHost(t testing.TB, external map[string]External) (*Host, *logSink) {
	t.Helper()
	sink := &logSink{}
	h, err := NewHost(HostConfig{
		Logger:     slog.New(sink),
		Executable: testExecutable(t),
		External:   external,
		SocketDir:  t.TempDir(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Close()) })
	return h, sink
}

// alive reports whether process pid runs (a zombie, dead but not yet reaped
// by whoever adopted it, does not).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	rest := stat[bytes.LastIndexByte(stat, ')')+1:]
	return len(bytes.Fields(rest)) > 0 && string(bytes.Fields(rest)[0]) != "Z"
}

func session(t testing.TB, org string, f *memcrm.Faults) connector.Session {
	t.Helper()
	s := memcrm.Session(org, memcrm.DefaultToken)
	cfg, err := json.Marshal(memcrm.Config{Org: org, Faults: f, DailyMax: 1 << 40})
	require.NoError(t, err)
	s.Config = cfg
	return s
}

func TestConformanceThroughPlugin(t *testing.T) {
	t.Parallel()
	h, _ := newHost(t, nil)
	c, err := h.Connector(t.Context(), "memcrm")
	require.NoError(t, err)
	connectortest.Run(t, func(t *testing.T) connectortest.Harness {
		slow := session(t, t.Name(), &memcrm.Faults{Latency: 5 * time.Second})
		return connectortest.Harness{
			Connector:      c,
			Session:        session(t, t.Name(), nil),
			BadCredentials: memcrm.Session(t.Name(), "expired"),
			SlowSession:    &slow,
			FailWith: func(err *connector.Error) connector.Session {
				return session(t, t.Name(), &memcrm.Faults{Fail: &memcrm.ErrorFault{Kind: err.Kind, Message: []byte(err.Message), RetryAfter: err.RetryAfter}})
			},
		}
	})
}

// memcrm's bulk jobs pass the suite's BulkJobs through a plugin process.
func TestConformanceThroughPluginWithBulkJobs(t *testing.T) {
	t.Parallel()
	h, _ := newHost(t, nil)
	c, err := h.Connector(t.Context(), "memcrm-bulkjobs")
	require.NoError(t, err)
	connectortest.Run(t, func(t *testing.T) connectortest.Harness {
		return connectortest.Harness{
			Connector:      c,
			Session:        session(t, t.Name(), nil),
			BadCredentials: memcrm.Session(t.Name(), "expired"),
			FailWith: func(err *connector.Error) connector.Session {
				return session(t, t.Name(), &memcrm.Faults{Fail: &memcrm.ErrorFault{Kind: err.Kind, Message: []byte(err.Message), RetryAfter: err.RetryAfter}})
			},
		}
	})
}

// Through a real plugin process, every kind keeps its kind and retry-after,
// and a message that is not valid UTF-8 or is very long arrives readable
// and bounded (the conformance suite's ErrorKinds checks the kinds too).
func TestErrorMessagesCrossTheBoundaryReadable(t *testing.T) {
	t.Parallel()
	h, _ := newHost(t, nil)
	c, err := h.Connector(t.Context(), "memcrm")
	require.NoError(t, err)
	for _, kind := range connector.Kinds() {
		for _, msg := range []string{"INVALID_SESSION_ID \xff\xfe caf\xe9", strings.Repeat("x", 199) + "\xe2\x82", strings.Repeat("日", 100_000)} {
			fail := &memcrm.ErrorFault{Kind: kind, Message: []byte(msg), RetryAfter: 3 * time.Second}
			_, err := c.Check(t.Context(), connector.CheckRequest{Session: session(t, "utf8", &memcrm.Faults{Fail: fail})})
			var ce *connector.Error
			require.True(t, errors.As(err, &ce), "%v", err)
			require.Equal(t, kind, ce.Kind)
			require.Equal(t, 3*time.Second, ce.RetryAfter)
			require.True(t, utf8.ValidString(err.Error()), "%q", err.Error())
			require.LessOrEqual(t, utf8.RuneCountInString(ce.Message), maxMessageRunes+1)
			require.True(t, strings.HasPrefix(ce.Message, strings.TrimSuffix(wireString(msg, 100), "…")), "%q", ce.Message)
		}
	}
}

func TestTypedErrorsCrossTheBoundary(t *testing.T) {
	t.Parallel()
	h, _ := newHost(t, nil)
	c, err := h.Connector(t.Context(), "memcrm")
	require.NoError(t, err)
	cfg, err := json.Marshal(memcrm.Config{Org: "limited", DailyMax: 1})
	require.NoError(t, err)
	s := memcrm.Session("limited", memcrm.DefaultToken)
	s.Config = cfg
	_, err = c.Check(t.Context(), connector.CheckRequest{Session: s})
	require.NoError(t, err)

	_, err = c.Check(t.Context(), connector.CheckRequest{Session: s})
	require.ErrorIs(t, err, connector.ErrRateLimited)
	var ce *connector.Error
	require.True(t, errors.As(err, &ce))
	require.Positive(t, ce.RetryAfter, "RetryAfter survives the boundary")
	require.Contains(t, err.Error(), "REQUEST_LIMIT_EXCEEDED")

	_, err = c.FetchCurrent(t.Context(), connector.FetchCurrentRequest{Session: s, Object: "Opportunity", IDs: []string{}})
	require.ErrorIs(t, err, connector.ErrInvalid)
	require.False(t, connector.Retryable(err))
}

func TestFetchChangesUnsupported(t *testing.T) {
	t.Parallel()
	h, _ := newHost(t, nil)
	c, err := h.Connector(t.Context(), "no-changes")
	require.NoError(t, err)
	_, err = c.(connector.ChangeFetcher).FetchChanges(t.Context(), connector.FetchChangesRequest{Session: session(t, "x", nil), Object: "Lead"})
	require.ErrorIs(t, err, connector.ErrUnsupported)
}

func TestPluginLogsReachHostLogger(t *testing.T) {
	t.Parallel()
	h, sink := newHost(t, nil)
	c, err := h.Connector(t.Context(), "memcrm")
	require.NoError(t, err)
	_, err = c.Limits(t.Context(), connector.LimitsRequest{Session: session(t, "logs", nil)})
	require.NoError(t, err)
	eventually(t, "the plugin's log line", func() bool {
		_, ok := sink.find("memcrm call", map[string]string{"connector": "memcrm", "method": "Limits", "org": "logs"})
		return ok
	})
	r, _ := sink.find("memcrm call", map[string]string{"connector": "memcrm"})
	require.Equal(t, slog.LevelDebug, r.Level, "the plugin's level is kept")
}

func TestKilledPluginRestarts(t *testing.T) {
	t.Parallel()
	h, sink := newHost(t, nil)
	var restarts []string
	h.cfg.OnRestart = func(name string) { restarts = append(restarts, name) }
	c, err := h.Connector(t.Context(), "memcrm")
	require.NoError(t, err)
	pid := h.pid("memcrm")
	require.True(t, alive(pid))

	errc := make(chan error, 1)
	go func() {
		_, err := c.BulkUpdate(t.Context(), connector.BulkUpdateRequest{
			Session: session(t, "slow", &memcrm.Faults{Latency: time.Minute}),
			Operations: []connector.Operation{
				{Kind: connector.OpCreate, Object: "Contact", Fields: map[string]any{"LastName": "Lost"}},
			},
		})
		errc <- err
	}()
	eventually(t, "the slow call to reach the plugin", func() bool {
		_, ok := sink.find("memcrm call", map[string]string{"method": "BulkUpdate", "org": "slow"})
		return ok
	})
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))

	err = <-errc
	require.ErrorIs(t, err, connector.ErrUnavailable, "the call that hit the crash")
	require.True(t, connector.Retryable(err))
	eventually(t, "the killed process to be gone", func() bool { return !alive(pid) })

	resp, err := c.Check(t.Context(), connector.CheckRequest{Session: session(t, "after", nil)})
	require.NoError(t, err, "the next call runs on a new process")
	require.NotEmpty(t, resp.Identity.UserID)
	require.NotEqual(t, pid, h.pid("memcrm"))
	require.True(t, alive(h.pid("memcrm")))
	require.Equal(t, []string{"memcrm"}, restarts)
}

func TestCrashKnob(t *testing.T) {
	t.Parallel()
	h, _ := newHost(t, nil)
	c, err := h.Connector(t.Context(), "memcrm")
	require.NoError(t, err)
	pid := h.pid("memcrm")
	_, err = c.Limits(t.Context(), connector.LimitsRequest{Session: session(t, "crash", &memcrm.Faults{CrashOn: "Limits"})})
	require.ErrorIs(t, err, connector.ErrUnavailable)
	eventually(t, "the crashed process to be gone", func() bool { return !alive(pid) })
	_, err = c.Limits(t.Context(), connector.LimitsRequest{Session: session(t, "crash", nil)})
	require.NoError(t, err)
}

func TestDeadlineReachesPlugin(t *testing.T) {
	t.Parallel()
	h, sink := newHost(t, nil)
	c, err := h.Connector(t.Context(), "memcrm")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err = c.Check(ctx, connector.CheckRequest{Session: session(t, "deadline", &memcrm.Faults{Latency: time.Minute})})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	pid := h.pid("memcrm")
	require.True(t, alive(pid), "a deadline is not a crash")
	_, err = c.Check(t.Context(), connector.CheckRequest{Session: session(t, "deadline", nil)})
	require.NoError(t, err)
	require.Equal(t, pid, h.pid("memcrm"), "same process")
	_, crashed := sink.find("connector plugin crashed", nil)
	require.False(t, crashed)
}

// script writes an executable that runs this test binary as connector name
// and returns its path and sha256.
func script(t *testing.T, name string) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "crm-"+name)
	body := fmt.Sprintf("#!/bin/sh\nexec '%s' connector %s\n", testExecutable(t), name)
	require.NoError(t, os.WriteFile(path, []byte(body), 0o755))
	sum := sha256.Sum256([]byte(body))
	return path, hex.EncodeToString(sum[:])
}

func TestExternalPlugin(t *testing.T) {
	t.Parallel()
	path, sum := script(t, "memcrm")
	h, _ := newHost(t, map[string]External{"acme-crm": {Path: path, SHA256: sum}})
	c, err := h.Connector(t.Context(), "acme-crm")
	require.NoError(t, err)
	d, err := c.Describe(t.Context(), connector.DescribeRequest{})
	require.NoError(t, err)
	require.Equal(t, memcrm.Name, d.Name)
}

func TestExternalPluginWrongChecksum(t *testing.T) {
	t.Parallel()
	path, sum := script(t, "memcrm")
	wrong := sha256.Sum256([]byte("another build"))
	h, _ := newHost(t, map[string]External{"acme-crm": {Path: path, SHA256: hex.EncodeToString(wrong[:])}})
	_, err := h.Connector(t.Context(), "acme-crm")
	require.ErrorContains(t, err, "refusing to run "+path)
	require.ErrorContains(t, err, "its sha256 is "+sum)
	require.Zero(t, h.pid("acme-crm"), "nothing started")

	_, err = NewHost(HostConfig{External: map[string]External{"x": {Path: path, SHA256: "abc"}}})
	require.ErrorContains(t, err, "not 64 hex digits")
}

func TestOtherProtocolVersionRefused(t *testing.T) {
	t.Parallel()
	path, sum := script(t, "memcrm-v2")
	h, _ := newHost(t, map[string]External{"future": {Path: path, SHA256: sum}})
	_, err := h.Connector(t.Context(), "future")
	require.ErrorContains(t, err, "(VERSION_MISMATCH)")
	require.ErrorContains(t, err, fmt.Sprintf("the plugin speaks connector protocol version %d", connector.ProtocolVersion+1))
}

func TestPluginEnvironmentIsMinimal(t *testing.T) {
	t.Parallel()
	// A built-in name the binary does not serve exits at once: the error
	// says which connector failed to start.
	h, _ := newHost(t, nil)
	_, err := h.Connector(t.Context(), "nonexistent")
	require.ErrorContains(t, err, `connector "nonexistent" failed to start`)

	path := filepath.Join(t.TempDir(), "env-dump")
	out := filepath.Join(t.TempDir(), "env.txt")
	require.NoError(t, os.WriteFile(path, fmt.Appendf(nil, "#!/bin/sh\n/usr/bin/env -0 > '%s'\nexec '%s' connector memcrm\n", out, testExecutable(t)), 0o755))
	h, _ = newHost(t, map[string]External{"env": {Path: path}})
	_, err = h.Connector(t.Context(), "env")
	require.NoError(t, err)
	env, err := os.ReadFile(out)
	require.NoError(t, err)
	var keys []string
	for _, line := range strings.Split(strings.TrimRight(string(env), "\x00"), "\x00") {
		key, _, _ := strings.Cut(line, "=")
		switch {
		case strings.HasPrefix(key, "PLUGIN_"), key == cookieKey:
		case key == "PWD", key == "SHLVL", key == "_": // set by the shell itself
		default:
			keys = append(keys, key)
		}
	}
	require.Empty(t, keys, "host variables reached the plugin")
	require.Contains(t, string(env), "PLUGIN_UNIX_SOCKET_DIR="+h.socketDir)
}

func TestCloseKillsPlugins(t *testing.T) {
	t.Parallel()
	path, sum := script(t, "memcrm")
	h, err := NewHost(HostConfig{Executable: testExecutable(t), External: map[string]External{"ext": {Path: path, SHA256: sum}}, SocketDir: t.TempDir()})
	require.NoError(t, err)
	var pids []int
	for _, name := range []string{"memcrm", "ext"} {
		c, err := h.Connector(t.Context(), name)
		require.NoError(t, err)
		_, err = c.Limits(t.Context(), connector.LimitsRequest{Session: session(t, "close", nil)})
		require.NoError(t, err)
		pids = append(pids, h.pid(name))
	}
	require.NoError(t, h.Close())
	for _, pid := range pids {
		require.False(t, alive(pid), "pid %d ended by Close", pid)
	}
	_, err = os.Stat(h.socketDir)
	require.ErrorIs(t, err, os.ErrNotExist, "socket dir removed")
	_, err = h.Connector(t.Context(), "memcrm")
	require.ErrorIs(t, err, errClosed)
}

func TestNoOrphans(t *testing.T) {
	t.Parallel()
	host := exec.Command(testExecutable(t), "host-and-wait")
	stdin, err := host.StdinPipe()
	require.NoError(t, err)
	defer stdin.Close()
	stdout, err := host.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, host.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "the host reports its plugin's pid")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err)
	require.True(t, alive(pid))

	require.NoError(t, host.Process.Kill(), "the host dies without a chance to clean up")
	_ = host.Wait()
	eventually(t, "the orphaned plugin to die", func() bool { return !alive(pid) })
}

func TestStartTimeout(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "mute")
	pidFile := filepath.Join(t.TempDir(), "pid")
	// Never answers the handshake.
	require.NoError(t, os.WriteFile(path, fmt.Appendf(nil, "#!/bin/sh\necho $$ > '%s'\nexec /bin/sleep 60\n", pidFile), 0o755))
	h, err := NewHost(HostConfig{External: map[string]External{"mute": {Path: path}}, StartTimeout: 300 * time.Millisecond, SocketDir: t.TempDir()})
	require.NoError(t, err)
	defer h.Close()
	_, err = h.Connector(t.Context(), "mute")
	require.ErrorContains(t, err, `connector "mute" failed to start (START_FAILED)`)
	require.ErrorContains(t, err, "did not complete its handshake in time")
	raw, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	require.NoError(t, err)
	eventually(t, "the silent plugin to be killed", func() bool { return !alive(pid) })
}
