package crmplugin

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/crmplugin/internal/connectorv1"
)

// The change stream (connector.ChangeStreamer) crosses the process boundary
// as the ChangeStream service (stream.proto), a server-streaming call
// registered on the plugin's gRPC server only when the connector streams.

// registerStream serves impl's change streams, if it has any.
func registerStream(s *grpc.Server, impl connector.Connector) {
	if cs, ok := impl.(connector.ChangeStreamer); ok {
		connectorv1.RegisterChangeStreamServer(s, &streamServer{impl: cs})
	}
	if mf, ok := impl.(connector.ManyChangeFetcher); ok {
		connectorv1.RegisterChangeFeedServer(s, &feedServer{impl: mf})
	}
}

// clients is what the host dispenses: the Connector client, with the
// ChangeStream client of the same connection.
type clients struct {
	connectorv1.ConnectorClient
	stream connectorv1.ChangeStreamClient
	feed   connectorv1.ChangeFeedClient
}

func withStream(c connectorv1.ConnectorClient, conn grpc.ClientConnInterface) connectorv1.ConnectorClient {
	return clients{ConnectorClient: c, stream: connectorv1.NewChangeStreamClient(conn), feed: connectorv1.NewChangeFeedClient(conn)}
}

type feedServer struct {
	connectorv1.UnimplementedChangeFeedServer
	impl connector.ManyChangeFetcher
}

func (s *feedServer) FetchChangesMany(ctx context.Context, req *connectorv1.FetchChangesManyRequest) (*connectorv1.FetchChangesManyResponse, error) {
	in := connector.FetchChangesManyRequest{Session: sessionFromPB(req.GetSession())}
	for _, r := range req.GetRequests() {
		in.Requests = append(in.Requests, connector.FetchChangesRequest{Object: r.GetObject(), Fields: r.GetFields(),
			Cursor: r.GetCursor(), Since: timeFromPB(r.GetSince()), PageSize: int(r.GetPageSize())})
	}
	resp, err := s.impl.FetchChangesMany(ctx, in)
	if err != nil {
		return nil, errorToStatus(err)
	}
	out := &connectorv1.FetchChangesManyResponse{Meta: metaToPB(resp.Meta)}
	for _, r := range resp.Results {
		recs, err := recordsToPB(r.Records)
		if err != nil {
			return nil, errorToStatus(err)
		}
		out.Results = append(out.Results, &connectorv1.FetchChangesResponse{Records: recs, NextCursor: r.NextCursor, More: r.More})
	}
	return out, nil
}

var _ connector.ManyChangeFetcher = (*remote)(nil)

// FetchChangesMany implements connector.ManyChangeFetcher; it fails with
// connector.ErrUnsupported when the plugin cannot pack (the caller then
// reads object by object).
func (r *remote) FetchChangesMany(ctx context.Context, req connector.FetchChangesManyRequest) (*connector.FetchChangesManyResponse, error) {
	in := &connectorv1.FetchChangesManyRequest{Session: sessionToPB(req.Session)}
	for _, q := range req.Requests {
		in.Requests = append(in.Requests, &connectorv1.FetchChangesRequest{Object: q.Object, Fields: q.Fields, Cursor: q.Cursor,
			Since: timeToPB(q.Since), PageSize: int64(q.PageSize)})
	}
	p, err := r.host.process(ctx, r.name)
	if err != nil {
		return nil, fmt.Errorf("connector %s FetchChangesMany: %w", r.name, err)
	}
	cl, ok := p.rpc.(clients)
	if !ok {
		return nil, connector.Errorf(connector.KindUnsupported, "connector %s: this host cannot pack change fetches", r.name)
	}
	resp, err := cl.feed.FetchChangesMany(ctx, in)
	if status.Code(err) == codes.Unimplemented {
		return nil, connector.Errorf(connector.KindUnsupported, "connector %s cannot pack change fetches", r.name)
	}
	if err != nil {
		return nil, fmt.Errorf("connector %s FetchChangesMany: %w", r.name, r.host.failed(ctx, r.name, p, "FetchChangesMany", err))
	}
	out := &connector.FetchChangesManyResponse{Meta: metaFromPB(resp.GetMeta())}
	for _, res := range resp.GetResults() {
		recs, err := recordsFromPB(res.GetRecords())
		if err != nil {
			return nil, fmt.Errorf("connector %s FetchChangesMany: %w", r.name, err)
		}
		out.Results = append(out.Results, connector.FetchChangesResponse{Records: recs, NextCursor: res.GetNextCursor(), More: res.GetMore()})
	}
	return out, nil
}

type streamServer struct {
	connectorv1.UnimplementedChangeStreamServer
	impl connector.ChangeStreamer
}

// errSendFailed marks a Send failure: the host is gone or cancelled.
type errSendFailed struct{ err error }

func (e errSendFailed) Error() string { return e.err.Error() }

func (s *streamServer) Subscribe(req *connectorv1.StreamSubscribeRequest, out connectorv1.ChangeStream_SubscribeServer) error {
	err := s.impl.SubscribeChanges(out.Context(), connector.SubscribeRequest{Session: sessionFromPB(req.GetSession()),
		Object: req.GetObject(), Channel: req.GetChannel(), Position: req.GetPosition(), Fields: req.GetFields()},
		func(_ context.Context, b *connector.ChangeBatch) error {
			msg, err := batchToPB(b)
			if err != nil {
				return err
			}
			if err := out.Send(msg); err != nil {
				return errSendFailed{err}
			}
			return nil
		})
	var sf errSendFailed
	if errors.As(err, &sf) {
		return sf.err
	}
	return errorToStatus(err)
}

func batchToPB(b *connector.ChangeBatch) (*connectorv1.StreamChangeBatch, error) {
	out := &connectorv1.StreamChangeBatch{Position: b.Position, Meta: metaToPB(b.Meta)}
	for _, ev := range b.Events {
		fields, err := fieldsToJSON(ev.Fields)
		if err != nil {
			return nil, fmt.Errorf("encode %s change event: %w", ev.Object, err)
		}
		out.Events = append(out.Events, &connectorv1.StreamChangeEvent{Kind: string(ev.Kind), Object: ev.Object, RecordIds: ev.RecordIDs,
			Fields: fields, CommittedAt: timeToPB(ev.CommittedAt), CommitUser: ev.CommitUser, Origin: ev.Origin, Own: ev.Own, Reason: ev.Reason})
	}
	return out, nil
}

func batchFromPB(b *connectorv1.StreamChangeBatch) (*connector.ChangeBatch, error) {
	out := &connector.ChangeBatch{Position: b.GetPosition(), Meta: metaFromPB(b.GetMeta())}
	for _, ev := range b.GetEvents() {
		fields, err := fieldsFromJSON(ev.GetFields())
		if err != nil {
			return nil, fmt.Errorf("decode %s change event: %w", ev.GetObject(), err)
		}
		if fields == nil {
			fields = map[string]any{}
		}
		out.Events = append(out.Events, connector.ChangeEvent{Kind: connector.ChangeKind(ev.GetKind()), Object: ev.GetObject(),
			RecordIDs: ev.GetRecordIds(), Fields: fields, CommittedAt: timeFromPB(ev.GetCommittedAt()), CommitUser: ev.GetCommitUser(),
			Origin: ev.GetOrigin(), Own: ev.GetOwn(), Reason: ev.GetReason()})
	}
	return out, nil
}

var _ connector.ChangeStreamer = (*remote)(nil)

// SubscribeChanges implements connector.ChangeStreamer; it fails with
// connector.ErrUnsupported when the plugin does not stream. Cancelling ctx
// cancels the call in the plugin.
func (r *remote) SubscribeChanges(ctx context.Context, req connector.SubscribeRequest, handle func(context.Context, *connector.ChangeBatch) error) error {
	p, err := r.host.process(ctx, r.name)
	if err != nil {
		return fmt.Errorf("connector %s SubscribeChanges: %w", r.name, err)
	}
	cl, ok := p.rpc.(clients)
	if !ok {
		return connector.Errorf(connector.KindUnsupported, "connector %s: this host cannot stream", r.name)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := cl.stream.Subscribe(ctx, &connectorv1.StreamSubscribeRequest{Session: sessionToPB(req.Session), Object: req.Object,
		Channel: req.Channel, Position: req.Position, Fields: req.Fields})
	if err != nil {
		return r.streamErr(ctx, p, err)
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return connector.Errorf(connector.KindUnavailable, "connector %s SubscribeChanges %s: the plugin ended the stream", r.name, req.Object)
		}
		if err != nil {
			return r.streamErr(ctx, p, err)
		}
		b, err := batchFromPB(msg)
		if err != nil {
			return fmt.Errorf("connector %s SubscribeChanges %s: %w", r.name, req.Object, err)
		}
		if err := handle(ctx, b); err != nil {
			return err
		}
	}
}

func (r *remote) streamErr(ctx context.Context, p *process, err error) error {
	if status.Code(err) == codes.Unimplemented {
		return connector.Errorf(connector.KindUnsupported, "connector %s does not stream changes", r.name)
	}
	return fmt.Errorf("connector %s SubscribeChanges: %w", r.name, r.host.failed(ctx, r.name, p, "SubscribeChanges", err))
}
