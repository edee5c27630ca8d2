package connectortest_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/connectortest"
	"github.com/crmsync/crmsync/connectors/memcrm"
)

// brokenEnv selects a deliberately broken connector for TestMemcrmSuite when
// TestSuiteCatchesBrokenConnectors re-runs this binary.
const brokenEnv = "CONNECTORTEST_BROKEN"

// broken wraps memcrm with one contract violation.
type broken struct {
	*memcrm.CRM
	bug string
}

func (b broken) BulkUpdate(ctx context.Context, req connector.BulkUpdateRequest) (*connector.BulkUpdateResponse, error) {
	resp, err := b.CRM.BulkUpdate(ctx, req)
	if err == nil && b.bug == "reorder" {
		slices.Reverse(resp.Results)
	}
	return resp, err
}

func (b broken) FetchCurrent(ctx context.Context, req connector.FetchCurrentRequest) (*connector.FetchCurrentResponse, error) {
	if b.bug == "website-unqueryable" && req.Match != nil && req.Match.Field == "Website" {
		req.Match = &connector.MatchKey{Field: "Website", Values: []string{"nothing.example.com"}}
	}
	resp, err := b.CRM.FetchCurrent(ctx, req)
	if err == nil && b.bug == "stamps" {
		for i := range resp.Records {
			resp.Records[i].LastModifiedByID = ""
		}
	}
	return resp, err
}

func (b broken) FetchChanges(ctx context.Context, req connector.FetchChangesRequest) (*connector.FetchChangesResponse, error) {
	resp, err := b.CRM.FetchChanges(ctx, req)
	if err == nil && b.bug == "skip-page" && len(resp.Records) > 1 {
		resp.Records = resp.Records[1:]
	}
	return resp, err
}

func (b broken) Check(ctx context.Context, req connector.CheckRequest) (*connector.CheckResponse, error) {
	if b.bug == "ignore-ctx" {
		ctx = context.Background()
	}
	resp, err := b.CRM.Check(ctx, req)
	if b.bug == "untyped" && err != nil {
		return nil, errors.New(err.Error())
	}
	var ce *connector.Error
	if b.bug == "lose-retry-after" && errors.As(err, &ce) {
		return nil, &connector.Error{Kind: ce.Kind, Message: ce.Message}
	}
	return resp, err
}

func (b broken) Describe(ctx context.Context, req connector.DescribeRequest) (*connector.Description, error) {
	d, err := b.CRM.Describe(ctx, req)
	if err == nil && b.bug == "unannounced" {
		d.Capabilities = slices.DeleteFunc(d.Capabilities, func(c connector.Capability) bool { return c == connector.CapabilityFetchMany })
	}
	// memcrm writes any number of operations, so a threshold of 3 holds.
	if err == nil && b.bug == "bulk-threshold-needs-credentials" && len(req.Session.Credentials) > 0 {
		d.Capabilities, d.BulkThreshold = append(d.Capabilities, connector.CapabilityBulk), 3
	}
	if err == nil && b.bug == "bulk-unannounced" {
		d.BulkThreshold = 3
	}
	if err == nil && b.bug == "bulkjobs-unannounced" {
		d.Capabilities = slices.DeleteFunc(d.Capabilities, func(c connector.Capability) bool { return c == connector.CapabilityBulkJobs })
	}
	if err == nil && b.bug == "contract-undescribed" {
		d.Contract = connector.SalesforceContract()
		d.Contract.Contact.Person.Email = "PersonalEmail__c"
	}
	if err == nil && b.bug == "contract-needs-credentials" && len(req.Session.Credentials) > 0 {
		d.Contract = connector.SalesforceContract()
		d.Contract.Task = nil
	}
	return d, err
}

func (b broken) FetchCurrentMany(ctx context.Context, req connector.FetchManyRequest) (*connector.FetchManyResponse, error) {
	if b.bug == "announced-missing" {
		return nil, connector.ErrUnsupported
	}
	return b.CRM.FetchCurrentMany(ctx, req)
}

func (b broken) RunBulkJob(ctx context.Context, req connector.RunBulkJobRequest) (*connector.BulkUpdateResponse, error) {
	if b.bug == "bulkjobs-any-kind" {
		// Writes whatever it is given, as BulkUpdate would.
		return b.CRM.BulkUpdate(ctx, connector.BulkUpdateRequest{Session: req.Session, Operations: req.Operations})
	}
	resp, err := b.CRM.RunBulkJob(ctx, req)
	if err == nil && b.bug == "bulkjobs-reorder" {
		slices.Reverse(resp.Results)
	}
	return resp, err
}

func (b broken) SettleBulkJob(ctx context.Context, req connector.SettleBulkJobRequest) (*connector.SettleBulkJobResponse, error) {
	if b.bug == "bulkjobs-settle-leaves-open" {
		return &connector.SettleBulkJobResponse{Done: true, State: memcrm.JobAborted}, nil
	}
	return b.CRM.SettleBulkJob(ctx, req)
}

// TestMemcrmSuite runs the suite against memcrm, or against a broken
// variant when brokenEnv is set (with memcrm's bulk jobs for the bugs
// named bulkjobs-*).
func TestMemcrmSuite(t *testing.T) {
	bug := os.Getenv(brokenEnv)
	var opts []memcrm.Option
	if strings.HasPrefix(bug, "bulkjobs-") {
		opts = append(opts, memcrm.WithBulkJobs(3))
	}
	crm := memcrm.New(opts...)
	var c connector.Connector = crm
	switch bug {
	case "":
	case "no-campaigns": // not broken: a CRM without campaigns
		c = memcrm.New(memcrm.WithoutObjects("Campaign", "CampaignMember"))
	default:
		c = broken{CRM: crm, bug: bug}
	}
	connectortest.Run(t, func(t *testing.T) connectortest.Harness {
		return connectortest.Harness{
			Connector:      c,
			Session:        memcrm.Session(t.Name(), memcrm.DefaultToken),
			BadCredentials: memcrm.Session(t.Name(), "nope"),
			FailWith: func(err *connector.Error) connector.Session {
				cfg, jerr := json.Marshal(memcrm.Config{Org: t.Name(), Faults: &memcrm.Faults{
					Fail: &memcrm.ErrorFault{Kind: err.Kind, Message: []byte(err.Message), RetryAfter: err.RetryAfter}}})
				require.NoError(t, jerr)
				s := memcrm.Session(t.Name(), memcrm.DefaultToken)
				s.Config = cfg
				return s
			},
		}
	})
}

// TestSuiteCatchesBrokenConnectors checks the suite fails each broken
// variant in the subtest that owns the property it breaks.
func TestSuiteCatchesBrokenConnectors(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	require.NoError(t, err)
	tests := map[string]string{
		"reorder":    "PerRecordErrors",
		"stamps":     "RoundTrip",
		"skip-page":  "FetchChanges",
		"ignore-ctx": "Canceled",
		"untyped":    "BadCredentials",
		// The error kinds and the capabilities.
		"lose-retry-after":  "ErrorKinds",
		"unannounced":       "Capabilities",
		"announced-missing": "Capabilities",
		// The bulk threshold crmsync reads without credentials, and a
		// threshold without the capability.
		"bulk-threshold-needs-credentials": "Capabilities",
		"bulk-unannounced":                 "Capabilities",
		// Bulk jobs: results out of order, a run of mixed kinds written,
		// an open job reported done but left open, jobs not announced.
		"bulkjobs-reorder":            "BulkJobs/CreateAndUpdate",
		"bulkjobs-any-kind":           "BulkJobs/MixedKindRefused",
		"bulkjobs-settle-leaves-open": "BulkJobs/NeverRunIsAborted",
		"bulkjobs-unannounced":        "Capabilities",
		// The data contract: a role naming a field the connector does
		// not describe, a contract that changes with credentials, and a
		// match key FetchCurrent cannot find records by.
		"contract-undescribed":       "DataContract",
		"contract-needs-credentials": "DataContract",
		"website-unqueryable":        "DataContract/Company.Domain",
	}
	for bug, subtest := range tests {
		t.Run(bug, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(exe, "-test.run=^TestMemcrmSuite$", "-test.v")
			cmd.Env = append(os.Environ(), brokenEnv+"="+bug)
			out, err := cmd.CombinedOutput()
			require.Error(t, err, "the suite passes a connector with bug %q:\n%s", bug, out)
			require.Contains(t, string(out), "--- FAIL: TestMemcrmSuite/"+subtest+" ", "bug %q", bug)
		})
	}
}

// A record type the contract leaves out is reported as not applicable,
// with the reason, never passed in silence.
func TestSuiteReportsUnsupportedRecordTypes(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^TestMemcrmSuite$/^DataContract$", "-test.v")
	cmd.Env = append(os.Environ(), brokenEnv+"=no-campaigns")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "a CRM without campaigns passes:\n%s", out)
	for _, want := range []string{
		"--- SKIP: TestMemcrmSuite/DataContract/Campaign.Name ",
		"not applicable: the contract declares no Campaign part: campaigns stay in Conversion",
		"--- SKIP: TestMemcrmSuite/DataContract/CampaignMember.Campaign ",
		"--- PASS: TestMemcrmSuite/DataContract/Contact.Person.Email ",
	} {
		require.Contains(t, string(out), want)
	}
}
