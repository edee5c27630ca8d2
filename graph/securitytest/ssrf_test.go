package securitytest

import (
	"net"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/internal/db/dbtest"
)

// TestConnectCrmIsNoRequestForgeryChannel: connectCrm with a Salesforce
// loginUrl naming a link-local metadata address, a private or loopback
// address (open or closed port, http or https), or a host that is not
// Salesforce's is refused with one and the same error, and no connection
// reaches a listener on loopback, so a workspace token cannot use the
// server to reach or map internal services.
func TestConnectCrmIsNoRequestForgeryChannel(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		_, token := b.newWorkspace(t, "Acme")

		var accepted atomic.Int64
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted.Add(1)
				_ = c.Close()
			}
		}()
		open := ln.Addr().String()
		closedLn, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		closed := closedLn.Addr().String()
		require.NoError(t, closedLn.Close())

		var messages []string
		for _, login := range []string{
			"https://169.254.169.254", "http://169.254.169.254", "https://[fd00:ec2::254]",
			"http://" + open, "https://" + open, "http://" + closed, "https://" + closed,
			"http://localhost:" + portOf(open), "https://10.0.0.1", "https://192.168.0.1:8443",
			"https://evil.example.com", "https://login.salesforce.com.evil.example.com", "https://metadata.google.internal",
		} {
			resp := b.query(t, token, `mutation($in: ConnectCrmInput!) { connectCrm(input: $in) { id } }`, map[string]any{"in": map[string]any{
				"connector": "salesforce", "config": map[string]any{"loginUrl": login, "clientId": "cid"},
				"credentials": map[string]any{"clientSecret": "s", "refreshToken": "rt"},
			}})
			require.NotEmpty(t, resp.Errors, "%s: %s", login, resp.Body)
			messages = append(messages, resp.Errors[0].Message)
			require.Equal(t, messages[0], resp.Errors[0].Message, "one error text for every refusal (%s)", login)
			require.NotContains(t, resp.Errors[0].Message, "dial", login)
		}
		require.Contains(t, messages[0], "host not allowed")
		require.Zero(t, accepted.Load(), "nothing reached the loopback listener")
	})
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}
