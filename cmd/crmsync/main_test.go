package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/workspace"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "connector" {
		// The plugin host launches its own executable as `connector NAME`;
		// under go test that is this binary, which then serves the connector.
		main()
		return
	}
	if len(os.Args) == 3 && os.Args[1] == "health-plugin" {
		serveHealthPlugin(os.Args[2])
		return
	}
	goleak.VerifyTestMain(m)
}

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// runCmd runs a short command and returns its stdout.
func runCmd(t *testing.T, getenv func(string) string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, getenv, &stdout, &stderr)
	require.NoError(t, err, "crmsync %v: %s", args, stderr.String())
	return stdout.String()
}

func field(t *testing.T, out, name string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, name+": "); ok {
			return v
		}
	}
	t.Fatalf("no %q in output %q", name, out)
	return ""
}

func graphql(t *testing.T, addr, token, query string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"query": query})
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/graphql", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestServeEndToEnd runs `crmsync serve` on both databases: a workspace
// created by the CLI can query the API, a token revoked by the CLI cannot
// once the server's token cache has let it go (workspace.TokenCacheTTL),
// and cancelling the context (what SIGTERM does) stops it with no error.
func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{"CRMSYNC_DATA_DIR": t.TempDir(), "CRMSYNC_ADMIN_TOKEN": "admin-e2e"}
			if dialect == "postgres" {
				vars["DATABASE_URL"] = dbtest.PostgresURL(t)
			}
			getenv := envOf(vars)
			addr := freeAddr(t)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			logs := &lockedBuffer{}
			done := make(chan error, 1)
			go func() { done <- run(ctx, []string{"serve", "--listen", addr}, getenv, io.Discard, logs) }()
			waitHealthy(t, addr, done)
			require.Contains(t, strings.SplitN(logs.String(), "\n", 2)[0], `"msg":"database: `+dialect+`"`,
				"the first log line names the database")

			out := runCmd(t, getenv, "workspace", "create", "Acme")
			token := field(t, out, "token")

			status, body := graphql(t, addr, token, `{ viewer { name } }`)
			require.Equal(t, http.StatusOK, status)
			require.JSONEq(t, `{"data":{"viewer":{"name":"Acme"}}}`, body)

			status, _ = graphql(t, addr, "", `{ viewer { name } }`)
			require.Equal(t, http.StatusUnauthorized, status)

			status, body = graphql(t, addr, "admin-e2e", `mutation { createWorkspace(name: "Globex") { workspace { name } } }`)
			require.Equal(t, http.StatusOK, status)
			require.JSONEq(t, `{"data":{"createWorkspace":{"workspace":{"name":"Globex"}}}}`, body)

			runCmd(t, getenv, "token", "revoke", field(t, out, "token_id"))
			revoked := time.Now()
			require.Eventually(t, func() bool {
				status, _ := graphql(t, addr, token, `{ viewer { name } }`)
				return status == http.StatusUnauthorized
			}, workspace.TokenCacheTTL+10*time.Second, 50*time.Millisecond)
			t.Logf("the revoked token was refused after %s", time.Since(revoked).Round(time.Millisecond))

			http.DefaultClient.CloseIdleConnections()
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err, logs.String())
			case <-time.After(10 * time.Second):
				t.Fatal("serve did not stop within 10s of cancellation")
			}
		})
	}
}

func waitHealthy(t *testing.T, addr string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("serve ended early: %v", err)
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("serve did not become ready within 90s")
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = busy.Close() })

	tests := map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"unparseable DATABASE_URL": {
			args: []string{"serve"}, env: map[string]string{"DATABASE_URL": "postgres://u:pw@host:port/db"},
			want: "DATABASE_URL is not a valid URL",
		},
		"unsupported DATABASE_URL": {
			args: []string{"migrate", "up"}, env: map[string]string{"CRMSYNC_DATABASE_URL": "mysql://x/y"},
			want: "must start with postgres://",
		},
		"unwritable data dir": {
			args: []string{"serve"}, env: map[string]string{"CRMSYNC_DATA_DIR": filepath.Join(file, "data")},
			want: "cannot create it",
		},
		"malformed secret key": {
			args: []string{"serve", "--secret-key", "c2hvcnQ="},
			want: "want 32 bytes",
		},
		"bad listen address": {
			args: []string{"serve"}, env: map[string]string{"CRMSYNC_LISTEN": "8080"},
			want: "want host:port",
		},
		"port in use": {
			args: []string{"serve", "--listen", busy.Addr().String()},
			want: "already in use",
		},
		"bad allowed origin": {
			args: []string{"serve"}, env: map[string]string{"CRMSYNC_ALLOWED_ORIGINS": "https://ok.example.com,not an origin"},
			want: `allowed origin "not an origin"`,
		},
		"bad log level": {
			args: []string{"migrate", "status", "--log-level", "loud"},
			want: "--log-level",
		},
		"unknown command": {
			args: []string{"frobnicate"},
			want: "unexpected argument frobnicate",
		},
		"workspace on unmigrated database": {
			args: []string{"workspace", "create", "x"},
			want: "run `crmsync migrate up`",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"CRMSYNC_DATA_DIR": t.TempDir()}
			for k, v := range tc.env {
				env[k] = v
			}
			var stderr bytes.Buffer
			err := run(context.Background(), tc.args, envOf(env), io.Discard, &stderr)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), ":pw@", "the password never appears")
		})
	}
}

func TestHelpDocumentsEnvironment(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"serve", "--help"}, envOf(nil), &stdout, io.Discard))
	for _, name := range []string{"DATABASE_URL", "CRMSYNC_DATABASE_URL", "CRMSYNC_LISTEN", "CRMSYNC_DATA_DIR",
		"CRMSYNC_ADMIN_TOKEN", "CRMSYNC_SECRET_KEY", "CRMSYNC_NO_MIGRATE", "CRMSYNC_GRAPHIQL", "CRMSYNC_ALLOWED_ORIGINS"} {
		require.Contains(t, stdout.String(), name)
	}
}

func TestMigrateCommands(t *testing.T) {
	t.Parallel()
	getenv := envOf(map[string]string{"CRMSYNC_DATA_DIR": t.TempDir()})
	require.Contains(t, runCmd(t, getenv, "migrate", "status"), "pending")
	require.Contains(t, runCmd(t, getenv, "migrate", "up"), "applied app 20261128000001_workspaces")
	require.Contains(t, runCmd(t, getenv, "migrate", "up"), "up to date")
	require.Contains(t, runCmd(t, getenv, "migrate", "status"), "\n0 pending")
}
