package secret_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/secret"
)

// TestStringMasks prints a struct holding a secret every way the code
// base prints things and finds the value in none, while an unset secret
// stays visibly empty.
func TestStringMasks(t *testing.T) {
	t.Parallel()
	type settings struct {
		Name  string
		Token secret.String
		Unset secret.String
	}
	s := settings{Name: "app", Token: "hunter2-token"}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("settings", "token", s.Token, "all", s)
	js, err := json.Marshal(s)
	require.NoError(t, err)
	printed := map[string]string{
		"%v":   fmt.Sprintf("%v", s),
		"%+v":  fmt.Sprintf("%+v", s),
		"%#v":  fmt.Sprintf("%#v", s),
		"%s":   fmt.Sprintf("token=%s", s.Token),
		"%q":   fmt.Sprintf("%q", s.Token),
		"json": string(js),
		"slog": logs.String(),
	}
	for how, out := range printed {
		require.NotContains(t, out, "hunter2", how)
		require.Contains(t, out, "*****", how)
	}
	require.Equal(t, "", s.Unset.String())
	require.Equal(t, "hunter2-token", s.Token.Reveal())
}
