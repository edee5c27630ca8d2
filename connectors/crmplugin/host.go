package crmplugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/crmplugin/internal/connectorv1"
)

// HostConfig configures a Host.
type HostConfig struct {
	// Logger receives the host's plugin events and every plugin's log
	// lines, with a "connector" attribute. Default: discard.
	Logger *slog.Logger
	// Executable is crmsync's own binary, launched as `Executable connector
	// NAME` for built-in connectors. Default: os.Executable().
	Executable string
	// BuiltinArgs are appended to the arguments of built-in connectors
	// (`Executable connector NAME BuiltinArgs...`); crmsync passes its
	// --allow-crm-host settings this way. Third-party executables get none.
	BuiltinArgs []string
	// External maps connector names to third-party plugin executables.
	// A name not listed here is a built-in connector.
	External map[string]External
	// StartTimeout bounds a plugin's start and handshake. Default 20s.
	StartTimeout time.Duration
	// SocketDir is where the host creates its private directory for the
	// plugins' Unix sockets (removed by Close). Default os.TempDir().
	SocketDir string
	// OnRestart, if set, is called each time the host starts a connector
	// again: to replace a process that died, or to retry after a failed
	// start (for metrics).
	OnRestart func(connector string)
	// OnStartFailure, if set, is called for every failed start, and when
	// a connector is found crashing in a loop (for metrics).
	OnStartFailure func(connector string, kind StartFailure)
	// StartBackoff is how long the host waits after a failed start before
	// it starts the connector again, doubled after each further failure up
	// to MaxStartBackoff; meanwhile calls fail at once with the
	// *StartError. Defaults 5 s and 5 min.
	StartBackoff, MaxStartBackoff time.Duration
	// CrashLoop is when a connector whose processes keep dying is held
	// back like a failed start (CrashLoop failure).
	CrashLoop CrashLoopConfig
	// Now is the host's clock (default time.Now).
	Now func() time.Time
}

// CrashLoopConfig says how many crashes within a window make a crash loop.
type CrashLoopConfig struct {
	// Restarts is the number of crashes (default 5) within Window
	// (default 1 min).
	Restarts int
	Window   time.Duration
}

// External is a third-party connector executable.
type External struct {
	// Path is the executable's path; it is launched without arguments.
	Path string
	// SHA256, when set, is the hex sha256 of the executable: a binary with
	// another checksum is refused before it runs.
	SHA256 string
}

// Host launches connector plugin processes, one per connector name, on
// first use, and restarts a plugin whose process died. It is safe for
// concurrent use. Close it to end every plugin.
type Host struct {
	cfg       HostConfig
	logger    *slog.Logger
	socketDir string

	mu     sync.Mutex
	closed bool
	slots  map[string]*slot
}

// slot holds the current process of one connector; its lock serializes
// starts of that connector only.
type slot struct {
	mu     sync.Mutex
	proc   *process
	health health
}

type process struct {
	client *goplugin.Client
	rpc    connectorv1.ConnectorClient
	pid    int
}

// NewHost returns a Host. No plugin starts before Host.Connector.
func NewHost(cfg HostConfig) (*Host, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("plugin host: find own executable: %w", err)
		}
		cfg.Executable = exe
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 20 * time.Second
	}
	if cfg.StartBackoff <= 0 {
		cfg.StartBackoff = 5 * time.Second
	}
	if cfg.MaxStartBackoff < cfg.StartBackoff {
		cfg.MaxStartBackoff = max(5*time.Minute, cfg.StartBackoff)
	}
	if cfg.CrashLoop.Restarts <= 0 {
		cfg.CrashLoop.Restarts = 5
	}
	if cfg.CrashLoop.Window <= 0 {
		cfg.CrashLoop.Window = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for name, ext := range cfg.External {
		if ext.Path == "" {
			return nil, fmt.Errorf("plugin host: connector %q has no path", name)
		}
		if ext.SHA256 != "" {
			if b, err := hex.DecodeString(ext.SHA256); err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("plugin host: connector %q: sha256 %q is not 64 hex digits", name, ext.SHA256)
			}
		}
	}
	dir, err := os.MkdirTemp(cfg.SocketDir, "crmsync-plugins-")
	if err != nil {
		return nil, fmt.Errorf("plugin host: create socket dir: %w", err)
	}
	return &Host{cfg: cfg, logger: cfg.Logger, socketDir: dir, slots: map[string]*slot{}}, nil
}

// Connector starts the plugin serving the connector name (unless it runs
// already) and returns a client for it. A plugin that cannot start fails
// with a *StartError saying why; the host then waits (StartBackoff,
// doubling) before it tries that connector again. The client implements
// connector.Connector, connector.ChangeFetcher and connector.BatchFetcher
// (whose calls fail with connector.ErrUnsupported when the plugin lacks
// them). A call that hits a
// crashed plugin fails with a connector.ErrUnavailable error; the next call
// starts a new process.
func (h *Host) Connector(ctx context.Context, name string) (connector.Connector, error) {
	if _, err := h.process(ctx, name); err != nil {
		return nil, err
	}
	return &remote{host: h, name: name}, nil
}

// Close kills every plugin process and removes the socket directory.
func (h *Host) Close() error {
	h.mu.Lock()
	h.closed = true
	slots := h.slots
	h.slots = map[string]*slot{}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range slots {
		wg.Go(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.proc != nil {
				s.proc.client.Kill()
				s.proc = nil
			}
		})
	}
	wg.Wait()
	if err := os.RemoveAll(h.socketDir); err != nil {
		return fmt.Errorf("plugin host: remove socket dir: %w", err)
	}
	return nil
}

var errClosed = errors.New("plugin host is closed")

// process returns the live process of connector name, starting one if
// there is none or the last one exited.
func (h *Host) process(ctx context.Context, name string) (*process, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, errClosed
	}
	s := h.slots[name]
	if s == nil {
		s = &slot{}
		h.slots[name] = s
	}
	h.mu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && !s.proc.client.Exited() {
		return s.proc, nil
	}
	now := h.cfg.Now()
	if s.proc != nil {
		h.logger.Warn("connector plugin exited; starting a new one", "connector", name, "pid", s.proc.pid)
		s.proc.client.Kill()
		s.proc = nil
		if err := h.crashed(name, s, now); err != nil {
			return nil, err
		}
	}
	if last := s.health.last; last != nil && now.Before(last.RetryAt) {
		return nil, last
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.health.attempted && h.cfg.OnRestart != nil {
		h.cfg.OnRestart(name)
	}
	s.health.attempted = true
	p, failure := h.start(name)
	if failure != nil {
		failedAt := h.cfg.Now()
		se := s.health.fail(&h.cfg, name, failure.Kind, failure.Reason, failure.Err, failedAt)
		h.logger.Error("connector plugin failed to start", "connector", name, "kind", string(se.Kind), "reason", se.Reason,
			"retry_in", se.RetryAt.Sub(failedAt).String())
		if h.cfg.OnStartFailure != nil {
			h.cfg.OnStartFailure(name, se.Kind)
		}
		return nil, se
	}
	s.health.started(&h.cfg, h.cfg.Now())
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed { // Close ran while we started: do not leak the process.
		p.client.Kill()
		return nil, errClosed
	}
	s.proc = p
	return p, nil
}

// crashed records that connector name's process died (s locked) and
// returns a CrashLoop *StartError when it dies too often.
func (h *Host) crashed(name string, s *slot, now time.Time) error {
	if !s.health.crashed(&h.cfg, now) {
		return nil
	}
	reason := fmt.Sprintf("the plugin process died %d times within %s", len(s.health.crashes), h.cfg.CrashLoop.Window)
	se := s.health.fail(&h.cfg, name, CrashLoop, reason, nil, now)
	h.logger.Error("connector plugin crashes in a loop", "connector", name, "crashes", len(s.health.crashes),
		"retry_in", se.RetryAt.Sub(now).Round(time.Millisecond).String())
	if h.cfg.OnStartFailure != nil {
		h.cfg.OnStartFailure(name, CrashLoop)
	}
	return se
}

// start starts connector name's plugin; a failure says its kind and reason
// (the back-off is the caller's).
func (h *Host) start(name string) (*process, *StartError) {
	logger := h.logger.With("connector", name)
	path, args := h.cfg.Executable, append([]string{"connector", name}, h.cfg.BuiltinArgs...)
	var secure *goplugin.SecureConfig
	if ext, ok := h.cfg.External[name]; ok {
		path, args = ext.Path, nil
		if ext.SHA256 != "" {
			if err := verify(path, ext.SHA256); err != nil {
				kind := StartFailed
				var sum *checksumError
				if errors.As(err, &sum) {
					kind = ChecksumMismatch
				}
				return nil, &StartError{Connector: name, Kind: kind, Reason: err.Error(), Err: err}
			}
			sum, _ := hex.DecodeString(ext.SHA256)
			secure = &goplugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
		}
	}
	cmd := exec.Command(path, args...)
	// Only the plugin protocol's variables (added by go-plugin) and the
	// socket directory: the host environment, with its secrets, stays here.
	cmd.Env = []string{goplugin.EnvUnixSocketDir + "=" + h.socketDir}
	orphanProof(cmd)

	stderr := &stderrTail{}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  handshake(connector.ProtocolVersion),
		Plugins:          goplugin.PluginSet{pluginName: &grpcPlugin{}},
		Cmd:              cmd,
		SecureConfig:     secure,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		GRPCDialOptions:  []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage))},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     h.cfg.StartTimeout,
		Logger:           newHCLogger(logger),
		Stderr:           stderr,
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill() // waits for the stderr reader: the tail is complete
		kind, reason := classify(err, stderr.String())
		return nil, &StartError{Connector: name, Kind: kind, Reason: fmt.Sprintf("%s (%s)", reason, path), Err: err}
	}
	raw, err := rpc.Dispense(pluginName)
	if err != nil {
		client.Kill()
		return nil, &StartError{Connector: name, Kind: StartFailed, Reason: fmt.Sprintf("%v (%s)", err, path), Err: err}
	}
	p := &process{client: client, rpc: raw.(connectorv1.ConnectorClient)}
	if rc := client.ReattachConfig(); rc != nil {
		p.pid = rc.Pid
	}
	logger.Info("connector plugin started", "pid", p.pid, "path", path)
	return p, nil
}

// verify refuses path unless its sha256 is want, with both sums in the
// error so an operator sees which binary is in place.
func verify(path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("verify checksum: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("verify checksum of %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, want) {
		return &checksumError{fmt.Sprintf("refusing to run %s: its sha256 is %s, but the configuration pins %s", path, got, strings.ToLower(want))}
	}
	return nil
}

// failed decodes the error of a call to p. A transport failure on a process
// that has exited is a crash: the process is dropped (the next call starts a
// new one) and the call fails with a retryable KindUnavailable error.
func (h *Host) failed(ctx context.Context, name string, p *process, method string, err error) error {
	decoded, transport := statusToError(ctx, err)
	if !transport {
		return decoded
	}
	// The connection drops as the process dies; give the exit a moment to
	// be observed before deciding it was a crash.
	deadline := time.Now().Add(2 * time.Second)
	for !p.client.Exited() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if !p.client.Exited() || closed { // Close, not a crash, ended it
		return decoded
	}
	h.logger.Error("connector plugin crashed", "connector", name, "pid", p.pid, "method", method, "error", err)
	h.mu.Lock()
	s := h.slots[name]
	h.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		if s.proc == p {
			p.client.Kill()
			s.proc = nil
			// A crash loop holds the next start back; the call itself
			// fails as a crash either way.
			_ = h.crashed(name, s, h.cfg.Now())
		}
		s.mu.Unlock()
	}
	return &connector.Error{Kind: connector.KindUnavailable, Message: fmt.Sprintf("plugin process %d exited during %s", p.pid, method), Err: err}
}

// pid returns the process id of connector name's current process (0 if
// none), for tests.
func (h *Host) pid(name string) int {
	h.mu.Lock()
	s := h.slots[name]
	h.mu.Unlock()
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.pid
}
