package salesforce_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/salesforce"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
)

// streamBundle subscribes to one object of an sffake org and collects what
// is delivered.
type streamBundle struct {
	fakeBundle
	batches chan *connector.ChangeBatch
	done    chan error
	cancel  context.CancelFunc
}

func startStream(t *testing.T, b fakeBundle, object, position string) *streamBundle {
	t.Helper()
	return startStreamWith(t, b, b.c, object, position)
}

func startStreamWith(t *testing.T, b fakeBundle, cs connector.ChangeStreamer, object, position string) *streamBundle {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &streamBundle{fakeBundle: b, batches: make(chan *connector.ChangeBatch, 100), done: make(chan error, 1), cancel: cancel}
	go func() {
		s.done <- cs.SubscribeChanges(ctx, connector.SubscribeRequest{Session: b.sess, Object: object, Position: position},
			func(ctx context.Context, cb *connector.ChangeBatch) error {
				select {
				case s.batches <- cb:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

// next returns the next batch with events (keepalives are skipped).
func (s *streamBundle) next(t *testing.T) *connector.ChangeBatch {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case b := <-s.batches:
			if len(b.Events) > 0 {
				return b
			}
		case err := <-s.done:
			t.Fatalf("stream ended: %v", err)
		case <-deadline:
			t.Fatal("no change batch within 10s")
		}
	}
}

func setupStream(t *testing.T, opts ...sffake.Options) fakeBundle {
	t.Helper()
	sf := sffaketest.Start(t, opts...)
	addr := sffaketest.StartPubSub(t, sf)
	return fakeBundle{sf: sf, c: newConnector(t), sess: fakeSession(sf, func(c *salesforce.Config) {
		c.PubSubEndpoint = "http://" + addr
	})}
}

func TestStreamDeliversRepEditsAndMarksOwnWrites(t *testing.T) {
	t.Parallel()
	b := setupStream(t)
	lead, err := b.sf.Insert("Lead", map[string]any{"LastName": "Ng", "Company": "Acme", "Email": "ng@example.com", "Title": "CTO"})
	require.NoError(t, err)
	s := startStream(t, b, "Lead", "")
	first := s.next(t)
	require.Equal(t, connector.ChangeResync, first.Events[0].Kind, "no position: the consumer catches up first")

	require.NoError(t, b.sf.EditAsUser(b.sf.RepUserID(), "Lead", lead, map[string]any{"Title": nil, "FirstName": "Al", "Phone": "555"}))
	got := s.next(t)
	require.NotEmpty(t, got.Position)
	ev := got.Events[0]
	require.Equal(t, connector.ChangeUpdate, ev.Kind)
	require.Equal(t, []string{lead}, ev.RecordIDs)
	require.Equal(t, "Lead", ev.Object)
	require.False(t, ev.Own)
	require.Equal(t, b.sf.RepUserID(), ev.CommitUser)
	require.Contains(t, ev.Fields, "Title")
	require.Nil(t, ev.Fields["Title"], "nulled by the bitmap, not absent")
	require.Equal(t, "Al", ev.Fields["FirstName"], "a child of the Name compound")
	require.Equal(t, "555", ev.Fields["Phone"])
	require.NotContains(t, ev.Fields, "Email", "unchanged fields are not reported")
	require.NotContains(t, ev.Fields, "LastName")

	// crmsync's own write (REST, Sforce-Call-Options client=crmsync).
	b.write(t, connector.Operation{Kind: connector.OpUpdate, Object: "Lead", ID: lead, Fields: map[string]any{"Title": "VP"}})
	own := s.next(t).Events[0]
	require.True(t, own.Own, own.Origin)
	require.Contains(t, own.Origin, "client=crmsync")
	require.Equal(t, "VP", own.Fields["Title"])

	created := b.write(t, connector.Operation{Kind: connector.OpCreate, Object: "Lead", Fields: map[string]any{"LastName": "Oz", "Company": "Oz", "Email": "oz@example.com"}})
	cev := s.next(t).Events[0]
	require.Equal(t, connector.ChangeCreate, cev.Kind)
	require.Equal(t, []string{created.Results[0].ID}, cev.RecordIDs)
	require.Equal(t, "oz@example.com", cev.Fields["Email"])
	require.Equal(t, "Oz", cev.Fields["LastName"])
	require.NotEmpty(t, cev.Fields["LastModifiedDate"])

	require.NoError(t, b.sf.DeleteAsUser(b.sf.RepUserID(), lead))
	require.Equal(t, connector.ChangeDelete, s.next(t).Events[0].Kind)
}

func TestStreamResumesFromPositionAndResyncsWhenExpired(t *testing.T) {
	t.Parallel()
	b := setupStream(t, sffake.Options{EventRetention: time.Hour})
	lead, err := b.sf.Insert("Lead", map[string]any{"LastName": "Ng", "Company": "Acme"})
	require.NoError(t, err)
	s := startStream(t, b, "Lead", "")
	s.next(t) // resync
	require.NoError(t, b.sf.EditAsUser(b.sf.RepUserID(), "Lead", lead, map[string]any{"Title": "A"}))
	pos := s.next(t).Position
	s.cancel()
	<-s.done
	s.done <- nil // for the cleanup

	// Two edits while unsubscribed: a resume from pos delivers both, in order.
	require.NoError(t, b.sf.EditAsUser(b.sf.RepUserID(), "Lead", lead, map[string]any{"Title": "B"}))
	require.NoError(t, b.sf.EditAsUser(b.sf.RepUserID(), "Lead", lead, map[string]any{"Title": "C"}))
	r := startStream(t, b, "Lead", pos)
	var titles []any
	for len(titles) < 2 {
		for _, ev := range r.next(t).Events {
			titles = append(titles, ev.Fields["Title"])
		}
	}
	require.Equal(t, []any{"B", "C"}, titles)
	r.cancel()
	<-r.done
	r.done <- nil

	// Past the retention window the position is refused: one resync, then
	// the stream goes on from the newest event.
	b.sf.Clock().Advance(2 * time.Hour)
	x := startStream(t, b, "Lead", pos)
	rs := x.next(t)
	require.Equal(t, connector.ChangeResync, rs.Events[0].Kind)
	require.Contains(t, rs.Events[0].Reason, "replay")
	require.NoError(t, b.sf.EditAsUser(b.sf.RepUserID(), "Lead", lead, map[string]any{"Title": "D"}))
	require.Equal(t, "D", x.next(t).Events[0].Fields["Title"])
}

func TestStreamGapsOverflowAndResets(t *testing.T) {
	t.Parallel()
	b := setupStream(t)
	lead, err := b.sf.Insert("Lead", map[string]any{"LastName": "Ng", "Company": "Acme"})
	require.NoError(t, err)
	s := startStream(t, b, "Lead", "")
	s.next(t)
	require.NoError(t, b.sf.InjectGap("Lead", lead))
	gap := s.next(t).Events[0]
	require.Equal(t, connector.ChangeGap, gap.Kind)
	require.Equal(t, []string{lead}, gap.RecordIDs)
	require.NoError(t, b.sf.InjectOverflow("Lead"))
	require.Equal(t, connector.ChangeOverflow, s.next(t).Events[0].Kind)

	// A cut stream is resumed from the last position, losing nothing.
	b.sf.ResetStreams()
	require.NoError(t, b.sf.EditAsUser(b.sf.RepUserID(), "Lead", lead, map[string]any{"Title": "after reset"}))
	require.Equal(t, "after reset", s.next(t).Events[0].Fields["Title"])
}

func TestStreamUnsupportedWhenCDCIsOff(t *testing.T) {
	t.Parallel()
	b := setupStream(t)
	b.sf.SetCDCEnabled("Lead", false)
	err := b.c.SubscribeChanges(context.Background(), connector.SubscribeRequest{Session: b.sess, Object: "Lead"},
		func(context.Context, *connector.ChangeBatch) error { return nil })
	require.True(t, errors.Is(err, connector.ErrUnsupported), "%v", err)
	require.Contains(t, err.Error(), "Change Data Capture")
}

func TestStreamRefreshesAnExpiredToken(t *testing.T) {
	t.Parallel()
	b := setupStream(t, sffake.Options{TokenTTL: time.Hour})
	lead, err := b.sf.Insert("Lead", map[string]any{"LastName": "Ng", "Company": "Acme"})
	require.NoError(t, err)
	s := startStream(t, b, "Lead", "")
	s.next(t)
	require.NoError(t, b.sf.EditAsUser(b.sf.RepUserID(), "Lead", lead, map[string]any{"Title": "A"}))
	s.next(t)
	// The token expires; the stream is cut; the resubscribe is refused
	// until the connector refreshes, then resumes after "A".
	b.sf.Clock().Advance(2 * time.Hour)
	b.sf.ResetStreams()
	require.NoError(t, b.sf.EditAsUser(b.sf.RepUserID(), "Lead", lead, map[string]any{"Title": "B"}))
	got := s.next(t)
	require.Equal(t, "B", got.Events[0].Fields["Title"])
	require.NotNil(t, got.Credentials, "the refreshed token is handed back")
}

// TestStreamThroughPluginProcess streams across the go-plugin boundary:
// the events, the resync and a typed error arrive as in process, and
// cancelling stops the plugin's subscription.
func TestStreamThroughPluginProcess(t *testing.T) {
	t.Parallel()
	b := setupStream(t)
	cs, ok := pluginConnector(t).(connector.ChangeStreamer)
	require.True(t, ok)
	lead, err := b.sf.Insert("Lead", map[string]any{"LastName": "Ng", "Company": "Acme", "Title": "CTO"})
	require.NoError(t, err)
	s := startStreamWith(t, b, cs, "Lead", "")
	require.Equal(t, connector.ChangeResync, s.next(t).Events[0].Kind)
	require.NoError(t, b.sf.EditAsUser(b.sf.RepUserID(), "Lead", lead, map[string]any{"Title": nil, "FirstName": "Al"}))
	ev := s.next(t).Events[0]
	require.Equal(t, connector.ChangeUpdate, ev.Kind)
	require.Equal(t, "Al", ev.Fields["FirstName"])
	require.Contains(t, ev.Fields, "Title")
	require.Nil(t, ev.Fields["Title"])
	s.cancel()
	require.ErrorIs(t, <-s.done, context.Canceled)
	s.done <- nil

	b.sf.SetCDCEnabled("Contact", false)
	err = cs.SubscribeChanges(context.Background(), connector.SubscribeRequest{Session: b.sess, Object: "Contact"},
		func(context.Context, *connector.ChangeBatch) error { return nil })
	require.ErrorIs(t, err, connector.ErrUnsupported)
}

// TestFetchChangesManyThroughPluginProcess: the packed change fetch crosses
// the plugin boundary as one call.
func TestFetchChangesManyThroughPluginProcess(t *testing.T) {
	t.Parallel()
	b := setupStream(t)
	_, err := b.sf.Insert("Lead", map[string]any{"LastName": "Ng", "Company": "Acme", "Email": "ng@example.com"})
	require.NoError(t, err)
	mf, ok := pluginConnector(t).(connector.ManyChangeFetcher)
	require.True(t, ok)
	b.sf.ResetRequestLog()
	resp, err := mf.FetchChangesMany(context.Background(), connector.FetchChangesManyRequest{Session: b.sess, Requests: []connector.FetchChangesRequest{
		{Object: "Account", Fields: []string{"Name"}}, {Object: "Lead", Fields: []string{"Email"}}, {Object: "Contact", Fields: []string{"Email"}}}})
	require.NoError(t, err)
	require.Len(t, resp.Results, 3)
	require.Empty(t, resp.Results[0].Records)
	require.Len(t, resp.Results[1].Records, 1)
	require.Equal(t, "ng@example.com", resp.Results[1].Records[0].Fields["Email"])
	require.NotEmpty(t, resp.Results[2].NextCursor)
	composite := 0
	for _, r := range b.sf.RequestLog() {
		if r.Path == "/services/data/v62.0/composite" {
			composite++
		}
	}
	require.Equal(t, 1, composite)
}
