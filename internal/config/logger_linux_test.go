package config_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/crmsync/crmsync/internal/config"
)

// openPTY opens a pseudo-terminal and returns its terminal side.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err, "open a pseudo-terminal")
	t.Cleanup(func() { _ = ptmx.Close() })
	require.NoError(t, unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0))
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	require.NoError(t, err)
	tty, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tty.Close() })
	go func() { // drain what the logger writes so it never blocks
		buf := make([]byte, 4096)
		for {
			if _, err := ptmx.Read(buf); err != nil {
				return
			}
		}
	}()
	return tty
}

// TestLogFormat checks the default "auto": human-readable text on a
// terminal, JSON into a pipe or a file, and that json/text force either.
func TestLogFormat(t *testing.T) {
	t.Parallel()
	c, err := parse(t, nil)
	require.NoError(t, err)
	require.Equal(t, "auto", c.LogFormat, "auto is the default")

	var buf bytes.Buffer
	c.Global.Logger(&buf).Info("hello", "workspace_id", 1)
	require.True(t, json.Valid(buf.Bytes()), "not a terminal: JSON: %s", buf.String())

	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close(); _ = w.Close() })
	require.False(t, config.IsTerminal(w), "a pipe is not a terminal")

	tty := openPTY(t)
	require.True(t, config.IsTerminal(tty))
	require.True(t, textHandler(t, c.Global, tty), "auto on a terminal: text")

	c, err = parse(t, nil, "--log-format", "json")
	require.NoError(t, err)
	require.False(t, textHandler(t, c.Global, tty), "json asked for: JSON even on a terminal")

	c, err = parse(t, map[string]string{"CRMSYNC_LOG_FORMAT": "text"})
	require.NoError(t, err)
	buf.Reset()
	c.Global.Logger(&buf).Info("hello", "workspace_id", 1)
	require.True(t, strings.HasPrefix(buf.String(), "time="), "text asked for: text into a buffer: %s", buf.String())
}

// textHandler reports whether g's logger for w is slog's text handler.
func textHandler(t *testing.T, g config.Global, w *os.File) bool {
	t.Helper()
	h := g.Logger(w).Handler()
	_, ok := h.(*slog.TextHandler)
	return ok
}
