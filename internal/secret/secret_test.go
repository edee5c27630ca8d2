package secret_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/secret"
)

func newBox(t *testing.T) *secret.Box {
	t.Helper()
	key := make([]byte, secret.KeySize)
	_, _ = rand.Read(key)
	box, err := secret.NewBox(key)
	require.NoError(t, err)
	return box
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	box := newBox(t)
	plain := []byte(`{"clientSecret":"s3cr3t","refreshToken":"5Aep861"}`)
	sealed := box.Seal(plain, "crm_connections/1")
	require.False(t, bytes.Contains(sealed, []byte("s3cr3t")), "plaintext visible in ciphertext")

	got, err := box.Open(sealed, "crm_connections/1")
	require.NoError(t, err)
	require.Equal(t, plain, got)

	_, err = box.Open(sealed, "crm_connections/2")
	require.True(t, errors.Is(err, secret.ErrDecrypt), "ciphertext opened under another row's binding")

	_, err = newBox(t).Open(sealed, "crm_connections/1")
	require.ErrorIs(t, err, secret.ErrDecrypt)

	sealed[len(sealed)-1] ^= 1
	_, err = box.Open(sealed, "crm_connections/1")
	require.ErrorIs(t, err, secret.ErrDecrypt)

	_, err = box.Open([]byte("short"), "crm_connections/1")
	require.ErrorIs(t, err, secret.ErrDecrypt)
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, 32)
	for name, s := range map[string]string{
		"std":     base64.StdEncoding.EncodeToString(key),
		"raw url": base64.RawURLEncoding.EncodeToString(key),
	} {
		got, err := secret.ParseKey(s)
		require.NoError(t, err, name)
		require.Equal(t, key, got, name)
	}
	_, err := secret.ParseKey(base64.StdEncoding.EncodeToString([]byte("too short")))
	require.ErrorContains(t, err, "want 32 bytes")
	_, err = secret.ParseKey("!!!not base64!!!")
	require.ErrorContains(t, err, "not valid base64")
}
