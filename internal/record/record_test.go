package record_test

import (
	"testing"

	"github.com/crmsync/crmsync/internal/record"
)

func TestSameValue(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		a, b any
		want bool
	}{
		"nil and empty":    {nil, "", true},
		"strings":          {"a", "a", true},
		"different":        {"a", "b", false},
		"numbers":          {float64(3), 3, true},
		"number vs string": {float64(3), "3", false},
		"bools":            {true, true, true},
		"blank vs value":   {nil, "x", false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := record.SameValue(tt.a, tt.b); got != tt.want {
				t.Fatalf("SameValue(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}
