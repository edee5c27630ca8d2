package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFakeSalesforceCommand(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"fake-salesforce", "--listen", "127.0.0.1:0", "--daily-max", "2"}, envOf(nil), &stdout, &stderr)
	}()
	printed := map[string]string{}
	require.Eventually(t, func() bool {
		for _, line := range strings.Split(stdout.String(), "\n") {
			if k, val, ok := strings.Cut(line, "="); ok {
				printed[k] = val
			}
		}
		return printed["integration_user_id"] != ""
	}, 10*time.Second, 10*time.Millisecond, "stderr: %s", stderr.String())

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {printed["refresh_token"]}, "client_id": {printed["client_id"]}, "client_secret": {printed["client_secret"]}}
	resp, err := client.Post(printed["login_url"]+"/services/oauth2/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	var tok map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	resp.Body.Close()
	require.Equal(t, printed["base_url"], tok["instance_url"])

	statuses := []int{}
	for range 3 {
		req, _ := http.NewRequest("GET", tok["instance_url"]+"/services/data/v62.0/limits", nil)
		req.Header.Set("Authorization", "Bearer "+tok["access_token"])
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	require.Equal(t, []int{200, 200, 403}, statuses, "--daily-max is the allocation")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("fake-salesforce did not stop")
	}
}
