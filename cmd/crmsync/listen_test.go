package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestServeChecksPortBeforeMigrating runs serve on a port that is taken:
// it fails on the port without having opened or migrated the database.
func TestServeChecksPortBeforeMigrating(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = busy.Close() })
	dir := filepath.Join(t.TempDir(), "data")
	var stderr bytes.Buffer
	err = run(context.Background(), []string{"serve", "--listen", busy.Addr().String()},
		envOf(map[string]string{"CRMSYNC_DATA_DIR": dir}), io.Discard, &stderr)
	require.ErrorContains(t, err, "already in use")
	_, statErr := os.Stat(dir)
	require.ErrorIs(t, statErr, os.ErrNotExist, "the database was not created, let alone migrated")
	require.NotContains(t, stderr.String(), "migrate: applied")
}
