package secret

import (
	"encoding/json"
	"log/slog"
)

// masked is how a set String prints.
const masked = "*****"

// String is a secret setting (a token, a consumer secret, a key) held in
// memory. It prints masked through fmt (%v, %s, %q, %#v), slog and JSON, so
// a struct that holds one can be logged or dumped without leaking it; an
// empty String prints empty, so "not set" stays visible. Reveal returns the
// value for the one place that uses it.
type String string

// Reveal returns the secret itself.
func (s String) Reveal() string { return string(s) }

// String implements fmt.Stringer: the value masked.
func (s String) String() string {
	if s == "" {
		return ""
	}
	return masked
}

// GoString implements fmt.GoStringer (%#v): the value masked.
func (s String) GoString() string { return `secret.String("` + s.String() + `")` }

// LogValue implements slog.LogValuer: the value masked.
func (s String) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON encodes the value masked.
func (s String) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }
