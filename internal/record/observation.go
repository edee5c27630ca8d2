package record

import (
	"time"
)

// Observation is a CRM record's state as crmsync observed it: the fields read,
// the record's modification stamps, and the CRM's own clock when it
// answered (Salesforce: the response's Date header). The engine writes
// without reading first when the state is Proven (docs/sync.md,
// "Conditional writes").
type Observation struct {
	// ID is the CRM id the state belongs to.
	ID               string         `json:"id"`
	Fields           map[string]any `json:"fields"`
	LastModified     time.Time      `json:"last_modified"`
	LastModifiedByID string         `json:"last_modified_by_id,omitempty"`
	ObservedAt       time.Time      `json:"observed_at"`
}

// Proven reports whether the state is provably current for as long as the
// record's LastModified has not moved, which a write conditional on it
// (If-Unmodified-Since: LastModified) checks. LastModified has whole
// seconds: a change made after the observation but within the same second
// as LastModified would leave it unchanged. So the state counts only when
// it was observed, by the CRM's clock, at least a second after
// LastModified: every later change then carries a later LastModified.
func (k *Observation) Proven() bool {
	if k == nil || k.ObservedAt.IsZero() || k.LastModified.IsZero() {
		return false
	}
	return !k.ObservedAt.Truncate(time.Second).Before(k.LastModified.Truncate(time.Second).Add(time.Second))
}
