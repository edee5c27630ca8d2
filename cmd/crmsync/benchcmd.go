package main

import (
	"context"
	"time"

	"github.com/crmsync/crmsync/internal/bench"
	"github.com/crmsync/crmsync/internal/config"
)

// benchCmd measures crmsync against a fake Salesforce org with a per-call
// latency (the harness is internal/bench; this is its command line).
type benchCmd struct {
	Scenario   string        `name:"scenario" enum:"burst,trickle,backlog,limit,ingest,budget,inbound,import" default:"burst" help:"burst, trickle, backlog, limit, ingest, budget, inbound or import (see docs/benchmarks.md)."`
	JSON       bool          `name:"json" help:"Print the report as JSON."`
	Latency    time.Duration `name:"latency" default:"150ms" help:"Base latency the fake Salesforce adds to every call, in both cost models."`
	CostModel  string        `name:"cost-model" enum:"realistic,flat" default:"realistic" help:"How the fake Salesforce spends time: realistic (per record by object and operation, 25 concurrent long requests, row locks) or flat (--latency per call, whatever it carries); see docs/benchmarks.md."`
	CostWrite  time.Duration `name:"cost-per-record" default:"0s" help:"realistic: time per record written (create, update, upsert, delete) for every object instead of the model's figures (0: the model's)."`
	Changes    int           `name:"changes" default:"0" help:"Changes to send (default: burst 20,000, backlog 100,000, limit 2,000; import: contacts to create, 100,000)."`
	Records    int           `name:"records" default:"0" help:"Distinct records they touch (default: burst 2,000, backlog 20,000, limit 500; import: companies, 20,000)."`
	Clients    int           `name:"clients" default:"8" help:"ingest: concurrent GraphQL clients."`
	Duration   time.Duration `name:"duration" default:"10s" help:"ingest: how long each batch size is measured."`
	Rate       float64       `name:"rate" default:"1" help:"trickle, inbound: changes (rep edits) per second on average (random, Poisson arrivals)."`
	For        time.Duration `name:"for" default:"2m" help:"trickle, inbound: how long changes arrive."`
	Interval   time.Duration `name:"interval" default:"10s" help:"The flush interval (and the fixed schedule's tick in trickle)."`
	ClosedLoop bool          `name:"closed-loop" help:"trickle: send one change, wait until the fake org has it, send the next (per schedule), instead of Poisson arrivals."`
	Allowance  int64         `name:"allowance" default:"0" help:"trickle: the fake org's daily API allowance (default 100,000; other scenarios: unlimited)."`
	Cap        int64         `name:"cap" default:"0" help:"trickle: a crmsync daily limit on the budget-paced side (0: none); budget: the limit of the simulated day (default 2,000)."`
	CPUProfile string        `name:"cpuprofile" type:"path" help:"Write a CPU profile of the whole run (engine, GraphQL server and fake org) to this file."`
	MemProfile string        `name:"memprofile" type:"path" help:"Write a heap profile (allocations of the whole run) to this file at the end, and one of the live heap at its peak to FILE.peak."`
	Replicas   int           `name:"replicas" default:"1" help:"ingest: crmsync serve replicas on the one PostgreSQL (this process and N-1 child processes); the clients spread their calls over them in turn."`
	BatchSizes []int         `name:"batch-sizes" default:"1,100,1000" help:"ingest: changes per call, each measured for --duration."`
	// BulkThreshold is import's connection bulkThreshold.
	BulkThreshold int `name:"bulk-threshold" default:"0" help:"import: the connection's bulkThreshold, above which a group of writes goes by Bulk API 2.0 (0: the connector's default, 10,000; 1000000000: REST only)."`
}

func (c benchCmd) Run(e *env) error {
	serve := func(global config.Global, cfg config.Server, ready func(context.Context, *bench.Server) error) error {
		return runServer(e, global, cfg, func(ctx context.Context, a *app, baseURL string) error {
			return ready(ctx, &bench.Server{DB: a.db, Workspaces: a.workspaces, Connections: a.resolver.Connections,
				Ingester: a.resolver.Ingester, Engine: a.engine, NewEngine: a.newEngine, BaseURL: baseURL})
		})
	}
	return bench.Run(bench.Options(c), *e.global, serve, e.stdout, e.stderr)
}
