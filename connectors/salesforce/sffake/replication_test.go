package sffake_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestGetUpdatedAndDeleted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	clock := b.sf.Clock()
	early := b.insert(t, "Lead", map[string]any{"LastName": "Early", "Company": "A"})
	clock.Advance(10 * time.Minute)
	later := b.insert(t, "Lead", map[string]any{"LastName": "Later", "Company": "A"})
	clock.Advance(5 * time.Minute)
	require.NoError(t, b.sf.DeleteAsUser(b.sf.RepUserID(), early))
	clock.Advance(time.Minute)

	window := func(kind, start, end string) reply {
		q := url.Values{"start": {start}, "end": {end}}
		return b.do(t, "GET", v+"/sobjects/Lead/"+kind+"/?"+q.Encode(), nil)
	}
	r := window("updated", "2024-05-01T12:05:30+00:00", "2024-05-01T13:00:00+00:00")
	require.Equal(t, 200, r.status, string(r.body))
	require.JSONEq(t, `{"ids":["`+later+`"],"latestDateCovered":"2024-05-01T12:16:00.000+0000"}`, string(r.body), "end is capped at now, truncated to the minute")

	r = window("deleted", "2024-05-01T12:00:00Z", "2024-05-01T12:16:00Z")
	require.JSONEq(t, `{"deletedRecords":[{"id":"`+early+`","deletedDate":"2024-05-01T12:15:00.000+0000"}],
	 "earliestDateAvailable":"2024-05-01T12:00:00.000+0000","latestDateCovered":"2024-05-01T12:16:00.000+0000"}`, string(r.body))

	require.Equal(t, "INVALID_REPLICATION_DATE", window("updated", "2024-03-01T00:00:00Z", "2024-05-01T12:00:00Z").errorCode(t))
	require.Equal(t, "INVALID_REPLICATION_DATE", window("updated", "2024-05-01T12:10:00Z", "2024-05-01T12:00:00Z").errorCode(t))
}
