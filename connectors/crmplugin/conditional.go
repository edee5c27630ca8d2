package crmplugin

import (
	"context"
	"fmt"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/crmplugin/internal/connectorv1"
)

// UpdateIfUnmodified implements connector.ConditionalUpdater; it fails
// with connector.ErrUnsupported when the plugin does not implement it.
// Callers use it only when the plugin announces
// connector.CapabilityConditionalUpdate: a plugin built before the RPC
// existed answers gRPC Unimplemented, not a connector error.
func (r *remote) UpdateIfUnmodified(ctx context.Context, req connector.ConditionalUpdateRequest) (*connector.ConditionalUpdateResponse, error) {
	in := &connectorv1.ConditionalUpdateRequest{Session: sessionToPB(req.Session)}
	for _, u := range req.Updates {
		fields, err := fieldsToJSON(u.Fields)
		if err != nil {
			return nil, connector.Errorf(connector.KindInvalid, "connector %s UpdateIfUnmodified %s %s: %v", r.name, u.Object, u.ID, err)
		}
		in.Updates = append(in.Updates, &connectorv1.ConditionalUpdate{Object: u.Object, Id: u.ID, Fields: fields, UnmodifiedSince: timeToPB(u.UnmodifiedSince)})
	}
	for _, q := range req.Reads {
		one := &connectorv1.FetchCurrentRequest{Object: q.Object, Ids: q.IDs, Fields: q.Fields}
		if q.Match != nil {
			one.Match = &connectorv1.MatchKey{Field: q.Match.Field, Values: q.Match.Values}
		}
		in.Reads = append(in.Reads, one)
	}
	resp, err := invoke(ctx, r, "UpdateIfUnmodified", func(c connectorv1.ConnectorClient) (*connectorv1.ConditionalUpdateResponse, error) {
		return c.UpdateIfUnmodified(ctx, in)
	})
	if err != nil {
		return nil, err
	}
	if len(resp.GetResults()) != len(req.Updates) {
		return nil, fmt.Errorf("connector %s UpdateIfUnmodified: %d results for %d updates", r.name, len(resp.GetResults()), len(req.Updates))
	}
	out := &connector.ConditionalUpdateResponse{Results: conditionalResultsFromPB(resp.GetResults()), Meta: metaFromPB(resp.GetMeta())}
	if out.Records, err = recordsFromPB(resp.GetRecords()); err != nil {
		return nil, fmt.Errorf("connector %s UpdateIfUnmodified: %w", r.name, err)
	}
	return out, nil
}

func (s *server) UpdateIfUnmodified(ctx context.Context, req *connectorv1.ConditionalUpdateRequest) (*connectorv1.ConditionalUpdateResponse, error) {
	cu, ok := s.impl.(connector.ConditionalUpdater)
	if !ok {
		return nil, errorToStatus(connector.Errorf(connector.KindUnsupported, "connector does not update conditionally"))
	}
	in := connector.ConditionalUpdateRequest{Session: sessionFromPB(req.GetSession())}
	for _, u := range req.GetUpdates() {
		fields, err := fieldsFromJSON(u.GetFields())
		if err != nil {
			return nil, errorToStatus(connector.Errorf(connector.KindInvalid, "update of %s %s: %v", u.GetObject(), u.GetId(), err))
		}
		in.Updates = append(in.Updates, connector.ConditionalUpdate{Object: u.GetObject(), ID: u.GetId(), Fields: fields,
			UnmodifiedSince: timeFromPB(u.GetUnmodifiedSince())})
	}
	for _, q := range req.GetReads() {
		one := connector.FetchCurrentRequest{Object: q.GetObject(), IDs: q.GetIds(), Fields: q.GetFields()}
		if m := q.GetMatch(); m != nil {
			one.Match = &connector.MatchKey{Field: m.GetField(), Values: m.GetValues()}
		} else if one.IDs == nil {
			one.IDs = []string{}
		}
		in.Reads = append(in.Reads, one)
	}
	resp, err := cu.UpdateIfUnmodified(ctx, in)
	if err != nil {
		return nil, errorToStatus(err)
	}
	recs, err := recordsToPB(resp.Records)
	if err != nil {
		return nil, errorToStatus(err)
	}
	return &connectorv1.ConditionalUpdateResponse{Results: conditionalResultsToPB(resp.Results), Records: recs, Meta: metaToPB(resp.Meta)}, nil
}

func conditionalResultsToPB(rs []connector.ConditionalResult) []*connectorv1.ConditionalResult {
	out := make([]*connectorv1.ConditionalResult, len(rs))
	for i, r := range rs {
		out[i] = &connectorv1.ConditionalResult{PreconditionFailed: r.PreconditionFailed}
		if e := r.Error; e != nil {
			out[i].Error = &connectorv1.RecordError{Code: e.Code, Message: e.Message, Fields: e.Fields, Retryable: e.Retryable}
		}
	}
	return out
}

func conditionalResultsFromPB(rs []*connectorv1.ConditionalResult) []connector.ConditionalResult {
	out := make([]connector.ConditionalResult, len(rs))
	for i, r := range rs {
		out[i] = connector.ConditionalResult{PreconditionFailed: r.GetPreconditionFailed()}
		if e := r.GetError(); e != nil {
			out[i].Error = &connector.RecordError{Code: e.GetCode(), Message: e.GetMessage(), Fields: e.GetFields(), Retryable: e.GetRetryable()}
		}
	}
	return out
}

var _ connector.ConditionalUpdater = (*remote)(nil)
