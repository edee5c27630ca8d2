package graph_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/graph/graphtest"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
)

// TestSyncBatchRecordsPaginated pages through a batch's records with
// first/after, from syncBatch and from syncLogs, and checks the status
// and message of a batch whose every record failed.
func TestSyncBatchRecordsPaginated(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		srv := graphtest.New(t, bdb, nil)
		ws, token := srv.NewWorkspace(t, "Acme")
		now := time.Now().UTC()
		batch := &synclog.Batch{WorkspaceID: ws, Direction: synclog.Outbound, StartedAt: now, FinishedAt: now}
		for i := range 5 {
			batch.Records = append(batch.Records, &synclog.Record{RecordType: record.TypeContact, ConversionID: fmt.Sprintf("c%d", i),
				Outcome: synclog.OutcomeFailed, ErrorCode: "REQUIRED_FIELD_MISSING", Reason: "Required fields are missing: [LastName]"})
		}
		batch.Count()
		require.NoError(t, synclog.Write(context.Background(), bdb, batch))
		id := strconv.FormatInt(batch.ID, 10)

		type page struct {
			TotalCount int
			Edges      []struct {
				Cursor string
				Node   struct{ RecordID string }
			}
			PageInfo struct {
				HasNextPage bool
				EndCursor   *string
			}
		}
		var seen []string
		var after *string
		for range 4 {
			var d struct {
				SyncBatch struct {
					Status, Message string
					Records         page
				}
			}
			srv.Query(t, token, `query($id: ID!, $after: String) { syncBatch(id: $id) { status message
				records(first: 2, after: $after) { totalCount edges { cursor node { recordId } } pageInfo { hasNextPage endCursor } } } }`,
				map[string]any{"id": id, "after": after}).Decode(t, &d)
			require.Equal(t, "FAILED", d.SyncBatch.Status, "every record failed")
			require.Equal(t, "all 5 records failed (5 parked as failed items); first: CONTACT c0: REQUIRED_FIELD_MISSING: Required fields are missing: [LastName]", d.SyncBatch.Message)
			p := d.SyncBatch.Records
			require.Equal(t, 5, p.TotalCount)
			for _, e := range p.Edges {
				seen = append(seen, e.Node.RecordID)
			}
			if !p.PageInfo.HasNextPage {
				break
			}
			require.Len(t, p.Edges, 2)
			require.Equal(t, p.Edges[1].Cursor, *p.PageInfo.EndCursor)
			after = p.PageInfo.EndCursor
		}
		require.Equal(t, []string{"c0", "c1", "c2", "c3", "c4"}, seen, "every record once, in the order logged")

		// The default page, from the log listing.
		var logs struct {
			SyncLogs struct {
				Edges []struct{ Node struct{ Records page } }
			}
		}
		srv.Query(t, token, `{ syncLogs(first: 1) { edges { node { records { totalCount edges { node { recordId } } pageInfo { hasNextPage } } } } } }`, nil).Decode(t, &logs)
		require.Len(t, logs.SyncLogs.Edges, 1)
		require.Len(t, logs.SyncLogs.Edges[0].Node.Records.Edges, 5)
		require.False(t, logs.SyncLogs.Edges[0].Node.Records.PageInfo.HasNextPage)

		for name, args := range map[string]string{
			"bad cursor":   `after: "nope"`,
			"batch cursor": `after: "` + graphtestCursor("batch", batch.ID) + `"`,
			"first 0":      `first: 0`,
			"first 101":    `first: 101`,
		} {
			resp := srv.Query(t, token, `query($id: ID!) { syncBatch(id: $id) { records(`+args+`) { totalCount } } }`, map[string]any{"id": id})
			require.Len(t, resp.Errors, 1, "%s: %s", name, resp.Body)
			require.Equal(t, "BAD_USER_INPUT", resp.Errors[0].Code(), name)
		}
	})
}

// graphtestCursor is a cursor of another list (the encoding is opaque to
// clients, but a test may forge one).
func graphtestCursor(kind string, id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + strconv.FormatInt(id, 10)))
}
