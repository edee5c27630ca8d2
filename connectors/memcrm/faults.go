package memcrm

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/crmsync/crmsync/connectors/connector"
)

// Faults are memcrm's fault knobs. The zero value injects nothing. In JSON
// (the "faults" key of a session's configuration) Latency is a duration
// string such as "250ms".
type Faults struct {
	// Latency delays every call (honouring ctx).
	Latency time.Duration `json:"-"`
	// ErrorRate is the fraction of calls, 0 to 1, that fail whole with a
	// connector.ErrUnavailable error.
	ErrorRate float64 `json:"error_rate,omitempty"`
	// CrashOn names a method ("BulkUpdate", "Check", ...): calling it
	// exits the process with CrashExitCode (a crashed plugin).
	CrashOn string `json:"crash_on,omitempty"`
	// Records are per-record failures injected into BulkUpdate.
	Records []RecordFault `json:"records,omitempty"`
	// Fail, if set, fails every call whole with this error.
	Fail *ErrorFault `json:"fail,omitempty"`
	// BulkJobCrashAfter, if positive, makes RunBulkJob lose its
	// connection after writing that many rows (all of them when the job
	// has fewer): the call fails with connector.ErrUnavailable while the
	// job stays InProgress, as a Salesforce job goes on working after
	// crmsync died. SettleBulkJob then works the rest of the job.
	BulkJobCrashAfter int `json:"bulk_job_crash_after,omitempty"`
	// BulkJobSettlePolls is how many SettleBulkJob calls find a job left
	// by BulkJobCrashAfter still InProgress (Done false) before the next
	// one works the rest of its rows.
	BulkJobSettlePolls int `json:"bulk_job_settle_polls,omitempty"`
}

// ErrorFault is the whole-call error Faults.Fail injects: any kind, with
// any message, so a test can send each kind through a plugin boundary.
type ErrorFault struct {
	Kind connector.Kind `json:"kind"`
	// Message is bytes (base64 in JSON) so that a message which is not
	// valid UTF-8 reaches the connector unchanged.
	Message []byte `json:"message,omitempty"`
	// RetryAfter is in nanoseconds in JSON.
	RetryAfter time.Duration `json:"retry_after,omitempty"`
}

// Err is the *connector.Error the fault injects.
func (f *ErrorFault) Err() *connector.Error {
	return &connector.Error{Kind: f.Kind, Message: string(f.Message), RetryAfter: f.RetryAfter}
}

// RecordFault makes matching BulkUpdate operations fail with Code. An
// operation matches when it targets Object (any object if empty) and either
// names ID (its record id or upsert external id) or sets Field to Value.
type RecordFault struct {
	Object    string `json:"object,omitempty"`
	ID        string `json:"id,omitempty"`
	Field     string `json:"field,omitempty"`
	Value     string `json:"value,omitempty"`
	Code      string `json:"code"`
	Message   string `json:"message,omitempty"`
	Retryable bool   `json:"retryable,omitempty"`
	// Times is how many matching operations fail before the fault wears
	// off; 0 means every one.
	Times int `json:"times,omitempty"`
}

type faultsJSON struct {
	Latency string `json:"latency,omitempty"`
	faultsAlias
}

type faultsAlias Faults

// MarshalJSON writes Latency as a duration string.
func (f Faults) MarshalJSON() ([]byte, error) {
	j := faultsJSON{faultsAlias: faultsAlias(f)}
	if f.Latency > 0 {
		j.Latency = f.Latency.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads Latency as a duration string.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*f = Faults(j.faultsAlias)
	if j.Latency != "" {
		d, err := time.ParseDuration(j.Latency)
		if err != nil {
			return fmt.Errorf("faults latency: %w", err)
		}
		f.Latency = d
	}
	return nil
}

// Clock is a manual clock for WithClock: it stands still until moved.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock showing t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
