package sffake

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"
)

// FaultKind says what an endpoint fault does to a matching call.
type FaultKind int

const (
	// FaultStatus answers with Status and the body Salesforce sends for it
	// (or Body), without running the request. It does not count as a call.
	FaultStatus FaultKind = iota
	// FaultTruncate runs the request, then sends its headers and only half of
	// its body before closing the connection.
	FaultTruncate
	// FaultReset closes the connection without an answer (the request is not run).
	FaultReset
	// FaultLatency delays the call by Latency, then runs it normally.
	FaultLatency
)

// Fault is an endpoint fault. A call matches when its method equals Method
// (empty: any) and its path, with /services/data/vNN.N removed, starts with
// Path or matches it as a path.Match pattern (empty: any path; OAuth paths
// such as /services/oauth2/token are matched as they are). Among matching
// calls the fault fires on call number Nth (1-based, 0 means from the first)
// and then on the following ones until it has fired Times times (0: forever).
type Fault struct {
	Method  string
	Path    string
	Nth     int
	Times   int
	Kind    FaultKind
	Status  int    // FaultStatus: 401, 403, 420, 500, 502, 503, ...
	Code    string // FaultStatus: overrides the errorCode of the JSON body
	Message string // FaultStatus: overrides the message of the JSON body
	Body    string // FaultStatus: the raw body to send instead (e.g. an HTML page)
	Latency time.Duration
}

// RecordFault makes writes of matching records fail with a per-record error
// (UNABLE_TO_LOCK_ROW, FIELD_CUSTOM_VALIDATION_EXCEPTION, DUPLICATE_VALUE, ...).
// A write matches when its object equals Object (empty: any) and either its
// record id equals ID, or (for creates and upserts) the written Field equals
// Value case-insensitively; with neither ID nor Field every write of Object
// matches. The fault fires Times times and then clears (0: forever), which
// models a lock that clears after K tries.
type RecordFault struct {
	Object  string
	ID      string
	Field   string
	Value   string
	Code    string
	Message string // default: the message Salesforce sends for Code
	Fields  []string
	Times   int
}

type endpointFault struct {
	Fault
	seen, fired int
}

type recordFault struct {
	RecordFault
	fired int
}

// faults holds the injected faults; it has its own lock because latency
// faults are applied outside the server lock.
type faults struct {
	mu       sync.Mutex
	endpoint []*endpointFault
	record   []*recordFault
}

// match returns the faults that fire for a call, advancing their counters.
func (fs *faults) match(method, p string) []Fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var out []Fault
	for _, f := range fs.endpoint {
		if f.Method != "" && !strings.EqualFold(f.Method, method) {
			continue
		}
		if f.Path != "" && !strings.HasPrefix(p, f.Path) {
			if ok, _ := path.Match(f.Path, p); !ok {
				continue
			}
		}
		f.seen++
		if f.seen < f.Nth || f.Times > 0 && f.fired >= f.Times {
			continue
		}
		f.fired++
		out = append(out, f.Fault)
	}
	return out
}

// recordError returns the injected error for a write, if any fires.
func (fs *faults) recordError(object, id string, fields map[string]any) *apiError {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, f := range fs.record {
		if f.Object != "" && f.Object != object {
			continue
		}
		if f.ID != "" {
			norm, _ := NormalizeID(f.ID)
			if norm != id {
				continue
			}
		} else if f.Field != "" {
			v, _ := lookupFold(fields, f.Field).(string)
			if !strings.EqualFold(v, f.Value) {
				continue
			}
		}
		if f.Times > 0 && f.fired >= f.Times {
			continue
		}
		f.fired++
		msg := f.Message
		if msg == "" {
			msg = defaultRecordMessage(f.Code, id)
		}
		fields := f.Fields
		if fields == nil {
			fields = []string{}
		}
		return &apiError{Code: f.Code, Message: msg, Fields: fields}
	}
	return nil
}

func lookupFold(m map[string]any, key string) any {
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

func defaultRecordMessage(code, id string) string {
	switch code {
	case "UNABLE_TO_LOCK_ROW":
		return "unable to obtain exclusive access to this record or 1 records: " + id
	case "DUPLICATE_VALUE":
		return "duplicate value found: <unknown> duplicates value on record with id: <unknown>"
	case "FIELD_CUSTOM_VALIDATION_EXCEPTION":
		return "Validation rule failed"
	case "ENTITY_IS_DELETED":
		return "entity is deleted"
	case "INVALID_CROSS_REFERENCE_KEY":
		return "invalid cross reference id"
	}
	return fmt.Sprintf("%s injected by sffake", code)
}

// statusBody is what Salesforce (or its edge) sends with an injected status.
func statusBody(f Fault) (contentType, body string) {
	if f.Body != "" {
		ct := "application/json;charset=UTF-8"
		if strings.HasPrefix(strings.TrimSpace(f.Body), "<") {
			ct = "text/html"
		}
		return ct, f.Body
	}
	code, msg := "", ""
	switch f.Status {
	case 401:
		code, msg = "INVALID_SESSION_ID", "Session expired or invalid"
	case 403:
		code, msg = "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."
	case 404:
		code, msg = "NOT_FOUND", "The requested resource does not exist"
	case 500:
		code, msg = "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-123456789)"
	case 503:
		code, msg = "SERVER_UNAVAILABLE", "Server is unavailable, please try again later"
	case 420, 502:
		return "text/html", "<html><head><title>Salesforce Edge</title></head><body>The service is temporarily unavailable.</body></html>"
	default:
		code, msg = "UNKNOWN_EXCEPTION", fmt.Sprintf("injected status %d", f.Status)
	}
	if f.Code != "" {
		code = f.Code
	}
	if f.Message != "" {
		msg = f.Message
	}
	b, _ := json.Marshal([]map[string]string{{"message": msg, "errorCode": code}})
	return "application/json;charset=UTF-8", string(b)
}
