package reliability

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/outbound"
)

// binary is the crmsync executable the tests run as `crmsync serve`.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "crmsync-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "crmsync")
	build := exec.Command("go", "build", "-o", binary, "github.com/crmsync/crmsync/cmd/crmsync")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "reliability: build crmsync:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// cluster is one scenario's world: a PostgreSQL database, a fake Salesforce
// org in this process, and crmsync serve replicas as child processes.
type cluster struct {
	t      *testing.T
	dbURL  string
	db     *bun.DB
	org    *sffake.Server
	hook   *hookedOrg
	orgURL string
	// pubsub is the fake's Pub/Sub API address; "" when the cluster polls.
	pubsub string
	// bulkThreshold is the connection's bulkThreshold (0: the default).
	bulkThreshold int
	dir           string
	env           []string
	admin         string
	// refreshToken is the one the workspace is connected with.
	refreshToken string

	mu       sync.Mutex
	replicas []*replica
	started  int
}

type clusterOptions struct {
	// DatabaseURL is the database to use; empty: a fresh one on the test
	// PostgreSQL.
	DatabaseURL string
	Latency     time.Duration
	// Cost is the fake org's cost model (nil: none, Latency only).
	Cost *sffake.Cost
	// Streaming serves the fake's Pub/Sub API and connects the workspace
	// to it: inbound changes stream (Change Data Capture) instead of being
	// polled.
	Streaming bool
	// BulkThreshold, when set, is the connection's bulkThreshold: groups
	// of more writes go as Bulk API 2.0 jobs.
	BulkThreshold int
	// ReplicaID, when set, is every replica's --replica-id: a restarted
	// replica keeps its name (a StatefulSet pod) and takes over the leases
	// of its killed predecessor. Only for tests that run one replica at a
	// time.
	ReplicaID string
}

func newCluster(t *testing.T, opts clusterOptions) *cluster {
	t.Helper()
	c := &cluster{t: t, dbURL: opts.DatabaseURL, dir: t.TempDir(), admin: "admin-" + randomString(t), bulkThreshold: opts.BulkThreshold}
	if c.dbURL == "" {
		c.dbURL = dbtest.PostgresURL(t)
	}
	bdb, err := db.Open(t.Context(), c.dbURL, "", slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = bdb.Close() })
	c.db = bdb

	// The checker reads the whole request log.
	c.org = sffake.New(sffake.Options{Latency: opts.Latency, Cost: opts.Cost, DailyMax: 10_000_000, LogLimit: 10_000_000})
	c.hook = &hookedOrg{org: c.org}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: c.hook, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	c.orgURL = "http://" + ln.Addr().String()
	allowed := ln.Addr().String()
	if opts.Streaming {
		pln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		c.org.ServePubSub(pln)
		t.Cleanup(c.org.StopPubSub)
		c.pubsub = pln.Addr().String()
		allowed += "," + c.pubsub
	}

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c.env = []string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=" + c.dbURL,
		"CRMSYNC_SECRET_KEY=" + base64.StdEncoding.EncodeToString(key),
		"CRMSYNC_ADMIN_TOKEN=" + c.admin,
		"CRMSYNC_LISTEN=127.0.0.1:0",
		"CRMSYNC_FLUSH_INTERVAL=1s",
		"CRMSYNC_PULL_INTERVAL=3s",
		"CRMSYNC_SYNC_LEASE=3s",
		"CRMSYNC_SHUTDOWN_TIMEOUT=2s",
		"CRMSYNC_LOG_FORMAT=json",
		"CRMSYNC_LOG_LEVEL=info",
		"CRMSYNC_ALLOW_CRM_HOSTS=" + allowed, // the fake Salesforce (and its Pub/Sub API), on loopback
	}
	if opts.ReplicaID != "" {
		c.env = append(c.env, "CRMSYNC_REPLICA_ID="+opts.ReplicaID)
	}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, r := range c.replicas {
			r.kill()
		}
		if t.Failed() {
			// What the replicas said is the first thing to read.
			logs, _ := filepath.Glob(filepath.Join(c.dir, "replica-*.log"))
			for _, path := range logs {
				t.Logf("%s (tail):\n%s", filepath.Base(path), readTail(path))
			}
		}
	})
	return c
}

// replica is one running `crmsync serve`.
type replica struct {
	name   string
	cmd    *exec.Cmd
	url    string
	exited chan struct{}
}

var servingLine = regexp.MustCompile(`"graphql":"(http://[^"]+)/graphql"`)

// start starts a replica and waits until it serves.
func (c *cluster) start() *replica {
	t := c.t
	t.Helper()
	c.mu.Lock()
	c.started++
	name := fmt.Sprintf("replica-%d", c.started)
	c.mu.Unlock()
	dir := filepath.Join(c.dir, name)
	require.NoError(t, os.MkdirAll(dir, 0o700))
	logFile, err := os.Create(filepath.Join(c.dir, name+".log"))
	require.NoError(t, err)
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(slices2(c.env), "CRMSYNC_DATA_DIR="+dir, "TMPDIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	cmd.Stdout = logFile
	require.NoError(t, cmd.Start())
	r := &replica{name: name, cmd: cmd, exited: make(chan struct{})}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = logFile.Write(append(line, '\n'))
			if m := servingLine.FindSubmatch(line); m != nil {
				select {
				case urls <- string(m[1]):
				default:
				}
			}
		}
		_, _ = io.Copy(logFile, stderr)
	}()
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(r.exited)
	}()
	select {
	case r.url = <-urls:
	case <-r.exited:
		t.Fatalf("%s exited before serving; log: %s", name, readTail(filepath.Join(c.dir, name+".log")))
	case <-time.After(time.Minute):
		t.Fatalf("%s did not serve within a minute; log: %s", name, readTail(filepath.Join(c.dir, name+".log")))
	}
	c.mu.Lock()
	c.replicas = append(c.replicas, r)
	c.mu.Unlock()
	return r
}

func slices2(s []string) []string { return append([]string(nil), s...) }

func readTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// kill SIGKILLs the replica (its plugin processes die with it) and waits.
func (r *replica) kill() {
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

// alive reports whether the replica still runs.
func (r *replica) alive() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// kill kills a replica and forgets it.
func (c *cluster) kill(r *replica) {
	r.kill()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.replicas {
		if x == r {
			c.replicas = append(c.replicas[:i], c.replicas[i+1:]...)
			break
		}
	}
}

// live returns the running replicas.
func (c *cluster) live() []*replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*replica
	for _, r := range c.replicas {
		if r.alive() {
			out = append(out, r)
		}
	}
	return out
}

// pluginPIDs returns the connector plugin processes of a replica.
func (r *replica) pluginPIDs() []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == r.cmd.Process.Pid {
			out = append(out, pid)
		}
	}
	return out
}

// hookedOrg serves the fake org and, when set, runs afterWrite once a write
// was carried out and before its answer leaves: a crash at that point is
// the worst moment (Salesforce has the write, crmsync does not know).
type hookedOrg struct {
	org        *sffake.Server
	afterWrite atomic.Pointer[func()]
}

func (h *hookedOrg) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hook := h.afterWrite.Load()
	if hook == nil || r.Method == http.MethodGet || strings.Contains(r.URL.Path, "/oauth2/") {
		h.org.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	h.org.ServeHTTP(rec, r)
	if rec.Code < 300 {
		(*hook)()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// onNextWrite runs fn once, when the next write was carried out by the org
// and before its answer leaves, and waits for it. Two minutes at most: after
// a fault storm the next flush may wait out a retry.
func (c *cluster) onNextWrite(t *testing.T, fn func()) {
	t.Helper()
	var once atomic.Bool
	done := make(chan struct{})
	hook := func() {
		if once.CompareAndSwap(false, true) {
			fn()
			close(done)
		}
	}
	c.hook.afterWrite.Store(&hook)
	defer c.hook.afterWrite.Store(nil)
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("no write reached Salesforce within two minutes")
	}
}

// gql posts a GraphQL operation to a replica and decodes data into out.
func gql(ctx context.Context, baseURL, token, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/graphql", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var res struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Message    string         `json:"message"`
			Extensions map[string]any `json:"extensions"`
		} `json:"errors"`
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, raw)
	}
	if len(res.Errors) > 0 {
		return &gqlError{Status: resp.StatusCode, Message: res.Errors[0].Message, Code: fmt.Sprint(res.Errors[0].Extensions["code"])}
	}
	if out != nil {
		return json.Unmarshal(res.Data, out)
	}
	return nil
}

type gqlError struct {
	Status        int
	Message, Code string
}

func (e *gqlError) Error() string {
	return fmt.Sprintf("graphql: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// userError reports whether err is crmsync refusing the request itself
// (bad input, auth): retrying cannot help.
func userError(err error) bool {
	var ge *gqlError
	return errors.As(err, &ge) && (ge.Code == "BAD_USER_INPUT" || ge.Code == "UNAUTHENTICATED" || ge.Code == "FORBIDDEN" ||
		ge.Code == "GRAPHQL_VALIDATION_FAILED")
}

// call runs an operation on any live replica, retrying on other replicas
// (or the same one later) until it is acknowledged: the client a real
// Conversion would be. A retried ingest sends the same changes with the
// same changedAt, so an ambiguous first attempt is harmless.
func (c *cluster) call(ctx context.Context, token, query string, vars map[string]any, out any) error {
	deadline := time.Now().Add(3 * time.Minute)
	for attempt := 0; ; attempt++ {
		live := c.live()
		var err error
		if len(live) == 0 {
			err = errors.New("no replica running")
		} else {
			err = gql(ctx, live[attempt%len(live)].url, token, query, vars, out)
		}
		if err == nil || userError(err) {
			return err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("gave up after %d attempts: %w", attempt+1, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// queued counts the workspace's queued outbound items.
func (c *cluster) queued(ctx context.Context, ws int64) (int, error) {
	n, err := c.db.NewSelect().Model((*outbound.Item)(nil)).
		Where("workspace_id = ? AND state = ?", ws, outbound.StateQueued).Count(ctx)
	return int(n), err
}

// waitDrained waits until nothing is queued for the workspace.
func (c *cluster) waitDrained(ctx context.Context, ws int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := c.queued(ctx, ws)
		if err == nil && n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("queue not drained after %s: %d queued (%v)", timeout, n, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func randomString(t *testing.T) string {
	b := make([]byte, 12)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}

// runScript runs a shell script (scripts/pg.sh) with arguments.
func runScript(ctx context.Context, script string, args ...string) error {
	_, err := runScriptOutput(ctx, script, args...)
	return err
}

func runScriptOutput(ctx context.Context, script string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	// Durable commits: a crash of PostgreSQL itself must not take back what
	// it acknowledged, or the tests would measure that setting, not crmsync.
	cmd.Env = append(os.Environ(), "PGSH_DURABLE=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %v: %w: %s", script, args, err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}
