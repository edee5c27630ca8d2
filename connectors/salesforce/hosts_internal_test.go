package salesforce

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
)

func TestLoginHostPolicy(t *testing.T) {
	t.Parallel()
	allowed := map[string]bool{
		"https://login.salesforce.com":                    true,
		"https://test.salesforce.com":                     true,
		"https://LOGIN.salesforce.com":                    true,
		"https://acme.my.salesforce.com":                  true,
		"https://acme--uat.sandbox.my.salesforce.com":     true,
		"https://acme.lightning.force.com":                true,
		"https://acme--uat.sandbox.lightning.force.com":   true,
		"https://login.salesforce.com:443":                true,
		"http://login.salesforce.com":                     false, // scheme
		"https://login.salesforce.com:8443":               false, // port
		"https://na1.salesforce.com":                      false, // an instance, not a login host
		"https://login.salesforce.com.evil.example":       false,
		"https://evilsalesforce.com":                      false,
		"https://evil.example":                            false,
		"https://169.254.169.254":                         false,
		"https://10.0.0.1":                                false,
		"https://127.0.0.1":                               false,
		"https://[::1]":                                   false,
		"https://localhost":                               false,
		"https://metadata.google.internal":                false,
		"https://my.salesforce.com":                       false,
		"https://a_b.my.salesforce.com":                   false,
		"https://acme.my.salesforce.com.169.254.169.254":  false,
		"https://0x7f000001":                              false,
		"https://2130706433":                              false,
		"https://acme.my.salesforce.com@169.254.169.254/": false,
	}
	for raw, want := range allowed {
		err := hostPolicy{}.checkURL(raw, true)
		if want {
			require.NoError(t, err, raw)
			continue
		}
		require.ErrorIs(t, err, ErrHostNotAllowed, raw)
		require.Equal(t, hostNotAllowed().Error(), err.Error(), "one text for every refusal: %s", raw)
	}
	// Instance URLs may be any Salesforce host.
	require.NoError(t, hostPolicy{}.checkURL("https://na1.salesforce.com", false))
	require.ErrorIs(t, hostPolicy{}.checkURL("https://na1.salesforce.com.evil.example", false), ErrHostNotAllowed)
	// Operator-allowed hosts, by host or host:port.
	p := hostPolicy{allowed: []string{"127.0.0.1", "fake.internal:8080"}}
	require.NoError(t, p.checkURL("http://127.0.0.1:1234", true))
	require.NoError(t, p.checkURL("https://fake.internal:8080", true))
	require.ErrorIs(t, p.checkURL("https://fake.internal:8081", true), ErrHostNotAllowed)
	require.ErrorIs(t, p.checkURL("https://10.0.0.1", true), ErrHostNotAllowed)
}

func TestPublicAddr(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"13.110.1.1": true, "2a02:ff0::1": true, "8.8.8.8": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "100.64.0.1": false, "0.0.0.0": false, "255.255.255.255": false,
		"224.0.0.1": false, "::1": false, "fe80::1": false, "fc00::1": false, "::ffff:127.0.0.1": false,
		"::ffff:169.254.169.254": false, "64:ff9b::a9fe:a9fe": false, "2002:7f00:1::": false, "::": false,
		"198.18.0.1": false, "192.0.0.170": false,
	} {
		require.Equal(t, want, publicAddr(netip.MustParseAddr(addr)), addr)
	}
}

// TestDialRefusesPrivateAddressesAfterResolution: the dial check runs on
// the resolved address, so a name resolving to loopback is refused like
// the address itself, with the same error, and no connection is made
// whether the port is open or closed.
func TestDialRefusesPrivateAddressesAfterResolution(t *testing.T) {
	t.Parallel()
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
	_, open, _ := net.SplitHostPort(ln.Addr().String())
	closed := freePort(t)
	dial := hostPolicy{}.dialer(&net.Dialer{Timeout: 2 * time.Second})
	for _, addr := range []string{"localhost:" + open, "localhost:" + closed, "127.0.0.1:" + open,
		"127.0.0.1:" + closed, "[::1]:" + open, "169.254.169.254:443", "10.255.255.1:443"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := dial(ctx, "tcp", addr)
		cancel()
		if conn != nil {
			_ = conn.Close()
		}
		require.ErrorIs(t, err, ErrHostNotAllowed, addr)
	}
	require.Zero(t, accepted.Load(), "no connection reached the listener")

	// An operator-allowed host is dialled as asked.
	conn, err := hostPolicy{allowed: []string{"127.0.0.1"}}.dialer(&net.Dialer{})(context.Background(), "tcp", "127.0.0.1:"+open)
	require.NoError(t, err)
	_ = conn.Close()
}

// TestRedirectsAreNotFollowed: a token endpoint on an allowed host that
// redirects elsewhere does not make the connector call the other host.
func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(target.Close)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	_, port, _ := net.SplitHostPort(redirector.Listener.Addr().String())
	c := New(WithAllowedHosts("127.0.0.1:" + port))
	sess := NewSession(Config{LoginURL: redirector.URL, ClientID: "cid"}, Credentials{ClientSecret: "s", RefreshToken: "rt"})
	_, err := c.Check(context.Background(), connector.CheckRequest{Session: sess})
	require.Error(t, err)
	require.Zero(t, hits.Load(), "the redirect was not followed")
}

// TestConnectorRefusesWithOneText: Check with a loginUrl that is not
// allowed fails with the one refusal, whatever the host, and makes no call.
func TestConnectorRefusesWithOneText(t *testing.T) {
	t.Parallel()
	c := New()
	for _, login := range []string{"https://169.254.169.254", "http://127.0.0.1:1", "https://127.0.0.1:" + freePort(t),
		"https://evil.example", "https://localhost:8443"} {
		sess := NewSession(Config{LoginURL: login, ClientID: "cid"}, Credentials{ClientSecret: "s", RefreshToken: "rt"})
		_, err := c.Check(context.Background(), connector.CheckRequest{Session: sess})
		require.ErrorIs(t, err, ErrHostNotAllowed, login)
		var ce *connector.Error
		require.True(t, errors.As(err, &ce), login)
		require.Equal(t, connector.KindInvalid, ce.Kind, login)
		require.Equal(t, hostNotAllowed().Error(), err.Error(), login)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, ln.Close())
	return port
}
