package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/bench"
)

// Bad cost model settings are refused before anything runs, saying why.
func TestBenchCostModelErrors(t *testing.T) {
	t.Parallel()
	for args, want := range map[string]string{
		"--cost-model bogus":                      `--cost-model must be one of "realistic","flat" but got "bogus"`,
		"--cost-model flat --cost-per-record 5ms": "--cost-per-record applies to the realistic cost model only",
		"--cost-per-record=-5ms":                  "must not be negative",
		"--latency=-1s":                           "must not be negative",
	} {
		var stdout, stderr lockedBuffer
		err := run(t.Context(), append([]string{"bench"}, strings.Fields(args)...), func(string) string { return "" }, &stdout, &stderr)
		require.ErrorContains(t, err, want, args)
	}
}

// The bench scenarios run end to end at a tiny size, through the real
// Salesforce connector plugin, so the command cannot rot.
func TestBenchScenarios(t *testing.T) {
	t.Parallel()
	// burst runs under the default (realistic) cost model, backlog under
	// the flat one: every report names the model it ran under.
	for scenario, model := range map[string]string{"burst": "", "backlog": "flat"} {
		t.Run(scenario, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr lockedBuffer
			getenv := func(string) string { return "" }
			args := []string{"bench", "--scenario", scenario, "--changes", "300", "--records", "30", "--latency", "0s", "--json"}
			if model != "" {
				args = append(args, "--cost-model", model)
			}
			err := run(t.Context(), args, getenv, &stdout, &stderr)
			require.NoError(t, err, stderr.String())
			var r bench.Report
			require.NoError(t, json.Unmarshal([]byte(stdout.String()), &r), stdout.String())
			require.Equal(t, scenario, r.Scenario)
			if model == "" {
				require.Equal(t, "realistic", r.CostModel)
				require.Contains(t, r.CostDetail, "Contact: create 10ms")
			} else {
				require.Equal(t, "flat", r.CostModel)
				require.Equal(t, "flat: 0s per call", r.CostDetail)
			}
			require.Equal(t, "sqlite", r.Database)
			require.Zero(t, r.Lost, "every change reached the fake org")
			require.Positive(t, r.APICalls, "calls are counted by the fake org")
			if scenario == "burst" {
				require.Equal(t, 2, r.CMin, "30 records of three objects: one read, one write")
				require.Equal(t, r.CMin, r.APICalls, "a held burst of updates costs exactly C_min")
			}
		})
	}
	// Import: 300 contact creates over 30 companies, the contacts above
	// the bulk threshold go by one Bulk API 2.0 job, the companies by REST.
	t.Run("import", func(t *testing.T) {
		t.Parallel()
		var stdout, stderr lockedBuffer
		getenv := func(string) string { return "" }
		err := run(t.Context(), []string{"bench", "--scenario", "import", "--changes", "300", "--records", "30", "--bulk-threshold", "100",
			"--cost-model", "flat", "--latency", "0s", "--json"}, getenv, &stdout, &stderr)
		require.NoError(t, err, stderr.String())
		var r bench.Report
		require.NoError(t, json.Unmarshal([]byte(stdout.String()), &r), stdout.String())
		require.Zero(t, r.Lost, "every record reached the fake org with its phone")
		require.NotNil(t, r.Bulk)
		require.Equal(t, 100, r.Bulk.Threshold)
		require.Equal(t, 1, r.Bulk.Jobs, "the contacts: one job; the companies: REST")
		require.Equal(t, 300, r.Bulk.Records)
		require.Zero(t, r.Bulk.Duplicates)
	})
	// Ingest: concurrent clients, one measurement per batch size.
	t.Run("ingest", func(t *testing.T) {
		t.Parallel()
		var stdout, stderr lockedBuffer
		getenv := func(string) string { return "" }
		err := run(t.Context(), []string{"bench", "--scenario", "ingest", "--clients", "4", "--batch-sizes", "1,10", "--duration", "1s",
			"--records", "30", "--latency", "0s", "--json"}, getenv, &stdout, &stderr)
		require.NoError(t, err, stderr.String())
		var r bench.Report
		require.NoError(t, json.Unmarshal([]byte(stdout.String()), &r), stdout.String())
		require.Len(t, r.Ingest, 2)
		for i, size := range []int{1, 10} {
			require.Equal(t, size, r.Ingest[i].BatchSize)
			require.Positive(t, r.Ingest[i].Calls)
			require.Positive(t, r.Ingest[i].ChangesSec)
		}
		require.Equal(t, r.Ingest[0].Calls+10*r.Ingest[1].Calls, r.Changes)
		require.Positive(t, r.Flushes, "the queue drained through flush jobs")
	})

	// Rep edits stream in through the plugin's Pub/Sub client: each one
	// applied, none costing a REST call.
	t.Run("inbound", func(t *testing.T) {
		t.Parallel()
		var stdout, stderr lockedBuffer
		getenv := func(string) string { return "" }
		err := run(t.Context(), []string{"bench", "--scenario", "inbound", "--rate", "5", "--for", "3s", "--latency", "0s", "--json"},
			getenv, &stdout, &stderr)
		require.NoError(t, err, stderr.String())
		var r bench.Report
		require.NoError(t, json.Unmarshal([]byte(stdout.String()), &r), stdout.String())
		require.Equal(t, "inbound", r.Scenario)
		require.NotNil(t, r.Inbound)
		require.Positive(t, r.Inbound.Edits)
		require.Equal(t, r.Inbound.Edits, r.Inbound.Applied, "every rep edit reached Conversion")
		require.Zero(t, r.Inbound.RESTCalls, "streamed edits of linked records cost no REST call")
		require.Zero(t, r.Inbound.IdleCalls, "an idle streaming connection costs no REST call")
		require.LessOrEqual(t, r.Inbound.P50MS, r.Inbound.P99MS)
	})

	// The trickle runs both schedules side by side and times every change.
	t.Run("trickle", func(t *testing.T) {
		t.Parallel()
		var stdout, stderr lockedBuffer
		getenv := func(string) string { return "" }
		err := run(t.Context(), []string{"bench", "--scenario", "trickle", "--rate", "5", "--for", "3s", "--interval", "1s",
			"--records", "20", "--latency", "0s", "--json"}, getenv, &stdout, &stderr)
		require.NoError(t, err, stderr.String())
		var r bench.Report
		require.NoError(t, json.Unmarshal([]byte(stdout.String()), &r), stdout.String())
		require.Equal(t, "trickle", r.Scenario)
		require.Zero(t, r.Lost, "every change reached its fake org")
		require.Len(t, r.Trickle, 2)
		require.Equal(t, "budget", r.Trickle[0].Schedule)
		require.Equal(t, "fixed 1s", r.Trickle[1].Schedule)
		for _, tr := range r.Trickle {
			require.Positive(t, tr.Changes, tr.Schedule)
			require.Equal(t, tr.Changes, tr.Applied, tr.Schedule)
			require.Positive(t, tr.P50MS, tr.Schedule)
			require.LessOrEqual(t, tr.P50MS, tr.P95MS, tr.Schedule)
			require.LessOrEqual(t, tr.P95MS, tr.P99MS, tr.Schedule)
			require.LessOrEqual(t, tr.P99MS, tr.MaxMS, tr.Schedule)
			require.Positive(t, tr.Calls, tr.Schedule)
			require.Positive(t, tr.CallsPerHour, tr.Schedule)
			require.Positive(t, tr.Flushes, tr.Schedule)
			require.Positive(t, tr.CallsPerFlush, tr.Schedule)
		}
	})
	// The budget scenario simulates a day on the fake org's clock: the
	// calls in any 24 hours never pass the limit, nothing is lost. It
	// counts calls, not time: the flat model keeps it quick.
	t.Run("budget", func(t *testing.T) {
		t.Parallel()
		var stdout, stderr lockedBuffer
		getenv := func(string) string { return "" }
		err := run(t.Context(), []string{"bench", "--scenario", "budget", "--records", "12", "--cap", "300", "--latency", "0s", "--cost-model", "flat", "--json"},
			getenv, &stdout, &stderr)
		require.NoError(t, err, stderr.String())
		var r bench.Report
		require.NoError(t, json.Unmarshal([]byte(stdout.String()), &r), stdout.String())
		require.NotNil(t, r.Budget)
		require.Positive(t, r.Budget.Calls)
		require.LessOrEqual(t, r.Budget.MaxWindow, int64(300), "never beyond the daily limit")
		require.Positive(t, r.Budget.DrainedAfter, "the queue drains once the load falls")
		require.Zero(t, r.Budget.Lost)
	})
}
