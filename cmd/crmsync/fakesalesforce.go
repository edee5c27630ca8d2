package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
)

// fakeSalesforceCmd serves sffake, the fake Salesforce org, as a process
// for the demo and the benchmarks. It prints what a connection needs: the
// instance and login URL, the connected app's credentials and a refresh
// token of the integration user.
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
	fmt.Fprintf(e.stdout, "base_url=%s\nlogin_url=%s\nclient_id=%s\nclient_secret=%s\nrefresh_token=%s\nintegration_user_id=%s\npubsub_endpoint=http://%s\n",
		base, base, sf.ClientID(), sf.ClientSecret(), sf.IssueRefreshToken(sf.IntegrationUserID()), sf.IntegrationUserID(), pln.Addr())
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
