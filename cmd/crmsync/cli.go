package main

import (
	"github.com/crmsync/crmsync/internal/config"
)

// cli is the command line. Global settings apply to every command.
type cli struct {
	config.Global `embed:""`

	Serve          serveCmd          `cmd:"" help:"Serve the GraphQL API and run the sync workers."`
	Migrate        migrateCmd        `cmd:"" help:"Migrate the database (crmsync's tables and River's)."`
	Workspace      workspaceCmd      `cmd:"" help:"Administer workspaces."`
	Token          tokenCmd          `cmd:"" help:"Administer API tokens."`
	Connector      connectorCmd      `cmd:"" help:"Serve a built-in connector as a plugin process (started by crmsync itself)."`
	FakeSalesforce fakeSalesforceCmd `cmd:"" name:"fake-salesforce" help:"Serve a fake Salesforce org (for the demo and benchmarks) and print its credentials."`
	Demo           demoCmd           `cmd:"" help:"Run crmsync against a fake Salesforce org with simulated changes: the quickest way to see it work."`
	Bench          benchCmd          `cmd:"" help:"Measure API calls, latency and throughput against a fake Salesforce org with per-call latency."`
	Forecast       forecastCmd       `cmd:"" help:"Print what draining a workspace's outbound queue would take: records to create and update, API calls, duration, and whether it fits today's budget (no CRM call)."`

	// Commands added by later features go here, each in its own file:
}
