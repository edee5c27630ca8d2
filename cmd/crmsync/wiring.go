package main

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/crmplugin"
	"github.com/crmsync/crmsync/internal/config"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/events"
	"github.com/crmsync/crmsync/internal/metrics"
	"github.com/crmsync/crmsync/internal/synclog"
)

// knownConnectors hands out connectors through the plugin host, refusing
// names that are neither built in nor configured (so a typo in connectCrm
// never starts a process), and telling a connector that fails to start
// (connection.UnavailableError) from an unknown one.
type knownConnectors struct {
	host     *crmplugin.Host
	external map[string]config.ExternalConnector
}

func (k knownConnectors) Connector(ctx context.Context, name string) (connector.Connector, error) {
	_, builtin := builtinConnectors[name]
	if _, ext := k.external[name]; !builtin && !ext {
		names := slices.Sorted(maps.Keys(builtinConnectors))
		names = append(names, slices.Sorted(maps.Keys(k.external))...)
		return nil, &connection.UnknownConnectorError{Name: name, Known: names}
	}
	crm, err := k.host.Connector(ctx, name)
	var se *crmplugin.StartError
	if errors.As(err, &se) {
		return nil, &connection.UnavailableError{Connector: name, Kind: string(se.Kind), Reason: se.Reason, Err: err}
	}
	return crm, err
}

func pluginExternals(ext map[string]config.ExternalConnector) map[string]crmplugin.External {
	out := make(map[string]crmplugin.External, len(ext))
	for name, e := range ext {
		out[name] = crmplugin.External{Path: e.Path, SHA256: e.SHA256}
	}
	return out
}

// eventNotifier turns engine and ingest notices into events for
// subscriptions, and counts batches in the metrics.
type eventNotifier struct {
	bus     events.Publisher
	logger  *slog.Logger
	metrics *metrics.Observer
}

func (n eventNotifier) BatchWritten(ctx context.Context, b *synclog.Batch) {
	if n.metrics != nil {
		n.metrics.BatchWritten(ctx, b)
	}
	n.publish(ctx, events.Event{WorkspaceID: b.WorkspaceID, Kind: events.KindBatch, BatchID: b.ID})
	n.publish(ctx, events.Event{WorkspaceID: b.WorkspaceID, Kind: events.KindOverview})
}

func (n eventNotifier) QueueChanged(ctx context.Context, workspaceID int64) {
	n.publish(ctx, events.Event{WorkspaceID: workspaceID, Kind: events.KindOverview})
}

func (n eventNotifier) publish(ctx context.Context, e events.Event) {
	if err := n.bus.Publish(ctx, e); err != nil {
		n.logger.Warn("publish event", slog.Int64("workspace_id", e.WorkspaceID), slog.String("kind", string(e.Kind)), slog.Any("error", err))
	}
}
