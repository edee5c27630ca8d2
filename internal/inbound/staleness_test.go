package inbound_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/inbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
)

// TestStaleConversionChangeAfterPull is issue 22's scenario: a TWO_WAY
// field, a rep edits it in Salesforce at R, a pull brings the rep's value
// into Conversion, then a Conversion change arrives whose changedAt is
// older than R (a form processed late). It must not be sent: the rep's
// value stays on both sides and the sync log names the times compared. A
// change newer than R still goes.
func TestStaleConversionChangeAfterPull(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		offset time.Duration // the Conversion change's changedAt, from R
		sent   bool
	}{
		"older by 20 s":             {offset: -20 * time.Second},
		"older by 1 ms":             {offset: -time.Millisecond},
		"same second as R, later":   {offset: 300 * time.Millisecond},
		"a second after R is newer": {offset: time.Second, sent: true},
	}
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		for _, backend := range backends {
			for name, tt := range tests {
				t.Run(backend+"/"+name, func(t *testing.T) {
					b := setupWith(t, bdb, inbound.Config{}, backend)
					b.setMode(t, record.TypeContact, "title", "Title", prefs.TwoWay)
					id := b.syncedContact(t, "c", "late@example.com")
					b.clock.Advance(time.Minute)
					b.side.edit(t, "Lead", id, map[string]any{"Title": "Rep's title"})
					_, repAt := b.side.get(t, "Lead", id)
					b.clock.Advance(time.Minute)
					b.pull(t)
					require.Equal(t, "Rep's title", b.rec(t, record.TypeContact, "c").Fields["title"].Value)

					changedAt := repAt.Add(tt.offset)
					b.ingest(t, change(record.TypeContact, "c", changedAt, map[string]any{"title": "Late form"}))
					res := b.flush(t)
					title := fieldLog(t, b.batch(t, res.Batch.ID).Records, "c", "title")
					require.Equal(t, tt.sent, title.Sent, title.Reason)
					require.Contains(t, title.Reason, changedAt.UTC().Format(time.RFC3339Nano), "the reason names the Conversion time")
					require.Contains(t, title.Reason, repAt.UTC().Format(time.RFC3339), "the reason names Salesforce's time")

					want := "Rep's title"
					if tt.sent {
						want = "Late form"
					}
					lead, _ := b.side.get(t, "Lead", id)
					require.Equal(t, want, lead["Title"])
					require.Zero(t, b.queued(t))
					// The next cycle agrees: Conversion holds the winner too.
					b.clock.Advance(time.Minute)
					b.pull(t)
					b.flush(t)
					require.Equal(t, want, b.rec(t, record.TypeContact, "c").Fields["title"].Value)
					lead, _ = b.side.get(t, "Lead", id)
					require.Equal(t, want, lead["Title"])
				})
			}
		}
	})
}

// TestOlderChangeAfterOwnWrite: crmsync wrote a Conversion change made at
// t2; a change made at t1 < t2 arriving afterwards must not be sent
// (crmsync's own write is as old as the change it carried, t2), in any
// mode that would otherwise send it.
func TestOlderChangeAfterOwnWrite(t *testing.T) {
	t.Parallel()
	modes := []prefs.Mode{prefs.TwoWay, prefs.AlwaysPreferConversion}
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		for _, backend := range backends {
			for _, mode := range modes {
				t.Run(fmt.Sprintf("%s/%s", backend, mode), func(t *testing.T) {
					b := setupWith(t, bdb, inbound.Config{}, backend)
					b.setMode(t, record.TypeContact, "title", "Title", mode)
					id := b.syncedContact(t, "c", "own@example.com")
					b.clock.Advance(time.Minute)
					t2 := b.clock.Now().Add(500 * time.Millisecond)
					b.ingest(t, change(record.TypeContact, "c", t2, map[string]any{"title": "Newer"}))
					b.flush(t)
					lead, _ := b.side.get(t, "Lead", id)
					require.Equal(t, "Newer", lead["Title"])

					b.clock.Advance(time.Minute)
					t1 := t2.Add(-200 * time.Millisecond)
					b.ingest(t, change(record.TypeContact, "c", t1, map[string]any{"title": "Older"}))
					res := b.flush(t)
					title := fieldLog(t, b.batch(t, res.Batch.ID).Records, "c", "title")
					require.False(t, title.Sent, title.Reason)
					require.Contains(t, title.Reason, "superseded")
					require.Contains(t, title.Reason, t1.UTC().Format(time.RFC3339Nano))
					require.Contains(t, title.Reason, t2.UTC().Format(time.RFC3339Nano))
					lead, _ = b.side.get(t, "Lead", id)
					require.Equal(t, "Newer", lead["Title"])
					r := b.rec(t, record.TypeContact, "c")
					require.Equal(t, "Newer", r.Fields["title"].Value)
					require.True(t, r.Fields["title"].ChangedAt.Equal(t2))
					require.Zero(t, b.queued(t))
				})
			}
		}
	})
}
