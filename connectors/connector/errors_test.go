package connector_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors/connector"
)

func TestErrorKinds(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		err       error
		sentinel  error
		retryable bool
	}{
		"credentials":    {connector.Errorf(connector.KindCredentials, "invalid_grant"), connector.ErrCredentials, false},
		"rate limited":   {connector.RateLimited(time.Minute, "REQUEST_LIMIT_EXCEEDED"), connector.ErrRateLimited, true},
		"unavailable":    {connector.Errorf(connector.KindUnavailable, "503"), connector.ErrUnavailable, true},
		"unsupported":    {connector.ErrUnsupported, connector.ErrUnsupported, false},
		"invalid":        {connector.Errorf(connector.KindInvalid, "no field %q", "X"), connector.ErrInvalid, false},
		"wrapped":        {fmt.Errorf("flush: %w", connector.RateLimited(0, "x")), connector.ErrRateLimited, true},
		"plain is retry": {errors.New("boom"), nil, true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if tt.sentinel != nil && !errors.Is(tt.err, tt.sentinel) {
				t.Fatalf("errors.Is(%v, %v) = false", tt.err, tt.sentinel)
			}
			if errors.Is(tt.err, connector.ErrInvalid) != (tt.sentinel == connector.ErrInvalid) {
				t.Fatalf("errors.Is(%v, ErrInvalid) mismatched", tt.err)
			}
			if got := connector.Retryable(tt.err); got != tt.retryable {
				t.Fatalf("Retryable(%v) = %v, want %v", tt.err, got, tt.retryable)
			}
		})
	}
}

func TestErrorfKeepsCause(t *testing.T) {
	t.Parallel()
	cause := errors.New("dial tcp: refused")
	err := connector.Errorf(connector.KindUnavailable, "token endpoint: %w", cause)
	if !errors.Is(err, cause) {
		t.Fatal("cause lost")
	}
	var ce *connector.Error
	if !errors.As(fmt.Errorf("wrap: %w", connector.RateLimited(30*time.Second, "spent")), &ce) || ce.RetryAfter != 30*time.Second {
		t.Fatalf("RetryAfter not readable through errors.As: %+v", ce)
	}
}

// Kinds lists every Kind: each has its own name, and the value after the
// last one has none (a Kind added without extending Kinds fails here).
func TestKindsIsComplete(t *testing.T) {
	t.Parallel()
	kinds := connector.Kinds()
	if kinds[0] != connector.KindUnknown {
		t.Fatalf("Kinds()[0] = %v, want KindUnknown", kinds[0])
	}
	names := map[string]connector.Kind{}
	for i, k := range kinds {
		if int(k) != i {
			t.Fatalf("Kinds()[%d] = %d: the list follows the constants' order", i, k)
		}
		if prev, dup := names[k.String()]; dup {
			t.Fatalf("kinds %d and %d share the name %q", prev, k, k.String())
		}
		names[k.String()] = k
	}
	if next := connector.Kind(len(kinds)); next.String() != connector.KindUnknown.String() {
		t.Fatalf("Kind %d is named %q but missing from Kinds()", next, next)
	}
}
