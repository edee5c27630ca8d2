package config

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSalesforceOAuthValidate(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		cfg  SalesforceOAuth
		want string
	}{
		"off":          {cfg: SalesforceOAuth{}},
		"complete":     {cfg: SalesforceOAuth{SalesforceClientID: "k", SalesforceRedirectURL: "https://c.example.com/oauth/salesforce/callback", SalesforceLoginURL: "https://login.salesforce.com"}},
		"no redirect":  {cfg: SalesforceOAuth{SalesforceClientID: "k"}, want: "CRMSYNC_SALESFORCE_REDIRECT_URL is required"},
		"bad redirect": {cfg: SalesforceOAuth{SalesforceClientID: "k", SalesforceRedirectURL: "c.example.com/cb"}, want: "want an http(s) URL"},
		"bad return":   {cfg: SalesforceOAuth{SalesforceClientID: "k", SalesforceRedirectURL: "https://c.example.com/cb", SalesforceReturnURL: "ftp://x"}, want: "CRMSYNC_SALESFORCE_RETURN_URL"},
		"bad login":    {cfg: SalesforceOAuth{SalesforceClientID: "k", SalesforceRedirectURL: "https://c.example.com/cb", SalesforceLoginURL: "login"}, want: "CRMSYNC_SALESFORCE_LOGIN_URL"},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" {
			require.NoError(t, err, name)
		} else {
			require.ErrorContains(t, err, tc.want, name)
		}
	}
}

func TestServerLogValueMasksSalesforceSecret(t *testing.T) {
	t.Parallel()
	s := Server{SalesforceOAuth: SalesforceOAuth{SalesforceClientID: "key", SalesforceClientSecret: "very-secret"}}
	out := slog.AnyValue(s).Resolve().String()
	require.NotContains(t, out, "very-secret")
	require.Contains(t, out, "key")
}
