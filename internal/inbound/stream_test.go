package inbound_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/inbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/synclog"
)

// streamedObjects is how many objects a workspace streams by default
// (Account, Lead, Contact).
const streamedObjects = 3

// eventually polls cond until it holds or 15 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startStream runs the workspace's streams until the returned stop is
// called, and waits until every object's stream is set up (its position
// stored, after the catch-up of a fresh start).
func (b *testBundle) startStream(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.puller.Stream(ctx, b.ws) }()
	eventually(t, "streams set up", func() bool {
		select {
		case err := <-done:
			t.Fatalf("stream stopped: %v", err)
		default:
		}
		n, err := b.db.NewSelect().Table("inbound_streams").Where("workspace_id = ?", b.ws).Count(context.Background())
		require.NoError(t, err)
		return n == streamedObjects && b.state(t).Mode == inbound.ModeStreaming
	})
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(t, <-done)
	}
	t.Cleanup(stop)
	return stop
}

func (b *testBundle) state(t *testing.T) *inbound.StreamState {
	t.Helper()
	st, err := inbound.LoadStreamState(context.Background(), b.db, b.ws)
	require.NoError(t, err)
	return st
}

// restCalls counts the data API calls sffake served since the log reset.
func (b *testBundle) restCalls() (queries, all int) {
	for _, r := range b.sf.RequestLog() {
		if r.Kind == "read" || r.Kind == "write" {
			all++
			if strings.Contains(r.Path, "/query") || strings.Contains(r.Path, "/composite") {
				queries++
			}
		}
	}
	return queries, all
}

// inboundBatches returns the workspace's inbound sync-log batches.
func (b *testBundle) inboundBatches(t *testing.T) []*synclog.Batch {
	t.Helper()
	var out []*synclog.Batch
	require.NoError(t, b.db.NewSelect().Model(&out).Where("workspace_id = ? AND direction = ?", b.ws, synclog.Inbound).OrderExpr("id").Scan(context.Background()))
	return out
}

func (b *testBundle) titleIs(t *testing.T, id, want string) {
	t.Helper()
	eventually(t, "title "+want, func() bool { return b.rec(t, record.TypeContact, id).Fields["title"].Value == want })
}

func TestStreamAppliesRepEditsWithoutEchoOrPolling(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setupWith(t, bdb, inbound.Config{}, backendSffakeStream)
		b.setMode(t, record.TypeContact, "title", "Title", prefs.TwoWay)
		lead := b.syncedContact(t, "c", "ada@example.com")
		b.startStream(t)
		b.sf.ResetRequestLog()

		b.clock.Advance(time.Minute)
		b.side.edit(t, "Lead", lead, map[string]any{"Title": "VP Engineering"})
		b.titleIs(t, "c", "VP Engineering")
		r := b.rec(t, record.TypeContact, "c")
		require.Equal(t, record.SourceSalesforce, r.Fields["title"].Source)
		require.Zero(t, b.queued(t), "an applied change never queues an outbound write")
		_, calls := b.restCalls()
		require.Zero(t, calls, "a streamed change of a linked record costs no REST call")
		// The record is committed before the stream finishes its batch.
		var last *synclog.Batch
		eventually(t, "the streamed batch finished", func() bool {
			batches := b.inboundBatches(t)
			last = b.batch(t, batches[len(batches)-1].ID)
			return strings.Contains(last.Message, "streamed")
		})
		require.True(t, fieldLog(t, last.Records, "c", "title").Sent)

		// crmsync's own write comes back as an event: recognised, not applied.
		b.clock.Advance(time.Minute)
		b.ingest(t, change(record.TypeContact, "c", b.clock.Now(), map[string]any{"title": "CTO"}))
		b.flush(t)
		before := len(b.inboundBatches(t))
		applied := b.state(t).EventsApplied
		eventually(t, "own event consumed", func() bool { return b.state(t).EventsApplied > applied })
		require.Len(t, b.inboundBatches(t), before, "own write: nothing applied, nothing logged")
		require.Equal(t, "CTO", b.rec(t, record.TypeContact, "c").Fields["title"].Value)
		require.Zero(t, b.queued(t))

		// While streaming, the periodic pull costs nothing.
		b.sf.ResetRequestLog()
		res := b.pull(t)
		require.True(t, res.Streaming)
		require.Zero(t, res.Calls)
		_, calls = b.restCalls()
		require.Zero(t, calls)

		// A Lead created by a rep arrives with its values (a CREATE event
		// carries them all: no read).
		b.side.create(t, "Lead", map[string]any{"LastName": "Hopper", "Company": "Navy", "Email": "grace@example.com", "Title": "RADM"})
		eventually(t, "new lead linked", func() bool {
			n, err := b.db.NewSelect().Model((*record.Record)(nil)).Where("workspace_id = ? AND crm_object = 'Lead'", b.ws).Count(context.Background())
			require.NoError(t, err)
			return n == 2
		})
		_, calls = b.restCalls()
		require.Zero(t, calls)
		st := b.state(t)
		require.Equal(t, inbound.ModeStreaming, st.Mode)
		require.False(t, st.LastCommitAt.IsZero())
		mode, _ := st.Effective(time.Now())
		require.Equal(t, inbound.ModeStreaming, mode)
		require.Equal(t, inbound.ModePolling, func() inbound.Mode { m, _ := st.Effective(time.Now().Add(time.Hour)); return m }(),
			"a stream whose lease ran out is not streaming")

		// The metrics: mode, lag, events consumed.
		reg := prometheus.NewRegistry()
		require.NoError(t, reg.Register(inbound.NewStreamCollector(b.db, slog.New(slog.DiscardHandler))))
		families, err := reg.Gather()
		require.NoError(t, err)
		got := map[string]float64{}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				ws, mode := "", ""
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "workspace":
						ws = l.GetValue()
					case "mode":
						mode = l.GetValue()
					}
				}
				if ws != strconv.FormatInt(b.ws, 10) {
					continue
				}
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
				got[f.GetName()+mode] = v
			}
		}
		require.Equal(t, 1.0, got["crmsync_inbound_modeSTREAMING"])
		require.Equal(t, 0.0, got["crmsync_inbound_modePOLLING"])
		require.GreaterOrEqual(t, got["crmsync_inbound_stream_events_total"], 3.0)
		require.Contains(t, got, "crmsync_inbound_stream_lag_seconds")
	})
}

func TestStreamResumesAfterRestartFromStoredPosition(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setupWith(t, bdb, inbound.Config{}, backendSffakeStream)
		b.setMode(t, record.TypeContact, "title", "Title", prefs.TwoWay)
		lead := b.syncedContact(t, "c", "ada@example.com")
		stop := b.startStream(t)
		b.clock.Advance(time.Minute)
		b.side.edit(t, "Lead", lead, map[string]any{"Title": "One"})
		b.titleIs(t, "c", "One")
		stop() // crmsync stops (or crashes after its last commit)

		b.clock.Advance(time.Minute)
		b.side.edit(t, "Lead", lead, map[string]any{"Title": "Two"})
		b.clock.Advance(time.Second)
		b.side.edit(t, "Lead", lead, map[string]any{"Title": "Three"})
		b.sf.ResetRequestLog()
		fallbacks := b.state(t).Fallbacks
		b.startStream(t)
		b.titleIs(t, "c", "Three")
		queries, _ := b.restCalls()
		require.Zero(t, queries, "resumed from the stored replay id: no catch-up pull")
		require.Equal(t, fallbacks, b.state(t).Fallbacks)
	})
}

func TestStreamCatchesUpWhenReplayIDExpired(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setupWith(t, bdb, inbound.Config{}, backendSffakeStream)
		b.setMode(t, record.TypeContact, "title", "Title", prefs.TwoWay)
		lead := b.syncedContact(t, "c", "ada@example.com")
		stop := b.startStream(t)
		stop()
		// Down for four days: the edit made meanwhile is past the 72 h
		// retention by the time crmsync is back.
		b.clock.Advance(time.Hour)
		b.side.edit(t, "Lead", lead, map[string]any{"Title": "While away"})
		b.clock.Advance(96 * time.Hour)
		fallbacks := b.state(t).Fallbacks
		b.startStream(t)
		b.titleIs(t, "c", "While away")
		eventually(t, "streaming again", func() bool { return b.state(t).Mode == inbound.ModeStreaming })
		st := b.state(t)
		require.Greater(t, st.Fallbacks, fallbacks)
		require.Contains(t, st.LastFallbackReason, "replay id")

		// Streaming goes on after the catch-up.
		b.clock.Advance(time.Minute)
		b.side.edit(t, "Lead", lead, map[string]any{"Title": "Back"})
		b.titleIs(t, "c", "Back")
	})
}

func TestStreamGapsAndOverflowAreReadOrPulled(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setupWith(t, bdb, inbound.Config{}, backendSffakeStream)
		b.setMode(t, record.TypeContact, "title", "Title", prefs.TwoWay)
		lead := b.syncedContact(t, "c", "ada@example.com")
		b.startStream(t)

		// A change Salesforce reports only as a gap: the record is read.
		b.sf.SetCDCEnabled("Lead", false) // the write itself publishes nothing
		b.clock.Advance(time.Minute)
		b.side.edit(t, "Lead", lead, map[string]any{"Title": "Gap"})
		b.sf.SetCDCEnabled("Lead", true)
		b.sf.ResetRequestLog()
		require.NoError(t, b.sf.InjectGap("Lead", lead))
		b.titleIs(t, "c", "Gap")
		_, calls := b.restCalls()
		require.Equal(t, 1, calls, "one read of the gap's record")

		// Overflow: the object is pulled from its cursor.
		b.sf.SetCDCEnabled("Lead", false)
		b.clock.Advance(time.Minute)
		b.side.edit(t, "Lead", lead, map[string]any{"Title": "Overflow"})
		b.sf.SetCDCEnabled("Lead", true)
		fallbacks := b.state(t).Fallbacks
		require.NoError(t, b.sf.InjectOverflow("Lead"))
		b.titleIs(t, "c", "Overflow")
		st := b.state(t)
		require.Greater(t, st.Fallbacks, fallbacks)
		require.Contains(t, st.LastFallbackReason, "GAP_OVERFLOW")
		eventually(t, "streaming again", func() bool { return b.state(t).Mode == inbound.ModeStreaming })
	})
}

func TestStreamDuplicateDeliveryAppliesOnce(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setupWith(t, bdb, inbound.Config{}, backendSffakeStream)
		b.setMode(t, record.TypeContact, "title", "Title", prefs.TwoWay)
		lead := b.syncedContact(t, "c", "ada@example.com")
		stop := b.startStream(t)
		ctx := context.Background()
		var old string
		require.NoError(t, b.db.NewSelect().Table("inbound_streams").Column("position").
			Where("workspace_id = ? AND crm_object = 'Lead'", b.ws).Scan(ctx, &old))
		b.clock.Advance(time.Minute)
		b.side.edit(t, "Lead", lead, map[string]any{"Title": "Once"})
		b.titleIs(t, "c", "Once")
		stop()
		updated := 0
		for _, bt := range b.inboundBatches(t) {
			updated += bt.Updated
		}
		// A crash between applying and storing the position delivers the
		// same events again: rewind the stored position.
		_, err := b.db.NewUpdate().Table("inbound_streams").Set("position = ?", old).
			Where("workspace_id = ? AND crm_object = 'Lead'", b.ws).Exec(ctx)
		require.NoError(t, err)
		applied := b.state(t).EventsApplied
		b.startStream(t)
		eventually(t, "redelivered", func() bool { return b.state(t).EventsApplied > applied })
		again := 0
		for _, bt := range b.inboundBatches(t) {
			again += bt.Updated
		}
		require.Equal(t, updated, again, "the repeated event changes nothing and logs no update")
		require.Equal(t, "Once", b.rec(t, record.TypeContact, "c").Fields["title"].Value)
	})
}

func TestStreamFallsBackToPollingWhenCDCIsOff(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setupWith(t, bdb, inbound.Config{}, backendSffakeStream)
		b.setMode(t, record.TypeContact, "title", "Title", prefs.TwoWay)
		lead := b.syncedContact(t, "c", "ada@example.com")
		b.sf.SetCDCEnabled("Contact", false)
		err := b.puller.Stream(context.Background(), b.ws)
		require.Error(t, err)
		st := b.state(t)
		require.Equal(t, inbound.ModePolling, st.Mode)
		require.Contains(t, st.Reason, "Change Data Capture")
		// Polling takes over.
		b.clock.Advance(time.Minute)
		b.side.edit(t, "Lead", lead, map[string]any{"Title": "Polled"})
		b.clock.Advance(time.Minute)
		res := b.pull(t)
		require.False(t, res.Streaming)
		require.Equal(t, "Polled", b.rec(t, record.TypeContact, "c").Fields["title"].Value)
	})
}

// TestPackedPullsCostOneCallWhenIdle: the pull packs its per-object
// queries into one /composite call, so an idle pull costs one call, and a
// pull with changes applies them as before.
func TestPackedPullsCostOneCallWhenIdle(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setupWith(t, bdb, inbound.Config{}, backendSffake)
		b.setMode(t, record.TypeContact, "title", "Title", prefs.TwoWay)
		lead := b.syncedContact(t, "c", "ada@example.com")
		// (Within the describe cache's 15 minutes: a describe refresh costs
		// its own calls.)
		for range 3 {
			b.clock.Advance(time.Minute)
			b.sf.ResetRequestLog()
			res := b.pull(t)
			require.Nil(t, res.Batch)
			require.Equal(t, 1, res.Calls)
			_, calls := b.restCalls()
			require.Equal(t, 1, calls, "one /composite call for Account, Lead and Contact")
		}
		b.side.edit(t, "Lead", lead, map[string]any{"Title": "Packed"})
		b.clock.Advance(time.Minute)
		b.sf.ResetRequestLog()
		res := b.pull(t)
		require.NotNil(t, res.Batch)
		require.Equal(t, 1, res.Calls)
		require.Equal(t, "Packed", b.rec(t, record.TypeContact, "c").Fields["title"].Value)
	})
}

// TestStreamRepEditRacingOwnWrite: crmsync writes a record and a rep edits
// the same record right after, so the stream carries crmsync's own event
// and the rep's back to back. The own one is not echoed; the rep's is
// applied, the field crmsync just wrote included, and nothing goes back.
func TestStreamRepEditRacingOwnWrite(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setupWith(t, bdb, inbound.Config{}, backendSffakeStream)
		b.setMode(t, record.TypeContact, "title", "Title", prefs.TwoWay)
		b.setMode(t, record.TypeContact, "phone", "Phone", prefs.TwoWay)
		lead := b.syncedContact(t, "c", "ada@example.com")
		b.startStream(t)

		b.clock.Advance(time.Minute)
		b.ingest(t, change(record.TypeContact, "c", b.clock.Now(), map[string]any{"title": "CTO", "phone": "+1 111"}))
		b.flush(t)
		b.clock.Advance(time.Second)
		b.side.edit(t, "Lead", lead, map[string]any{"Title": "Rep's title", "Phone": "+1 222"})
		b.titleIs(t, "c", "Rep's title")
		r := b.rec(t, record.TypeContact, "c")
		require.Equal(t, "+1 222", r.Fields["phone"].Value)
		require.Equal(t, record.SourceSalesforce, r.Fields["title"].Source)

		// Nothing to send back, and Salesforce keeps the rep's values.
		require.Zero(t, b.queued(t), "an applied change never queues an outbound write")
		b.flush(t)
		sf, ok := b.sf.Get("Lead", lead)
		require.True(t, ok)
		require.Equal(t, "Rep's title", sf["Title"])
		require.Equal(t, "+1 222", sf["Phone"])

		// The own write was never applied inbound: no inbound log names
		// "CTO".
		for _, bt := range b.inboundBatches(t) {
			for _, rec := range b.batch(t, bt.ID).Records {
				for _, f := range rec.Fields {
					require.NotEqual(t, "CTO", f.Value, "crmsync's own write echoed in batch %d", bt.ID)
				}
			}
		}
	})
}

// TestStreamLateEventKeepsOwnWrite: a rep's edit reaches crmsync as a
// change event only after crmsync has written a newer Conversion change to
// the same field (the event was replayed after a restart). The late event
// leaves the snapshot alone, so the next flush still knows Salesforce's
// value for crmsync's own write, and a Conversion change made before that
// write landed but sent after it is not mistaken for older than a "rep
// edit". Found by reliability.TestStreamingServeKilled, which lost such
// changes.
func TestStreamLateEventKeepsOwnWrite(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setupWith(t, bdb, inbound.Config{}, backendSffakeStream)
		b.setMode(t, record.TypeContact, "title", "Title", prefs.TwoWay)
		lead := b.syncedContact(t, "c", "ada@example.com")
		stop := b.startStream(t)
		stop() // the stream's position is stored; crmsync dies

		b.clock.Advance(time.Minute)
		b.side.edit(t, "Lead", lead, map[string]any{"Title": "Rep's title"})
		b.clock.Advance(time.Minute)
		ctoAt := b.clock.Now()
		b.ingest(t, change(record.TypeContact, "c", ctoAt, map[string]any{"title": "CTO"}))
		b.clock.Advance(2 * time.Second)
		b.flush(t) // the live read sees the rep's older edit: CTO is written
		sf, _ := b.sf.Get("Lead", lead)
		require.Equal(t, "CTO", sf["Title"])
		// A change made a second after CTO, before CTO's write landed,
		// arrives now.
		b.ingest(t, change(record.TypeContact, "c", ctoAt.Add(time.Second), map[string]any{"title": "VP"}))

		// The restarted stream replays the rep's edit, then crmsync's own.
		b.startStream(t)
		eventually(t, "the rep's late event", func() bool {
			for _, bt := range b.inboundBatches(t) {
				for _, rec := range b.batch(t, bt.ID).Records {
					for _, f := range rec.Fields {
						if f.Value == "Rep's title" {
							require.False(t, f.Sent, "a late event applied over a newer Conversion change")
							require.Contains(t, f.Reason, "change event older than the value crmsync holds")
							return true
						}
					}
				}
			}
			return false
		})
		require.Equal(t, "CTO", b.rec(t, record.TypeContact, "c").CRMFields["Title"], "the snapshot keeps crmsync's write")

		b.flush(t)
		sf, _ = b.sf.Get("Lead", lead)
		require.Equal(t, "VP", sf["Title"], "the newer Conversion change reaches Salesforce")
		require.Zero(t, b.queued(t))
	})
}

// TestStreamCutMidBurstLosesAndRepeatsNothing: the Pub/Sub stream is cut
// (a server restart, a network fault) while a rep's burst of edits is being
// delivered. The stream resubscribes from its stored position; the last
// value wins and no value is applied twice.
func TestStreamCutMidBurstLosesAndRepeatsNothing(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setupWith(t, bdb, inbound.Config{}, backendSffakeStream)
		b.setMode(t, record.TypeContact, "title", "Title", prefs.TwoWay)
		lead := b.syncedContact(t, "c", "ada@example.com")
		b.startStream(t)

		const edits = 20
		for i := range edits {
			b.clock.Advance(time.Second)
			b.side.edit(t, "Lead", lead, map[string]any{"Title": "T" + strconv.Itoa(i)})
			if i == edits/2 {
				b.sf.ResetStreams()
			}
		}
		b.titleIs(t, "c", "T"+strconv.Itoa(edits-1))
		eventually(t, "streaming again", func() bool { return b.state(t).Mode == inbound.ModeStreaming })

		seen := map[any]int{}
		for _, bt := range b.inboundBatches(t) {
			for _, rec := range b.batch(t, bt.ID).Records {
				for _, f := range rec.Fields {
					if f.Field == "title" && f.Sent {
						seen[f.Value]++
					}
				}
			}
		}
		for v, n := range seen {
			require.Equal(t, 1, n, "title %v applied %d times", v, n)
		}
		require.Equal(t, 1, seen["T"+strconv.Itoa(edits-1)])
	})
}

// TestStreamIdleDayCostsNoRESTCalls runs an idle day on the fake clock: a
// streaming workspace's periodic pull (every 5 minutes, 288 a day) spends
// no REST call, where packed polling spends one per pull (issue 16's goal:
// at most 24 a day).
func TestStreamIdleDayCostsNoRESTCalls(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setupWith(t, bdb, inbound.Config{}, backendSffakeStream)
		b.syncedContact(t, "c", "ada@example.com")
		b.startStream(t)
		b.sf.ResetRequestLog()
		pulls := 0
		for range 24 * 60 / 5 {
			b.clock.Advance(5 * time.Minute)
			res := b.pull(t)
			require.True(t, res.Streaming, "pull %d: the stream holds the workspace", pulls)
			require.Zero(t, res.Calls)
			pulls++
		}
		_, calls := b.restCalls()
		require.Zero(t, calls, "%d idle pulls while streaming", pulls)
		t.Logf("idle day on the fake clock: %d periodic pulls, %d REST calls", pulls, calls)
	})
}

// TestDeadStreamLeaseIsTakenOver: a restarted replica releases the stream
// lease its killed predecessor held and streams again at once; another
// replica's lease is left alone.
func TestDeadStreamLeaseIsTakenOver(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setupWith(t, bdb, inbound.Config{}, backendSffakeStream)
		b.syncedContact(t, "c", "ada@example.com")
		stop := b.startStream(t)
		stop()
		hold := func(owner string) {
			_, err := b.db.NewUpdate().Table("inbound_stream_state").Set("lease_owner = ?, lease_until = ?", owner, time.Now().Add(time.Hour).UTC()).
				Where("workspace_id = ?", b.ws).Exec(ctx)
			require.NoError(t, err)
		}
		predecessor := func(owner string) bool {
			return strings.HasPrefix(owner, "r1/") && !strings.HasPrefix(owner, "r1/new/")
		}

		hold("r2/other/stream")
		released, err := inbound.ReleaseDeadStreamLeases(ctx, b.db, predecessor)
		require.NoError(t, err)
		require.Empty(t, released, "another replica's lease")
		require.ErrorIs(t, b.puller.Stream(ctx, b.ws), inbound.ErrStreamBusy)

		hold("r1/old/stream")
		released, err = inbound.ReleaseDeadStreamLeases(ctx, b.db, predecessor)
		require.NoError(t, err)
		require.Equal(t, []int64{b.ws}, released)
		// The stream starts at once, not after the lease would have run out.
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- b.puller.Stream(sctx, b.ws) }()
		eventually(t, "the stream lease taken", func() bool {
			var owner string
			require.NoError(t, b.db.NewSelect().Table("inbound_stream_state").Column("lease_owner").Where("workspace_id = ?", b.ws).Scan(ctx, &owner))
			return owner != "r1/old/stream"
		})
		cancel()
		require.NoError(t, <-done)
	})
}
