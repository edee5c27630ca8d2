package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"
)

// TestDemo runs `crmsync demo`: it says what it is doing before each slow
// step (on stderr, before the banner), logs JSON when stderr is not a
// terminal with none of River's routine lines, and serves the API with the
// token the banner prints.
func TestDemo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, dir := freeAddr(t), t.TempDir()
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--dir", dir, "--listen", addr, "--rate", "5"},
			envOf(nil), &stdout, &stderr)
	}()
	require.Eventually(t, func() bool { return strings.Contains(stdout.String(), "crmsync demo is running") },
		60*time.Second, 20*time.Millisecond, "stderr: %s", stderr.String())

	var steps []string
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if step, ok := strings.CutPrefix(line, "crmsync demo: "); ok {
			steps = append(steps, step)
			continue
		}
		require.True(t, json.Valid([]byte(line)), "stderr is not a terminal: JSON logs, got %q", line)
		require.NotContains(t, line, "River client started", "River's routine lines are debug")
	}
	require.Equal(t, []string{
		"starting a fake Salesforce org on loopback",
		"opening the database (SQLite in " + dir + ") and applying migrations",
		"starting the sync workers (River)",
		"launching the Salesforce connector plugin and connecting the workspace to the fake org",
		"seeding 4 companies, 2 campaigns and 12 contacts",
	}, steps)

	// The operations the banner suggests are valid against the schema.
	banner := stdout.String()
	try := banner[strings.Index(banner, "Try in GraphiQL:"):strings.Index(banner, "Or with curl:")]
	schema := loadSchema(t)
	var ops int
	for _, chunk := range strings.Split(try, "\n\n")[1:] {
		if strings.TrimSpace(chunk) == "" {
			continue
		}
		_, errs := gqlparser.LoadQuery(schema, chunk)
		require.Empty(t, errs, "banner operation does not validate:\n%s", chunk)
		ops++
	}
	require.Equal(t, 4, ops)

	token := regexp.MustCompile(`API token:\s+(\S+)`).FindStringSubmatch(stdout.String())
	require.Len(t, token, 2, stdout.String())
	status, body := graphql(t, addr, token[1], `{ syncOverview { queuedBatchItems } }`)
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `"queuedBatchItems"`)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the demo did not stop")
	}
}
