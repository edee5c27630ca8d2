package crmplugin

import (
	"context"
	"fmt"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/crmplugin/internal/connectorv1"
)

// remote is the host's connector.Connector for one named plugin. Every call
// goes to the plugin's current process, starting a new one when the last
// one exited.
type remote struct {
	host *Host
	name string
}

var (
	_ connector.Connector     = (*remote)(nil)
	_ connector.ChangeFetcher = (*remote)(nil)
	_ connector.BatchFetcher  = (*remote)(nil)
)

// invoke runs fn against the plugin's current process and decodes its error.
func invoke[T any](ctx context.Context, r *remote, method string, fn func(connectorv1.ConnectorClient) (T, error)) (T, error) {
	var zero T
	p, err := r.host.process(ctx, r.name)
	if err != nil {
		return zero, fmt.Errorf("connector %s %s: %w", r.name, method, err)
	}
	resp, err := fn(p.rpc)
	if err != nil {
		return zero, fmt.Errorf("connector %s %s: %w", r.name, method, r.host.failed(ctx, r.name, p, method, err))
	}
	return resp, nil
}

func (r *remote) Describe(ctx context.Context, req connector.DescribeRequest) (*connector.Description, error) {
	resp, err := invoke(ctx, r, "Describe", func(c connectorv1.ConnectorClient) (*connectorv1.DescribeResponse, error) {
		return c.Describe(ctx, &connectorv1.DescribeRequest{Session: sessionToPB(req.Session), Objects: req.Objects})
	})
	if err != nil {
		return nil, err
	}
	return descriptionFromPB(resp), nil
}

func (r *remote) Check(ctx context.Context, req connector.CheckRequest) (*connector.CheckResponse, error) {
	resp, err := invoke(ctx, r, "Check", func(c connectorv1.ConnectorClient) (*connectorv1.CheckResponse, error) {
		return c.Check(ctx, &connectorv1.CheckRequest{Session: sessionToPB(req.Session)})
	})
	if err != nil {
		return nil, err
	}
	id := resp.GetIdentity()
	return &connector.CheckResponse{
		Identity: connector.Identity{UserID: id.GetUserId(), Username: id.GetUsername(), OrgID: id.GetOrgId(), InstanceURL: id.GetInstanceUrl()},
		Meta:     metaFromPB(resp.GetMeta()),
	}, nil
}

func (r *remote) FetchCurrent(ctx context.Context, req connector.FetchCurrentRequest) (*connector.FetchCurrentResponse, error) {
	in := &connectorv1.FetchCurrentRequest{Session: sessionToPB(req.Session), Object: req.Object, Ids: req.IDs, Fields: req.Fields}
	if req.Match != nil {
		in.Match = &connectorv1.MatchKey{Field: req.Match.Field, Values: req.Match.Values}
	}
	resp, err := invoke(ctx, r, "FetchCurrent", func(c connectorv1.ConnectorClient) (*connectorv1.FetchCurrentResponse, error) {
		return c.FetchCurrent(ctx, in)
	})
	if err != nil {
		return nil, err
	}
	recs, err := recordsFromPB(resp.GetRecords())
	if err != nil {
		return nil, fmt.Errorf("connector %s FetchCurrent %s: %w", r.name, req.Object, err)
	}
	return &connector.FetchCurrentResponse{Records: recs, Meta: metaFromPB(resp.GetMeta())}, nil
}

func (r *remote) BulkUpdate(ctx context.Context, req connector.BulkUpdateRequest) (*connector.BulkUpdateResponse, error) {
	ops, err := operationsToPB(req.Operations)
	if err != nil {
		return nil, connector.Errorf(connector.KindInvalid, "connector %s BulkUpdate: %w", r.name, err)
	}
	resp, err := invoke(ctx, r, "BulkUpdate", func(c connectorv1.ConnectorClient) (*connectorv1.BulkUpdateResponse, error) {
		return c.BulkUpdate(ctx, &connectorv1.BulkUpdateRequest{Session: sessionToPB(req.Session), Operations: ops})
	})
	if err != nil {
		return nil, err
	}
	results := resultsFromPB(resp.GetResults())
	if len(results) != len(req.Operations) {
		return nil, fmt.Errorf("connector %s BulkUpdate: %d results for %d operations", r.name, len(results), len(req.Operations))
	}
	return &connector.BulkUpdateResponse{Results: results, Meta: metaFromPB(resp.GetMeta())}, nil
}

func (r *remote) Limits(ctx context.Context, req connector.LimitsRequest) (*connector.LimitsResponse, error) {
	resp, err := invoke(ctx, r, "Limits", func(c connectorv1.ConnectorClient) (*connectorv1.LimitsResponse, error) {
		return c.Limits(ctx, &connectorv1.LimitsRequest{Session: sessionToPB(req.Session)})
	})
	if err != nil {
		return nil, err
	}
	return &connector.LimitsResponse{Usage: usageFromPB(resp.GetUsage()), Meta: metaFromPB(resp.GetMeta())}, nil
}

// FetchCurrentMany implements connector.BatchFetcher; it fails with
// connector.ErrUnsupported when the plugin does not implement it.
func (r *remote) FetchCurrentMany(ctx context.Context, req connector.FetchManyRequest) (*connector.FetchManyResponse, error) {
	in := &connectorv1.FetchManyRequest{Session: sessionToPB(req.Session)}
	for _, q := range req.Requests {
		one := &connectorv1.FetchCurrentRequest{Object: q.Object, Ids: q.IDs, Fields: q.Fields}
		if q.Match != nil {
			one.Match = &connectorv1.MatchKey{Field: q.Match.Field, Values: q.Match.Values}
		}
		in.Requests = append(in.Requests, one)
	}
	resp, err := invoke(ctx, r, "FetchCurrentMany", func(c connectorv1.ConnectorClient) (*connectorv1.FetchManyResponse, error) {
		return c.FetchCurrentMany(ctx, in)
	})
	if err != nil {
		return nil, err
	}
	if len(resp.GetResults()) != len(req.Requests) {
		return nil, fmt.Errorf("connector %s FetchCurrentMany: %d results for %d requests", r.name, len(resp.GetResults()), len(req.Requests))
	}
	out := &connector.FetchManyResponse{Results: make([][]connector.Record, len(req.Requests)), Meta: metaFromPB(resp.GetMeta())}
	for i, list := range resp.GetResults() {
		if out.Results[i], err = recordsFromPB(list.GetRecords()); err != nil {
			return nil, fmt.Errorf("connector %s FetchCurrentMany %s: %w", r.name, req.Requests[i].Object, err)
		}
	}
	return out, nil
}

// FetchChanges implements connector.ChangeFetcher; it fails with
// connector.ErrUnsupported when the plugin does not implement it.
func (r *remote) FetchChanges(ctx context.Context, req connector.FetchChangesRequest) (*connector.FetchChangesResponse, error) {
	resp, err := invoke(ctx, r, "FetchChanges", func(c connectorv1.ConnectorClient) (*connectorv1.FetchChangesResponse, error) {
		return c.FetchChanges(ctx, &connectorv1.FetchChangesRequest{
			Session: sessionToPB(req.Session), Object: req.Object, Fields: req.Fields, Cursor: req.Cursor,
			Since: timeToPB(req.Since), PageSize: int64(req.PageSize),
		})
	})
	if err != nil {
		return nil, err
	}
	recs, err := recordsFromPB(resp.GetRecords())
	if err != nil {
		return nil, fmt.Errorf("connector %s FetchChanges %s: %w", r.name, req.Object, err)
	}
	return &connector.FetchChangesResponse{Records: recs, NextCursor: resp.GetNextCursor(), More: resp.GetMore(), Meta: metaFromPB(resp.GetMeta())}, nil
}
