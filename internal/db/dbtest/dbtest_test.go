package dbtest

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// recordingTB stands in for a test in BaseURL: it records how the test
// would have ended.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func baseURLOf(tb *recordingTB) string {
	var url string
	done := make(chan struct{})
	go func() {
		defer close(done)
		url = BaseURL(tb)
	}()
	<-done
	return url
}

// TestBaseURL checks the three cases: a URL is used, a missing one skips
// with one line naming the variable and `make test`, and under `make test`
// (EnvRequire set) a missing one fails.
func TestBaseURL(t *testing.T) {
	t.Setenv(EnvURL, "postgres://example/db")
	t.Setenv(EnvRequire, "")
	tb := &recordingTB{TB: t}
	require.Equal(t, "postgres://example/db", baseURLOf(tb))
	require.Empty(t, tb.skipped+tb.failed)

	t.Setenv(EnvURL, "")
	tb = &recordingTB{TB: t}
	baseURLOf(tb)
	require.Empty(t, tb.failed)
	require.Equal(t, SkipMessage, tb.skipped)
	require.NotContains(t, tb.skipped, "\n", "one line")
	require.Contains(t, tb.skipped, EnvURL)
	require.Contains(t, tb.skipped, "make test")

	t.Setenv(EnvRequire, "1")
	tb = &recordingTB{TB: t}
	baseURLOf(tb)
	require.Empty(t, tb.skipped)
	require.Contains(t, tb.failed, EnvRequire)
}
