package synclog_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
)

func TestCountStatusAndMessage(t *testing.T) {
	t.Parallel()
	rec := func(id string, o synclog.Outcome, code, reason string) *synclog.Record {
		return &synclog.Record{RecordType: record.TypeContact, ConversionID: id, Outcome: o, ErrorCode: code, Reason: reason}
	}
	missing := rec("c1", synclog.OutcomeFailed, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Company]")
	locked := rec("c2", synclog.OutcomeRetrying, "UNABLE_TO_LOCK_ROW", "UNABLE_TO_LOCK_ROW: record locked")
	for name, tc := range map[string]struct {
		records     []*synclog.Record
		status      synclog.Status
		message     string
		givenStatus synclog.Status
		givenMsg    string
	}{
		"empty":                    {status: synclog.StatusSucceeded},
		"all written":              {records: []*synclog.Record{rec("a", synclog.OutcomeCreated, "", ""), rec("b", synclog.OutcomeSkipped, "", "")}, status: synclog.StatusSucceeded},
		"waiting is not a failure": {records: []*synclog.Record{rec("a", synclog.OutcomeWaiting, "", "")}, status: synclog.StatusSucceeded},
		"the only record failed": {
			records: []*synclog.Record{missing}, status: synclog.StatusFailed,
			message: "the only record failed (1 parked as a failed item); first: CONTACT c1: REQUIRED_FIELD_MISSING: Required fields are missing: [Company]",
		},
		"every record failed": {
			records: []*synclog.Record{locked, missing}, status: synclog.StatusFailed,
			message: "all 2 records failed (1 parked as a failed item, 1 will be retried); first: CONTACT c2: UNABLE_TO_LOCK_ROW: record locked",
		},
		"failed and waiting, none succeeded": {
			records: []*synclog.Record{missing, rec("t", synclog.OutcomeWaiting, "", "")}, status: synclog.StatusFailed,
			message: "1 of 2 records failed (1 parked as a failed item); first: CONTACT c1: REQUIRED_FIELD_MISSING: Required fields are missing: [Company]",
		},
		"some succeeded": {
			records: []*synclog.Record{rec("a", synclog.OutcomeUpdated, "", ""), missing, locked, rec("b", synclog.OutcomeCreated, "", "")}, status: synclog.StatusPartial,
			message: "2 of 4 records failed (1 parked as a failed item, 1 will be retried); first: CONTACT c1: REQUIRED_FIELD_MISSING: Required fields are missing: [Company]",
		},
		"a message set by the caller is kept": {
			records: []*synclog.Record{missing}, givenMsg: "read 3 pages; the next pull continues",
			status: synclog.StatusFailed, message: "read 3 pages; the next pull continues",
		},
		"a status set by the caller is kept": {
			records: []*synclog.Record{rec("a", synclog.OutcomeCreated, "", "")}, givenStatus: synclog.StatusFailed, givenMsg: "connector unavailable",
			status: synclog.StatusFailed, message: "connector unavailable",
		},
	} {
		b := &synclog.Batch{Records: tc.records, Status: tc.givenStatus, Message: tc.givenMsg}
		b.Count()
		require.Equal(t, tc.status, b.Status, name)
		require.Equal(t, tc.message, b.Message, name)
		if b.Status == synclog.StatusFailed || b.Status == synclog.StatusPartial {
			require.NotEmpty(t, b.Message, "%s: a failed batch always says why", name)
		}
	}
}
