package salesforce

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestJWTAudience(t *testing.T) {
	t.Parallel()
	for login, want := range map[string]string{
		"https://login.salesforce.com":                "https://login.salesforce.com",
		"https://test.salesforce.com":                 "https://test.salesforce.com",
		"https://acme.my.salesforce.com":              "https://login.salesforce.com",
		"https://acme--uat.sandbox.my.salesforce.com": "https://test.salesforce.com",
		"http://127.0.0.1:8080":                       "http://127.0.0.1:8080",
	} {
		require.Equal(t, want, jwtAudience(Config{LoginURL: login}), login)
	}
	require.Equal(t, "https://x.example", jwtAudience(Config{LoginURL: "https://acme.my.salesforce.com", JWTAudience: "https://x.example"}))
}
