// Package model holds the GraphQL types that are not domain types:
// generated ones (models_gen.go, DO NOT EDIT) and the custom scalars below.
package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// InputError is a scalar value a client sent that cannot be used; its
// message is shown to the client.
type InputError struct{ msg string }

func (e *InputError) Error() string { return e.msg }

// UserFacing marks the error as safe to show to API clients.
func (*InputError) UserFacing() {}

func inputErrorf(format string, args ...any) error {
	return &InputError{msg: fmt.Sprintf(format, args...)}
}

// MarshalTime writes a time in RFC 3339 format, in UTC.
func MarshalTime(t time.Time) graphql.Marshaler {
	if t.IsZero() {
		return graphql.Null
	}
	return graphql.WriterFunc(func(w io.Writer) {
		_, _ = io.WriteString(w, strconv.Quote(t.UTC().Format(time.RFC3339Nano)))
	})
}

// UnmarshalTime reads an RFC 3339 time.
func UnmarshalTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, inputErrorf("Time must be an RFC 3339 string, got %T", v)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, inputErrorf("Time %q is not an RFC 3339 time (like 2026-11-28T15:04:05Z)", s)
	}
	return t, nil
}

// MarshalInt64ID writes a database id as a GraphQL ID (a JSON string).
func MarshalInt64ID(id int64) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		_, _ = io.WriteString(w, strconv.Quote(strconv.FormatInt(id, 10)))
	})
}

// UnmarshalInt64ID reads a GraphQL ID holding a database id: a string or an
// integer.
func UnmarshalInt64ID(v any) (int64, error) {
	switch v := v.(type) {
	case string:
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, inputErrorf("ID %q is not a valid id", v)
		}
		return id, nil
	case json.Number:
		return UnmarshalInt64ID(string(v))
	case int:
		return int64(v), nil
	case int64:
		return v, nil
	default:
		return 0, inputErrorf("ID must be a string, got %T", v)
	}
}

// JSON is an arbitrary JSON value, kept as its encoding.
type JSON json.RawMessage

// UnmarshalGQL implements graphql.Unmarshaler.
func (j *JSON) UnmarshalGQL(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return inputErrorf("JSON: %v", err)
	}
	*j = b
	return nil
}

// MarshalGQL implements graphql.Marshaler.
func (j JSON) MarshalGQL(w io.Writer) {
	if len(j) == 0 {
		_, _ = io.WriteString(w, "null")
		return
	}
	_, _ = w.Write(j)
}

// Decode unmarshals the value into dst.
func (j JSON) Decode(dst any) error {
	if len(j) == 0 {
		return errors.New("JSON: no value")
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	return dec.Decode(dst)
}
