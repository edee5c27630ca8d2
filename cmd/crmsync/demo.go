package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/crmsync/crmsync/connectors/salesforce"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/internal/config"
	"github.com/crmsync/crmsync/internal/console"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
)

// demoCmd runs everything a newcomer needs to see crmsync work: embedded
// SQLite, a fake Salesforce org on loopback, a workspace connected through
// the real Salesforce connector plugin, seeded records, and a steady stream
// of changes on both sides.
type demoCmd struct {
	Dir           string        `name:"dir" placeholder:"DIR" help:"Data directory (default: a new temporary directory, removed on exit)."`
	Listen        string        `name:"listen" default:"127.0.0.1:8080" placeholder:"HOST:PORT" help:"Address of the GraphQL server and GraphiQL."`
	Rate          float64       `name:"rate" default:"1" help:"Simulated Conversion changes per second."`
	RepEvery      time.Duration `name:"rep-every" default:"20s" help:"How often a simulated sales rep edits a record in the fake org."`
	Latency       time.Duration `name:"latency" default:"50ms" help:"Latency the fake Salesforce adds to every call."`
	FlushInterval time.Duration `name:"flush-interval" default:"10s" help:"At most one flush per interval under a steady trickle."`
	PullInterval  time.Duration `name:"pull-interval" default:"30s" help:"How often Salesforce changes are pulled."`
}

func (c demoCmd) Run(e *env) error {
	if c.Rate <= 0 || c.Rate > 1000 {
		return fmt.Errorf("--rate must be between 0 and 1000 changes per second, got %g", c.Rate)
	}
	dir := c.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "crmsync-demo-")
		if err != nil {
			return fmt.Errorf("demo: create data directory: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}

	e = e.withProgress(func(step string) { fmt.Fprintf(e.stderr, "crmsync demo: %s\n", step) })
	e.step("starting a fake Salesforce org on loopback")
	org := sffake.New(sffake.Options{Latency: c.Latency, DailyMax: 1_000_000})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: listen for the fake Salesforce: %w", err)
	}
	orgURL := "http://" + ln.Addr().String()
	fake := &http.Server{Handler: org, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = fake.Serve(ln) }()
	defer fake.Close()
	// The fake's Pub/Sub API, so rep edits stream in as Change Data Capture.
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: listen for the fake Pub/Sub API: %w", err)
	}
	org.ServePubSub(pln)
	defer org.StopPubSub()

	global := *e.global
	global.DatabaseURL, global.DataDir = "", dir
	cfg := config.Server{
		Listen: c.Listen, GraphiQL: true, Introspection: true, ShutdownTimeout: 8 * time.Second,
		// The fake Salesforce and its Pub/Sub API listen on loopback: allowed explicitly.
		Sync: config.Sync{FlushInterval: c.FlushInterval, PullInterval: c.PullInterval, Streaming: true,
			AllowCRMHosts: []string{ln.Addr().String(), pln.Addr().String()}},
	}
	return runServer(e, global, cfg, func(ctx context.Context, a *app, baseURL string) error {
		d := &demo{cmd: c, e: e, a: a, org: org, orgURL: orgURL, out: e.stdout, logger: global.Logger(e.stderr)}
		if err := d.setUp(ctx, baseURL); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		d.simulate(ctx)
		return nil
	})
}

type demo struct {
	cmd    demoCmd
	e      *env
	a      *app
	org    *sffake.Server
	orgURL string
	out    io.Writer
	logger *slog.Logger
	ws     int64
}

var (
	demoFirst  = []string{"Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Radia", "Ken", "Margaret", "Dennis"}
	demoLast   = []string{"Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Perlman", "Thompson", "Hamilton", "Ritchie"}
	demoTitles = []string{"CEO", "CTO", "VP Engineering", "Head of Marketing", "Developer", "Analyst", "Buyer"}
	demoCos    = []struct{ id, name, site string }{
		{"co-analytical", "Analytical Engines", "analytical.example"},
		{"co-bletchley", "Bletchley Park", "bletchley.example"},
		{"co-harvard", "Harvard Mark I", "harvard.example"},
		{"co-apollo", "Apollo Guidance", "apollo.example"},
	}
)

func (d *demo) setUp(ctx context.Context, baseURL string) error {
	ws, issued, err := d.a.workspaces.Create(ctx, "demo")
	if err != nil {
		return err
	}
	d.ws = ws.ID
	d.e.step("launching the Salesforce connector plugin and connecting the workspace to the fake org")
	cfg, _ := json.Marshal(salesforce.Config{LoginURL: d.orgURL, ClientID: d.org.ClientID(), PubSubEndpoint: "http://" + d.org.PubSubAddr()})
	creds, _ := json.Marshal(salesforce.Credentials{ClientSecret: d.org.ClientSecret(), RefreshToken: d.org.IssueRefreshToken(d.org.IntegrationUserID())})
	if _, err := d.a.resolver.Connections.Connect(ctx, ws.ID, salesforce.Name, cfg, creds); err != nil {
		return fmt.Errorf("connect the fake org through the Salesforce connector: %w", err)
	}
	// Titles and phones sync both ways, so the rep's edits come back and
	// conflicts show in the sync log; everything else keeps the defaults.
	for _, f := range [][2]string{{"title", "Title"}, {"phone", "Phone"}} {
		m := prefs.FieldMapping{RecordType: record.TypeContact, Field: f[0], CRMField: f[1], Mode: prefs.TwoWay}
		if err := d.a.resolver.Prefs.SetField(ctx, ws.ID, m); err != nil {
			return err
		}
	}
	d.e.step("seeding %d companies, 2 campaigns and %d contacts", len(demoCos), len(demoFirst))
	if err := d.seed(ctx); err != nil {
		return err
	}
	page, err := console.GraphiQL(console.GraphiQLOptions{Title: "crmsync demo", Token: issued.Token, Tabs: demoTabs, StorageKey: "crmsync.demo:"})
	if err != nil {
		return err
	}
	d.a.server.Handle("GET /demo", page)
	d.banner(baseURL, issued.Token)
	return nil
}

func (d *demo) seed(ctx context.Context) error {
	now := time.Now()
	var changes []outbound.Change
	fields := func(kv ...any) map[string]outbound.FieldChange {
		out := map[string]outbound.FieldChange{}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = outbound.FieldChange{Value: kv[i+1], ChangedAt: now}
		}
		return out
	}
	for _, co := range demoCos {
		changes = append(changes, outbound.Change{Type: record.TypeCompany, ID: co.id, Source: record.SourceImport,
			Fields: fields("name", co.name, "website", "https://www."+co.site)})
	}
	for _, camp := range []string{"Spring Launch", "Webinar Series"} {
		changes = append(changes, outbound.Change{Type: record.TypeCampaign, ID: "camp-" + camp, Source: record.SourceImport,
			Fields: fields("name", camp, "status", "Planned")})
	}
	for i := range demoFirst {
		co := demoCos[i%len(demoCos)]
		changes = append(changes, outbound.Change{Type: record.TypeContact, ID: demoContactID(i), Source: record.SourceImport,
			Fields: fields("email", fmt.Sprintf("%s.%s@%s", demoFirst[i], demoLast[i], co.site), "firstName", demoFirst[i],
				"lastName", demoLast[i], "company", co.name, "companyId", co.id, "title", demoTitles[i%len(demoTitles)])})
	}
	for i := 0; i < len(demoFirst); i += 2 {
		m, err := outbound.Membership("camp-Spring Launch", demoContactID(i), outbound.MemberAdd, ptr("Sent"), record.SourceWorkflow, now)
		if err != nil {
			return err
		}
		changes = append(changes, m)
	}
	_, err := d.a.resolver.Ingester.Ingest(ctx, d.ws, changes)
	return err
}

// demoTabs are the operations /demo opens with.
var demoTabs = []console.Tab{
	{Query: `# The sync overview: usage against both limits, the queue, pause state.
{
  syncOverview {
    queuedBatchItems
    queuedByRecordType { recordType queued }
    failedItems
    paused
    pauseReason
    crmDailyLimit { used max }
    conversionDailyLimit { used limit }
    lastBatchAt
  }
}`},
	{Query: `# The latest batches, with every record and field decision.
{
  syncLogs(first: 5) {
    edges {
      node {
        direction status message created updated skipped apiCalls
        records(first: 20) {
          totalCount
          edges {
            node {
              recordType recordId crmObject outcome reason
              fields { field crmField mode sent reason }
            }
          }
        }
      }
    }
  }
}`},
	{Query: `# Queue a change made in Conversion; it reaches the fake org at the next flush.
mutation RecordChanges($changes: [RecordChangeInput!]!) {
  recordChanges(input: $changes) { accepted queued }
}`, Variables: `{
  "changes": [
    {
      "recordType": "CONTACT",
      "recordId": "contact-00",
      "source": "UI",
      "fields": [{ "name": "title", "value": "Chief Analyst" }]
    }
  ]
}`},
	{Query: `# Change how a field syncs: Salesforce always wins for phone numbers.
mutation Preference {
  updateFieldSyncPreference(input: {
    recordType: CONTACT, field: "phone", crmField: "Phone", mode: ALWAYS_PREFER_SALESFORCE
  }) { recordType field crmField mode }
}`},
	{Query: `# Live: the overview, pushed on every change (graphql-transport-ws).
subscription {
  syncOverviewUpdated {
    queuedBatchItems
    queuedByRecordType { recordType queued }
    lastBatchAt
    paused
    pauseReason
  }
}`},
}

func demoContactID(i int) string { return fmt.Sprintf("contact-%02d", i) }

func ptr[T any](v T) *T { return &v }

func (d *demo) banner(baseURL, token string) {
	fmt.Fprintf(d.out, `
crmsync demo is running.

  GraphiQL (token filled in): %[1]s/demo
  GraphQL endpoint:           %[1]s/graphql
  API token:                  %[2]s
  Fake Salesforce org:        %[3]s

Try in GraphiQL:

  { syncOverview { queuedBatchItems failedItems paused pauseReason
      crmDailyLimit { used max } conversionDailyLimit { used limit } lastBatchAt } }

  { syncLogs(first: 5) { edges { node { direction status message created updated skipped apiCalls
      records(first: 20) { totalCount edges { node { recordType recordId crmObject outcome reason
        fields { field crmField mode sent reason } } } } } } } }

  { record(type: CONTACT, id: "contact-00") { crmObject crmId fields { name value source changedAt }
      history { outcome reason } } }

  subscription { syncOverviewUpdated { queuedBatchItems lastBatchAt paused } }

Or with curl:

  curl -s %[1]s/graphql -H 'Authorization: Bearer %[2]s' \
    -H 'Content-Type: application/json' -d '{"query":"{ syncOverview { queuedBatchItems lastBatchAt } }"}'

Simulated: %[4]g Conversion change(s) per second, and a sales rep editing a Lead's title
in Salesforce every %[5]s. Press Ctrl-C to stop.
`, baseURL, token, d.orgURL, d.cmd.Rate, d.cmd.RepEvery)
}

// simulate makes Conversion changes at the configured rate and has a sales
// rep edit the fake org now and then, until ctx ends.
func (d *demo) simulate(ctx context.Context) {
	changes := time.NewTicker(time.Duration(float64(time.Second) / d.cmd.Rate))
	defer changes.Stop()
	rep := time.NewTicker(d.cmd.RepEvery)
	defer rep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changes.C:
			if err := d.conversionChange(ctx); err != nil && ctx.Err() == nil {
				d.logger.Warn("demo: simulated change", slog.Any("error", err))
			}
		case <-rep.C:
			if err := d.repEdit(); err != nil {
				d.logger.Warn("demo: simulated rep edit", slog.Any("error", err))
			}
		}
	}
}

func (d *demo) conversionChange(ctx context.Context) error {
	i := rand.IntN(len(demoFirst))
	now := time.Now()
	var c outbound.Change
	switch rand.IntN(10) {
	case 0:
		c = outbound.Change{Type: record.TypeCompany, ID: demoCos[rand.IntN(len(demoCos))].id, Source: record.SourceUI,
			Fields: map[string]outbound.FieldChange{"phone": {Value: fmt.Sprintf("+1 555 %04d", rand.IntN(10000)), ChangedAt: now}}}
	case 1:
		m, err := outbound.Membership("camp-Webinar Series", demoContactID(i), outbound.MemberAdd, ptr("Responded"), record.SourceForm, now)
		if err != nil {
			return err
		}
		c = m
	default:
		c = outbound.Change{Type: record.TypeContact, ID: demoContactID(i), Source: record.SourceUI,
			Fields: map[string]outbound.FieldChange{
				"phone": {Value: fmt.Sprintf("+44 20 %04d %04d", rand.IntN(10000), rand.IntN(10000)), ChangedAt: now},
				"title": {Value: demoTitles[rand.IntN(len(demoTitles))], ChangedAt: now},
			}}
	}
	_, err := d.a.resolver.Ingester.Ingest(ctx, d.ws, []outbound.Change{c})
	return err
}

// repEdit changes a synced Lead's title as the org's sales rep.
func (d *demo) repEdit() error {
	leads := d.org.All("Lead")
	if len(leads) == 0 {
		return nil
	}
	lead := leads[rand.IntN(len(leads))]
	id, _ := lead["Id"].(string)
	if id == "" {
		return errors.New("a lead without an Id")
	}
	return d.org.EditAsUser(d.org.RepUserID(), "Lead", id, map[string]any{"Title": "Rep's pick: " + demoTitles[rand.IntN(len(demoTitles))]})
}
