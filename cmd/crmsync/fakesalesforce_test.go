package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestFakeSalesforceCommand runs `crmsync fake-salesforce` and pastes what
// it prints, as is, into a running `crmsync serve`: the workspace connects
// through the Salesforce connector plugin, and the org's allowance is the
// --daily-max given.
func TestFakeSalesforceCommand(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"fake-salesforce", "--listen", "127.0.0.1:0", "--daily-max", "1234"}, envOf(nil), &stdout, &stderr)
	}()
	require.Eventually(t, func() bool { return strings.HasSuffix(stdout.String(), "\n}\n") },
		10*time.Second, 10*time.Millisecond, "stderr: %s", stderr.String())
	printed := stdout.String()
	require.NotContains(t, printed, "refresh_token=", "a mutation to paste, not key=value lines")
	require.Contains(t, printed, "/oauth/salesforce/start", "says how to try the web flow")
	require.Contains(t, printed, "--allow-crm-host=127.0.0.1:", "says how to let serve reach it")

	require.Contains(t, printed, "CRMSYNC_ALLOW_CRM_HOSTS=", "says how to let serve reach the fake")
	orgHost := regexp.MustCompile(`CRMSYNC_ALLOW_CRM_HOSTS=(\S+)`).FindStringSubmatch(printed)[1]
	addr := freeAddr(t)
	getenv := envOf(map[string]string{"CRMSYNC_DATA_DIR": t.TempDir(), "CRMSYNC_ALLOW_CRM_HOSTS": orgHost})
	serveCtx, stopServe := context.WithCancel(context.Background())
	defer stopServe()
	var logs lockedBuffer
	served := make(chan error, 1)
	go func() {
		served <- run(serveCtx, []string{"serve", "--listen", addr, "--allow-crm-host", "127.0.0.1"}, getenv, io.Discard, &logs)
	}()
	waitHealthy(t, addr, served)
	token := field(t, runCmd(t, getenv, "workspace", "create", "Acme"), "token")

	status, body := graphql(t, addr, token, printed)
	require.Equal(t, http.StatusOK, status, body)
	var resp struct {
		Data struct {
			ConnectCrm struct {
				Connector, Status, StatusReason string
				Identity                        struct{ UserID, InstanceURL string }
			}
		}
		Errors []any
	}
	require.NoError(t, json.Unmarshal([]byte(body), &resp), body)
	require.Empty(t, resp.Errors, body)
	got := resp.Data.ConnectCrm
	require.Equal(t, "salesforce", got.Connector)
	require.Equal(t, "CONNECTED", got.Status, body)
	require.NotEmpty(t, got.Identity.UserID)
	require.True(t, strings.HasPrefix(printed, "# A fake Salesforce org is running at "+got.Identity.InstanceURL+" "), body)

	status, body = graphql(t, addr, token, `{ syncOverview { salesforceDailyLimit { max } } }`)
	require.Equal(t, http.StatusOK, status, body)
	require.JSONEq(t, `{"data":{"syncOverview":{"salesforceDailyLimit":{"max":1234}}}}`, body, "--daily-max is the allocation")

	http.DefaultClient.CloseIdleConnections()
	stopServe()
	cancel()
	for name, ch := range map[string]chan error{"serve": served, "fake-salesforce": done} {
		select {
		case err := <-ch:
			require.NoError(t, err, name)
		case <-time.After(15 * time.Second):
			t.Fatalf("%s did not stop", name)
		}
	}
}
