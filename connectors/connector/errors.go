package connector

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies a whole-call failure.
type Kind int

const (
	// KindUnknown is a failure crmsync treats as retryable.
	KindUnknown Kind = iota
	// KindCredentials: credentials are invalid, expired or revoked and
	// cannot be refreshed. The connection needs the user.
	KindCredentials
	// KindRateLimited: the CRM's API allowance is spent; retry after
	// RetryAfter (zero when unknown).
	KindRateLimited
	// KindUnavailable: a transient failure (network, 5xx, timeout, a
	// crashed plugin). Retry later.
	KindUnavailable
	// KindUnsupported: the connector does not implement this call or
	// operation.
	KindUnsupported
	// KindInvalid: the request itself is wrong (unknown object or field,
	// malformed configuration). Retrying unchanged will fail again.
	KindInvalid
)

// Kinds returns every Kind, KindUnknown first. A new Kind is added here as
// well (a test checks that the list is complete): codecs and conformance
// checks range over it.
func Kinds() []Kind {
	return []Kind{KindUnknown, KindCredentials, KindRateLimited, KindUnavailable, KindUnsupported, KindInvalid}
}

func (k Kind) String() string {
	switch k {
	case KindCredentials:
		return "credentials"
	case KindRateLimited:
		return "rate limited"
	case KindUnavailable:
		return "unavailable"
	case KindUnsupported:
		return "unsupported"
	case KindInvalid:
		return "invalid request"
	default:
		return "unknown"
	}
}

// Error is a typed whole-call error. Match it with errors.Is against the
// sentinels below, or with errors.As to read RetryAfter.
type Error struct {
	Kind    Kind
	Message string
	// RetryAfter is how long to wait before retrying (KindRateLimited,
	// KindUnavailable); zero when unknown.
	RetryAfter time.Duration
	// Err is the underlying cause, if any (not carried across processes).
	Err error
}

// Sentinels for errors.Is. They match any *Error of the same Kind.
var (
	ErrCredentials = &Error{Kind: KindCredentials}
	ErrRateLimited = &Error{Kind: KindRateLimited}
	ErrUnavailable = &Error{Kind: KindUnavailable}
	ErrUnsupported = &Error{Kind: KindUnsupported}
	ErrInvalid     = &Error{Kind: KindInvalid}
)

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if msg == "" {
		return "connector: " + e.Kind.String()
	}
	if e.RetryAfter > 0 {
		return fmt.Sprintf("connector: %s (retry after %s): %s", e.Kind, e.RetryAfter, msg)
	}
	return fmt.Sprintf("connector: %s: %s", e.Kind, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error of the same Kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind
}

// Errorf returns an *Error of the given kind with a formatted message.
// A %w verb sets Err.
func Errorf(kind Kind, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Kind: kind, Message: err.Error(), Err: errors.Unwrap(err)}
}

// RateLimited returns a KindRateLimited error.
func RateLimited(retryAfter time.Duration, message string) *Error {
	return &Error{Kind: KindRateLimited, Message: message, RetryAfter: retryAfter}
}

// KindOf returns the Kind of err's first *Error, or KindUnknown.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindUnknown
}

// Retryable reports whether a whole-call error may succeed if retried
// unchanged later.
func Retryable(err error) bool {
	switch KindOf(err) {
	case KindCredentials, KindUnsupported, KindInvalid:
		return false
	default:
		return true
	}
}
