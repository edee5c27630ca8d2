package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/synclog"
)

// The checker is not blind: after a clean run, each invariant is broken on
// purpose in the org or the database and the checker reports exactly that.
func TestCheckerCatchesViolations(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newCluster(t, clusterOptions{})
	c.start()
	tn := c.setup(ctx)
	l := newLoad(c, tn, 20)
	l.seed(ctx)
	run := l.start(ctx)
	l.waitSent(t, 200)
	run.finish(t)
	clean := l.verify(ctx)
	require.Empty(t, clean.Failures())

	crmID := func(i int) string {
		var id string
		k := key(i)
		require.NoError(t, c.db.NewSelect().Table("records").Column("crm_id").
			Where("workspace_id = ? AND type = ? AND conversion_id = ?", tn.id, k.Type, k.ID).Scan(ctx, &id))
		return id
	}
	// A stale write: contact 0's phone goes back to its seed value through
	// the REST API, as a replayed old request would.
	body, _ := json.Marshal(map[string]any{"Phone": Value("ph", 0, 0)})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPatch, c.orgURL+"/services/data/v62.0/sobjects/Lead/"+crmID(0), bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.org.IssueAccessToken(c.org.IntegrationUserID()))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	// A Lead nobody asked for.
	_, err = c.org.Insert("Lead", map[string]any{"LastName": "Stray", "Company": "Stray Co", "Email": "stray@example.com"})
	require.NoError(t, err)
	// A DO_NOT_SYNC field with a value.
	require.NoError(t, c.org.EditAsUser(c.org.RepUserID(), "Account", crmID(1), map[string]any{"Website": "https://leak.example.com"}))
	// A sync log gone: contact 2's records.
	_, err = c.db.ExecContext(ctx, "DELETE FROM sync_batch_records WHERE workspace_id = ? AND conversion_id = ?", tn.id, key(2).ID)
	require.NoError(t, err)
	// Issue 22: a rep edits contact 4's Title, then a flush started after
	// the edit sends an older Conversion value over it.
	repAt := time.Now()
	require.NoError(t, c.org.EditAsUser(c.org.RepUserID(), "Lead", crmID(4), map[string]any{"Title": "Rep Ti check"}))
	l.chk.RepEdited(key(4).Type, key(4).ID, "title", "Rep Ti check", repAt, time.Now())
	stale := Value("ti", 4, 0) // the seeded Title, older than the edit
	require.NoError(t, c.org.EditAsUser(c.org.IntegrationUserID(), "Lead", crmID(4), map[string]any{"Title": stale}))
	staleBatch := &synclog.Batch{WorkspaceID: tn.id, Direction: synclog.Outbound, Status: synclog.StatusSucceeded,
		StartedAt: time.Now().UTC().Add(2 * time.Hour), FinishedAt: time.Now().UTC().Add(2*time.Hour + time.Second)}
	_, err = c.db.NewInsert().Model(staleBatch).Exec(ctx)
	require.NoError(t, err)
	_, err = c.db.NewInsert().Model(&synclog.Record{BatchID: staleBatch.ID, WorkspaceID: tn.id, RecordType: key(4).Type, ConversionID: key(4).ID,
		Outcome: synclog.OutcomeUpdated, Fields: []synclog.Field{{Field: "title", CRMField: "Title", Mode: "TWO_WAY", Value: stale, Sent: true}}}).Exec(ctx)
	require.NoError(t, err)
	// Two syncs at once.
	now := time.Now().UTC()
	for range 2 {
		_, err = c.db.ExecContext(ctx, "INSERT INTO sync_batches (workspace_id, direction, status, started_at, finished_at) VALUES (?, 'OUTBOUND', 'SUCCEEDED', ?, ?)",
			tn.id, now.Add(time.Hour), now.Add(time.Hour+time.Second))
		require.NoError(t, err)
	}

	rep, err := l.chk.Check(context.WithoutCancel(ctx), c.db, tn.id, c.org)
	require.NoError(t, err)
	t.Logf("broken: %+v", rep)
	require.Equal(t, 1, rep.Lost, "contact 0's phone")
	require.Equal(t, 1, rep.Reordered, "the stale write")
	require.Equal(t, 1, rep.Duplicates, "the stray Lead")
	require.Equal(t, 2, rep.ModeViolations, "the Website, contact 4's Title")
	require.Positive(t, rep.Unlogged, "contact 2's fields")
	require.Equal(t, 1, rep.OverlappingSyncs)
}
