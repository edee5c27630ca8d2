package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/crmplugin"
	"github.com/crmsync/crmsync/connectors/memcrm"
)

// serveHealthPlugin serves one of the broken plugins of
// TestConnectorPluginHealth (this test binary run as `health-plugin MODE`).
func serveHealthPlugin(mode string) {
	// The cookie every crmsync connector is built with (connectors/crmplugin).
	const cookieKey, cookieValue = "CRMSYNC_CONNECTOR_PLUGIN", "a3f1c0de-crmsync-connector"
	hs := goplugin.HandshakeConfig{ProtocolVersion: connector.ProtocolVersion, MagicCookieKey: cookieKey, MagicCookieValue: cookieValue}
	switch mode {
	case "other-cookie": // a go-plugin plugin of another product
		hs.MagicCookieValue = "another-product"
	case "v2": // built against the next protocol version
		hs.ProtocolVersion++
	case "crash": // starts, then dies on its first call
		crmplugin.Serve(crashing{memcrm.New()})
		return
	default:
		os.Exit(2)
	}
	goplugin.Serve(&goplugin.ServeConfig{HandshakeConfig: hs, Plugins: goplugin.PluginSet{"connector": emptyPlugin{}},
		GRPCServer: goplugin.DefaultGRPCServer})
}

// emptyPlugin serves nothing: the host refuses these plugins at the
// handshake, before any call.
type emptyPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (emptyPlugin) GRPCServer(*goplugin.GRPCBroker, *grpc.Server) error { return nil }
func (emptyPlugin) GRPCClient(context.Context, *goplugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, nil
}

// crashing is a connector whose process dies on every call.
type crashing struct{ connector.Connector }

func (crashing) Describe(context.Context, connector.DescribeRequest) (*connector.Description, error) {
	os.Exit(3)
	return nil, nil
}
func (crashing) Check(context.Context, connector.CheckRequest) (*connector.CheckResponse, error) {
	os.Exit(3)
	return nil, nil
}
func (crashing) FetchCurrent(context.Context, connector.FetchCurrentRequest) (*connector.FetchCurrentResponse, error) {
	os.Exit(3)
	return nil, nil
}
func (crashing) BulkUpdate(context.Context, connector.BulkUpdateRequest) (*connector.BulkUpdateResponse, error) {
	os.Exit(3)
	return nil, nil
}
func (crashing) Limits(context.Context, connector.LimitsRequest) (*connector.LimitsResponse, error) {
	os.Exit(3)
	return nil, nil
}

// pluginScript is a third-party connector "binary": a script that records
// its pid, one line per start, then runs this test binary as a good memcrm
// or as a broken plugin. Rewriting it replaces the binary in place, as an
// operator deploying a build would.
type pluginScript struct {
	t          *testing.T
	path, runs string
}

func newPluginScript(t *testing.T, name string) *pluginScript {
	dir := t.TempDir()
	s := &pluginScript{t: t, path: filepath.Join(dir, name), runs: filepath.Join(dir, "runs")}
	s.write("good")
	return s
}

func (s *pluginScript) body(mode string) string {
	args := "connector memcrm"
	if mode != "good" {
		args = "health-plugin " + mode
	}
	exe, err := os.Executable()
	require.NoError(s.t, err)
	return fmt.Sprintf("#!/bin/sh\necho $$ >> '%s'\nexec '%s' %s\n", s.runs, exe, args)
}

func (s *pluginScript) write(mode string) {
	// Write and rename, so a start never runs a half-written file.
	tmp := s.path + ".new"
	require.NoError(s.t, os.WriteFile(tmp, []byte(s.body(mode)), 0o755))
	require.NoError(s.t, os.Rename(tmp, s.path))
}

func (s *pluginScript) sum(mode string) string {
	sum := sha256.Sum256([]byte(s.body(mode)))
	return hex.EncodeToString(sum[:])
}

// pids are the processes the script started, oldest first.
func (s *pluginScript) pids() []int {
	raw, err := os.ReadFile(s.runs)
	require.NoError(s.t, err)
	var out []int
	for _, f := range strings.Fields(string(raw)) {
		pid, err := strconv.Atoi(f)
		require.NoError(s.t, err)
		out = append(out, pid)
	}
	return out
}

// TestConnectorPluginHealth runs crmsync serve with third-party connectors
// that cannot start (another handshake cookie, another protocol version, a
// binary that is not the pinned one, one that dies on every call): each
// connection shows CONNECTOR_UNAVAILABLE with the kind and reason in its
// status and the overview, pauses without respawning the plugin on every
// tick, is counted in the metrics, and resumes by itself once the binary
// is fixed. connectCrm tells an unknown connector from one that cannot
// start.
func TestConnectorPluginHealth(t *testing.T) {
	t.Parallel()
	const backoff = time.Second
	scripts := map[string]*pluginScript{}
	var specs []string
	for _, name := range []string{"acme-cookie", "acme-version", "acme-pinned", "acme-crash"} {
		s := newPluginScript(t, name)
		scripts[name] = s
		spec := name + "=" + s.path
		if name == "acme-pinned" {
			spec += "@" + s.sum("good")
		}
		specs = append(specs, spec)
	}
	addr, opsAddr := freeAddr(t), freeAddr(t)
	getenv := envOf(map[string]string{"CRMSYNC_DATA_DIR": t.TempDir(), "CRMSYNC_CONNECTORS": strings.Join(specs, ",")})
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--listen", addr, "--ops-listen", opsAddr, "--no-streaming",
			"--flush-schedule", "fixed", "--flush-interval", "100ms", "--plugin-start-backoff", backoff.String()}, getenv, io.Discard, logs)
	}()
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop within 30s of cancellation")
		}
		if t.Failed() {
			t.Logf("server logs:\n%s", logs.String())
		}
	})
	waitHealthy(t, addr, done)

	gql := func(token, query string) string {
		t.Helper()
		status, body := graphql(t, addr, token, query)
		require.Equal(t, http.StatusOK, status, body)
		return body
	}
	connect := func(token, name string) string {
		return gql(token, fmt.Sprintf(`mutation { connectCrm(input: {connector: %q, config: {org: %q}, credentials: {token: %q}}) { status } }`,
			name, name, memcrm.DefaultToken))
	}
	ingest := func(token string, n int) {
		gql(token, fmt.Sprintf(`mutation { recordChanges(input: [{recordType: COMPANY, recordId: "co%d", source: API, fields: [{name: "name", value: "Co %d"}]}]) { queued } }`, n, n))
	}
	state := func(token string) string {
		return gql(token, `{ connection { status statusReason } syncOverview { paused pauseReason connectionStatus connectionStatusReason queuedBatchItems } }`)
	}
	metrics := func() string {
		resp, err := http.Get("http://" + opsAddr + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(raw)
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// connectCrm: an unknown name, then a configured connector that cannot
	// start, in words that say which.
	token := field(t, runCmd(t, getenv, "workspace", "create", "Probe"), "token")
	require.Contains(t, connect(token, "nosuch"), `no such connector configured: nosuch (known: memcrm, salesforce, acme-cookie, acme-crash, acme-pinned, acme-version)`)
	scripts["acme-cookie"].write("other-cookie")
	body := connect(token, "acme-cookie")
	require.Contains(t, body, `connector acme-cookie is configured but failed to start: BAD_HANDSHAKE: `+crmplugin.BadHandshakeReason)
	require.NotContains(t, body, "architecture")
	scripts["acme-cookie"].write("good")

	for _, tc := range []struct {
		connector, mode, kind, reason string
		fix                           func()
	}{
		{connector: "acme-cookie", mode: "other-cookie", kind: "BAD_HANDSHAKE", reason: crmplugin.BadHandshakeReason},
		{connector: "acme-version", mode: "v2", kind: "VERSION_MISMATCH",
			reason: fmt.Sprintf("the plugin speaks connector protocol version %d, this crmsync speaks version %d", connector.ProtocolVersion+1, connector.ProtocolVersion)},
		{connector: "acme-pinned", mode: "other-cookie", kind: "CHECKSUM_MISMATCH", reason: "refusing to run " + scripts["acme-pinned"].path + ": its sha256 is " + scripts["acme-pinned"].sum("other-cookie")},
		// At least the threshold of 5: one more may die before the state is read.
		{connector: "acme-crash", mode: "crash", kind: "CRASH_LOOP", reason: "the plugin process died {n} times within 1m0s"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			s := scripts[tc.connector]
			token := field(t, runCmd(t, getenv, "workspace", "create", tc.connector), "token")
			eventually("connectCrm with the good binary", func() bool {
				return strings.Contains(connect(token, tc.connector), `"status":"CONNECTED"`)
			})
			ingest(token, 0)
			eventually("the first change synced", func() bool { return strings.Contains(state(token), `"queuedBatchItems":0`) })

			// A broken build replaces the binary; the running process dies.
			s.write(tc.mode)
			pids := s.pids()
			require.NoError(t, syscall.Kill(pids[len(pids)-1], syscall.SIGKILL))
			// One read must say it everywhere. The connection and the
			// overview are resolved one after the other, and a crash loop's
			// status flaps as the plugin restarts between deaths, so the
			// read is repeated until both halves agree; a product that never
			// says it in both times out here.
			wantReason := strings.ReplaceAll(regexp.QuoteMeta(tc.kind+": "+tc.reason), `\{n\}`, `([5-9]|\d\d)`)
			want := regexp.MustCompile(`"status":"CONNECTOR_UNAVAILABLE","statusReason":"` + wantReason + `.*` +
				regexp.QuoteMeta(`"paused":true,"pauseReason":"CONNECTOR_UNAVAILABLE","connectionStatus":"CONNECTOR_UNAVAILABLE","connectionStatusReason":"`) + wantReason)
			n := 1
			eventually("CONNECTOR_UNAVAILABLE with "+tc.kind+" in the connection and the overview", func() bool {
				n++
				ingest(token, n) // a crashing plugin dies once per flush
				return want.MatchString(state(token))
			})
			// The gauge is read at another moment than the state: a crash
			// loop may be between deaths then, so it is waited for too.
			eventually("the connector_unavailable gauge with "+tc.kind, func() bool {
				n++
				ingest(token, n)
				return strings.Contains(metrics(), fmt.Sprintf(`crmsync_connector_unavailable{connector=%q,kind=%q,workspace=`, tc.connector, tc.kind))
			})
			require.Contains(t, metrics(), fmt.Sprintf(`crmsync_plugin_start_failures_total{connector=%q,kind=%q} `, tc.connector, tc.kind))
			require.Contains(t, metrics(), fmt.Sprintf(`crmsync_plugin_restarts_total{connector=%q} `, tc.connector))

			// No spawn loop: flushes run every 100 ms while changes are
			// queued, and more arrive, but starts follow the back-off (1 s,
			// then 2 s, 4 s, …): at most 3 in the next 3 seconds.
			before, changes := len(s.pids()), 0
			for end := time.Now().Add(3 * backoff); time.Now().Before(end); changes++ {
				n++
				ingest(token, n)
				time.Sleep(150 * time.Millisecond)
			}
			starts := len(s.pids()) - before
			t.Logf("%s: %d plugin starts in 3 s of back-off while %d changes arrived", tc.connector, starts, changes)
			require.LessOrEqual(t, starts, 3, "starts in 3 s of back-off")

			// The fixed binary is picked up by itself.
			s.write("good")
			eventually("the connection to recover", func() bool {
				got := state(token)
				return strings.Contains(got, `"status":"CONNECTED"`) && strings.Contains(got, `"paused":false`) && strings.Contains(got, `"queuedBatchItems":0`)
			})
			require.Contains(t, state(token), `"statusReason":""`)
			require.NotContains(t, metrics(), fmt.Sprintf(`crmsync_connector_unavailable{connector=%q,kind=%q`, tc.connector, tc.kind))
		})
	}
}
