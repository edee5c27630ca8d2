package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/config"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/push"
)

// forecastCmd prints syncForecast for a workspace, computed from the
// database like the other admin commands (no CRM call, no running server
// needed). It reads the sync settings as serve does (flags or CRMSYNC_*
// environment), so the pacing it assumes is the server's.
type forecastCmd struct {
	WorkspaceID int64 `arg:"" name:"workspace-id" help:"Id of the workspace."`
	config.Sync `embed:""`
}

func (c forecastCmd) Run(e *env) error {
	bdb, err := e.openMigratedDB()
	if err != nil {
		return err
	}
	defer bdb.Close()
	// The forecast reads the connection row only: no credentials are
	// opened, so no secret key is needed. A built-in connector answers its
	// static describe in process (its bulk threshold for the connection's
	// configuration); a third-party one is planned without a bulk path.
	eng := push.New(bdb, connection.NewStore(bdb, nil), staticConnectors{}, nil, e.global.Logger(e.stderr), push.Config{
		Pace: push.PaceConfig{Enabled: c.Schedule() == "budget", Share: c.BudgetShare / 100, Burst: float64(c.PaceBurst)}})
	fc, err := eng.Forecast(e.ctx, c.WorkspaceID)
	if err != nil {
		return fmt.Errorf("forecast workspace %d: %w", c.WorkspaceID, err)
	}
	return printForecast(e.stdout, c.WorkspaceID, fc)
}

// staticConnectors hands out the built-in connectors in process, for the
// forecast's describe without credentials (no CRM call).
type staticConnectors struct{}

func (staticConnectors) Connector(_ context.Context, name string) (connector.Connector, error) {
	newConnector, ok := builtinConnectors[name]
	if !ok {
		return nil, fmt.Errorf("connector %q is not built in: the forecast cannot ask it for its bulk path", name)
	}
	return newConnector(nil), nil
}

func printForecast(out io.Writer, ws int64, fc *push.Forecast) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(out, "Forecast of workspace %d's queue at %s\n\n", ws, fc.At.Format(time.RFC3339))
	fmt.Fprintln(w, "TYPE\tITEMS\tRECORDS\tCREATE\tUPDATE\tREMOVE\tSKIPPED\tAPI CALLS\t")
	for _, t := range fc.Types {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", t.Type, t.Items, t.Records, t.Creates, t.Updates, t.Removes, t.Skipped, t.APICalls)
	}
	fmt.Fprintf(w, "total\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", fc.Items, fc.Records, fc.Creates, fc.Updates, fc.Removes, fc.Skipped, fc.APICalls)
	if err := w.Flush(); err != nil {
		return err
	}
	latency := fmt.Sprintf("%.3fs without its records, measured over %d calls of the last 24 hours (records at %.2f× the assumed time)",
		fc.CallLatency.Seconds(), fc.LatencyCalls, fc.Terms.RecordScale)
	if fc.LatencyAssumed {
		latency = fmt.Sprintf("%.3fs without its records, assumed (no outbound batch made calls in the last 24 hours)", fc.CallLatency.Seconds())
	}
	bulkBasis := "assumed (10,000-record chunks worked 10 at a time)"
	if fc.Terms.BulkBasis == push.BasisMeasured {
		bulkBasis = fmt.Sprintf("measured, %.2f ms a record of a job's largest chunk over %d job(s) of the last 7 days",
			float64(fc.Terms.BulkPerRecord)/float64(time.Millisecond), fc.Terms.BulkJobsSeen)
	}
	schedule := "fixed windows (a backlog's flushes follow each other at once)"
	if fc.Paced {
		schedule = "budget pacing (flushes wait for the token bucket)"
	}
	fits := "yes"
	if !fc.Fits {
		fits = "no: the calls beyond it wait for the rolling 24-hour window to free calls"
	}
	fmt.Fprintf(out, "\napi_calls: %d in %d flush(es)\n", fc.APICalls, fc.Flushes)
	fmt.Fprintf(out, "rest_api_calls: %d\n", fc.RESTCalls)
	bulk := "no bulk path announced by the connector"
	if fc.BulkThreshold > 0 {
		bulk = fmt.Sprintf("%d job(s), writes of one kind on one object over %d a flush", fc.BulkJobs, fc.BulkThreshold)
	}
	fmt.Fprintf(out, "bulk_api_calls: %d (%s)\n", fc.BulkCalls, bulk)
	fmt.Fprintf(out, "call_latency: %s\n", latency)
	fmt.Fprintf(out, "schedule: %s\n", schedule)
	fmt.Fprintf(out, "duration: %s\n", fc.Duration.Round(time.Second))
	t := fc.Terms
	fmt.Fprintf(out, "duration_terms: flushes' own work %s (assumed), calls %s, records %s (%s), bulk jobs %s (%s), %d cut-off flush(es) %s, pacing waits %s\n",
		t.Flush.Round(100*time.Millisecond), t.Calls.Round(100*time.Millisecond), t.Records.Round(100*time.Millisecond), t.CallBasis,
		t.Bulk.Round(100*time.Millisecond), bulkBasis, fc.CutOffs, t.CutOff.Round(time.Second), t.Pacing.Round(100*time.Millisecond))
	fmt.Fprintf(out, "budget_left: %d calls today (%s)\n", fc.BudgetLeft, fc.BudgetSource)
	fmt.Fprintf(out, "fits_budget: %s\n", fits)
	fmt.Fprintf(out, "finishes_at: %s\n", fc.FinishesAt.Format(time.RFC3339))
	return nil
}
