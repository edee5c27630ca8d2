package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// replica is one extra `crmsync serve` process on the bench's database.
type replica struct {
	cmd     *exec.Cmd
	baseURL string
	exited  chan struct{}
}

// startReplicas starts n `crmsync serve` processes (this executable) on
// the bench's PostgreSQL and data directory (so they share its secret key),
// each flushing with the same interval, and waits until they are ready.
func (b *bench) startReplicas(ctx context.Context, n int) ([]*replica, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("replicas: %w", err)
	}
	var out []*replica
	for i := range n {
		port, err := freePort()
		if err != nil {
			stopReplicas(out)
			return nil, err
		}
		logFile, err := os.Create(filepath.Join(b.dir, fmt.Sprintf("replica-%d.log", i+2)))
		if err != nil {
			stopReplicas(out)
			return nil, fmt.Errorf("replicas: %w", err)
		}
		cmd := exec.Command(exe, "serve")
		cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"),
			"DATABASE_URL=" + b.global.DatabaseURL,
			"CRMSYNC_DATA_DIR=" + b.dir,
			"TMPDIR=" + b.dir,
			fmt.Sprintf("CRMSYNC_LISTEN=127.0.0.1:%d", port),
			"CRMSYNC_NO_MIGRATE=true",
			"CRMSYNC_FLUSH_INTERVAL=" + b.cmd.Interval.String(),
			"CRMSYNC_PULL_INTERVAL=1h",
			"CRMSYNC_SWEEP_INTERVAL=1h",
			"CRMSYNC_LOG_LEVEL=warn",
		}
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			_ = logFile.Close()
			stopReplicas(out)
			return nil, fmt.Errorf("replicas: start: %w", err)
		}
		r := &replica{cmd: cmd, baseURL: fmt.Sprintf("http://127.0.0.1:%d", port), exited: make(chan struct{})}
		go func() {
			_ = cmd.Wait()
			_ = logFile.Close()
			close(r.exited)
		}()
		out = append(out, r)
	}
	for _, r := range out {
		if err := r.waitReady(ctx); err != nil {
			stopReplicas(out)
			return nil, err
		}
	}
	return out, nil
}

// waitReady polls /readyz until the replica answers 200.
func (r *replica) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.baseURL+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-r.exited:
			return errors.New("replicas: a replica exited before it was ready (see its log in the bench directory)")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("replicas: a replica was not ready within a minute")
		}
	}
}

// stopReplicas stops the replicas (SIGTERM, then SIGKILL after 10 s).
func stopReplicas(rs []*replica) {
	for _, r := range rs {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, r := range rs {
		select {
		case <-r.exited:
		case <-time.After(10 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("replicas: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
