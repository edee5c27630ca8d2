package sffake

import (
	"net/http"
	"time"
)

// Replication API limits (getUpdated / getDeleted).
const (
	replicationWindow = 30 * 24 * time.Hour
	maxReplicationIDs = 600000
)

// replication serves GET /sobjects/{T}/updated/?start=&end= and
// /sobjects/{T}/deleted/?start=&end=. Start and end are truncated to the
// minute; the window must lie within the last 30 days.
func (s *Server) replication(c *call, obj *sobject, kind string) response {
	if c.method != http.MethodGet {
		return methodNotAllowed(c.method, "GET")
	}
	start, okStart := parseDateTime(c.query.Get("start"))
	end, okEnd := parseDateTime(c.query.Get("end"))
	if !okStart || !okEnd {
		return errResp(400, apiError{Code: "MISSING_ARGUMENT", Message: "start and end are required and must be ISO-8601 date-times"})
	}
	start, end = start.Truncate(time.Minute), end.Truncate(time.Minute)
	now := s.clock.Now()
	switch {
	case end.Before(start):
		return errResp(400, apiError{Code: "INVALID_REPLICATION_DATE", Message: "EndDate can not be before StartDate"})
	case start.Before(now.Add(-replicationWindow)):
		return errResp(400, apiError{Code: "INVALID_REPLICATION_DATE", Message: "startDate cannot be more than 30 days ago"})
	}
	if end.After(now) {
		end = now.Truncate(time.Minute)
	}
	covered := FormatTime(end)
	in := func(r *record) bool {
		t, _ := r.f["SystemModstamp"].(time.Time)
		return !t.Before(start) && t.Before(end)
	}
	if kind == "updated" {
		ids := []string{}
		for _, r := range s.st.sortedAt(obj.Name, false, now) {
			if in(r) {
				ids = append(ids, r.id())
			}
		}
		if len(ids) > maxReplicationIDs {
			return errResp(400, apiError{Code: "EXCEEDED_ID_LIMIT", Message: "too many ids: narrow the date range"})
		}
		return jsonResp(200, map[string]any{"ids": ids, "latestDateCovered": covered})
	}
	deleted := []map[string]string{}
	for _, r := range s.st.sortedAt(obj.Name, true, now) {
		if r.deleted() && in(r) {
			deleted = append(deleted, map[string]string{"id": r.id(), "deletedDate": FormatTime(r.f["SystemModstamp"].(time.Time))})
		}
	}
	return jsonResp(200, map[string]any{
		"deletedRecords":        deleted,
		"earliestDateAvailable": FormatTime(s.schemaTime),
		"latestDateCovered":     covered,
	})
}
