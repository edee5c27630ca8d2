package salesforce

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
)

// An error body that is not Salesforce's JSON (an edge proxy's page) is cut
// to 200 characters between characters, never inside one, and is valid
// UTF-8 whatever bytes it held.
func TestExcerptCutsByCharacter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, want string
	}{
		{"short", "  Service Unavailable \n", "Service Unavailable"},
		{"exactly 200", strings.Repeat("a", 200), strings.Repeat("a", 200)},
		{"multi-byte across byte 200", strings.Repeat("a", 199) + "é and more", strings.Repeat("a", 199) + "é…"},
		{"multi-byte characters only", strings.Repeat("日", 250), strings.Repeat("日", 200) + "…"},
		{"invalid bytes", "bad \xff\xfe body", "bad \uFFFD body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := excerpt(tt.body, 200)
			require.Equal(t, tt.want, got)
			require.True(t, utf8.ValidString(got))
		})
	}
}

func TestAPIErrorMessageIsValidUTF8(t *testing.T) {
	t.Parallel()
	body := []byte(strings.Repeat("x", 199) + "€ <html>\xc3</html>")
	err := apiError("query", http.StatusUnauthorized, body)
	require.ErrorIs(t, err, connector.ErrCredentials)
	require.True(t, utf8.ValidString(err.Error()), "%q", err.Error())
	require.Contains(t, err.Error(), strings.Repeat("x", 199)+"€…")
}
