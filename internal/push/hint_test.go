package push_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
)

// TestLeadWithoutCompanyNamesTheFix sends a new contact without a company
// under the default "new contacts as Lead": the failure (in the sync log
// and the failed items) says a Lead needs a Company and names the settings
// that fix it, and following the advice (createAs: CONTACT) gets the
// retried contact through.
func TestLeadWithoutCompanyNamesTheFix(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, bdb)
		b.ingest(t, change(record.TypeContact, "c1", b.clock.Now(), map[string]any{"email": "ada@example.com", "lastName": "Lovelace"}))
		res := b.flush(t)
		require.Equal(t, 1, res.Batch.Failed, "%+v", res.Batch.Records)
		reason := res.Batch.Records[0].Reason
		require.Contains(t, reason, "Company", "the CRM's own message is kept")
		require.Contains(t, reason, push.LeadCompanyHint)
		require.Equal(t, synclog.OutcomeFailed, res.Batch.Records[0].Outcome)

		failed, err := outbound.Failed(ctx, bdb, b.ws, 0, 10)
		require.NoError(t, err)
		require.Len(t, failed, 1)
		require.Equal(t, "REQUIRED_FIELD_MISSING", failed[0].ErrorCode)
		require.Contains(t, failed[0].ErrorMessage, push.LeadCompanyHint)

		require.NoError(t, prefs.SetObject(ctx, bdb, b.ws, prefs.ObjectPreference{RecordType: record.TypeContact, WriteEnabled: true, ReadEnabled: true, CreateAs: prefs.CreateAsContact}))
		_, err = outbound.Retry(ctx, bdb, b.ws, nil)
		require.NoError(t, err)
		res = b.flush(t)
		require.Equal(t, 1, res.Batch.Created, "%+v", res.Batch.Records)
		require.Equal(t, "Contact", b.rec(t, record.TypeContact, "c1").CRMObject)
	})
}
