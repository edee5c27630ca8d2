package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/crmplugin"
	"github.com/crmsync/crmsync/graph"
	"github.com/crmsync/crmsync/internal/config"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/events"
	"github.com/crmsync/crmsync/internal/httpserver"
	"github.com/crmsync/crmsync/internal/inbound"
	"github.com/crmsync/crmsync/internal/metrics"
	"github.com/crmsync/crmsync/internal/oauthflow"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/overview"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/push"
	"github.com/crmsync/crmsync/internal/record"
	"github.com/crmsync/crmsync/internal/replica"
	"github.com/crmsync/crmsync/internal/riverweb"
	"github.com/crmsync/crmsync/internal/secret"
	"github.com/crmsync/crmsync/internal/synclog"
	"github.com/crmsync/crmsync/internal/workspace"
	"github.com/crmsync/crmsync/jobs"
)

type serveCmd struct {
	config.Server `embed:""`
}

// app is everything serve runs, wired from the database and the config by
// newApp. Later features add their services here, hand them to the
// resolver in newApp, register their River workers in newApp, and mount
// their HTTP routes (server.Handle) there too.
type app struct {
	db         *bun.DB
	registry   *prometheus.Registry
	secretKey  []byte // 32 bytes: encrypts CRM credentials at rest
	workspaces *workspace.Service
	auth       *workspace.Authenticator
	river      *river.Client[*sql.Tx]
	working    bool // River works jobs (some worker is registered), not insert-only
	resolver   *graph.Resolver
	server     *httpserver.Server
	riverUI    *riverweb.UI

	plugins *crmplugin.Host
	engine  *push.Engine
	// newEngine builds another engine over the same database and
	// connectors with other settings (the bench's simulated day).
	puller    *inbound.Puller
	newEngine func(push.Config) *push.Engine
	bus       eventBus
	conns     *connection.Store
	sched     *jobs.Scheduler
}

// eventBus is the events.Bus of one process (SQLite) or the PGBus shared by
// every replica (see runBus).
type eventBus interface {
	events.Publisher
	graph.Subscriber
}

// runBus runs the bus's listener, if any, until ctx ends, and waits for it
// to be listening.
func runBus(ctx context.Context, bus eventBus) (wait func()) {
	pg, ok := bus.(*events.PGBus)
	if !ok {
		return func() {}
	}
	ready, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		pg.Run(ctx, ready)
	}()
	select {
	case <-ready:
	case <-done:
	case <-time.After(10 * time.Second):
	}
	return func() { <-done }
}

// newApp builds the services, the River client and the HTTP handler.
func newApp(bdb *bun.DB, global *config.Global, cfg config.Server, secretKey []byte, id replica.Identity, logger *slog.Logger) (*app, error) {
	a := &app{db: bdb, registry: prometheus.NewRegistry(), secretKey: secretKey}
	a.workspaces = workspace.NewService(bdb)
	a.auth = workspace.NewAuthenticator(a.workspaces, cfg.AdminToken.Reveal())

	box, err := secret.NewBox(secretKey)
	if err != nil {
		return nil, err
	}
	a.bus = events.NewBus()
	if db.DialectOf(bdb) == db.Postgres {
		a.bus = events.NewPGBus(bdb, global.DatabaseURL, logger)
	}
	external, err := cfg.External()
	if err != nil {
		return nil, err
	}
	observer := metrics.NewObserver()
	if err := observer.Register(a.registry); err != nil {
		return nil, err
	}
	if err := a.registry.Register(metrics.NewCollector(bdb, logger)); err != nil {
		return nil, fmt.Errorf("register sync state metrics: %w", err)
	}
	if err := a.registry.Register(inbound.NewStreamCollector(bdb, logger)); err != nil {
		return nil, fmt.Errorf("register inbound stream metrics: %w", err)
	}
	a.plugins, err = crmplugin.NewHost(crmplugin.HostConfig{Logger: logger, External: pluginExternals(external), OnRestart: observer.PluginRestarted,
		OnStartFailure: func(name string, kind crmplugin.StartFailure) { observer.PluginStartFailed(name, string(kind)) },
		StartBackoff:   cfg.PluginStartBackoff, BuiltinArgs: cfg.AllowCRMHostArgs()})
	if err != nil {
		return nil, err
	}
	crms := knownConnectors{host: a.plugins, external: external}
	store := connection.NewStore(bdb, box)
	notices := eventNotifier{bus: a.bus, logger: logger, metrics: observer}
	a.conns = store
	a.newEngine = func(ec push.Config) *push.Engine { return push.New(bdb, store, crms, notices, logger, ec) }
	paced := cfg.Schedule() == "budget"
	a.engine = push.New(bdb, store, crms, notices, logger, push.Config{LeaseTTL: cfg.Lease, Owner: id.Owner(),
		Pace: push.PaceConfig{Enabled: paced, Share: cfg.BudgetShare / 100, Burst: float64(cfg.PaceBurst)}})

	// River: one client inserting and working jobs.
	workers := river.NewWorkers()
	flushWorker := jobs.NewFlushWorker(bdb, a.engine, cfg.FlushInterval, logger)
	if paced {
		flushWorker.WithPacing(cfg.Settle())
	}
	river.AddWorker(workers, flushWorker)
	river.AddWorker(workers, jobs.NewSweepWorker(bdb))
	puller := inbound.New(bdb, store, crms, a.engine, a.bus, logger, inbound.Config{LeaseTTL: cfg.Lease, Owner: id.Owner()})
	a.puller = puller
	river.AddWorker(workers, jobs.NewPullWorker(puller, cfg.PullInterval, logger))
	river.AddWorker(workers, jobs.NewPullSweepWorker(bdb))
	periodic := []*river.PeriodicJob{
		jobs.SweepPeriodic(cfg.Sweep()),
		// The sweep looks for due pulls at least as often as they fall due.
		jobs.PullSweepPeriodic(min(time.Minute, cfg.PullInterval), cfg.PullInterval),
	}
	client, err := jobs.NewClient(bdb, logger, workers, periodic)
	if err != nil {
		_ = a.plugins.Close()
		return nil, err
	}
	a.river, a.working = client, true
	sched := jobs.NewScheduler(client, cfg.FlushInterval)
	a.sched = sched
	if paced {
		sched.WithPacing(cfg.Settle())
	}
	conns := connection.NewService(store, crms, sched)

	a.resolver = &graph.Resolver{
		Logger:      logger,
		Database:    db.NewHealth(bdb),
		Queue:       outbound.NewQueue(bdb),
		Records:     record.NewReader(bdb),
		SyncLog:     synclog.NewReader(bdb),
		Overview:    overview.NewService(bdb),
		Workspaces:  a.workspaces,
		Connections: conns,
		Prefs:       prefs.NewService(bdb, conns),
		Ingester: outbound.NewIngester(bdb, sched, notices, outbound.WithObserver(observer), outbound.WithLogger(logger),
			outbound.WithGroupCommit(outbound.GroupConfig{MaxWaiting: cfg.IngestMaxWaiting, MaxGroupChanges: cfg.IngestMaxGroupChanges})),
		Flushes:   sched,
		Planner:   a.engine,
		Events:    a.bus,
		Publisher: a.bus,
	}
	gql := graph.NewHandler(a.resolver, graph.HandlerOptions{
		Logger:         logger,
		Authenticate:   a.auth.Authenticate,
		AllowedOrigins: cfg.Origins(),
		Introspection:  cfg.Introspection,
	})
	a.server, err = httpserver.New(httpserver.Deps{
		Logger:         logger,
		DB:             bdb,
		GraphQL:        gql,
		Authenticate:   a.auth.Authenticate,
		Registry:       a.registry,
		GraphiQL:       cfg.GraphiQL,
		AllowedOrigins: cfg.Origins(),
		BodyRate:       cfg.RequestRate << 10,
		RequestRate:    cfg.RequestCountRate,
	})
	if err != nil {
		return nil, err
	}
	// River's own UI, for the admin token.
	if a.riverUI, err = riverweb.New(client, logger, cfg.AdminToken.Reveal()); err != nil {
		return nil, err
	}
	a.riverUI.Mount(a.server)
	if cfg.SalesforceClientID != "" {
		flow, err := oauthflow.New(oauthflow.Config{
			ClientID: cfg.SalesforceClientID, ClientSecret: cfg.SalesforceClientSecret,
			LoginURL: cfg.SalesforceLoginURL, RedirectURL: cfg.SalesforceRedirectURL, ReturnURL: cfg.SalesforceReturnURL,
		}, oauthflow.Deps{
			Logger: logger, SecretKey: secretKey, Authenticate: a.auth.Authenticate, Connections: conns,
			Connected: notices.QueueChanged,
		})
		if err != nil {
			return nil, err
		}
		flow.Mount(a.server)
	}
	return a, nil
}

// Run serves until the context ends: database → migrations → River →
// HTTP, and back down in reverse on SIGINT/SIGTERM.
func (c serveCmd) Run(e *env) error {
	return runServer(e, *e.global, c.Server, nil)
}

// streamSuperviseInterval is how often the stream supervisor looks for
// workspaces to stream (new connections, streams to retry).
const streamSuperviseInterval = 5 * time.Second

// runServer runs a server with the given settings until e.ctx ends. ready,
// when set, runs once the server is up (River working, HTTP listening) with
// the app and the server's base URL; its error stops the server. The demo
// uses it to set up its workspace and start its simulations.
func runServer(e *env, global config.Global, cfg config.Server, ready func(ctx context.Context, a *app, baseURL string) error) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	logger := global.Logger(e.stderr)
	ctx := e.ctx

	// Bind first: a port in use fails at once, before the database is
	// opened or migrated.
	ln, err := httpserver.Listen(cfg.Listen)
	if err != nil {
		return err
	}
	defer ln.Close() // Serve closes it too; this covers the early returns

	e.step("opening the database (%s) and applying migrations", databaseName(global))
	bdb, err := db.Open(ctx, global.DatabaseURL, global.DataDir, logger)
	if err != nil {
		return err
	}
	defer bdb.Close()
	logger.Info("crmsync: starting", slog.Any("config", global), slog.Any("serve", cfg))

	if err := migrateOnStart(ctx, cfg, bdb, logger); err != nil {
		return err
	}
	key, generated, err := cfg.SecretKeyBytes(global.DataDir)
	if err != nil {
		return err
	}
	if generated {
		logger.Warn("generated a secret key for CRM credentials; keep it, and set CRMSYNC_SECRET_KEY on every replica sharing this database",
			slog.String("file", global.DataDir+"/"+config.SecretKeyFile))
	}

	id, releaseID, err := replica.Resolve(cfg.ReplicaID, global.DataDir)
	if err != nil {
		return err
	}
	defer releaseID()
	if !id.Stable {
		logger.Warn("another live process uses this data directory: this one runs under a random replica id, so after a crash its leases expire instead of being taken over (set --replica-id)",
			slog.String("data_dir", global.DataDir))
	}
	a, err := newApp(bdb, &global, cfg, key, id, logger)
	if err != nil {
		return err
	}
	defer a.plugins.Close() // after River stopped: no job calls a connector any more
	busCtx, stopBus := context.WithCancel(context.WithoutCancel(ctx))
	waitBus := runBus(busCtx, a.bus)
	defer func() { stopBus(); waitBus() }()
	if a.working {
		e.step("starting the sync workers (River)")
		if err := a.river.Start(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("start river: %w", err)
		}
	}
	if err := a.riverUI.Start(ctx); err != nil {
		_ = ln.Close()
		return fmt.Errorf("start river UI: %w", err)
	}
	var opsLn net.Listener
	if cfg.OpsListen != "" {
		if opsLn, err = httpserver.Listen(cfg.OpsListen); err != nil {
			_ = ln.Close()
			return err
		}
	}
	if a.working {
		resumeDeadLeases(ctx, a, id, logger)
	}
	if cfg.Streaming && a.working {
		// One supervisor per replica; the stream lease picks which replica
		// streams each workspace (docs/inbound.md).
		streamCtx, stopStreams := context.WithCancel(context.WithoutCancel(ctx))
		streamsDone := make(chan struct{})
		go func() {
			defer close(streamsDone)
			a.puller.Supervise(streamCtx, streamSuperviseInterval)
		}()
		defer func() { stopStreams(); <-streamsDone }()
	}
	baseURL := "http://" + displayAddr(ln.Addr())
	logger.Info("crmsync: serving", slog.String("graphql", baseURL+"/graphql"))

	serveCtx, stopServing := context.WithCancelCause(ctx)
	defer stopServing(nil)
	if ready != nil {
		go func() {
			if err := ready(serveCtx, a, baseURL); err != nil {
				stopServing(err)
			}
		}()
	}
	opsDone := make(chan error, 1)
	if opsLn != nil {
		go func() { opsDone <- httpserver.Serve(serveCtx, opsLn, a.server.Ops(), logger, cfg.ShutdownTimeout) }()
	} else {
		opsDone <- nil
	}
	// Serve returns once serveCtx ends and HTTP has drained.
	serveErr := httpserver.Serve(serveCtx, ln, a.server, logger, cfg.ShutdownTimeout)
	stopServing(nil)
	if err := <-opsDone; serveErr == nil {
		serveErr = err
	}
	var stopErr error
	if a.working {
		stopErr = stopRiver(a.river, cfg.ShutdownTimeout, logger)
	}
	if serveErr != nil {
		return serveErr
	}
	if stopErr != nil {
		return stopErr
	}
	if cause := context.Cause(serveCtx); ctx.Err() == nil && cause != nil && cause != context.Canceled {
		return cause
	}
	logger.Info("crmsync: stopped")
	return nil
}

// resumeDeadLeases takes over the sync and stream leases this replica's
// killed predecessor held (same replica id, another incarnation) and
// schedules a flush of each connection at once, so its work resumes within seconds of
// the restart instead of after the lease and the stuck job expire. A
// failure is logged: the leases then expire as they would have.
func resumeDeadLeases(ctx context.Context, a *app, id replica.Identity, logger *slog.Logger) {
	if !id.Stable {
		return
	}
	released, err := a.conns.ReleaseDeadLeases(ctx, id.Predecessor)
	if err != nil {
		logger.Warn("take over the leases of this replica's previous process", slog.Any("error", err))
	}
	for _, ws := range released {
		logger.Info("took over a lease of this replica's previous process; flushing now", slog.Int64("workspace_id", ws))
		if err := a.sched.ScheduleNow(ctx, ws); err != nil {
			logger.Warn("schedule flush after taking over a lease", slog.Int64("workspace_id", ws), slog.Any("error", err))
		}
	}
	// Its streams too: the supervisor, started next, streams them again at
	// once from their stored positions.
	streams, err := inbound.ReleaseDeadStreamLeases(ctx, a.db, id.Predecessor)
	if err != nil {
		logger.Warn("take over the stream leases of this replica's previous process", slog.Any("error", err))
	}
	for _, ws := range streams {
		logger.Info("took over a stream lease of this replica's previous process", slog.Int64("workspace_id", ws))
	}
}

func migrateOnStart(ctx context.Context, c config.Server, bdb *bun.DB, logger *slog.Logger) error {
	if c.NoMigrate {
		status, err := db.MigrationStatus(ctx, bdb)
		if err != nil {
			return err
		}
		if len(db.Pending(status)) > 0 {
			return errNotMigrated
		}
		return nil
	}
	applied, err := db.Migrate(ctx, bdb)
	if err != nil {
		return err
	}
	for _, m := range applied {
		logger.Info("migrate: applied", slog.String("source", m.Source), slog.String("migration", m.Name))
	}
	return nil
}

// stopRiver stops River softly (running jobs finish) and cancels the jobs
// still running after timeout.
func stopRiver(client *river.Client[*sql.Tx], timeout time.Duration, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := client.Stop(ctx)
	if err == nil {
		return nil
	}
	logger.Warn("river: jobs still running after the shutdown timeout; cancelling them", slog.Any("error", err))
	hardCtx, hardCancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer hardCancel()
	if err := client.StopAndCancel(hardCtx); err != nil {
		return fmt.Errorf("stop river: %w", err)
	}
	return nil
}

// databaseName says which database global points at, password masked.
func databaseName(global config.Global) string {
	if global.DatabaseURL == "" {
		return "SQLite in " + global.DataDir
	}
	return "PostgreSQL"
}

// displayAddr is addr as a browser would reach it.
func displayAddr(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
