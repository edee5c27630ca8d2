package crmplugin

import (
	"context"
	"os"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/crmplugin/internal/connectorv1"
)

const (
	pluginName  = "connector"
	cookieKey   = "CRMSYNC_CONNECTOR_PLUGIN"
	cookieValue = "a3f1c0de-crmsync-connector"
)

// maxMessage bounds one gRPC message between host and plugin, both ways.
// gRPC's default of 4 MB is less than one flush: a BulkUpdate of the
// engine's 50,000 operations is about 7 MB, and its results as large.
const maxMessage = 256 << 20

// grpcServer is go-plugin's default server with maxMessage.
func grpcServer(opts []grpc.ServerOption) *grpc.Server {
	return goplugin.DefaultGRPCServer(append(opts, grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage)))
}

func handshake(version int) goplugin.HandshakeConfig {
	return goplugin.HandshakeConfig{ProtocolVersion: uint(version), MagicCookieKey: cookieKey, MagicCookieValue: cookieValue}
}

// Serve serves impl as a connector plugin over gRPC and returns only when
// the host ends the process. Call it from the plugin binary's main. The
// optional interfaces impl implements (connector.ChangeFetcher,
// BatchFetcher, ConditionalUpdater, BulkJobRunner) are served too; the
// others answer connector.ErrUnsupported.
//
// Run directly from a shell (not by crmsync), Serve prints that the binary
// is a plugin and exits with status 1.
func Serve(impl connector.Connector) { serve(impl, connector.ProtocolVersion) }

func serve(impl connector.Connector, version int) {
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: handshake(version),
		Plugins:         goplugin.PluginSet{pluginName: &grpcPlugin{impl: impl}},
		GRPCServer:      grpcServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "plugin", Level: hclog.Info, Output: os.Stderr, JSONFormat: true,
		}),
	})
}

// grpcPlugin is the go-plugin glue: on the plugin side it registers the
// server, on the host side it builds the client.
type grpcPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	impl connector.Connector
}

func (p *grpcPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	connectorv1.RegisterConnectorServer(s, &server{impl: p.impl})
	registerStream(s, p.impl)
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return withStream(connectorv1.NewConnectorClient(c), c), nil
}

// server adapts a connector.Connector to the generated gRPC service.
type server struct {
	connectorv1.UnimplementedConnectorServer
	impl connector.Connector
}

func (s *server) Describe(ctx context.Context, req *connectorv1.DescribeRequest) (*connectorv1.DescribeResponse, error) {
	d, err := s.impl.Describe(ctx, connector.DescribeRequest{Session: sessionFromPB(req.GetSession()), Objects: req.GetObjects()})
	if err != nil {
		return nil, errorToStatus(err)
	}
	return descriptionToPB(d), nil
}

func (s *server) Check(ctx context.Context, req *connectorv1.CheckRequest) (*connectorv1.CheckResponse, error) {
	resp, err := s.impl.Check(ctx, connector.CheckRequest{Session: sessionFromPB(req.GetSession())})
	if err != nil {
		return nil, errorToStatus(err)
	}
	id := resp.Identity
	return &connectorv1.CheckResponse{
		Identity: &connectorv1.Identity{UserId: id.UserID, Username: id.Username, OrgId: id.OrgID, InstanceUrl: id.InstanceURL},
		Meta:     metaToPB(resp.Meta),
	}, nil
}

func (s *server) FetchCurrent(ctx context.Context, req *connectorv1.FetchCurrentRequest) (*connectorv1.FetchCurrentResponse, error) {
	in := connector.FetchCurrentRequest{
		Session: sessionFromPB(req.GetSession()), Object: req.GetObject(), IDs: req.GetIds(), Fields: req.GetFields(),
	}
	if m := req.GetMatch(); m != nil {
		in.Match = &connector.MatchKey{Field: m.GetField(), Values: m.GetValues()}
	} else if in.IDs == nil {
		in.IDs = []string{}
	}
	resp, err := s.impl.FetchCurrent(ctx, in)
	if err != nil {
		return nil, errorToStatus(err)
	}
	recs, err := recordsToPB(resp.Records)
	if err != nil {
		return nil, errorToStatus(err)
	}
	return &connectorv1.FetchCurrentResponse{Records: recs, Meta: metaToPB(resp.Meta)}, nil
}

func (s *server) BulkUpdate(ctx context.Context, req *connectorv1.BulkUpdateRequest) (*connectorv1.BulkUpdateResponse, error) {
	ops, err := operationsFromPB(req.GetOperations())
	if err != nil {
		return nil, errorToStatus(connector.Errorf(connector.KindInvalid, "%v", err))
	}
	resp, err := s.impl.BulkUpdate(ctx, connector.BulkUpdateRequest{Session: sessionFromPB(req.GetSession()), Operations: ops})
	if err != nil {
		return nil, errorToStatus(err)
	}
	return &connectorv1.BulkUpdateResponse{Results: resultsToPB(resp.Results), Meta: metaToPB(resp.Meta)}, nil
}

func (s *server) Limits(ctx context.Context, req *connectorv1.LimitsRequest) (*connectorv1.LimitsResponse, error) {
	resp, err := s.impl.Limits(ctx, connector.LimitsRequest{Session: sessionFromPB(req.GetSession())})
	if err != nil {
		return nil, errorToStatus(err)
	}
	return &connectorv1.LimitsResponse{Usage: usageToPB(resp.Usage), Meta: metaToPB(resp.Meta)}, nil
}

func (s *server) FetchCurrentMany(ctx context.Context, req *connectorv1.FetchManyRequest) (*connectorv1.FetchManyResponse, error) {
	bf, ok := s.impl.(connector.BatchFetcher)
	if !ok {
		return nil, errorToStatus(connector.Errorf(connector.KindUnsupported, "connector does not fetch several objects at once"))
	}
	in := connector.FetchManyRequest{Session: sessionFromPB(req.GetSession())}
	for _, q := range req.GetRequests() {
		one := connector.FetchCurrentRequest{Object: q.GetObject(), IDs: q.GetIds(), Fields: q.GetFields()}
		if m := q.GetMatch(); m != nil {
			one.Match = &connector.MatchKey{Field: m.GetField(), Values: m.GetValues()}
		} else if one.IDs == nil {
			one.IDs = []string{}
		}
		in.Requests = append(in.Requests, one)
	}
	resp, err := bf.FetchCurrentMany(ctx, in)
	if err != nil {
		return nil, errorToStatus(err)
	}
	out := &connectorv1.FetchManyResponse{Meta: metaToPB(resp.Meta)}
	for _, recs := range resp.Results {
		list, err := recordsToPB(recs)
		if err != nil {
			return nil, errorToStatus(err)
		}
		out.Results = append(out.Results, &connectorv1.RecordList{Records: list})
	}
	return out, nil
}

func (s *server) FetchChanges(ctx context.Context, req *connectorv1.FetchChangesRequest) (*connectorv1.FetchChangesResponse, error) {
	cf, ok := s.impl.(connector.ChangeFetcher)
	if !ok {
		return nil, errorToStatus(connector.Errorf(connector.KindUnsupported, "connector does not fetch changes"))
	}
	resp, err := cf.FetchChanges(ctx, connector.FetchChangesRequest{
		Session: sessionFromPB(req.GetSession()), Object: req.GetObject(), Fields: req.GetFields(),
		Cursor: req.GetCursor(), Since: timeFromPB(req.GetSince()), PageSize: int(req.GetPageSize()),
	})
	if err != nil {
		return nil, errorToStatus(err)
	}
	recs, err := recordsToPB(resp.Records)
	if err != nil {
		return nil, errorToStatus(err)
	}
	return &connectorv1.FetchChangesResponse{Records: recs, NextCursor: resp.NextCursor, More: resp.More, Meta: metaToPB(resp.Meta)}, nil
}
