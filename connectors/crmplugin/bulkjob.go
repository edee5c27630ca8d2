package crmplugin

import (
	"context"
	"fmt"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/crmplugin/internal/connectorv1"
)

// The bulk job RPCs, both sides. Each of the remote's methods fails with
// connector.ErrUnsupported when the plugin does not implement
// connector.BulkJobRunner; callers use them only when the plugin announces
// connector.CapabilityBulkJobs: a plugin built before the RPCs existed
// answers gRPC Unimplemented, not a connector error.

var _ connector.BulkJobRunner = (*remote)(nil)

// OpenBulkJob implements connector.BulkJobRunner.
func (r *remote) OpenBulkJob(ctx context.Context, req connector.OpenBulkJobRequest) (*connector.OpenBulkJobResponse, error) {
	resp, err := invoke(ctx, r, "OpenBulkJob", func(c connectorv1.ConnectorClient) (*connectorv1.OpenBulkJobResponse, error) {
		return c.OpenBulkJob(ctx, &connectorv1.OpenBulkJobRequest{
			Session: sessionToPB(req.Session), Object: req.Object, Kind: string(req.Kind), ExternalIdField: req.ExternalIDField,
		})
	})
	if err != nil {
		return nil, err
	}
	if resp.GetJobId() == "" {
		return nil, fmt.Errorf("connector %s OpenBulkJob %s %s: the plugin answered no job id", r.name, req.Kind, req.Object)
	}
	return &connector.OpenBulkJobResponse{JobID: resp.GetJobId(), Meta: metaFromPB(resp.GetMeta())}, nil
}

// RunBulkJob implements connector.BulkJobRunner.
func (r *remote) RunBulkJob(ctx context.Context, req connector.RunBulkJobRequest) (*connector.BulkUpdateResponse, error) {
	ops, err := operationsToPB(req.Operations)
	if err != nil {
		return nil, connector.Errorf(connector.KindInvalid, "connector %s RunBulkJob %s: %v", r.name, req.JobID, err)
	}
	resp, err := invoke(ctx, r, "RunBulkJob", func(c connectorv1.ConnectorClient) (*connectorv1.BulkUpdateResponse, error) {
		return c.RunBulkJob(ctx, &connectorv1.RunBulkJobRequest{Session: sessionToPB(req.Session), JobId: req.JobID, Operations: ops})
	})
	if err != nil {
		return nil, err
	}
	results := resultsFromPB(resp.GetResults())
	if len(results) != len(req.Operations) {
		return nil, fmt.Errorf("connector %s RunBulkJob %s: %d results for %d operations", r.name, req.JobID, len(results), len(req.Operations))
	}
	return &connector.BulkUpdateResponse{Results: results, Meta: metaFromPB(resp.GetMeta())}, nil
}

// SettleBulkJob implements connector.BulkJobRunner.
func (r *remote) SettleBulkJob(ctx context.Context, req connector.SettleBulkJobRequest) (*connector.SettleBulkJobResponse, error) {
	resp, err := invoke(ctx, r, "SettleBulkJob", func(c connectorv1.ConnectorClient) (*connectorv1.SettleBulkJobResponse, error) {
		return c.SettleBulkJob(ctx, &connectorv1.SettleBulkJobRequest{Session: sessionToPB(req.Session), JobId: req.JobID})
	})
	if err != nil {
		return nil, err
	}
	return &connector.SettleBulkJobResponse{
		Done: resp.GetDone(), State: resp.GetState(), Processed: resp.GetProcessed(), Failed: resp.GetFailed(), Meta: metaFromPB(resp.GetMeta()),
	}, nil
}

// bulkJobRunner returns the plugin's connector.BulkJobRunner, or the
// status a plugin without one answers.
func (s *server) bulkJobRunner() (connector.BulkJobRunner, error) {
	bj, ok := s.impl.(connector.BulkJobRunner)
	if !ok {
		return nil, errorToStatus(connector.Errorf(connector.KindUnsupported, "connector does not run bulk jobs"))
	}
	return bj, nil
}

func (s *server) OpenBulkJob(ctx context.Context, req *connectorv1.OpenBulkJobRequest) (*connectorv1.OpenBulkJobResponse, error) {
	bj, err := s.bulkJobRunner()
	if err != nil {
		return nil, err
	}
	resp, err := bj.OpenBulkJob(ctx, connector.OpenBulkJobRequest{
		Session: sessionFromPB(req.GetSession()), Object: req.GetObject(), Kind: connector.OpKind(req.GetKind()), ExternalIDField: req.GetExternalIdField(),
	})
	if err != nil {
		return nil, errorToStatus(err)
	}
	return &connectorv1.OpenBulkJobResponse{JobId: resp.JobID, Meta: metaToPB(resp.Meta)}, nil
}

func (s *server) RunBulkJob(ctx context.Context, req *connectorv1.RunBulkJobRequest) (*connectorv1.BulkUpdateResponse, error) {
	bj, err := s.bulkJobRunner()
	if err != nil {
		return nil, err
	}
	ops, err := operationsFromPB(req.GetOperations())
	if err != nil {
		return nil, errorToStatus(connector.Errorf(connector.KindInvalid, "run bulk job %s: %v", req.GetJobId(), err))
	}
	resp, err := bj.RunBulkJob(ctx, connector.RunBulkJobRequest{Session: sessionFromPB(req.GetSession()), JobID: req.GetJobId(), Operations: ops})
	if err != nil {
		return nil, errorToStatus(err)
	}
	return &connectorv1.BulkUpdateResponse{Results: resultsToPB(resp.Results), Meta: metaToPB(resp.Meta)}, nil
}

func (s *server) SettleBulkJob(ctx context.Context, req *connectorv1.SettleBulkJobRequest) (*connectorv1.SettleBulkJobResponse, error) {
	bj, err := s.bulkJobRunner()
	if err != nil {
		return nil, err
	}
	resp, err := bj.SettleBulkJob(ctx, connector.SettleBulkJobRequest{Session: sessionFromPB(req.GetSession()), JobID: req.GetJobId()})
	if err != nil {
		return nil, errorToStatus(err)
	}
	return &connectorv1.SettleBulkJobResponse{
		Done: resp.Done, State: wireString(resp.State, maxMessageRunes), Processed: resp.Processed, Failed: resp.Failed, Meta: metaToPB(resp.Meta),
	}, nil
}
