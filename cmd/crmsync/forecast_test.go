package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/connectors/salesforce"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/secret"
)

type noFlush struct{}

func (noFlush) ScheduleFlushTx(context.Context, bun.Tx, int64) error { return nil }

// TestForecastCommand prints the forecast of a workspace's queue from the
// database, and refuses a workspace without a CRM connection.
func TestForecastCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	getenv := envOf(map[string]string{"CRMSYNC_DATA_DIR": dir, "CRMSYNC_FLUSH_SCHEDULE": "fixed"})
	runCmd(t, getenv, "migrate", "up")
	ws, err := strconv.ParseInt(field(t, runCmd(t, getenv, "workspace", "create", "Acme"), "workspace_id"), 10, 64)
	require.NoError(t, err)

	var stdout, stderr bytes.Buffer
	err = run(ctx, []string{"forecast", strconv.FormatInt(ws, 10)}, getenv, &stdout, &stderr)
	require.ErrorContains(t, err, "no CRM connection")

	bdb, err := db.Open(ctx, "", dir, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer bdb.Close()
	key := make([]byte, secret.KeySize)
	_, _ = rand.Read(key)
	box, err := secret.NewBox(key)
	require.NoError(t, err)
	s := memcrm.Session("forecast", memcrm.DefaultToken)
	_, err = connection.NewStore(bdb, box).Save(ctx, ws, memcrm.Name, s.Config, s.Credentials, memcrm.New().Org("forecast").Identity(), nil)
	require.NoError(t, err)
	var changes []outbound.Change
	for i := range 30 {
		changes = append(changes, outbound.Change{Type: record.TypeCompany, ID: fmt.Sprintf("co-%d", i), Source: record.SourceImport,
			Fields: map[string]outbound.FieldChange{"name": {Value: fmt.Sprintf("Company %d", i), ChangedAt: time.Now()}}})
	}
	_, err = outbound.NewIngester(bdb, noFlush{}, nil).Ingest(ctx, ws, changes)
	require.NoError(t, err)

	out := runCmd(t, getenv, "forecast", strconv.FormatInt(ws, 10))
	require.Regexp(t, regexp.MustCompile(`COMPANY\s+30\s+30\s+30\s+0\s+0\s+0\s+\d+`), out)
	require.Regexp(t, `api_calls: \d+ in 1 flush\(es\)`, out)
	require.Regexp(t, `rest_api_calls: \d+`, out)
	require.Contains(t, out, "bulk_api_calls: 0 (no bulk path announced by the connector)", "memcrm has none")
	require.Contains(t, out, "call_latency: 0.150s without its records, assumed")
	require.Regexp(t, `duration_terms: flushes' own work [0-9.]+m?s \(assumed\), calls [0-9.]+m?s, records [0-9.]+m?s \(assumed\), bulk jobs 0s \(assumed \(10,000-record chunks worked 10 at a time\)\), 0 cut-off flush\(es\) 0s, pacing waits 0s`, out)
	require.Contains(t, out, "schedule: fixed windows")
	require.Contains(t, out, "fits_budget: yes")

	// A Salesforce connection whose bulkThreshold the 30 creates exceed:
	// the built-in connector's static describe announces it, no CRM call.
	sf, err := strconv.ParseInt(field(t, runCmd(t, getenv, "workspace", "create", "Bulk"), "workspace_id"), 10, 64)
	require.NoError(t, err)
	_, err = connection.NewStore(bdb, box).Save(ctx, sf, salesforce.Name,
		[]byte(`{"loginUrl": "https://login.salesforce.com", "clientId": "app", "bulkThreshold": 20}`), []byte(`{}`), connector.Identity{}, nil)
	require.NoError(t, err)
	_, err = outbound.NewIngester(bdb, noFlush{}, nil).Ingest(ctx, sf, changes)
	require.NoError(t, err)
	out = runCmd(t, getenv, "forecast", strconv.FormatInt(sf, 10))
	require.Contains(t, out, "bulk_api_calls: 5 (1 job(s), writes of one kind on one object over 20 a flush)")
}
