package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
)

// fakeSalesforceCmd serves sffake, the fake Salesforce org, as a process
// for the demo and the benchmarks. It prints the connectCrm mutation that
// connects a workspace to it (the fake's login URL, its connected app's
// credentials and a refresh token of its integration user), ready to paste
// into GraphiQL, and how to try the OAuth web flow against it.
type fakeSalesforceCmd struct {
	Listen   string        `default:"127.0.0.1:8089" help:"Address to listen on (port 0 picks a free port)."`
	PubSub   string        `name:"pubsub-listen" default:"127.0.0.1:0" help:"Address the Pub/Sub API (Change Data Capture) listens on (port 0 picks a free port); a connection's pubsubEndpoint is http:// and this address."`
	Latency  time.Duration `help:"Latency added to every call (benchmarks use 150ms)."`
	DailyMax int           `name:"daily-max" default:"15000" help:"DailyApiRequests allocation; calls beyond it get 403 REQUEST_LIMIT_EXCEEDED."`
}

func (c fakeSalesforceCmd) Run(e *env) error {
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("fake-salesforce: listen on %s: %w", c.Listen, err)
	}
	base := "http://" + ln.Addr().String()
	sf := sffake.New(sffake.Options{BaseURL: base, Latency: c.Latency, DailyMax: c.DailyMax})
	pln, err := net.Listen("tcp", c.PubSub)
	if err != nil {
		ln.Close()
		return fmt.Errorf("fake-salesforce: listen on %s: %w", c.PubSub, err)
	}
	sf.ServePubSub(pln)
	defer sf.StopPubSub()
	fmt.Fprint(e.stdout, connectMutation(base, pln.Addr().String(), sf.ClientID(), sf.ClientSecret(), sf.IssueRefreshToken(sf.IntegrationUserID())))
	srv := &http.Server{Handler: sf, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("fake-salesforce: serve: %w", err)
	case <-e.ctx.Done():
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("fake-salesforce: shut down: %w", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("fake-salesforce: serve: %w", err)
	}
	return nil
}

// connectMutation is what fake-salesforce prints: a GraphQL document (its
// comments are GraphQL comments) whose one operation connects a workspace
// to the fake org, and the settings that point serve's web flow and
// streaming (its Pub/Sub API at pubsub) at it.
func connectMutation(base, pubsub, clientID, clientSecret, refreshToken string) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) } // GraphQL strings escape as JSON's do
	host := strings.TrimPrefix(base, "http://")
	return `# A fake Salesforce org is running at ` + base + ` (Ctrl-C to stop).
#
# To stream its changes (Change Data Capture over its Pub/Sub API at
# ` + pubsub + `), add pubsubEndpoint: "http://` + pubsub + `" to config below,
# and allow that host:port too (serve streams by default, --streaming).
#
# crmsync reaches only Salesforce's own hosts unless told otherwise: start
# crmsync serve with CRMSYNC_ALLOW_CRM_HOSTS=` + host + `
# (or --allow-crm-host=` + host + `).
#
# Then connect a workspace: paste everything below into GraphiQL
# (http://127.0.0.1:8080/ of crmsync serve; it asks for the workspace
# token once) and run it. status comes back CONNECTED.
#
# Or try the OAuth web flow instead: start crmsync serve with that and
#   CRMSYNC_SALESFORCE_LOGIN_URL=` + base + `
#   CRMSYNC_SALESFORCE_CLIENT_ID=` + clientID + `
#   CRMSYNC_SALESFORCE_CLIENT_SECRET=` + clientSecret + `
#   CRMSYNC_SALESFORCE_REDIRECT_URL=http://127.0.0.1:8080/oauth/salesforce/callback
# and press Connect Salesforce in the console (http://127.0.0.1:8080/console),
# or open http://127.0.0.1:8080/oauth/salesforce/start?token=<workspace token>
# (the fake approves at once).
mutation ConnectFakeSalesforce {
  connectCrm(input: {
    connector: "salesforce"
    config: {loginUrl: ` + q(base) + `, clientId: ` + q(clientID) + `, apiVersion: "v62.0"}
    credentials: {clientSecret: ` + q(clientSecret) + `, refreshToken: ` + q(refreshToken) + `}
  }) {
    id connector status statusReason
    identity { userId username orgId instanceUrl }
    createdAt updatedAt
  }
}
`
}
