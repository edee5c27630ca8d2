package salesforce_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/salesforce"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
)

// bulkPaths counts the requests of the log by kind: Bulk API ingest calls
// and REST writes (composite and collections).
func bulkPaths(sf *sffake.Server) (ingest, rest int) {
	for _, r := range sf.RequestLog() {
		switch {
		case strings.Contains(r.Path, "/jobs/ingest"):
			ingest++
		case strings.Contains(r.Path, "/composite"):
			rest++
		}
	}
	return ingest, rest
}

// 25,000 operations, two groups above the default threshold: both go as
// Bulk API 2.0 jobs, every result maps back to its own operation (creates
// by their row, even two identical rows; updates by id), failed rows carry
// Salesforce's code with retryable locks, and the call costs far fewer API
// calls than the 25 composites of REST.
func TestBulkUpdateGoesByBulkAPIAboveThreshold(t *testing.T) {
	t.Parallel()
	b := setupFake(t)
	acct, err := b.sf.Insert("Account", map[string]any{"Name": "Acme"})
	require.NoError(t, err)
	const n = 12_500
	existing := make([]string, n)
	for i := range existing {
		existing[i], err = b.sf.Insert("Contact", map[string]any{"LastName": fmt.Sprintf("Old%d", i), "Title": "Before"})
		require.NoError(t, err)
	}
	require.NoError(t, b.sf.DeleteAsUser(b.sf.IntegrationUserID(), existing[7]))
	b.sf.InjectRecordFault(sffake.RecordFault{Object: "Contact", Field: "Email", Value: "locked@x.io", Code: "UNABLE_TO_LOCK_ROW"})
	b.sf.ResetRequestLog()

	ops := make([]connector.Operation, 0, 2*n)
	for i := range n {
		f := map[string]any{"LastName": fmt.Sprintf("New%d", i), "Email": fmt.Sprintf("new%d@x.io", i), "Title": nil}
		switch i {
		case 3:
			delete(f, "LastName") // REQUIRED_FIELD_MISSING
		case 5:
			f["Email"] = "locked@x.io"
		case 8, 9: // two identical rows: each gets its own record
			f["Email"], f["LastName"] = "twin@x.io", "Twin"
		}
		if i%2 == 0 {
			f["AccountId"] = acct
		}
		ops = append(ops, connector.Operation{Kind: connector.OpCreate, Object: "Contact", Fields: f})
		ops = append(ops, connector.Operation{Kind: connector.OpUpdate, Object: "Contact", ID: existing[i], Fields: map[string]any{"Title": fmt.Sprintf("After%d", i)}})
	}
	resp := b.write(t, ops...)

	twins := map[string]bool{}
	for k, op := range ops {
		res := resp.Results[k]
		i := k / 2
		switch {
		case op.Kind == connector.OpCreate && i == 3:
			require.Equal(t, "REQUIRED_FIELD_MISSING", res.Error.Code)
			require.Equal(t, []string{"LastName"}, res.Error.Fields)
			require.False(t, res.Error.Retryable)
		case op.Kind == connector.OpCreate && i == 5:
			require.Equal(t, connector.CodeLocked, res.Error.Code)
			require.True(t, res.Error.Retryable, "a lock clears: retry")
		case op.Kind == connector.OpCreate:
			require.Nil(t, res.Error, k)
			require.True(t, res.Created)
			rec, ok := b.sf.Get("Contact", res.ID)
			require.True(t, ok)
			require.Equal(t, op.Fields["Email"], rec["Email"], "the id is the record created from this operation")
			if i == 8 || i == 9 {
				twins[res.ID] = true
			}
		case i == 7:
			require.Equal(t, "ENTITY_IS_DELETED", res.Error.Code, k)
		default:
			require.Nil(t, res.Error, k)
			require.Equal(t, existing[i], res.ID)
			require.False(t, res.Created)
			rec, _ := b.sf.Get("Contact", existing[i])
			require.Equal(t, fmt.Sprintf("After%d", i), rec["Title"])
		}
	}
	require.Len(t, twins, 2)

	ingest, rest := bulkPaths(b.sf)
	t.Logf("25,000 operations: %d API calls, %d of them Bulk API", resp.Calls, ingest)
	require.Zero(t, rest, "no REST writes")
	require.Equal(t, ingest, resp.Calls-1, "one describe, the rest Bulk API calls")
	// create, upload, close, ≥ 1 poll, successes, failures: per job.
	require.GreaterOrEqual(t, ingest, 2*6)
	require.Less(t, resp.Calls, 25, "REST would take ⌈25,000/1,000⌉ = 25 composite calls")
	require.Equal(t, 2, b.sf.BulkStats().Jobs)
	var seenCSV bool
	for _, r := range b.sf.RequestLog() {
		if r.Method == "PUT" {
			require.Equal(t, "text/csv", r.Header.Get("Content-Type"))
			seenCSV = true
		}
	}
	require.True(t, seenCSV)
}

// The threshold is per connection: above it a group goes by Bulk API, at
// or below it by REST; a job that fails part way reports the rows it did
// not process as retryable errors, and the rows it did as usual.
func TestBulkUpdateThresholdAndUnprocessed(t *testing.T) {
	t.Parallel()
	b := setupFake(t)
	b.sess = fakeSession(b.sf, func(c *salesforce.Config) { c.BulkThreshold = 100 })
	var ops []connector.Operation
	for i := range 150 {
		ops = append(ops, connector.Operation{Kind: connector.OpCreate, Object: "Contact", Fields: map[string]any{"LastName": fmt.Sprintf("C%d", i)}})
	}
	for i := range 100 {
		ops = append(ops, connector.Operation{Kind: connector.OpCreate, Object: "Lead", Fields: map[string]any{"LastName": fmt.Sprintf("L%d", i), "Company": "Acme"}})
	}
	b.sf.FailBulkJobAfter(60, "InvalidBatch : the batch exceeded its retries")
	resp := b.write(t, ops...)
	created, unprocessed := 0, 0
	for k, res := range resp.Results {
		if k >= 150 {
			require.Nil(t, res.Error, "100 Leads: not above the threshold, by REST")
			continue
		}
		if res.Error != nil {
			require.Equal(t, salesforce.CodeBulkUnprocessed, res.Error.Code)
			require.True(t, res.Error.Retryable)
			require.Contains(t, res.Error.Message, "the batch exceeded its retries")
			unprocessed++
			continue
		}
		rec, ok := b.sf.Get("Contact", res.ID)
		require.True(t, ok)
		require.Equal(t, ops[k].Fields["LastName"], rec["LastName"])
		created++
	}
	require.Equal(t, 60, created)
	require.Equal(t, 90, unprocessed)
	ingest, rest := bulkPaths(b.sf)
	require.Positive(t, ingest)
	require.Equal(t, 1, rest, "the Leads: one collection request")
}

// An object the Bulk API refuses goes by REST instead.
func TestBulkUpdateFallsBackToREST(t *testing.T) {
	t.Parallel()
	b := setupFake(t)
	b.sess = fakeSession(b.sf, func(c *salesforce.Config) { c.BulkThreshold = 1 })
	b.sf.InjectFault(sffake.Fault{Method: "POST", Path: "/jobs/ingest", Kind: sffake.FaultStatus, Status: 400, Code: "INVALIDENTITY", Message: "InvalidEntity : Entity 'Contact' is not supported by the Bulk API."})
	resp := b.write(t,
		connector.Operation{Kind: connector.OpCreate, Object: "Contact", Fields: map[string]any{"LastName": "A"}},
		connector.Operation{Kind: connector.OpCreate, Object: "Contact", Fields: map[string]any{"LastName": "B"}})
	for _, res := range resp.Results {
		require.Nil(t, res.Error)
		require.True(t, res.Created)
	}
	_, rest := bulkPaths(b.sf)
	require.Equal(t, 1, rest)
}
