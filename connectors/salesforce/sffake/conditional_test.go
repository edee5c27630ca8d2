package sffake_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestIfUnmodifiedSince: a single-record PATCH carrying If-Unmodified-Since
// is refused with 412 and a Salesforce-shaped body when the record was
// modified after that time, and written when it was not (LastModifiedDate
// has whole seconds, so a change within the given second passes), directly
// and inside /composite; every answer carries the org's clock as Date.
func TestIfUnmodifiedSince(t *testing.T) {
	t.Parallel()
	b := setup(t)
	created := b.do(t, "POST", v+"/sobjects/Contact", map[string]any{"LastName": "Ng"})
	require.Equal(t, 201, created.status, string(created.body))
	id := created.json(t).(map[string]any)["id"].(string)
	date, err := http.ParseTime(created.header.Get("Date"))
	require.NoError(t, err, "every answer has a Date")
	require.Equal(t, b.sf.Clock().Now().Truncate(time.Second), date.UTC(), "the Date is the org's clock")
	modified := date // the frozen clock: created in this very second

	before := modified.Add(-time.Second).Format(http.TimeFormat)
	r := b.do(t, "PATCH", v+"/sobjects/Contact/"+id, map[string]any{"Title": "Stale"}, "If-Unmodified-Since", before)
	require.Equal(t, http.StatusPreconditionFailed, r.status, string(r.body))
	require.Equal(t, "PRECONDITION_FAILED", r.errorCode(t))
	got, _ := b.sf.Get("Contact", id)
	require.Nil(t, got["Title"], "a refused PATCH writes nothing")

	same := modified.Format(http.TimeFormat)
	r = b.do(t, "PATCH", v+"/sobjects/Contact/"+id, map[string]any{"Title": "Fresh"}, "If-Unmodified-Since", same)
	require.Equal(t, http.StatusNoContent, r.status, string(r.body))
	got, _ = b.sf.Get("Contact", id)
	require.Equal(t, "Fresh", got["Title"])

	// Inside /composite, per subrequest.
	b.sf.Clock().Advance(2 * time.Second)
	r = b.do(t, "POST", v+"/composite", map[string]any{"allOrNone": false, "compositeRequest": []any{
		map[string]any{"method": "PATCH", "url": v + "/sobjects/Contact/" + id, "referenceId": "stale",
			"body": map[string]any{"Title": "Stale"}, "httpHeaders": map[string]string{"If-Unmodified-Since": before}},
		map[string]any{"method": "PATCH", "url": v + "/sobjects/Contact/" + id, "referenceId": "fresh",
			"body": map[string]any{"Title": "Fresher"}, "httpHeaders": map[string]string{"If-Unmodified-Since": same}},
	}})
	require.Equal(t, 200, r.status, string(r.body))
	subs := r.json(t).(map[string]any)["compositeResponse"].([]any)
	require.Equal(t, 412.0, subs[0].(map[string]any)["httpStatusCode"])
	body := subs[0].(map[string]any)["body"].([]any)
	require.Equal(t, "PRECONDITION_FAILED", body[0].(map[string]any)["errorCode"])
	require.Equal(t, 204.0, subs[1].(map[string]any)["httpStatusCode"])
	got, _ = b.sf.Get("Contact", id)
	require.Equal(t, "Fresher", got["Title"])
	stamp, _ := got["LastModifiedDate"].(string)
	require.Equal(t, b.sf.Clock().Now().Truncate(time.Second).Format("2006-01-02T15:04:05.000+0000"), stamp, "second precision")
}
