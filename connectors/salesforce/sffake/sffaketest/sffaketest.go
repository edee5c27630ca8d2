// Package sffaketest serves the fake Salesforce org (package sffake) in
// tests. It is apart from sffake so that the server binary, which links
// sffake for its demo and fake-salesforce commands, never links the testing
// packages.
package sffaketest

import (
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
)

// Start serves a new sffake.Server (frozen clock at 2024-05-01T12:00:00Z,
// opts otherwise as given) on an httptest server closed at the end of the
// test; the server's URL is its instance URL.
func Start(t testing.TB, opts ...sffake.Options) *sffake.Server {
	t.Helper()
	var o sffake.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Clock == nil {
		o.Clock = sffake.NewClock(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC))
	}
	s := sffake.New(o)
	ts := httptest.NewServer(s)
	s.SetBaseURL(ts.URL)
	t.Cleanup(ts.Close)
	return s
}

// StartPubSub serves s's Pub/Sub API (Change Data Capture) on a loopback
// port until the test ends, and returns its address.
func StartPubSub(t testing.TB, s *sffake.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sffake pub/sub listen: %v", err)
	}
	s.ServePubSub(lis)
	t.Cleanup(s.StopPubSub)
	return lis.Addr().String()
}
